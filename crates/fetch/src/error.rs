//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a download.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the http client")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    /// A transfer failed (connect error, timeout, broken body) on every attempt.
    #[error("{url}: transfer failed after {attempts} attempt(s)")]
    Transfer {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered an error status on the last attempt.
    #[error("{url}: server answered {status} after {attempts} attempt(s)")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
    },
    /// The body ended before the promised `Content-Length` on every attempt.
    #[error("{url}: body ended after {got} of {expected} byte(s) after {attempts} attempt(s)")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
        attempts: u32,
    },
    /// A body larger than the rows its file name allows: refused at once (announced by
    /// its `Content-Length`) or cut off when it grew past the bound.
    #[error(
        "{url}: body of {bytes} byte(s){} is larger than the {limit} byte(s) the rows of its name allow",
        if *announced { " announced" } else { " so far" }
    )]
    TooLarge {
        url: String,
        bytes: u64,
        limit: u64,
        announced: bool,
    },
    /// A `200` whose body is not a zip (a maintenance page, say) on every attempt.
    #[error(
        "{url}: the answer is not a zip (it starts with {start:?}) after {attempts} attempt(s)"
    )]
    NotAZip {
        url: String,
        start: String,
        attempts: u32,
    },
    /// The exchange asked to wait longer than this run waits (`429`/`418` with a long
    /// `Retry-After`: a ban).
    #[error(
        "{url}: rate limited ({status}): the server asks to wait {retry_after_secs} s, longer than this run waits"
    )]
    RateLimited {
        url: String,
        status: u16,
        retry_after_secs: u64,
    },
    /// An answer that is not what the API promises (bad JSON, rows out of range).
    #[error("{url}: unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
    /// A request the exchange has no endpoint for.
    #[error("not available from binance: {what}")]
    Unsupported { what: String },
    /// A local file could not be written or moved.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The output gate refused a path or could not write a file.
    #[error(transparent)]
    Output(#[from] marketdb_output::Error),
    /// The checksum could not be checked (an unreadable `.CHECKSUM`, say).
    #[error("cannot verify {url}")]
    Checksum {
        url: String,
        #[source]
        source: marketdb_ingest::Error,
    },
}

impl Error {
    /// Whether the error is this machine's (a file that cannot be written), not the
    /// server's answer: such an error ends a run instead of being recorded against the file.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Output(_) | Error::Client { .. }
        )
    }

    /// What the server answered, in a few words, for the gap record (`500 after 5
    /// attempts`, `not a zip`, `body too large`).
    pub fn answer(&self) -> String {
        match self {
            Error::Transfer {
                attempts, source, ..
            } => {
                let what = if source.is_timeout() {
                    "timeout"
                } else if source.is_connect() {
                    "connection failed"
                } else {
                    "transfer failed"
                };
                format!("{what} after {attempts} attempt(s)")
            }
            Error::Status {
                status, attempts, ..
            } => format!("{status} after {attempts} attempt(s)"),
            Error::Truncated {
                got,
                expected,
                attempts,
                ..
            } => format!("body cut at {got} of {expected} byte(s) after {attempts} attempt(s)"),
            Error::TooLarge {
                bytes,
                limit,
                announced,
                ..
            } => format!(
                "body of {bytes} byte(s){} above the {limit} allowed",
                if *announced { " announced" } else { "" }
            ),
            Error::NotAZip {
                start, attempts, ..
            } => format!("not a zip ({start:?}) after {attempts} attempt(s)"),
            Error::RateLimited {
                status,
                retry_after_secs,
                ..
            } => format!("{status} with retry-after {retry_after_secs} s"),
            Error::BadAnswer { reason, .. } => format!("unexpected answer: {reason}"),
            Error::Checksum { .. } => "unreadable checksum".to_owned(),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
