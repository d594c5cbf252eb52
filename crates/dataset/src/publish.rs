//! Publication (`export dataset`): the database's tables as the Hive-partitioned Parquet
//! dataset of [`crate::layout`], incrementally and atomically for its readers.
//!
//! Rows are sorted by symbol then time; row groups end at a symbol boundary once they hold
//! [`GROUP_MIN_ROWS`] rows (and never exceed [`GROUP_MAX_ROWS`]), so the min/max statistics
//! of `symbol` let engines skip groups. A partition is always a whole UTC day (a month for
//! funding): a range is widened to whole periods.
//!
//! Incremental: a published partition's rows (of the symbols it covers) are hashed first, a
//! read; one whose digest and covered symbols match the state is left alone (same bytes,
//! same mtime). A changed or new partition is encoded on a blocking thread under a hidden
//! temporary name, fsynced, and renamed over its file: a reader that globs the folder sees
//! each partition file whole, old or new, never two versions of one partition. The state
//! is written once at the end (temporary name, rename, folder fsync), and only then are the
//! files of partitions it no longer lists deleted, so a reader that goes through the state
//! always finds every file it lists. One export at a time per dataset ([`crate::lock`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use marketdb_export::ParquetCompression;
use marketdb_model::{Freq, TimeRange};
use marketdb_output::{OutputGate, PendingFile, ScratchDir};
use marketdb_store::{AsyncMarketDB, RecordedDay, RecordedTable, day_of};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::layout::{DATASET_VERSION, DatasetKind, Partition, STATE_PATH, covering, freq_value};
use crate::lock::DatasetLock;
use crate::remote::{DatasetLocation, Remote};
use crate::rows::{PartitionRows, digest, hash_rows};
use crate::state::{DatasetState, PartitionState, ScopeChange, Selection};
use crate::{Error, Result};

/// A row group ends at the next symbol boundary once it holds this many rows.
pub const GROUP_MIN_ROWS: usize = 8192;
/// Most rows in one row group.
pub const GROUP_MAX_ROWS: usize = 65_536;
/// Batches queued between the store reader and the Parquet encoder.
const ENCODER_QUEUE: usize = 2;

/// What to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRequest {
    /// Tables to publish (all by default).
    pub kinds: Vec<DatasetKind>,
    /// Kline intervals (every stored one when empty).
    pub freqs: Vec<Freq>,
    /// Symbols (all when empty); see the scope rule in [`crate::state`].
    pub symbols: Vec<String>,
    /// Range, widened to whole partitions (everything stored when `None`).
    pub range: Option<TimeRange>,
    pub compression: ParquetCompression,
    /// List what would change, write nothing.
    pub dry_run: bool,
    /// Remove a lock left by another export first.
    pub break_lock: bool,
}

impl Default for DatasetRequest {
    fn default() -> DatasetRequest {
        DatasetRequest {
            kinds: DatasetKind::ALL.to_vec(),
            freqs: Vec::new(),
            symbols: Vec::new(),
            range: None,
            compression: ParquetCompression::Zstd,
            dry_run: false,
            break_lock: false,
        }
    }
}

/// What a dataset export did (or, on a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DatasetReport {
    pub root: PathBuf,
    /// Partitions written, as `klines/freq=1m/date=2024-01-01`.
    pub written: Vec<String>,
    /// Partitions removed (their rows are gone).
    pub removed: Vec<String>,
    /// Partitions left as they were.
    pub unchanged: u64,
    /// Partitions whose rows were read to tell whether they changed (the others were
    /// told by the database's change record).
    pub compared_by_rows: u64,
    /// The database has no change record (a file made by another program and never
    /// opened for writing by marketdb): every partition is compared by its rows.
    pub no_change_record: bool,
    /// Rows in the written partitions.
    pub rows: u64,
    /// Bytes of the written partition files.
    pub bytes: u64,
    pub dry_run: bool,
    /// How the dataset's symbol selection grew, if it did.
    pub scope_extended: Option<String>,
}

/// Publishes the request's partitions under `root` (a folder path), incrementally.
pub async fn export_dataset(
    db: &AsyncMarketDB,
    root: &Path,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    export_dataset_to(db, &DatasetLocation::Local(root.to_path_buf()), req).await
}

/// Where partition files are written before they are published.
enum Target<'a> {
    /// Straight into the dataset folder (renamed over the partition's file).
    Local(PathBuf),
    /// Into a scratch folder, then uploaded.
    Store {
        remote: &'a Remote,
        scratch: ScratchDir,
    },
}

impl Target<'_> {
    fn dir(&self) -> &Path {
        match self {
            Target::Local(root) => root,
            Target::Store { scratch, .. } => scratch.path(),
        }
    }

    async fn load_state(&self) -> Result<Option<DatasetState>> {
        match self {
            Target::Local(root) => {
                let root = root.clone();
                off_runtime(move || DatasetState::load(&root)).await
            }
            Target::Store { remote, .. } => remote.state().await,
        }
    }

    async fn exists(&self, p: &Partition) -> Result<bool> {
        match self {
            Target::Local(root) => Ok(root.join(p.file()).is_file()),
            Target::Store { remote, .. } => remote.exists(&p.file()).await,
        }
    }

    /// Publishes a partition file written (pending) in [`Target::dir`].
    async fn publish(&self, p: &Partition, pending: PendingFile) -> Result<()> {
        match self {
            Target::Local(_) => {
                off_runtime(move || pending.commit().map(|_| ()).map_err(Error::from)).await
            }
            Target::Store { remote, .. } => {
                let path = pending.target().to_path_buf();
                let bytes = off_runtime(move || -> Result<Vec<u8>> {
                    pending.commit()?;
                    let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?;
                    let _ = std::fs::remove_file(&path);
                    Ok(bytes)
                })
                .await?;
                remote.put(&p.file(), bytes).await
            }
        }
    }

    async fn save_state(&self, gate: &OutputGate, state: &DatasetState) -> Result<()> {
        match self {
            Target::Local(root) => {
                let (gate, root, state) = (gate.clone(), root.clone(), state.clone());
                off_runtime(move || state.save(&gate, &root)).await
            }
            Target::Store { remote, .. } => {
                let path = PathBuf::from(format!("{}/{STATE_PATH}", remote.url));
                remote.put(STATE_PATH, state.to_bytes(&path)?).await
            }
        }
    }

    /// Deletes the file of a partition the state no longer lists (and its empty folders).
    async fn remove(&self, gate: &OutputGate, p: &Partition) -> Result<()> {
        match self {
            Target::Local(root) => {
                let (gate, root, p) = (gate.clone(), root.clone(), p.clone());
                off_runtime(move || remove_partition(&gate, &root, &p)).await
            }
            Target::Store { remote, .. } => remote.delete(&p.file()).await,
        }
    }
}

/// Runs file work on the blocking pool, not on a runtime worker.
pub(crate) async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Stopped {
            what: "file work".to_owned(),
        }),
    }
}

/// Publishes the request's partitions at `location` (a folder or an object-store prefix),
/// incrementally.
pub async fn export_dataset_to(
    db: &AsyncMarketDB,
    location: &DatasetLocation,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    let gate = OutputGate::protecting(db.path());
    match location {
        DatasetLocation::Local(root) => {
            let resolved = {
                let (gate, root) = (gate.clone(), root.clone());
                off_runtime(move || resolve_folder(&gate, &root)).await?
            };
            let lock = if req.dry_run {
                None
            } else {
                let (gate, dir) = (gate.clone(), resolved.clone());
                let break_lock = req.break_lock;
                Some(
                    off_runtime(move || {
                        gate.create_dir_all(&dir)?;
                        marketdb_output::sweep_stale_temps(&dir, ".", true);
                        DatasetLock::local(&gate, &dir, break_lock)
                    })
                    .await?,
                )
            };
            let label = resolved.display().to_string();
            let report = export_into(db, &gate, &Target::Local(resolved), &label, req).await;
            if let Some(lock) = lock {
                lock.release().await?;
            }
            report
        }
        DatasetLocation::Store(remote) => {
            let scratch = ScratchDir::create_in(&std::env::temp_dir(), "marketdb-dataset-")?;
            let lock = match req.dry_run {
                true => None,
                false => Some(DatasetLock::store(remote, req.break_lock).await?),
            };
            let target = Target::Store { remote, scratch };
            let report = export_into(db, &gate, &target, &remote.url, req).await;
            if let Some(lock) = lock {
                lock.release().await?;
            }
            report
        }
    }
}

/// The symbols each (kind, interval) of the scope covers.
struct Coverage<'a> {
    db: &'a AsyncMarketDB,
    selection: Selection,
    cache: HashMap<(DatasetKind, Option<Freq>), Vec<String>>,
}

impl Coverage<'_> {
    async fn of(&mut self, p: &Partition) -> Result<Vec<String>> {
        let key = (p.kind, p.freq);
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let symbols = match &self.selection {
            Selection::Symbols(list) => list.iter().cloned().collect(),
            Selection::All(_) => match (p.kind.metric(), p.freq) {
                (Some(table), _) => self.db.metric_symbols(table).await,
                (None, freq) => self.db.get_symbols(freq).await,
            }
            .map_err(|e| Error::read(format!("the symbols of {}", p.kind.dir()), e))?,
        };
        self.cache.insert(key, symbols.clone());
        Ok(symbols)
    }
}

async fn export_into(
    db: &AsyncMarketDB,
    gate: &OutputGate,
    target: &Target<'_>,
    label: &str,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    let mut symbols = req.symbols.clone();
    symbols.sort_unstable();
    symbols.dedup();
    let wanted = Selection::of(&symbols);
    let old = target.load_state().await?;
    let existed = old.is_some();
    let mut state = old.unwrap_or_else(|| DatasetState::new(wanted.clone()));
    let change = state.scope.merge(&wanted, label)?;
    let mut report = DatasetReport {
        root: PathBuf::from(label),
        dry_run: req.dry_run,
        scope_extended: match change {
            ScopeChange::Same => None,
            ScopeChange::Extended(how) => Some(how),
        },
        ..DatasetReport::default()
    };
    if let Some(how) = &report.scope_extended {
        tracing::info!("the dataset's symbol selection grows {how}");
    }
    let mut coverage = Coverage {
        db,
        selection: state.scope.symbols.clone(),
        cache: HashMap::new(),
    };
    let mut dirty = !existed || report.scope_extended.is_some();
    let mut gone: Vec<Partition> = Vec::new();
    let mut records = Records::default();
    for p in partitions(db, req, &state).await? {
        let covered = coverage.of(&p).await?;
        let old = state.partitions.get(&p.key).cloned();
        let on_disk = target.exists(&p).await?;
        // Read before the rows: a write landing between makes the next run compare again,
        // never skip a change.
        let print = records.print(db, &p, &covered).await?;
        if let (Some(old), true) = (&old, on_disk) {
            if print.is_some() && old.record == print && old.symbols == covered {
                report.unchanged += 1;
                continue;
            }
            report.compared_by_rows += 1;
            let (digest_now, rows) = digest(db, &p, &covered).await?;
            if rows == 0 {
                report.removed.push(p.key.clone());
                gone.push(p);
                continue;
            }
            if old.digest == digest_now {
                report.unchanged += 1;
                if (old.symbols != covered || old.record != print) && !req.dry_run {
                    // The same rows, a wider selection or a new print: only the state
                    // changes.
                    if let Some(s) = state.partitions.get_mut(&p.key) {
                        s.symbols = covered;
                        s.record = print;
                        dirty = true;
                    }
                }
                continue;
            }
            if req.dry_run {
                report.written.push(p.key.clone());
                report.rows += rows;
                continue;
            }
        } else if req.dry_run {
            let (_, rows) = digest(db, &p, &covered).await?;
            if rows > 0 {
                report.written.push(p.key.clone());
                report.rows += rows;
            } else if old.is_some() || on_disk {
                report.removed.push(p.key.clone());
            }
            continue;
        }
        let written =
            write_partition(db, gate, target.dir(), &p, &covered, req.compression).await?;
        match written {
            None => {
                // No rows (any more): the partition goes, after the state.
                if old.is_some() || on_disk {
                    report.removed.push(p.key.clone());
                    gone.push(p);
                }
            }
            Some(w) => {
                target.publish(&p, w.pending).await?;
                tracing::debug!(partition = %p.key, rows = w.rows, bytes = w.bytes, "partition published");
                state.partitions.insert(
                    p.key.clone(),
                    PartitionState {
                        digest: w.digest,
                        rows: w.rows,
                        bytes: w.bytes,
                        symbols: covered,
                        record: print,
                    },
                );
                record_in_scope(&mut state, &p);
                report.written.push(p.key.clone());
                report.rows += w.rows;
                report.bytes += w.bytes;
                dirty = true;
            }
        }
    }
    report.no_change_record = records.missing;
    if records.missing {
        tracing::info!(
            "the database has no change record: every partition was compared by its rows"
        );
    }
    if req.dry_run {
        return Ok(report);
    }
    for p in &gone {
        state.partitions.remove(&p.key);
        dirty = true;
    }
    // A run that changed nothing leaves the state file alone.
    if dirty {
        state.version = DATASET_VERSION;
        target.save_state(gate, &state).await?;
    }
    // Only now that no state lists them.
    for p in &gone {
        target.remove(gate, p).await?;
    }
    tracing::info!(
        written = report.written.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        "dataset export done"
    );
    Ok(report)
}

/// The database's change record, read once per (kind, interval) and cut into partitions.
#[derive(Default)]
struct Records {
    cache: HashMap<(DatasetKind, Option<Freq>), Option<Vec<RecordedDay>>>,
    /// Set when the database has no record.
    missing: bool,
}

impl Records {
    /// The print of partition `p` over the symbols it covers: SHA-256 of every recorded
    /// (symbol, series, day, rows, stamp) in its period. `None` when the record cannot
    /// tell (none in the file, or a day changed by another program and not counted since).
    async fn print(
        &mut self,
        db: &AsyncMarketDB,
        p: &Partition,
        covered: &[String],
    ) -> Result<Option<String>> {
        let key = (p.kind, p.freq);
        if !self.cache.contains_key(&key) {
            let table = match p.kind {
                DatasetKind::Klines => RecordedTable::Klines,
                DatasetKind::FundingRate => RecordedTable::FundingRate,
                DatasetKind::OpenInterest => RecordedTable::OpenInterest,
                DatasetKind::LongShortRatio => RecordedTable::LongShortRatio,
            };
            let days = db
                .recorded_days(
                    table,
                    p.freq.map(|f| f.as_str().to_owned()),
                    i64::MIN,
                    i64::MAX,
                )
                .await
                .map_err(|e| Error::read("the change record", e))?;
            self.missing |= days.is_none();
            self.cache.insert(key, days);
        }
        let Some(Some(days)) = self.cache.get(&key) else {
            return Ok(None);
        };
        let (from, to) = (day_of(p.start), day_of(p.end - 1) + 1);
        let covered: std::collections::HashSet<&str> = covered.iter().map(String::as_str).collect();
        let mut h = Sha256::new();
        for d in days.iter().filter(|d| d.day >= from && d.day < to) {
            if !covered.contains(d.symbol.as_str()) {
                continue;
            }
            if d.stale {
                return Ok(None);
            }
            h.update(
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    d.symbol, d.key1, d.key2, d.day, d.rows, d.stamp
                )
                .as_bytes(),
            );
        }
        Ok(Some(format!("{:x}", h.finalize())))
    }
}

/// Notes a published partition's kind and interval in the scope.
fn record_in_scope(state: &mut DatasetState, p: &Partition) {
    state.scope.kinds.insert(p.kind);
    if let Some(f) = p.freq {
        state.scope.freqs.insert(freq_value(f).to_owned());
    }
}

/// The partitions a request covers: those holding stored rows in its range, plus those
/// the state lists in that range (their rows may be gone).
async fn partitions(
    db: &AsyncMarketDB,
    req: &DatasetRequest,
    state: &DatasetState,
) -> Result<Vec<Partition>> {
    let summary = db
        .get_data_summary()
        .await
        .map_err(|e| Error::read("the data summary", e))?;
    let clip = |lo: Option<i64>, hi: Option<i64>| -> Option<(i64, i64)> {
        let (mut lo, mut hi) = (lo?, hi?);
        if let Some(r) = req.range {
            lo = lo.max(r.start);
            hi = hi.min(r.end_exclusive - 1);
        }
        (lo <= hi).then_some((lo, hi))
    };
    let mut out = Vec::new();
    for &kind in &req.kinds {
        match kind {
            DatasetKind::Klines => {
                for k in &summary.market_data {
                    let Ok(freq) = k.freq.parse::<Freq>() else {
                        continue;
                    };
                    if !req.freqs.is_empty() && !req.freqs.contains(&freq) {
                        continue;
                    }
                    if let Some((lo, hi)) = clip(k.earliest_timestamp, k.latest_timestamp) {
                        out.extend(covering(kind, Some(freq), lo, hi));
                    }
                }
            }
            DatasetKind::FundingRate => {
                let f = &summary.funding_rate;
                if let Some((lo, hi)) = clip(f.earliest_timestamp, f.latest_timestamp) {
                    out.extend(covering(kind, None, lo, hi));
                }
            }
            DatasetKind::OpenInterest => {
                for i in &summary.open_interest {
                    if let Some((lo, hi)) = clip(i.earliest_timestamp, i.latest_timestamp) {
                        out.extend(covering(kind, None, lo, hi));
                    }
                }
            }
            DatasetKind::LongShortRatio => {
                for r in &summary.long_short_ratio {
                    if let Some((lo, hi)) = clip(r.earliest_timestamp, r.latest_timestamp) {
                        out.extend(covering(kind, None, lo, hi));
                    }
                }
            }
        }
    }
    for key in state.partitions.keys() {
        let Some(p) = Partition::parse(key) else {
            continue;
        };
        let kind_ok = req.kinds.contains(&p.kind);
        let freq_ok = req.freqs.is_empty() || p.freq.is_none_or(|f| req.freqs.contains(&f));
        let range_ok = req
            .range
            .is_none_or(|r| p.start < r.end_exclusive && p.end > r.start);
        if kind_ok && freq_ok && range_ok {
            out.push(p);
        }
    }
    // Key order: the report and the state list partitions alphabetically.
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

fn writer_properties(p: &Partition, compression: ParquetCompression) -> WriterProperties {
    let mut meta = vec![
        KeyValue::new(
            "marketdb.dataset_version".to_owned(),
            DATASET_VERSION.to_string(),
        ),
        KeyValue::new("marketdb.kind".to_owned(), p.kind.dir().to_owned()),
        KeyValue::new(
            "marketdb.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ];
    if let Some(f) = p.freq {
        meta.push(KeyValue::new("marketdb.freq".to_owned(), f.to_string()));
    }
    let mut props = WriterProperties::builder()
        .set_compression(marketdb_export::parquet_codec(compression))
        .set_max_row_group_row_count(Some(GROUP_MAX_ROWS))
        // Prices and volumes rarely repeat: a dictionary there costs a hash per value
        // (the largest single cost of a publication) and saves no space. Text columns
        // (symbol, interval, ratio type) repeat on every row and keep theirs.
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(meta));
    for field in p.kind.schema().fields() {
        if field.data_type() == &arrow_schema::DataType::Utf8 {
            props =
                props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    props.build()
}

/// Row offsets where the symbol changes in `batch` (after row `i - 1`), and its length.
fn symbol_breaks(batch: &RecordBatch) -> Vec<usize> {
    let symbols = batch.column(0).as_string::<i32>();
    let mut out = Vec::new();
    for i in 1..batch.num_rows() {
        if symbols.value(i) != symbols.value(i - 1) {
            out.push(i);
        }
    }
    out.push(batch.num_rows());
    out
}

/// A partition file written under its temporary name.
struct Written {
    digest: String,
    rows: u64,
    bytes: u64,
    pending: PendingFile,
}

/// Encodes a partition's rows of `symbols` into `dir/{file}` under a temporary name, on a
/// blocking thread fed by the store reader; `None` when it has no row (nothing is left).
async fn write_partition(
    db: &AsyncMarketDB,
    gate: &OutputGate,
    dir: &Path,
    p: &Partition,
    symbols: &[String],
    compression: ParquetCompression,
) -> Result<Option<Written>> {
    let path = dir.join(p.file());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(ENCODER_QUEUE);
    let (gate2, path2, props, schema) = (
        gate.clone(),
        path.clone(),
        writer_properties(p, compression),
        p.kind.schema(),
    );
    let encoder = tokio::task::spawn_blocking(move || -> Result<Option<Written>> {
        let parquet_err = |source| Error::ParquetWrite {
            path: path2.clone(),
            source,
        };
        let mut writer: Option<ArrowWriter<marketdb_output::AtomicFile>> = None;
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(batch) = rx.blocking_recv() {
            if batch.num_rows() == 0 {
                continue;
            }
            let w = match writer.as_mut() {
                Some(w) => w,
                None => {
                    let file = gate2.create(&path2)?;
                    writer.insert(
                        ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
                            .map_err(parquet_err)?,
                    )
                }
            };
            n += batch.num_rows() as u64;
            hash_rows(&mut h, &batch);
            let mut from = 0;
            for end in symbol_breaks(&batch) {
                w.write(&batch.slice(from, end - from))
                    .map_err(parquet_err)?;
                from = end;
                if w.in_progress_rows() >= GROUP_MIN_ROWS {
                    w.flush().map_err(parquet_err)?;
                }
            }
        }
        let Some(w) = writer else {
            return Ok(None);
        };
        let file = w.into_inner().map_err(parquet_err)?;
        let pending = file.finish(true)?;
        Ok(Some(Written {
            digest: marketdb_output::hex(&h.finalize()),
            rows: n,
            bytes: pending.bytes(),
            pending,
        }))
    });
    let mut rows = PartitionRows::open(db, p, symbols)?;
    let mut read = Ok(());
    loop {
        match rows.next(db).await {
            Ok(Some(batch)) => {
                if tx.send(batch).await.is_err() {
                    break; // the encoder stopped: its own error is reported
                }
            }
            Ok(None) => break,
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let encoded = match encoder.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Stopped {
            what: format!("partition {}", p.key),
        }),
    };
    // A failed read leaves a partial file: dropping it removes its temporary name.
    read?;
    encoded
}

/// Removes a partition's file (through the gate: never the database, a SQLite file or a
/// special file) and its folder (and the kind's interval folder) when empty.
fn remove_partition(gate: &OutputGate, root: &Path, p: &Partition) -> Result<()> {
    let file = root.join(p.file());
    gate.remove(&file)?;
    let mut dir = file.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == root || std::fs::remove_dir(&d).is_err() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}

/// Checks a dataset output folder: new, empty, a previous dataset (it holds
/// `_marketdb/state.json`), or one whose first export was interrupted before its state
/// was written (it holds only the dataset's own folders and temporary files); never the
/// database or a file. Returns the folder (a symlink's final target).
pub(crate) fn resolve_folder(gate: &OutputGate, out: &Path) -> Result<PathBuf> {
    let checked = gate.check_folder(out, "a dataset export")?;
    let path = checked.path;
    if !checked.exists || path.join(STATE_PATH).is_file() {
        return Ok(path);
    }
    let own = |name: &str, is_dir: bool| {
        if is_dir {
            name == "_marketdb" || DatasetKind::ALL.iter().any(|k| k.dir() == name)
        } else {
            marketdb_output::temp_owner(name).is_some()
        }
    };
    let mut others = Vec::new();
    let entries = std::fs::read_dir(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !own(&name, is_dir) && others.len() < 3 {
            others.push(name);
        }
    }
    if others.is_empty() {
        return Ok(path);
    }
    Err(Error::request(
        "output",
        out.display(),
        format!(
            "holds files that are not a marketdb dataset ({}); give a new or empty folder",
            others.join(", ")
        ),
    ))
}
