//! [`StoreConfig`]: where the database is, how the pool is set up, and the write batch size.
//! Plain data with defaults; nothing is opened or validated here.

use std::path::PathBuf;

use marketdb_model::{TimeWindow, Validator};
use marketdb_pool::PoolConfig;

/// Rows per batched `INSERT` statement by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// After a single store call of more rows than this, the WAL is checkpointed.
pub const CHECKPOINT_AFTER_ROWS: usize = 100_000;

/// Configuration of an [`crate::AsyncMarketDB`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The connection pool (path, readers, pragmas, backend...).
    pub pool: PoolConfig,
    /// Rows per multi-row `INSERT` statement (a performance knob, not a visibility
    /// boundary: every store call is one transaction). Values above what SQLite can bind
    /// in one statement are capped; 0 is treated as 1.
    pub batch_size: usize,
    /// The times stored records may carry; `None` (the default) is
    /// [`TimeWindow::until_tomorrow`] read at each write call.
    pub time_window: Option<TimeWindow>,
}

impl StoreConfig {
    /// Defaults for the database file at `path` (created with its parent folders).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            pool: PoolConfig::new(path),
            batch_size: DEFAULT_BATCH_SIZE,
            time_window: None,
        }
    }

    /// The validation rules of one write call.
    pub(crate) fn validator(&self) -> Validator {
        Validator::new(self.time_window.unwrap_or_default())
    }

    /// Defaults for opening the existing file at `path` read-only (see
    /// [`PoolConfig::read_only`]).
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            pool: PoolConfig::read_only(path),
            batch_size: DEFAULT_BATCH_SIZE,
            time_window: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = StoreConfig::new("data/market.db");
        assert_eq!(c.batch_size, 1000);
        assert_eq!(c.pool.path, PathBuf::from("data/market.db"));
    }
}
