//! The export crate's error type, [`Error`], and the [`Result`] alias. Store, I/O, Parquet,
//! Arrow and JSON failures are wrapped with their source chain and the path or input at
//! fault; nothing is stringified. Messages are lowercase without a trailing period.

use std::path::PathBuf;

/// Everything an export can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store read failed.
    #[error("store read failed for {what}")]
    Store {
        /// What was being read (klines of a day, funding rates of some symbols...).
        what: String,
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// Resampling the streamed bars failed (rows out of order, a column missing).
    #[error("cannot resample {what}")]
    Resample {
        /// What was being resampled (source and target intervals, range).
        what: String,
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// A file or folder could not be created, written, synced or renamed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The path at fault.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("cannot write parquet file {}", path.display())]
    Parquet {
        /// The Parquet file being written.
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow record batch could not be built.
    #[error("cannot build an arrow batch for {}", path.display())]
    Arrow {
        /// The Parquet file being written.
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A JSON file (manifest, symbols) could not be encoded.
    #[error("cannot encode json for {}", path.display())]
    Json {
        /// The JSON file being written.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The output gate refused a path (the database, a SQLite file, a device...) or could
    /// not create, write or publish a file.
    #[error(transparent)]
    Output(#[from] marketdb_output::Error),
    /// A model value was refused (a symbol, an interval...).
    #[error(transparent)]
    Model(#[from] marketdb_model::Error),
    /// The request cannot be exported as given.
    #[error("invalid export request: {what} {value:?}: {reason}")]
    InvalidRequest {
        /// Which part of the request (target freq, csv part rows, output path...).
        what: &'static str,
        /// The rejected value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A text option (fill policy, compression) that is not one of the accepted values.
    #[error("invalid {what} {input:?}: expected one of {accepted}")]
    InvalidOption {
        /// Which option.
        what: &'static str,
        /// The text given.
        input: String,
        /// The accepted spellings.
        accepted: &'static str,
    },
    /// A file or folder of an export being read back could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path at fault.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `.npy` file is damaged or not of a kind an export writes.
    #[error("invalid .npy file {}: {reason}", path.display())]
    InvalidNpy {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or folder read back does not follow the export layout or its manifest.
    #[error("invalid numpy export {}: {reason}", path.display())]
    InvalidExport {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON file read back (manifest, symbols) could not be decoded.
    #[error("cannot decode json {}", path.display())]
    JsonRead {
        /// The JSON file at fault.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A lookup named an interval, day, feature or file the export does not hold.
    #[error("numpy export {} has no {what} {name:?}", root.display())]
    NotInExport {
        /// The export folder.
        root: PathBuf,
        /// What was looked up (freq, day, feature, metric, file).
        what: &'static str,
        /// The name looked up.
        name: String,
    },
    /// The HDF5 library refused a write (feature `hdf5`).
    #[error("cannot write hdf5 file {}: {reason}", path.display())]
    Hdf5 {
        /// The file being written.
        path: PathBuf,
        /// The library's message.
        reason: String,
    },
    /// The background writer stopped without finishing (it was cancelled).
    #[error("export writer for {} stopped before finishing", path.display())]
    WriterStopped {
        /// The output being written.
        path: PathBuf,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn store(what: impl Into<String>, source: marketdb_store::Error) -> Error {
        Error::Store {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn resample(what: impl Into<String>, source: marketdb_store::Error) -> Error {
        Error::Resample {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn request(
        what: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidRequest {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_input() {
        let e = Error::request(
            "target freq",
            "1m",
            "must be coarser than the source freq 1h",
        );
        assert_eq!(
            e.to_string(),
            "invalid export request: target freq \"1m\": must be coarser than the source freq 1h"
        );
        let e = Error::io(
            "/x/y.npy",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(e.to_string(), "cannot write /x/y.npy");
        assert!(std::error::Error::source(&e).is_some());
    }
}
