//! [`StoreConfig`]: where the database is, how the pool is set up, and the write batch size.
//! Plain data with defaults; nothing is opened or validated here.

use std::path::PathBuf;

use marketdb_model::{TimeWindow, Validator};
use marketdb_pool::PoolConfig;

/// Rows per batched `INSERT` statement by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// After a single store call of more rows than this, the WAL is checkpointed.
pub const CHECKPOINT_AFTER_ROWS: usize = 100_000;

/// `read_data` of at least this many bars (estimated from the range, the interval and the
/// symbol count, all symbols counting as eight) reads in two snapshots on two readers at once, checked to be one state.
pub const PARALLEL_READ_MIN_BARS: u64 = 50_000;

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
    /// `read_data` of at least this many bars (estimated) reads half the symbols on each of
    /// two readers at once; see `read::read_frame_part` for how the two snapshots are proven
    /// to be the same state. `u64::MAX` turns it off; 0 always splits.
    pub parallel_read_min_bars: u64,
}

impl StoreConfig {
    /// Defaults for the database file at `path` (created with its parent folders).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            pool: PoolConfig::new(path),
            batch_size: DEFAULT_BATCH_SIZE,
            time_window: None,
            parallel_read_min_bars: PARALLEL_READ_MIN_BARS,
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
            parallel_read_min_bars: PARALLEL_READ_MIN_BARS,
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
