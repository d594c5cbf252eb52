//! The store's error type, [`Error`], and the [`Result`] alias. Lower-layer errors (pool,
//! model, SQLite) are wrapped with their source chain, never stringified. Messages are
//! lowercase and name the input at fault.

use marketdb_model::ValidationError;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection pool failed (open, acquire, closed, panicked blocking task...).
    #[error(transparent)]
    Pool(#[from] marketdb_pool::Error),
    /// A model value could not be parsed or built (interval, time, symbol, feature...).
    #[error(transparent)]
    Model(#[from] marketdb_model::Error),
    /// A row was refused by validation; nothing of the call was stored.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A SQLite statement failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The input of a streamed write ([`crate::AsyncMarketDB::store_records`]) failed;
    /// nothing of the call was stored.
    #[error("the records to store could not be read")]
    Input(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A read found no rows and the caller asked for an error in that case.
    #[error("no data found for {what}")]
    NoData {
        /// What was asked for (table, freq, symbols, range).
        what: String,
    },
    /// A feature that cannot be served by this call (for example a metric in a kline read).
    #[error("feature {feature:?} cannot be read here: {reason}")]
    InvalidFeature {
        /// The feature's short name.
        feature: String,
        /// Why it was refused.
        reason: String,
    },
    /// An argument outside what the call accepts.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// The rejected value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A frame could not be converted to an Arrow record batch (`arrow` feature).
    #[cfg(feature = "arrow")]
    #[error("cannot convert a kline frame of {rows} rows to an arrow record batch")]
    Arrow {
        /// Rows of the frame.
        rows: usize,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A read waited out the busy timeout because another process held the write lock of
    /// a rollback-journal database (the layout the Python original creates), where SQLite
    /// lets no one read while a writer commits.
    #[error(
        "database {path} uses a rollback journal (the layout the Python original creates) and \
         another process holds its write lock: in that mode SQLite lets no reader in while a \
         writer commits, and this read gave up after the busy timeout; retry when the writer \
         is done, or convert the file once with `marketdb doctor --wal` so that readers never \
         wait for writers (cryptoservice 1.9 still reads and writes the converted file, which \
         then keeps its -wal and -shm files beside it: copy them with it)"
    )]
    RollbackJournalLocked {
        /// The database file.
        path: String,
        #[source]
        source: Box<Error>,
    },
    /// The database file holds a schema this version cannot use.
    #[error("unsupported database schema in {path}: {reason}")]
    Schema {
        /// The database file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid_argument(
        what: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidArgument {
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
        let e = Error::invalid_argument("chunk size", 0, "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid chunk size \"0\": must be at least 1"
        );
        let e = Error::NoData {
            what: "1m klines of BTCUSDT".into(),
        };
        assert_eq!(e.to_string(), "no data found for 1m klines of BTCUSDT");
        let sql: Error = rusqlite::Error::QueryReturnedNoRows.into();
        assert!(matches!(sql, Error::Sqlite(_)));
    }
}
