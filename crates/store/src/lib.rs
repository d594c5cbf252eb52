//! marketdb-store: [`AsyncMarketDB`], the SQLite store of Binance klines and metrics that
//! replaces the Python `cryptoservice` storage layer. It keeps the Python v1.9 tables
//! (`market_data`, `funding_rate`, `open_interest`, `long_short_ratio`) so either side can
//! open the other's files, versions the schema in `PRAGMA user_version`, and offers
//! validated atomic batched writes, columnar reads ([`KlineFrame`]), metric reads, bars
//! with their metrics aligned as of each close ([`CombinedFrame`]),
//! inspection ([`DataSummary`]), completeness checks ([`CompletenessReport`]), the record
//! of files the exchange does not publish ([`SourceGap`], table `source_gaps`) and of the
//! files a download stored ([`SourceFile`], table `source_files`), the replacement of one
//! source period with a diff of what changed ([`PeriodScope`], [`PeriodChanges`]), resampling
//! ([`Resampled`], with the rules in [`BucketAggregator`], which callers can also drive
//! frame by frame) and bounded streaming scans ([`FrameStream`]).
//!
//! Cargo feature `arrow` (off by default, so a store-only user never compiles arrow): the
//! `arrow` module, with `KlineFrame::to_record_batch` giving an Arrow `RecordBatch` with
//! the columns, names and types of the Parquet export.
//!
//! It does not parse files, download data or export; connection pooling is
//! `marketdb-pool`'s, and the market vocabulary (intervals, klines, features, time ranges,
//! validation) is `marketdb-model`'s.

#[cfg(feature = "arrow")]
pub mod arrow;
#[cfg(feature = "arrow")]
mod table_batch;
#[cfg(feature = "arrow")]
pub use table_batch::MetricTable;
mod bucket;
mod catalog;
mod changes;
mod combined;
mod completeness;
mod config;
mod db;
mod error;
mod frame;
mod funding_check;
mod gaps;
mod imports;
mod inspect;
mod journal;
mod key_skip;
mod meta;
mod metric_check;
mod metrics;
mod period_replace;
mod read;
mod resample;
mod scan;
mod schema;
mod series;
mod source_files;
mod write;

pub use bucket::BucketAggregator;
pub use catalog::{CatalogEntry, CatalogFilter, SymbolAlias};
pub use changes::{CHANGES_TABLE, RecordedDay, RecordedTable, day_of};
pub use combined::CombinedFrame;
pub use completeness::{CompletenessReport, MissingRun, SuspiciousRow, SymbolCompleteness};
pub use config::{CHECKPOINT_AFTER_ROWS, DEFAULT_BATCH_SIZE, StoreConfig};
pub use db::{AsyncMarketDB, Checkpoint};
pub use error::{Error, Result};
pub use frame::{Column, KlineFrame};
pub use funding_check::{FundingCompleteness, IntervalSpan};
pub use gaps::{GapFilter, SourceGap};
pub use imports::{ImportCounts, ImportTable, ImportedPartition, PartitionImport};
pub use inspect::{
    DataSummary, FundingSummary, IntervalSummary, KlineSummary, RatioSummary, SymbolRange,
};
pub use journal::{FileJournal, file_journal};
pub use period_replace::{PeriodChanges, PeriodScope};
pub use resample::{IncompletePolicy, Resampled};
pub use scan::{FrameStream, ScanChunk};
pub use schema::{Era, SCHEMA_VERSION, Tables};
pub use source_files::{SourceFile, SourceFileFilter};

/// The model this crate's API speaks (intervals, klines, time ranges...), so a user of
/// `marketdb-store` needs no direct dependency on `marketdb-model`.
pub use marketdb_model as model;

/// The pool types this crate's API takes and returns, so a user of `marketdb-store` needs
/// no direct dependency on `marketdb-pool`.
pub use marketdb_pool::{
    Backend, JournalMode, PoolConfig, PoolKind, PoolManager, PoolStats, Pragmas, RoleStats,
    Synchronous, TempStore,
};

/// Items for measurements and tests (the physical layouts, the Python v1.9 indexes): not
/// part of the supported API.
#[doc(hidden)]
pub mod bench {
    pub use crate::schema::{DEFAULT_LAYOUT, Layout, PYTHON_INDEXES};
}
pub use write::KlineInput;
