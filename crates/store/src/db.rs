//! [`AsyncMarketDB`]: the async store. Opens the pool, prepares the schema, and runs every
//! operation on the pool's blocking threads: validated, atomic, batched writes; whitelisted
//! columnar reads; metric reads; inspection; completeness checks; resampling; streaming
//! scans. Cheap to clone (an `Arc` inside).
//!
//! Symbols given to any method are validated (`^[A-Z0-9_]{1,40}$` after upper-casing)
//! before they reach SQL. It never prints; events go to `tracing`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use marketdb_model::{
    Feature, Freq, FundingRate, LongShortRatio, OpenInterest, RatioType, Records, TimeRange,
    validate_symbol,
};
use marketdb_pool::{PoolKind, PoolManager, run_blocking};
use tracing::{debug, info, warn};

use crate::completeness::{Checker, CompletenessReport, Step};
use crate::config::CHECKPOINT_AFTER_ROWS;
use crate::read::{ReadPlan, read_frame, read_frame_part, read_latest, resolve_symbols};
use crate::resample::{IncompletePolicy, Resampled, source_range};
use crate::scan::{FrameStream, ScanChunk, ScanJob};
use crate::write::{KlineInput, insert_klines, validate_all};
use crate::{
    BucketAggregator, DataSummary, Error, KlineFrame, Result, StoreConfig, SymbolRange, Tables,
    inspect, metrics, resample, scan, schema,
};

/// Prepared statements cached per connection (reads use one per feature set, interval
/// inserts one per batch size and interval).
const STATEMENT_CACHE: usize = 64;

/// Source bars per resampling read (each window is its own short read).
const RESAMPLE_WINDOW_ROWS: i64 = 500_000;

#[derive(Debug)]
struct Inner {
    pool: PoolManager,
    tables: Tables,
    config: StoreConfig,
    /// Split reads joined, and split reads read again in one snapshot.
    split_reads: [std::sync::atomic::AtomicU64; 2],
    /// The blocking job holding the writer through a large write's checkpoint (see
    /// `write_large`, and `fold_wal_in_background` for streamed stores); `close` waits for it.
    fold: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The async market data store on one SQLite file.
#[derive(Clone, Debug)]
pub struct AsyncMarketDB {
    inner: Arc<Inner>,
}

/// Upper-cases and checks every symbol (before anything reaches SQL).
pub(crate) fn check_symbols(symbols: &[String]) -> Result<Vec<String>> {
    symbols
        .iter()
        .map(|s| validate_symbol(s).map_err(Error::from))
        .collect()
}

fn describe(freq: Freq, symbols: &[String], range: TimeRange) -> String {
    describe_metric(&format!("{freq} klines"), symbols, range)
}

/// Validates and upserts each item of `batches` as it arrives, inside the caller's
/// transaction; returns records written. The body of [`AsyncMarketDB::store_records`].
pub(crate) fn store_record_stream<I, E>(
    c: &rusqlite::Connection,
    t: &Tables,
    batches: I,
    batch: usize,
    v: &marketdb_model::Validator,
) -> Result<usize>
where
    I: Iterator<Item = std::result::Result<Records, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut n = 0;
    for item in batches {
        let records = item.map_err(|e| Error::Input(Box::new(e)))?;
        n += match records {
            Records::Klines { freq, rows } => {
                let rows = KlineInput::Flat(rows);
                validate_all(&rows, freq, v)?;
                insert_klines(c, t, &rows, freq, batch)?
            }
            Records::Funding(rows) => metrics::store_funding(c, t, &rows, v)?,
            Records::Metrics {
                open_interest,
                long_short_ratio,
            } => {
                metrics::store_open_interest(c, t, &open_interest, v)?
                    + metrics::store_long_short_ratio(c, t, &long_short_ratio, v)?
            }
        };
    }
    Ok(n)
}

/// "`what` of `symbols` in [start, end)", for [`Error::NoData`].
fn describe_metric(what: &str, symbols: &[String], range: TimeRange) -> String {
    let who = if symbols.is_empty() {
        "all symbols".to_owned()
    } else {
        symbols.join(",")
    };
    format!(
        "{what} of {who} in [{}, {})",
        marketdb_model::time::format_rfc3339(range.start),
        marketdb_model::time::format_rfc3339(range.end_exclusive)
    )
}

/// `rows`, or [`Error::NoData`] naming `what` when they are empty and `what` is set.
fn no_data_if_empty<T>(rows: Vec<T>, what: Option<String>) -> Result<Vec<T>> {
    match what {
        Some(what) if rows.is_empty() => Err(Error::NoData { what }),
        _ => Ok(rows),
    }
}

impl AsyncMarketDB {
    /// Opens (creating if needed) the database at `path` with default settings.
    pub async fn open(path: impl Into<std::path::PathBuf>) -> Result<Self> {
        Self::open_with(StoreConfig::new(path)).await
    }

    /// Opens an existing database read-only: no writer connection, readers opened
    /// `SQLITE_OPEN_READ_ONLY`, the schema recognised without DDL. Nothing in the file
    /// changes (not its version, journal mode or tables), reads never wait for another
    /// process's write lock, and read-only files and mounts work. Writes fail with the
    /// pool's `ReadOnly` error.
    pub async fn open_read_only(path: impl Into<std::path::PathBuf>) -> Result<Self> {
        Self::open_with(StoreConfig::read_only(path)).await
    }

    /// Opens the database described by `config`: the pool, then the schema (created if
    /// absent, recognised if present, migrated forward to the current version). With a
    /// read-only pool (`config.pool.read_only`) the schema is only recognised.
    pub async fn open_with(mut config: StoreConfig) -> Result<Self> {
        // Every write of the store keeps the change record (see `changes`).
        config.pool.writer_setup = Some(marketdb_pool::WriterSetup(crate::changes::guard_writer));
        let file = config.pool.path.clone();
        // A read-only open can time out behind a rollback-journal writer too: explained.
        let explain = |e: Error| crate::journal::explain_locked_read(e, &file);
        let pool = PoolManager::open(config.pool.clone())
            .await
            .map_err(|e| explain(e.into()))?;
        let path = config.pool.path.display().to_string();
        let tables = if config.pool.read_only {
            pool.read(move |c| schema::detect(c, &path))
                .await
                .map_err(explain)?
        } else {
            pool.write(move |tx| schema::prepare(tx, &path)).await?
        };
        debug!(?tables, "schema ready: {}", config.pool.path.display());
        Ok(AsyncMarketDB {
            inner: Arc::new(Inner {
                pool,
                tables,
                config,
                split_reads: Default::default(),
                fold: Default::default(),
            }),
        })
    }

    /// Reads split across two readers so far: (joined, read again in one snapshot because
    /// a commit landed while they ran). For diagnostics and tests.
    pub fn split_read_counts(&self) -> (u64, u64) {
        let [joined, again] = &self.inner.split_reads;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        (load(joined), load(again))
    }

    /// Closes the pool (for every clone); later calls fail. A WAL checkpoint still running
    /// after a large write is waited for first, so a closed store leaves a folded file.
    pub async fn close(&self) {
        self.wait_for_fold().await;
        // A fold started by another clone (whose handle that clone is awaiting) still holds
        // the writer: taking it once waits for that too.
        if !self.is_read_only() {
            drop(self.inner.pool.write_guard().await);
        }
        self.inner.pool.close().await;
    }

    /// Waits for the background checkpoint of the last large write, if one is running.
    pub async fn wait_for_fold(&self) {
        let pending = self
            .inner
            .fold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = pending {
            // The job logs its own failure; a panic in it (none is expected) is not the
            // caller's error either: the rows it follows are committed.
            if let Err(e) = handle.await {
                warn!(
                    "{}: background wal checkpoint ended abnormally: {e}",
                    self.path().display()
                );
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.config.pool.path
    }

    /// The rules every write call applies (the configured time window, the clock read
    /// now), for callers that check rows one by one before batching them.
    pub fn validator(&self) -> marketdb_model::Validator {
        self.inner.config.validator()
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.pool.is_read_only()
    }

    /// The backend serving the pool.
    pub fn pool_kind(&self) -> PoolKind {
        self.inner.pool.kind()
    }

    pub fn pool(&self) -> &PoolManager {
        &self.inner.pool
    }

    /// The tables of this database (v1.9 names, or the Python 1.10+ ones).
    pub fn tables(&self) -> Tables {
        self.inner.tables
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection, &Tables) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let tables = self.inner.tables;
        let configured = self.inner.pool.config().pragmas.cache_size;
        self.inner
            .pool
            .read(move |c| {
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                with_read_cache(c, configured, |c| f(c, &tables))
            })
            .await
            .map_err(|e| crate::journal::explain_locked_read(e, self.path()))
    }

    /// The insert batch size and the validator every write uses.
    pub(crate) fn write_settings(&self) -> (usize, marketdb_model::Validator) {
        (self.inner.config.batch_size, self.inner.config.validator())
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection, &Tables) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let tables = self.inner.tables;
        self.inner
            .pool
            .write(move |tx| {
                tx.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                let value = f(tx, &tables)?;
                crate::changes::settle(tx, &tables)?;
                Ok(value)
            })
            .await
    }

    /// Runs `f` in a write transaction like [`Self::write`]. When `large`, the commit skips
    /// SQLite's automatic checkpoint (which would copy the whole WAL into the file inside
    /// the call) and the WAL is folded after the call returns instead.
    ///
    /// One blocking job holds the writer from before the transaction until after the
    /// checkpoint: it sets `wal_autocheckpoint = 0`, runs and commits `f`, puts the setting
    /// back (whatever happened), sends the caller its answer, and, when the transaction
    /// committed, checkpoints (see [`checkpoint_after_write`]). No other write can run
    /// between, so none commits without the automatic checkpoint and the WAL cannot grow
    /// behind the fold; and once the job has the writer, a caller that stops waiting (a
    /// cancelled asyncio task) changes nothing: the job finishes. [`Self::close`] waits for
    /// it.
    async fn write_large<T, F>(&self, large: bool, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection, &Tables) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if !large {
            return self.write(f).await;
        }
        self.wait_for_fold().await;
        let mut guard = self.inner.pool.write_guard().await?;
        let tables = self.inner.tables;
        let config = self.inner.pool.config();
        let (busy, pages) = (config.busy_timeout, config.pragmas.wal_autocheckpoint);
        let path = self.path().to_path_buf();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = tokio::task::spawn_blocking(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<T> {
                guard.pragma_update(None, "wal_autocheckpoint", 0)?;
                let tx =
                    guard.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                // On `Err` (or unwind) the transaction's drop rolls back.
                let value = f(&tx, &tables)?;
                crate::changes::settle(&tx, &tables)?;
                tx.commit()?;
                Ok(value)
            }));
            let res = run.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Err(Error::Pool(marketdb_pool::Error::Panicked(message)))
            });
            if let Err(e) = guard.pragma_update(None, "wal_autocheckpoint", pages) {
                warn!(
                    "{}: could not restore wal_autocheckpoint after a large write: {e}",
                    path.display()
                );
            }
            let committed = res.is_ok();
            // The caller may have stopped waiting; the job goes on regardless.
            let _ = answer.send(res);
            if committed {
                checkpoint_after_write(&guard, busy, &path);
            }
        });
        self.set_fold(job);
        answered.await.unwrap_or_else(|_| {
            Err(Error::Pool(marketdb_pool::Error::Panicked(
                "the large write ended without an answer".to_owned(),
            )))
        })
    }

    /// Takes the writer and checkpoints the WAL on a blocking thread (see
    /// [`checkpoint_after_write`]), for a write that was not run by
    /// [`Self::write_large`]. The call that wrote returns meanwhile; the next write waits
    /// for the writer and [`Self::close`] waits for it.
    async fn fold_wal_in_background(&self) {
        self.wait_for_fold().await;
        let guard = match self.inner.pool.write_guard().await {
            Ok(g) => g,
            Err(e) => {
                warn!(
                    "{}: no wal checkpoint after a large write (the rows are stored): {e}",
                    self.path().display()
                );
                return;
            }
        };
        let busy = self.inner.pool.config().busy_timeout;
        let path = self.path().to_path_buf();
        let job = tokio::task::spawn_blocking(move || checkpoint_after_write(&guard, busy, &path));
        self.set_fold(job);
    }

    fn set_fold(&self, job: tokio::task::JoinHandle<()>) {
        *self
            .inner
            .fold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(job);
    }

    /// Validates every row, then upserts all of them in one transaction (`INSERT OR
    /// REPLACE` by primary key; `taker_sell_*` derived and stored). Returns rows written.
    /// An invalid row fails the whole call with [`Error::Invalid`] and stores nothing.
    pub async fn store_data(&self, data: impl Into<KlineInput>, freq: Freq) -> Result<usize> {
        self.store_shared(Arc::new(data.into()), freq).await
    }

    /// [`Self::store_data`] of rows the caller keeps: on a failure they are still the
    /// caller's, to retry without a copy (a stream holding a batch while the store is
    /// locked).
    pub async fn store_shared(&self, input: Arc<KlineInput>, freq: Freq) -> Result<usize> {
        if input.is_empty() {
            tracing::warn!("no kline rows to store ({freq})");
            return Ok(0);
        }
        let batch = self.inner.config.batch_size;
        let rows = Arc::clone(&input);
        let validator = self.inner.config.validator();
        let large = input.len() > CHECKPOINT_AFTER_ROWS;
        let n = self
            .write_large(large, move |c, t| {
                validate_all(&rows, freq, &validator)?;
                insert_klines(c, t, &rows, freq, batch)
            })
            .await?;
        info!("stored {n} rows ({}, {freq})", input.symbol_summary());
        Ok(n)
    }

    /// Stores a stream of record batches in **one transaction**: each batch is validated
    /// (the rules of the `store_*` calls) and upserted as it arrives, so memory holds one
    /// batch at a time however long the stream is. The iterator runs on the writer's
    /// blocking thread: it may block (a channel fed by a parser on another thread pipelines
    /// parsing and storing). An `Err` item, an invalid batch or a failed insert rolls back
    /// everything of the call. Returns records written. A bar repeated inside one batch is
    /// refused; across batches the last one wins (a caller streaming a file in time order,
    /// as ingest does, never repeats one).
    pub async fn store_records<I, E>(&self, batches: I) -> Result<usize>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.store_records_then(batches, |_, _| Ok(())).await
    }

    /// [`Self::store_records`], then `then` with the records written, in the same
    /// transaction (so what it records commits with the rows or not at all).
    pub(crate) async fn store_records_then<I, E, F>(&self, batches: I, then: F) -> Result<usize>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
        F: FnOnce(&rusqlite::Connection, usize) -> Result<()> + Send + 'static,
    {
        let batches = batches.into_iter();
        let (batch, v) = self.write_settings();
        let n = self
            .write(move |c, t| {
                let n = store_record_stream(c, t, batches, batch, &v)?;
                then(c, n)?;
                Ok(n)
            })
            .await?;
        info!("stored {n} streamed records");
        self.fold_if_large(n).await;
        Ok(n)
    }

    /// Folds the WAL in the background after a streamed write of `rows` records, when it
    /// was large enough for the commit to leave a big WAL behind.
    pub(crate) async fn fold_if_large(&self, rows: usize) {
        if rows > CHECKPOINT_AFTER_ROWS {
            self.fold_wal_in_background().await;
        }
    }

    /// Validates and upserts funding rates in one transaction.
    pub async fn store_funding_rate(&self, data: Vec<FundingRate>) -> Result<usize> {
        let v = self.inner.config.validator();
        let n = self
            .write(move |c, t| metrics::store_funding(c, t, &data, &v))
            .await?;
        info!("stored {n} funding rate rows");
        Ok(n)
    }

    /// Validates and upserts open interest samples in one transaction.
    pub async fn store_open_interest(&self, data: Vec<OpenInterest>) -> Result<usize> {
        let v = self.inner.config.validator();
        let n = self
            .write(move |c, t| metrics::store_open_interest(c, t, &data, &v))
            .await?;
        info!("stored {n} open interest rows");
        Ok(n)
    }

    /// Validates and upserts long/short ratios (under the file's spelling of the ratio type,
    /// [`Tables::ratio_type_name`]) in one
    /// transaction.
    pub async fn store_long_short_ratio(&self, data: Vec<LongShortRatio>) -> Result<usize> {
        let v = self.inner.config.validator();
        let n = self
            .write(move |c, t| metrics::store_long_short_ratio(c, t, &data, &v))
            .await?;
        info!("stored {n} long/short ratio rows");
        Ok(n)
    }

    /// Stores open interest and long/short ratios together (the two halves of a Binance
    /// Vision metrics file) in one transaction: both or neither. Returns rows written.
    pub async fn store_metrics(
        &self,
        open_interest: Vec<OpenInterest>,
        long_short_ratio: Vec<LongShortRatio>,
    ) -> Result<usize> {
        let v = self.inner.config.validator();
        let (oi, lsr) = self
            .write(move |c, t| {
                Ok((
                    metrics::store_open_interest(c, t, &open_interest, &v)?,
                    metrics::store_long_short_ratio(c, t, &long_short_ratio, &v)?,
                ))
            })
            .await?;
        info!("stored {oi} open interest and {lsr} long/short ratio rows");
        Ok(oi + lsr)
    }

    /// Bars of `symbols` (all symbols of `freq` when empty) in `range`, ordered by
    /// (symbol, timestamp), with `features` (empty = the eleven stored columns; derived
    /// `vwap` and `ret` allowed; metrics refused). `raise_on_empty` turns an empty result
    /// into [`Error::NoData`].
    pub async fn read_data(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        raise_on_empty: bool,
    ) -> Result<KlineFrame> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let plan = ReadPlan::new(&self.inner.tables, features)?;
        let what = raise_on_empty.then(|| describe(freq, &symbols, range));
        let frame = if self.splits_read(range, freq, symbols.len()) {
            self.read_frame_split(plan, freq, symbols, range).await?
        } else {
            self.read(move |c, t| read_frame(c, t, &plan, freq, &symbols, range))
                .await?
        };
        match what {
            Some(what) if frame.is_empty() => Err(Error::NoData { what }),
            _ => Ok(frame),
        }
    }

    /// Whether a read is big enough (estimated from the range, the interval and the symbol
    /// count; all symbols count as eight) to split across two readers, and there are two
    /// readers and two cores to run them.
    fn splits_read(&self, range: TimeRange, freq: Freq, symbols: usize) -> bool {
        let min = self.inner.config.parallel_read_min_bars;
        if min == u64::MAX || symbols == 1 || self.inner.pool.config().readers < 2 {
            return false;
        }
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return false;
        }
        let span = u64::try_from(range.end_exclusive - range.start).unwrap_or(0);
        let per_symbol = span / u64::try_from(freq.nominal_ms().max(1)).unwrap_or(1);
        // An empty list is every stored symbol: unknown here, taken as eight.
        let symbols = if symbols == 0 { 8 } else { symbols };
        let symbols = u64::try_from(symbols).unwrap_or(u64::MAX);
        per_symbol.saturating_mul(symbols) >= min
    }

    /// [`read_frame`] as two halves of the symbols on two readers at once. When the two
    /// snapshots cannot be shown to be one state (a commit landed while they were open, or
    /// they did not overlap in time), the read runs again in one snapshot.
    async fn read_frame_split(
        &self,
        plan: ReadPlan,
        freq: Freq,
        symbols: Vec<String>,
        range: TimeRange,
    ) -> Result<KlineFrame> {
        let (plan, symbols) = (Arc::new(plan), Arc::new(symbols));
        let tickets = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let part = |i: usize| {
            let (plan, symbols, tickets) = (
                Arc::clone(&plan),
                Arc::clone(&symbols),
                Arc::clone(&tickets),
            );
            self.read(move |c, t| {
                read_frame_part(c, t, &plan, freq, &symbols, range, (i, 2), &tickets)
            })
        };
        let (a, b) = tokio::join!(part(0), part(1));
        let (mut a, b) = (a?, b?);
        let one_state =
            a.unchanged && b.unchanged && a.opened.max(b.opened) < a.closed.min(b.closed);
        let counter = &self.inner.split_reads[usize::from(!one_state)];
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if one_state {
            a.frame.append(b.frame)?;
            return Ok(a.frame);
        }
        debug!(
            "a split read did not see one state (a commit or no overlap); reading again in one snapshot"
        );
        drop((a, b));
        self.read(move |c, t| read_frame(c, t, &plan, freq, &symbols, range))
            .await
    }

    /// [`Self::read_data`] with raw millisecond bounds, both inclusive: `start == end` is
    /// the one instant, `start > end` is the model's `StartAfterEnd` error (never an empty
    /// frame).
    pub async fn read_data_by_timestamp(
        &self,
        start_ms: i64,
        end_ms_inclusive: i64,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        raise_on_empty: bool,
    ) -> Result<KlineFrame> {
        // Check the inclusive bounds first: start = end + 1 would be a valid empty range.
        let inclusive = TimeRange::new(start_ms, end_ms_inclusive)?;
        let range = TimeRange::new(inclusive.start, end_ms_inclusive.saturating_add(1))?;
        self.read_data(range, freq, symbols, features, raise_on_empty)
            .await
    }

    /// Funding rates in `range` (by funding time), ordered by (symbol, time).
    /// `raise_on_empty` turns an empty result into [`Error::NoData`].
    pub async fn read_funding_rate(
        &self,
        range: TimeRange,
        symbols: &[String],
        raise_on_empty: bool,
    ) -> Result<Vec<FundingRate>> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let what = raise_on_empty.then(|| describe_metric("funding rates", &symbols, range));
        let rows = self
            .read(move |c, t| metrics::read_funding(c, t, range, &symbols))
            .await?;
        no_data_if_empty(rows, what)
    }

    /// Open interest at `interval` in `range`, ordered by (symbol, time).
    /// `raise_on_empty` turns an empty result into [`Error::NoData`].
    pub async fn read_open_interest(
        &self,
        range: TimeRange,
        symbols: &[String],
        interval: Freq,
        raise_on_empty: bool,
    ) -> Result<Vec<OpenInterest>> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let what = raise_on_empty
            .then(|| describe_metric(&format!("{interval} open interest"), &symbols, range));
        let rows = self
            .read(move |c, t| metrics::read_open_interest(c, t, range, &symbols, interval))
            .await?;
        no_data_if_empty(rows, what)
    }

    /// Long/short ratios of `ratio_type` (rows under either spelling, one per timestamp, the
    /// file's own spelling first) at `period` in `range`, ordered by (symbol, time).
    /// `raise_on_empty` turns an empty result into [`Error::NoData`].
    pub async fn read_long_short_ratio(
        &self,
        range: TimeRange,
        symbols: &[String],
        period: Freq,
        ratio_type: RatioType,
        raise_on_empty: bool,
    ) -> Result<Vec<LongShortRatio>> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let what = raise_on_empty.then(|| {
            describe_metric(
                &format!("{period} {} long/short ratios", ratio_type.as_str()),
                &symbols,
                range,
            )
        });
        let rows = self
            .read(move |c, t| {
                metrics::read_long_short_ratio(c, t, range, &symbols, period, ratio_type)
            })
            .await?;
        no_data_if_empty(rows, what)
    }

    /// Streams the bars of `symbols` (all of `freq` when empty) in `range` as bounded
    /// frames; each chunk is its own short read. Must be called inside a tokio runtime;
    /// errors (bad symbol, feature...) arrive as the stream's first item.
    pub fn scan(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        chunk: ScanChunk,
    ) -> FrameStream {
        let range = match range.checked() {
            Ok(r) => r,
            Err(e) => return FrameStream::failed(e.into()),
        };
        let job = check_symbols(symbols).and_then(|symbols| {
            Ok(ScanJob {
                pool: self.inner.pool.clone(),
                tables: self.inner.tables,
                plan: ReadPlan::new(&self.inner.tables, features)?,
                freq,
                symbols,
                range,
                chunk,
                limit: None,
            })
        });
        match job {
            Ok(job) => scan::start(job),
            Err(e) => FrameStream::failed(e),
        }
    }

    /// Streams at most `limit` bars (all when `None`) of `symbols` in `range`, in frames of
    /// at most `chunk_rows` rows, in (symbol, time) order; each read asks SQLite for no more
    /// rows than are left, so a small limit reads little.
    pub fn scan_rows(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        chunk_rows: usize,
        limit: Option<u64>,
    ) -> FrameStream {
        let job = range.checked().map_err(Error::from).and_then(|range| {
            Ok(ScanJob {
                pool: self.inner.pool.clone(),
                tables: self.inner.tables,
                plan: ReadPlan::new(&self.inner.tables, features)?,
                freq,
                symbols: check_symbols(symbols)?,
                range,
                chunk: ScanChunk::Rows(chunk_rows),
                limit,
            })
        });
        match job {
            Ok(job) => scan::start(job),
            Err(e) => FrameStream::failed(e),
        }
    }

    /// Per-table summary with the Python v1.9 key names.
    pub async fn get_data_summary(&self) -> Result<DataSummary> {
        self.read(inspect::data_summary).await
    }

    /// Symbols with klines (of `freq` when given), sorted.
    pub async fn get_symbols(&self, freq: Option<Freq>) -> Result<Vec<String>> {
        self.read(move |c, t| match freq {
            Some(f) => resolve_symbols(c, t, f, &[]),
            None => crate::read::distinct_symbols(c, t.kline, None),
        })
        .await
    }

    /// Symbols with a row in any of the four tables (klines or metrics), sorted. One index
    /// seek per symbol and table, not a scan.
    pub async fn get_all_symbols(&self) -> Result<Vec<String>> {
        self.read(|c, t| {
            let mut all = std::collections::BTreeSet::new();
            for table in t.names() {
                all.extend(crate::read::distinct_symbols(c, table, None)?);
            }
            Ok(all.into_iter().collect())
        })
        .await
    }

    /// Intervals stored for `symbol`, finest first.
    pub async fn get_frequencies(&self, symbol: &str) -> Result<Vec<Freq>> {
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::frequencies(c, t, &symbol))
            .await
    }

    /// Every interval stored for `symbol`, ascending, with its bar count and first and last
    /// open time (the Python `get_symbol_data_range(symbol)` in one call). Empty when the
    /// symbol has no bars.
    pub async fn get_symbol_data_range(&self, symbol: &str) -> Result<Vec<SymbolRange>> {
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::symbol_ranges(c, t, &symbol))
            .await
    }

    /// First and last open time of (symbol, freq), `None` without rows.
    pub async fn get_time_range(&self, symbol: &str, freq: Freq) -> Result<Option<(i64, i64)>> {
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::time_range(c, t, &symbol, freq))
            .await
    }

    /// Rows of (symbol, freq), in `range` when given.
    pub async fn count(&self, symbol: &str, freq: Freq, range: Option<TimeRange>) -> Result<u64> {
        let range = range.map(TimeRange::checked).transpose()?;
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::count_rows(c, t, &symbol, freq, range))
            .await
    }

    /// The latest `limit` bars of each symbol (all of `freq` when empty), ordered by
    /// (symbol, timestamp), eleven kline columns.
    pub async fn get_latest(
        &self,
        symbols: &[String],
        freq: Freq,
        limit: usize,
    ) -> Result<KlineFrame> {
        let symbols = check_symbols(symbols)?;
        let plan = ReadPlan::new(&self.inner.tables, &[])?;
        self.read(move |c, t| read_latest(c, t, &plan, freq, &symbols, limit))
            .await
    }

    /// Whether (symbol, freq) has any bar in `range`.
    pub async fn data_exists(&self, symbol: &str, range: TimeRange, freq: Freq) -> Result<bool> {
        let range = range.checked()?;
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::exists(c, t, &symbol, freq, range))
            .await
    }

    /// UTC dates (`YYYY-MM-DD`) with at least one bar of (symbol, freq), ascending.
    pub async fn get_available_dates(&self, symbol: &str, freq: Freq) -> Result<Vec<String>> {
        let symbol = validate_symbol(symbol)?;
        self.read(move |c, t| inspect::available_dates(c, t, &symbol, freq))
            .await
    }

    /// Deletes the bars of `symbols` at `freq` in `range` in one transaction; an empty
    /// `symbols` means every symbol of `freq` (as in reads). Returns rows deleted.
    pub async fn delete_range(
        &self,
        symbols: &[String],
        range: TimeRange,
        freq: Freq,
    ) -> Result<u64> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let what = describe(freq, &symbols, range);
        let n = self
            .write(move |c, t| crate::write::delete_range(c, t, &symbols, range, freq))
            .await?;
        info!("deleted {n} rows ({what})");
        Ok(n)
    }

    /// Rebuilds the file (`VACUUM`), returning free pages to the file system, then folds
    /// the WAL (which then holds the whole rebuilt file) back with a TRUNCATE checkpoint.
    /// Returns that checkpoint's outcome.
    pub async fn vacuum(&self) -> Result<Checkpoint> {
        let guard = self.inner.pool.write_guard().await?;
        let outcome = run_blocking(move || -> Result<Checkpoint> {
            guard.execute_batch("VACUUM")?;
            wal_checkpoint(&guard)
        })
        .await??;
        info!(?outcome, "vacuumed {}", self.path().display());
        Ok(outcome)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: copies the WAL into the database and truncates
    /// it, waiting up to the busy timeout for readers. A reader holding an old snapshot
    /// past that makes it [`Checkpoint::Busy`], not an error and not a success.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        let guard = self.inner.pool.write_guard().await?;
        let outcome = run_blocking(move || wal_checkpoint(&guard)).await??;
        debug!(?outcome, "wal checkpoint");
        Ok(outcome)
    }

    /// `PRAGMA integrity_check`: `"ok"` when the file is sound, else the problems found,
    /// one per line.
    pub async fn integrity_check(&self) -> Result<String> {
        self.read(|c, _| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let lines = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines.join("\n"))
        })
        .await
    }

    /// Drops the secondary indexes on the four tables (the Python v1.9 layout has ten;
    /// marketdb creates none), returning their names. Bulk writes get several times faster;
    /// reads do not need them (every read seeks the primary key). The Python original
    /// re-creates them the next time it opens the file.
    pub async fn drop_secondary_indexes(&self) -> Result<Vec<String>> {
        let names = self.write(schema::drop_secondary_indexes).await?;
        info!(
            "dropped {} secondary index(es): {}",
            names.len(),
            names.join(", ")
        );
        Ok(names)
    }

    /// `PRAGMA user_version` of the file.
    pub async fn schema_version(&self) -> Result<i64> {
        self.read(|c, _| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .await
    }

    /// Completeness of `symbols` (all of `freq` when empty) over `range`: expected grid
    /// vs stored bars, coverage, missing runs and suspicious rows. Streams the stored open
    /// times against the grid in windows of about a million bars, each its own short read.
    pub async fn check_completeness(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
    ) -> Result<CompletenessReport> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let symbols = self
            .read(move |c, t| resolve_symbols(c, t, freq, &symbols))
            .await?;
        let grid = closed_part(range, freq, marketdb_model::time::now_ms());
        let mut out = Vec::with_capacity(symbols.len());
        for s in symbols {
            let whole = match crate::completeness::day_shape(freq) {
                Some((per_day, step)) => {
                    const DAY: i64 = marketdb_model::time::DAY_MS;
                    let symbol = s.clone();
                    self.read(move |c, t| {
                        let days = (
                            crate::changes::day_of(grid.start),
                            crate::changes::day_of(grid.end_exclusive) + 1,
                        );
                        let days = crate::changes::whole_days(
                            c,
                            t,
                            &symbol,
                            freq.as_str(),
                            days,
                            per_day,
                            step,
                        )?;
                        Ok(days
                            .into_iter()
                            .map(|d| (d * DAY, d * DAY + DAY))
                            .filter(|(a, b)| *a >= grid.start && *b <= grid.end_exclusive)
                            .collect::<Vec<_>>())
                    })
                    .await?
                }
                None => Vec::new(),
            };
            let mut checker = self
                .read(move |c, t| Checker::new(c, t, &s, freq, grid))
                .await?;
            // Each window is its own short read; the grid position carries over. Days
            // the change record vouches are whole are counted without reading them.
            for step in checker.steps(&whole) {
                match step {
                    Step::Whole(start, end) => checker.whole(start, end),
                    Step::Rows(window) => {
                        checker = self
                            .read(move |c, t| {
                                checker.feed(c, t, window)?;
                                Ok(checker)
                            })
                            .await?;
                    }
                }
            }
            out.push(checker.finish());
        }
        Ok(CompletenessReport {
            freq,
            range,
            symbols: out,
        })
    }

    /// Resamples the `from` bars of `symbols` into `to` bars (`from` must divide `to`).
    /// The range selects the `to` buckets that open in it ([`Freq::bucket_span`]), each
    /// built from all its source bars. Empty buckets produce no bar;
    /// incomplete ones are kept or dropped by `policy` and counted either way.
    pub async fn resample(
        &self,
        range: TimeRange,
        from: Freq,
        to: Freq,
        symbols: &[String],
        policy: IncompletePolicy,
    ) -> Result<Resampled> {
        let range = range.checked()?;
        let mut agg = BucketAggregator::new(from, to, policy)?;
        let symbols = check_symbols(symbols)?;
        let symbols = self
            .read(move |c, t| resolve_symbols(c, t, from, &symbols))
            .await?;
        let plan = ReadPlan::new(&self.inner.tables, &[])?;
        let sql = Arc::new(plan.range_sql());
        let pieces = resample::windows(source_range(range, to), from, to, RESAMPLE_WINDOW_ROWS);
        for symbol in symbols {
            let symbol = Arc::new(symbol);
            // One short read per window; only the output bars stay in memory.
            for piece in pieces.iter().copied() {
                let (sql, symbol) = (Arc::clone(&sql), Arc::clone(&symbol));
                agg = self
                    .read(move |c, _| {
                        agg.feed(c, &sql, &symbol, piece)?;
                        Ok(agg)
                    })
                    .await?;
            }
        }
        Ok(agg.finish())
    }

    /// [`Self::resample`], then stores the bars as `to` (in one transaction).
    pub async fn resample_and_store(
        &self,
        range: TimeRange,
        from: Freq,
        to: Freq,
        symbols: &[String],
        policy: IncompletePolicy,
    ) -> Result<Resampled> {
        let mut r = self.resample(range, from, to, symbols, policy).await?;
        let klines = resample::to_klines(&r.frame, to)?;
        r.stored = self.store_data(klines, to).await?;
        Ok(r)
    }
}

/// The page cache of a read, in KiB (SQLite's negative `cache_size`). Reads are one pass
/// over leaf pages (interior pages fit easily), so the configured cache (40 MiB by
/// default) only held memory: on a file larger than `mmap_size`, where SQLite reads pages
/// into its cache instead of mapping them, every reader's cache filled up (80 MiB of
/// anonymous memory for one export of a 1.2 GB file).
const READ_CACHE_KIB: i64 = 2048;

/// Runs `f` on `conn` with the small read cache, then gives the connection its configured
/// `cache_size` back (which also releases the pages beyond it).
pub(crate) fn with_read_cache<T>(
    conn: &rusqlite::Connection,
    configured: i64,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{READ_CACHE_KIB}"))?;
    let out = f(conn);
    // Typed integer, so formatting cannot inject SQL.
    let restored = conn.execute_batch(&format!("PRAGMA cache_size = {configured}"));
    let out = out?;
    restored?;
    Ok(out)
}

/// What a `wal_checkpoint(TRUNCATE)` achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checkpoint {
    /// Every WAL frame was copied into the database and the WAL truncated to zero bytes.
    Truncated,
    /// A reader (or another process) kept SQLite from finishing: `checkpointed` of
    /// `frames` were copied and the WAL was not truncated.
    Busy {
        /// Frames in the WAL.
        frames: i64,
        /// Frames copied into the database.
        checkpointed: i64,
    },
    /// The database is not in WAL mode; there was nothing to do.
    NotWal,
}

impl Checkpoint {
    /// Whether the WAL is now empty (or there is none).
    pub fn is_complete(self) -> bool {
        !matches!(self, Checkpoint::Busy { .. })
    }
}

/// Checkpoints the WAL after a large committed write: TRUNCATE with the busy handler off,
/// which degrades to copying what it can (like PASSIVE) when a reader still uses old
/// frames, so it never waits for a long reader. The rows are already committed, so a
/// failure is a warning, never an error of the call that wrote them.
fn checkpoint_after_write(conn: &rusqlite::Connection, busy: Duration, path: &Path) {
    let outcome = (|| -> Result<Checkpoint> {
        conn.busy_timeout(Duration::ZERO)?;
        let res = wal_checkpoint(conn);
        conn.busy_timeout(busy)?;
        res
    })();
    match outcome {
        Ok(c) => debug!(?c, "wal checkpoint after a large write"),
        Err(e) => warn!(
            "{}: wal checkpoint after a committed write failed (the rows are stored): {e}",
            path.display()
        ),
    }
}

/// Runs `PRAGMA wal_checkpoint(TRUNCATE)` on `conn` and reads its (busy, log, done) row.
fn wal_checkpoint(conn: &rusqlite::Connection) -> Result<Checkpoint> {
    let (busy, frames, checkpointed) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
    Ok(if busy != 0 {
        Checkpoint::Busy {
            frames,
            checkpointed,
        }
    } else if frames < 0 {
        Checkpoint::NotWal
    } else {
        Checkpoint::Truncated
    })
}

/// The part of `range` whose `freq` bars have closed by `now`: a bar that is still open is
/// not missing yet, so the expected grid stops before it (a range wholly in the future
/// expects nothing).
pub(crate) fn closed_part(range: TimeRange, freq: Freq, now: i64) -> TimeRange {
    let closed_end = match freq.fixed_ms() {
        // A bar opening at `o` closes at `o + len - 1`: closed when `o + len <= now`.
        Some(len) => now - len + 1,
        // Calendar months: every month before the current one has closed.
        None => freq.floor(now),
    };
    TimeRange {
        start: range.start,
        end_exclusive: range.end_exclusive.min(closed_end).max(range.start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: &T) {}
    fn send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn handles_and_futures_can_cross_threads() {
        send_sync_static::<AsyncMarketDB>();
        send_sync_static::<FrameStream>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = rt
            .block_on(AsyncMarketDB::open(dir.path().join("x.db")))
            .unwrap();
        let range = TimeRange::new(0, 1).unwrap();
        send(&db.read_data(range, Freq::M1, &[], &[], false));
        send(&db.store_data(Vec::<marketdb_model::Kline>::new(), Freq::M1));
        send(&db.check_completeness(range, Freq::M1, &[]));
        send(&db.resample(range, Freq::M1, Freq::H1, &[], IncompletePolicy::Keep));
        send(&db.get_data_summary());
    }

    #[test]
    fn the_expected_grid_stops_before_the_open_bar() {
        let jan1 = 1_704_067_200_000;
        let range = TimeRange::new(jan1, jan1 + 86_400_000).unwrap();
        // At 00:10:30 the 00:10 bar is still open: ten 1m bars have closed.
        let now = jan1 + 630_000;
        let part = closed_part(range, Freq::M1, now);
        assert!(part.end_exclusive > jan1 + 9 * 60_000, "00:09 closed");
        assert!(part.end_exclusive <= jan1 + 10 * 60_000, "00:10 still open");
        // Exactly at 00:11 the 00:10 bar has closed (its close time is 00:10:59.999).
        let part = closed_part(range, Freq::M1, jan1 + 660_000);
        assert!(part.end_exclusive > jan1 + 600_000);
        assert!(part.end_exclusive <= jan1 + 660_000);
        // A range wholly in the past is untouched; one in the future expects nothing.
        assert_eq!(closed_part(range, Freq::M1, jan1 + 10 * 86_400_000), range);
        let future = closed_part(range, Freq::H1, jan1 - 1);
        assert_eq!(future.end_exclusive, future.start);
        // Months: the current month is open, the ones before are closed.
        let feb10 = jan1 + 40 * 86_400_000;
        let year = TimeRange::new(jan1, jan1 + 366 * 86_400_000).unwrap();
        assert_eq!(
            closed_part(year, Freq::Mo1, feb10).end_exclusive,
            jan1 + 31 * 86_400_000
        );
    }
}
