//! The crate's single error type, [`Error`], and the [`Result`] alias.
//!
//! Errors fall in two families that callers (and [`crate::PoolManager`]) must tell apart:
//! pool-layer failures ([`Error::PoolInit`], see [`Error::is_pool_layer`]: a backend that
//! does not open within `init_timeout`, or whose reader set cannot open although the file
//! does) that a fallback backend can cure, and everything else (SQLite, file system, bad
//! input) which no other pool would fix. This module does not log or classify errors
//! beyond that.

use std::path::PathBuf;
use std::time::Duration;

use crate::pool::PoolKind;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, acquiring from or closing a pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite refused to open or configure a connection to `path`.
    #[error("cannot open sqlite database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but does not hold a SQLite database.
    #[error("{} is not a sqlite database", path.display())]
    NotADatabase {
        /// The database file.
        path: PathBuf,
    },
    /// A statement failed on an already open connection.
    #[error(transparent)]
    Database(#[from] rusqlite::Error),
    /// The path can never work as a pooled database (for example `:memory:`).
    #[error("invalid database path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: PathBuf,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A configuration value is out of range or not recognised.
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidConfig {
        /// Which setting.
        what: &'static str,
        /// The rejected value as given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The pool machinery itself failed to start (not the database).
    #[error("{backend} pool failed to initialise: {reason}")]
    PoolInit {
        /// The backend that failed.
        backend: PoolKind,
        /// Why it failed.
        reason: String,
    },
    /// No connection became free within the acquire timeout.
    #[error("timed out after {after:?} waiting for a {what} connection")]
    Timeout {
        /// `"reader"` or `"writer"`.
        what: &'static str,
        /// The configured acquire timeout.
        after: Duration,
    },
    /// The file holds a hot rollback journal (a write interrupted by a crash) that only a
    /// read-write connection can roll back.
    #[error(
        "{} holds an unfinished write left by an interrupted process (a hot -journal file), \
         which a read-only open cannot roll back; run one write command on it (for example \
         'marketdb doctor --checkpoint') to recover it",
        path.display()
    )]
    HotJournal {
        /// The database file.
        path: PathBuf,
    },
    /// A write was asked of a pool opened read-only.
    #[error("database {} is open read-only", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The pool was closed.
    #[error("connection pool is closed")]
    Closed,
    /// A blocking closure panicked (or its task was cancelled at runtime shutdown).
    #[error("blocking database task panicked: {0}")]
    Panicked(String),
    /// A file-system operation on `path` failed.
    #[error("i/o error on {}", path.display())]
    Io {
        /// The path being worked on.
        path: PathBuf,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True for failures of the pool machinery that another backend may not have;
    /// false for database, file-system and input errors, which no fallback can cure.
    pub fn is_pool_layer(&self) -> bool {
        matches!(self, Error::PoolInit { .. })
    }

    /// The SQLite error code, when this error carries one.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Error::Open { source, .. } | Error::Database(source) => source.sqlite_error_code(),
            Error::NotADatabase { .. } => Some(rusqlite::ErrorCode::NotADatabase),
            _ => None,
        }
    }
}

/// Formats an error with its whole `source()` chain: `outer: inner: innermost`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pool_init_is_pool_layer() {
        let init = Error::PoolInit {
            backend: PoolKind::Bb8,
            reason: "x".into(),
        };
        assert!(init.is_pool_layer());
        assert!(!Error::Closed.is_pool_layer());
        assert!(!Error::NotADatabase { path: "a".into() }.is_pool_layer());
        let timeout = Error::Timeout {
            what: "writer",
            after: Duration::from_millis(5),
        };
        assert!(!timeout.is_pool_layer());
    }

    #[test]
    fn chain_lists_sources_and_messages_are_lowercase() {
        let err = Error::Io {
            path: "/x/y".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(Chain(&err).to_string(), "i/o error on /x/y: gone");
        let first = err.to_string().chars().next().unwrap();
        assert!(first.is_lowercase());
    }
}
