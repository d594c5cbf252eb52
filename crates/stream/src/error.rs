//! The one error type of marketdb-stream.

/// What can go wrong while streaming.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A text frame that is not a well-formed stream message; the stream goes on without it.
    #[error("malformed stream frame ({reason}): {frame}")]
    BadFrame { reason: String, frame: String },
    /// The configuration cannot work (no streams, an interval the market has not, a URL).
    #[error("{0}")]
    Config(String),
    /// The WebSocket handshake or connection failed.
    #[error("websocket {url}: {source}")]
    WebSocket {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The REST backfill failed.
    #[error("rest backfill of {symbol} {freq}: {source}")]
    Backfill {
        symbol: String,
        freq: String,
        #[source]
        source: Box<marketdb_fetch::Error>,
    },
    /// The store refused or failed a write or a read.
    #[error("store: {source}")]
    Store {
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// Received bars the store kept refusing (at shutdown, or too many waiting); they
    /// are not stored.
    #[error("{bars} received bar(s) could not be committed")]
    Unstored {
        bars: usize,
        #[source]
        source: Box<marketdb_store::Error>,
    },
    /// More than `max_pending` received bars wait for a store that keeps failing: the run
    /// stops rather than hold more.
    #[error(
        "{bars} received bar(s) wait for a store that keeps failing; stopping rather than \
         hold more"
    )]
    Backlog { bars: usize },
    /// The replay server could not listen.
    #[error("replay server: {source}")]
    Io {
        #[source]
        source: std::io::Error,
    },
}

impl From<marketdb_store::Error> for Error {
    fn from(source: marketdb_store::Error) -> Self {
        Error::Store {
            source: Box::new(source),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
