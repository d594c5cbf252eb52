//! The dataset crate's error type, [`Error`], and the [`Result`] alias. Store, output,
//! Parquet, Arrow, JSON and object-store failures keep their source chain and name the
//! path, partition or URL at fault. Messages are lowercase without a trailing period.

use std::path::PathBuf;

/// Everything a publication or a replication can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store read failed.
    #[error("cannot read {what} from the database")]
    StoreRead {
        what: String,
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// Rows could not be stored (an import).
    #[error("cannot store {what}")]
    StoreWrite {
        what: String,
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// The output gate refused a path or could not write or publish a file.
    #[error(transparent)]
    Output(#[from] marketdb_output::Error),
    /// A file or folder could not be read or listed.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file could not be written.
    #[error("cannot write parquet file {}", path.display())]
    ParquetWrite {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A Parquet file being read (a partition) could not be decoded.
    #[error("cannot read parquet file {}", path.display())]
    ParquetRead {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow record batch could not be built.
    #[error("cannot build an arrow batch for {}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The state file could not be encoded.
    #[error("cannot encode json for {}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A JSON file read back (the state, a lock) could not be decoded.
    #[error("cannot decode json {}", path.display())]
    JsonRead {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A dataset (its state, a partition file) is damaged, foreign, or of another version.
    #[error("invalid dataset {}: {reason}", path.display())]
    InvalidDataset { path: PathBuf, reason: String },
    /// The request cannot be carried out as given.
    #[error("invalid dataset request: {what} {value:?}: {reason}")]
    Request {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// Another export holds the dataset's lock (or left it behind).
    #[error("dataset {root} is locked: {reason}")]
    Locked { root: String, reason: String },
    /// An object store (S3...) refused or failed a request, after its retries.
    #[error("object store request failed for {url}")]
    ObjectStore {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// A model value was refused (a time range, an interval...).
    #[error(transparent)]
    Model(#[from] marketdb_model::Error),
    /// The work was stopped (its caller went away: a signal, a dropped future).
    #[error("stopped before {what} was done")]
    Stopped { what: String },
}

impl Error {
    pub(crate) fn read(what: impl Into<String>, source: marketdb_store::Error) -> Error {
        Error::StoreRead {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn request(
        what: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Error {
        Error::Request {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::InvalidDataset {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
