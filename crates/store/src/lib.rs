//! marketdb-store: [`AsyncMarketDB`], the SQLite store of Binance klines and metrics that
//! replaces the Python `cryptoservice` storage layer. It keeps the Python v1.9 tables
//! (`market_data`, `funding_rate`, `open_interest`, `long_short_ratio`) so either side can
//! open the other's files, versions the schema in `PRAGMA user_version`, and offers
//! validated atomic batched writes, columnar reads ([`KlineFrame`]), metric reads,
//! inspection ([`DataSummary`]), completeness checks ([`CompletenessReport`]), resampling
//! ([`Resampled`], with the rules in [`BucketAggregator`], which callers can also drive
//! frame by frame) and bounded streaming scans ([`FrameStream`]).
//!
//! It does not parse files, download data or export; connection pooling is
//! `marketdb-pool`'s, and the market vocabulary (intervals, klines, features, time ranges,
//! validation) is `marketdb-model`'s.

mod bucket;
mod completeness;
mod config;
mod db;
mod error;
mod frame;
mod inspect;
mod metrics;
mod read;
mod resample;
mod scan;
mod schema;
mod write;

pub use bucket::BucketAggregator;
pub use completeness::{CompletenessReport, MissingRun, SuspiciousRow, SymbolCompleteness};
pub use config::{CHECKPOINT_AFTER_ROWS, DEFAULT_BATCH_SIZE, StoreConfig};
pub use db::{AsyncMarketDB, Checkpoint};
pub use error::{Error, Result};
pub use frame::{Column, KlineFrame};
pub use inspect::{DataSummary, FundingSummary, IntervalSummary, KlineSummary, RatioSummary};
pub use resample::{IncompletePolicy, Resampled};
pub use scan::{FrameStream, ScanChunk};
pub use schema::{DEFAULT_LAYOUT, Era, Layout, PYTHON_INDEXES, SCHEMA_VERSION, Tables};
pub use write::KlineInput;
