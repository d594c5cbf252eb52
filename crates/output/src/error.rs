//! The gate's error type, [`Error`], and the [`Result`] alias. A refusal names the path as
//! given and says why; an I/O failure names the path and keeps the OS error as its source.
//! Messages are lowercase without a trailing period.

use std::path::{Path, PathBuf};

/// Everything the gate can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path may not be written: it is the database, a SQLite file, a device...
    #[error("output {:?}: {reason}", path.display().to_string())]
    Refused {
        /// The path as the caller gave it.
        path: PathBuf,
        /// Why it is refused, and what to do instead.
        reason: String,
    },
    /// A file or folder could not be created, written, synced, renamed or removed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `rename to`...).
        op: &'static str,
        /// The path at fault (the final name, not a temporary one).
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file to be read is not a regular file (a FIFO, a device, a socket, a folder).
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path at fault.
        path: PathBuf,
        /// What it is, in words (`a FIFO`...).
        kind: &'static str,
    },
}

impl Error {
    pub(crate) fn refused(path: &Path, reason: impl Into<String>) -> Error {
        Error::Refused {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The OS error behind an I/O failure, if that is what this is.
    pub fn io_source(&self) -> Option<&std::io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The gate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
