//! The crate's error type.

/// What can end a download run. A server's answer for one file is not an error: it goes
/// into the report and the source record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request that cannot be run as given (a usage error for the command line).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Store(#[from] marketdb_store::Error),
    #[error(transparent)]
    Fetch(Box<marketdb_fetch::Error>),
    #[error(transparent)]
    Model(#[from] marketdb_model::Error),
    #[error(transparent)]
    Output(#[from] marketdb_output::Error),
    /// A file could not be stored (its rows are not in the database).
    #[error("{url}: nothing stored")]
    Load {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A background task ended without its result.
    #[error("the {task} task stopped unexpectedly")]
    Task {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<marketdb_fetch::Error> for Error {
    fn from(e: marketdb_fetch::Error) -> Error {
        Error::Fetch(Box::new(e))
    }
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
