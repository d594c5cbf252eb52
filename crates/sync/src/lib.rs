//! marketdb-sync is the blocking facade: [`MarketDB`] has every public method of
//! [`AsyncMarketDB`] with the same arguments and results, for scripts and old code that do
//! not run an async runtime (the Python original kept its sync `MarketDB` for the same
//! reason). It owns a small tokio runtime and blocks on the async store.
//!
//! With its default feature `export` it also has the exporter's methods
//! (`export_to_numpy`, `export_to_csv`, `export_to_parquet`, `export_summary_statistics`,
//! `summary_statistics`, `export_dataset`, `import_dataset`, and the Python 1.9
//! `export_to_files`), blocking the same way.
//!
//! It deliberately adds no behaviour: every method forwards to the async store or
//! exporter, driven by the facade's own runtime. It works wherever a thread may block, and never panics for
//! being called in the wrong place:
//! - on a plain thread, inside `spawn_blocking`, under `Runtime::enter`: it blocks the
//!   calling thread until the call returns;
//! - on a worker of a multi-thread tokio runtime (inside an async task): through
//!   `block_in_place`, so that runtime keeps running its other tasks meanwhile;
//! - on the thread of a current-thread runtime: on a helper thread while the calling thread
//!   waits, which stalls that runtime for the duration of the call. Async code should use
//!   [`AsyncMarketDB`] directly.

#[cfg(feature = "export")]
mod export;

use std::path::{Path, PathBuf};

#[cfg(feature = "export")]
pub use marketdb_export::{
    AsyncDataExporter, CsvReport, Describe, ExportRequest, FillPolicy, NumpyReport,
    ParquetCompression, ParquetReport, StatsReport, SymbolStats,
};
use marketdb_model::{
    Feature, Freq, FundingRate, LongShortRatio, MetricFamily, OpenInterest, RatioType, TimeRange,
};
pub use marketdb_store::{
    AsyncMarketDB, Checkpoint, Column, CombinedFrame, CompletenessReport, DataSummary,
    IncompletePolicy, KlineFrame, KlineInput, PoolKind, Resampled, ScanChunk, StoreConfig,
    SymbolRange, Tables,
};

/// Errors of the blocking facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's error.
    #[error(transparent)]
    Store(#[from] marketdb_store::Error),
    /// The facade was closed (its runtime is gone).
    #[error("the blocking MarketDB is closed")]
    Closed,
    /// An export's error (feature `export`).
    #[cfg(feature = "export")]
    #[error(transparent)]
    Export(#[from] marketdb_export::Error),
    /// A dataset publication's or replication's error (feature `export`).
    #[cfg(feature = "export")]
    #[error(transparent)]
    Dataset(#[from] marketdb_dataset::Error),
    /// The facade's runtime could not start.
    #[error("cannot start the runtime of the blocking MarketDB")]
    Runtime(#[source] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The blocking market database.
#[derive(Debug)]
pub struct MarketDB {
    // An Option so `Drop` can hand the runtime to `shutdown_background`: dropping a runtime
    // inside an async context would panic, and a MarketDB may be dropped anywhere.
    runtime: Option<tokio::runtime::Runtime>,
    db: AsyncMarketDB,
}

impl Drop for MarketDB {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `f`, which blocks, where blocking is allowed: see the crate docs for each context.
fn where_blocking_is_allowed<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        // On a worker this hands the worker's tasks to another thread first; elsewhere
        // (a blocking-pool thread, an `enter` guard) it just runs `f`.
        Ok(h) if matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(f)
        }
        // A current-thread runtime cannot tell its own thread from its helpers: a fresh
        // thread is always allowed to block.
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("marketdb-sync")
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

impl MarketDB {
    /// Opens (creating if needed) the database at `path` with default settings.
    pub fn open(path: impl Into<PathBuf>) -> Result<MarketDB> {
        Self::open_with(StoreConfig::new(path))
    }

    /// Opens an existing database read-only (see [`AsyncMarketDB::open_read_only`]).
    pub fn open_read_only(path: impl Into<PathBuf>) -> Result<MarketDB> {
        Self::open_with(StoreConfig::read_only(path))
    }

    /// Opens with explicit settings.
    pub fn open_with(config: StoreConfig) -> Result<MarketDB> {
        let runtime = runtime()?;
        let db = where_blocking_is_allowed(|| runtime.block_on(AsyncMarketDB::open_with(config)));
        match db {
            Ok(db) => Ok(MarketDB {
                runtime: Some(runtime),
                db,
            }),
            Err(e) => {
                // Dropping a runtime inside an async context would panic.
                runtime.shutdown_background();
                Err(e.into())
            }
        }
    }

    fn block<T: Send>(
        &self,
        fut: impl Future<Output = marketdb_store::Result<T>> + Send,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or(Error::Closed)?;
        Ok(where_blocking_is_allowed(|| rt.block_on(fut))?)
    }

    /// The async store behind this facade.
    pub fn inner(&self) -> &AsyncMarketDB {
        &self.db
    }

    pub fn close(&self) -> Result<()> {
        self.block(async {
            self.db.close().await;
            Ok(())
        })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    pub fn pool_kind(&self) -> PoolKind {
        self.db.pool_kind()
    }

    pub fn tables(&self) -> Tables {
        self.db.tables()
    }

    pub fn store_data(&self, data: impl Into<KlineInput>, freq: Freq) -> Result<usize> {
        let data: KlineInput = data.into();
        self.block(self.db.store_data(data, freq))
    }

    pub fn store_funding_rate(&self, data: Vec<FundingRate>) -> Result<usize> {
        self.block(self.db.store_funding_rate(data))
    }

    pub fn store_open_interest(&self, data: Vec<OpenInterest>) -> Result<usize> {
        self.block(self.db.store_open_interest(data))
    }

    pub fn store_long_short_ratio(&self, data: Vec<LongShortRatio>) -> Result<usize> {
        self.block(self.db.store_long_short_ratio(data))
    }

    pub fn store_metrics(
        &self,
        open_interest: Vec<OpenInterest>,
        long_short_ratio: Vec<LongShortRatio>,
    ) -> Result<usize> {
        self.block(self.db.store_metrics(open_interest, long_short_ratio))
    }

    pub fn read_data(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        raise_on_empty: bool,
    ) -> Result<KlineFrame> {
        self.block(
            self.db
                .read_data(range, freq, symbols, features, raise_on_empty),
        )
    }

    pub fn read_data_by_timestamp(
        &self,
        start_ms: i64,
        end_ms_inclusive: i64,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        raise_on_empty: bool,
    ) -> Result<KlineFrame> {
        self.block(self.db.read_data_by_timestamp(
            start_ms,
            end_ms_inclusive,
            freq,
            symbols,
            features,
            raise_on_empty,
        ))
    }

    pub fn read_funding_rate(
        &self,
        range: TimeRange,
        symbols: &[String],
        raise_on_empty: bool,
    ) -> Result<Vec<FundingRate>> {
        self.block(self.db.read_funding_rate(range, symbols, raise_on_empty))
    }

    pub fn read_open_interest(
        &self,
        range: TimeRange,
        symbols: &[String],
        interval: Freq,
        raise_on_empty: bool,
    ) -> Result<Vec<OpenInterest>> {
        self.block(
            self.db
                .read_open_interest(range, symbols, interval, raise_on_empty),
        )
    }

    pub fn read_long_short_ratio(
        &self,
        range: TimeRange,
        symbols: &[String],
        period: Freq,
        ratio_type: RatioType,
        raise_on_empty: bool,
    ) -> Result<Vec<LongShortRatio>> {
        self.block(self.db.read_long_short_ratio(
            range,
            symbols,
            period,
            ratio_type,
            raise_on_empty,
        ))
    }

    pub fn read_combined(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        metric_period: Freq,
        raise_on_empty: bool,
    ) -> Result<CombinedFrame> {
        self.block(self.db.read_combined(
            range,
            freq,
            symbols,
            features,
            metric_period,
            raise_on_empty,
        ))
    }

    pub fn combine(
        &self,
        frame: KlineFrame,
        freq: Freq,
        features: &[Feature],
        metric_period: Freq,
    ) -> Result<CombinedFrame> {
        self.block(self.db.combine(frame, freq, features, metric_period))
    }

    /// Streams frames in bounded chunks; iterate with [`FrameIter`].
    pub fn scan(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        chunk: ScanChunk,
    ) -> Result<FrameIter<'_>> {
        // The producer task needs the runtime context to start.
        let Some(rt) = &self.runtime else {
            return Err(Error::Closed);
        };
        let _guard = rt.enter();
        let stream = self.db.scan(range, freq, symbols, features, chunk);
        Ok(FrameIter { _db: self, stream })
    }

    pub fn get_data_summary(&self) -> Result<DataSummary> {
        self.block(self.db.get_data_summary())
    }

    pub fn get_symbols(&self, freq: Option<Freq>) -> Result<Vec<String>> {
        self.block(self.db.get_symbols(freq))
    }

    pub fn get_frequencies(&self, symbol: &str) -> Result<Vec<Freq>> {
        self.block(self.db.get_frequencies(symbol))
    }

    pub fn get_time_range(&self, symbol: &str, freq: Freq) -> Result<Option<(i64, i64)>> {
        self.block(self.db.get_time_range(symbol, freq))
    }

    pub fn get_symbol_data_range(&self, symbol: &str) -> Result<Vec<SymbolRange>> {
        self.block(self.db.get_symbol_data_range(symbol))
    }

    pub fn check_metric_completeness(
        &self,
        range: TimeRange,
        metric: MetricFamily,
        interval: Freq,
        symbols: &[String],
    ) -> Result<CompletenessReport> {
        self.block(
            self.db
                .check_metric_completeness(range, metric, interval, symbols),
        )
    }

    pub fn delete_metric_range(
        &self,
        metric: MetricFamily,
        symbols: &[String],
        range: TimeRange,
        interval: Option<Freq>,
    ) -> Result<u64> {
        self.block(
            self.db
                .delete_metric_range(metric, symbols, range, interval),
        )
    }

    pub fn count(&self, symbol: &str, freq: Freq, range: Option<TimeRange>) -> Result<u64> {
        self.block(self.db.count(symbol, freq, range))
    }

    pub fn get_latest(&self, symbols: &[String], freq: Freq, limit: usize) -> Result<KlineFrame> {
        self.block(self.db.get_latest(symbols, freq, limit))
    }

    pub fn data_exists(&self, symbol: &str, range: TimeRange, freq: Freq) -> Result<bool> {
        self.block(self.db.data_exists(symbol, range, freq))
    }

    pub fn get_available_dates(&self, symbol: &str, freq: Freq) -> Result<Vec<String>> {
        self.block(self.db.get_available_dates(symbol, freq))
    }

    pub fn delete_range(&self, symbols: &[String], range: TimeRange, freq: Freq) -> Result<u64> {
        self.block(self.db.delete_range(symbols, range, freq))
    }

    pub fn vacuum(&self) -> Result<Checkpoint> {
        self.block(self.db.vacuum())
    }

    pub fn checkpoint(&self) -> Result<Checkpoint> {
        self.block(self.db.checkpoint())
    }

    pub fn integrity_check(&self) -> Result<String> {
        self.block(self.db.integrity_check())
    }

    pub fn drop_secondary_indexes(&self) -> Result<Vec<String>> {
        self.block(self.db.drop_secondary_indexes())
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.block(self.db.schema_version())
    }

    pub fn check_completeness(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
    ) -> Result<CompletenessReport> {
        self.block(self.db.check_completeness(range, freq, symbols))
    }

    pub fn resample(
        &self,
        range: TimeRange,
        from: Freq,
        to: Freq,
        symbols: &[String],
        policy: IncompletePolicy,
    ) -> Result<Resampled> {
        self.block(self.db.resample(range, from, to, symbols, policy))
    }

    pub fn resample_and_store(
        &self,
        range: TimeRange,
        from: Freq,
        to: Freq,
        symbols: &[String],
        policy: IncompletePolicy,
    ) -> Result<Resampled> {
        self.block(self.db.resample_and_store(range, from, to, symbols, policy))
    }
}

/// Blocking iterator over the frames of [`MarketDB::scan`].
#[derive(Debug)]
pub struct FrameIter<'a> {
    _db: &'a MarketDB,
    stream: marketdb_store::FrameStream,
}

impl Iterator for FrameIter<'_> {
    type Item = Result<KlineFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = &mut self.stream;
        where_blocking_is_allowed(|| stream.blocking_next()).map(|r| r.map_err(Error::from))
    }
}
