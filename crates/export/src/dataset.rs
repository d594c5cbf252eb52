//! The Hive-partitioned Parquet dataset: one table per kind, one file per partition,
//! published incrementally and atomically.
//!
//! Layout under the output folder (schema version [`DATASET_VERSION`], documented in
//! `docs/formats.md`):
//! - `klines/freq={freq}/date={YYYY-MM-DD}/part-0.parquet`
//! - `funding_rate/month={YYYY-MM}/part-0.parquet`
//! - `open_interest/date={YYYY-MM-DD}/part-0.parquet`
//! - `long_short_ratio/date={YYYY-MM-DD}/part-0.parquet`
//! - `_marketdb/state.json`: per partition, a SHA-256 of its rows, its row count and size.
//!
//! Rows are sorted by symbol then time; row groups end at a symbol boundary once they hold
//! [`GROUP_MIN_ROWS`] rows (and never exceed [`GROUP_MAX_ROWS`]), so the min/max statistics
//! of `symbol` let engines skip groups. A partition is always a whole UTC day (a month for
//! funding): a range is widened to whole periods, so a partial run never publishes part of
//! a day.
//!
//! Incremental: a published partition's rows are hashed first (a read, no write); one
//! whose digest matches the state and whose file exists is left alone (same bytes, same
//! mtime); a changed one, or one never published, is written (hashing as it goes) under a
//! hidden temporary name and renamed; one whose rows are gone is removed. The state is saved every [`STATE_EVERY`] partitions and at
//! the end, itself by temporary name and rename. A killed run leaves every partition file
//! whole (old or new) and a state that at worst names old digests, so the next run
//! rewrites what differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use marketdb_model::time::{DAY_MS, civil_from_days, date_string, days_from_civil};
use marketdb_model::{Feature, Freq, TimeRange};
use marketdb_store::{AsyncMarketDB, MetricTable, ScanChunk};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use marketdb_output::OutputGate;

use crate::atomic::{AtomicFile, hex, write_atomic};
use crate::remote::{DatasetLocation, Target};
use crate::{Error, ParquetCompression, Result};

/// The version of the dataset layout and schema.
pub const DATASET_VERSION: u32 = 1;
/// A row group ends at the next symbol boundary once it holds this many rows.
pub const GROUP_MIN_ROWS: usize = 8192;
/// Most rows in one row group.
pub const GROUP_MAX_ROWS: usize = 65_536;
/// The state is saved after this many written or removed partitions.
const STATE_EVERY: usize = 64;
/// Rows per store read of a klines partition.
const READ_ROWS: usize = 65_536;
/// The state file, relative to the dataset root.
pub const STATE_PATH: &str = "_marketdb/state.json";

/// The kline columns of the dataset (named by their stored, long names).
const KLINE_FEATURES: [Feature; 11] = Feature::KLINE;

/// A table of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Klines,
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

impl DatasetKind {
    /// Every kind, in layout order.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Klines,
        DatasetKind::FundingRate,
        DatasetKind::OpenInterest,
        DatasetKind::LongShortRatio,
    ];

    /// The table's folder name.
    pub fn dir(self) -> &'static str {
        match self {
            DatasetKind::Klines => "klines",
            DatasetKind::FundingRate => "funding_rate",
            DatasetKind::OpenInterest => "open_interest",
            DatasetKind::LongShortRatio => "long_short_ratio",
        }
    }

    fn metric(self) -> Option<MetricTable> {
        match self {
            DatasetKind::Klines => None,
            DatasetKind::FundingRate => Some(MetricTable::FundingRate),
            DatasetKind::OpenInterest => Some(MetricTable::OpenInterest),
            DatasetKind::LongShortRatio => Some(MetricTable::LongShortRatio),
        }
    }

    /// Whether a partition is a month (funding) rather than a day.
    fn monthly(self) -> bool {
        self == DatasetKind::FundingRate
    }

    /// The Arrow schema of the kind's files (partition columns are in the path only).
    /// `symbol` is a plain `Utf8` column (Parquet still dictionary-encodes its pages):
    /// readers such as pyarrow prune row groups by the statistics of a string column, not
    /// of a dictionary one.
    pub fn schema(self) -> SchemaRef {
        let base = match self.metric() {
            Some(m) => m.schema(),
            None => kline_schema(),
        };
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[0] = Field::new("symbol", DataType::Utf8, false);
        Arc::new(Schema::new(fields))
    }
}

/// `symbol`, `timestamp`, then the kline columns by their stored names.
fn kline_schema() -> SchemaRef {
    let base = marketdb_store::arrow::kline_schema(&KLINE_FEATURES);
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            0 | 1 => f.as_ref().clone(),
            _ => f.as_ref().clone().with_name(KLINE_FEATURES[i - 2].long()),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// What to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRequest {
    /// Tables to publish (all by default).
    pub kinds: Vec<DatasetKind>,
    /// Kline intervals (every stored one when empty).
    pub freqs: Vec<Freq>,
    /// Symbols (all when empty); the dataset then holds only these.
    pub symbols: Vec<String>,
    /// Range, widened to whole partitions (everything stored when `None`).
    pub range: Option<TimeRange>,
    pub compression: ParquetCompression,
    /// List what would change, write nothing.
    pub dry_run: bool,
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
    /// Rows in the written partitions.
    pub rows: u64,
    /// Bytes of the written partition files.
    pub bytes: u64,
    pub dry_run: bool,
}

/// One partition's record in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// SHA-256 of the partition's rows (not of the file), lowercase hex.
    pub digest: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetState {
    pub version: u32,
    /// Symbols the dataset was restricted to (empty: all).
    #[serde(default)]
    pub symbols: Vec<String>,
    pub partitions: BTreeMap<String, PartitionState>,
}

impl Default for DatasetState {
    fn default() -> DatasetState {
        DatasetState {
            version: DATASET_VERSION,
            symbols: Vec::new(),
            partitions: BTreeMap::new(),
        }
    }
}

impl DatasetState {
    /// Reads the state of the dataset at `root` (an empty state when there is none).
    pub fn load(root: &Path) -> Result<DatasetState> {
        let path = root.join(STATE_PATH);
        // Never blocks on a FIFO planted at the state's path.
        match marketdb_output::read_regular(&path, 1 << 30)? {
            Some(bytes) => DatasetState::from_bytes(&bytes, &path),
            None => Ok(DatasetState::default()),
        }
    }

    /// Decodes a state file read from `path` (named in errors).
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<DatasetState> {
        let state: DatasetState =
            serde_json::from_slice(bytes).map_err(|source| Error::JsonRead {
                path: path.to_path_buf(),
                source,
            })?;
        if state.version != DATASET_VERSION {
            return Err(Error::InvalidDataset {
                path: path.to_path_buf(),
                reason: format!(
                    "dataset version {} is not the version {DATASET_VERSION} this build reads",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    pub(crate) fn save(&self, gate: &OutputGate, root: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            path: root.join(STATE_PATH),
            source,
        })?;
        write_atomic(gate, root, STATE_PATH, &bytes, true)?;
        Ok(())
    }
}

/// A partition: its table, interval (klines), period and relative folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Partition {
    pub kind: DatasetKind,
    pub freq: Option<Freq>,
    pub start: i64,
    pub end: i64,
    /// `klines/freq=1m/date=2024-01-01`.
    pub key: String,
}

fn month_start(ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS
}

fn next_month(start: i64) -> i64 {
    let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY_MS
}

impl Partition {
    fn new(kind: DatasetKind, freq: Option<Freq>, start: i64) -> Partition {
        let (end, key) = if kind.monthly() {
            let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
            (
                next_month(start),
                format!("{}/month={y:04}-{m:02}", kind.dir()),
            )
        } else {
            let date = date_string(start);
            match freq {
                Some(f) => (
                    start + DAY_MS,
                    format!("{}/freq={f}/date={date}", kind.dir()),
                ),
                None => (start + DAY_MS, format!("{}/date={date}", kind.dir())),
            }
        };
        Partition {
            kind,
            freq,
            start,
            end,
            key,
        }
    }

    /// Reads a key back (`None` for anything that is not one).
    pub(crate) fn parse(key: &str) -> Option<Partition> {
        let mut parts = key.split('/');
        let dir = parts.next()?;
        let kind = DatasetKind::ALL.into_iter().find(|k| k.dir() == dir)?;
        let (freq, period) = if kind == DatasetKind::Klines {
            let freq = parts.next()?.strip_prefix("freq=")?.parse::<Freq>().ok()?;
            (Some(freq), parts.next()?)
        } else {
            (None, parts.next()?)
        };
        if parts.next().is_some() {
            return None;
        }
        let start = if kind.monthly() {
            let text = period.strip_prefix("month=")?;
            let (y, m) = text.split_once('-')?;
            let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
            marketdb_model::time::parse_ymd(y, m, 1)?
        } else {
            let text = period.strip_prefix("date=")?;
            let mut it = text.split('-');
            let (y, m, d) = (it.next()?, it.next()?, it.next()?);
            marketdb_model::time::parse_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?
        };
        let p = Partition::new(kind, freq, start);
        (p.key == key).then_some(p)
    }

    /// The partition's file, relative to the root.
    pub(crate) fn file(&self) -> String {
        format!("{}/part-0.parquet", self.key)
    }
}

/// The partitions of `kind` (and `freq`) that cover `[lo, hi]` (inclusive times).
fn covering(kind: DatasetKind, freq: Option<Freq>, lo: i64, hi: i64) -> Vec<Partition> {
    let mut out = Vec::new();
    let mut start = if kind.monthly() {
        month_start(lo)
    } else {
        lo.div_euclid(DAY_MS) * DAY_MS
    };
    while start <= hi {
        let p = Partition::new(kind, freq, start);
        start = p.end;
        out.push(p);
    }
    out
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
        .map_err(|e| Error::store("the data summary", e))?;
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

/// Feeds every row of `batch` to `h`, row by row, so the digest does not depend on how
/// the rows were split into batches.
pub(crate) fn hash_rows(h: &mut Sha256, batch: &RecordBatch) {
    let cols = batch.columns();
    for row in 0..batch.num_rows() {
        for col in cols {
            if col.is_null(row) {
                h.update([0u8]);
                continue;
            }
            h.update([1u8]);
            match col.data_type() {
                DataType::Dictionary(..) => {
                    let d = col.as_dictionary::<Int32Type>();
                    let values = d.values().as_string::<i32>();
                    let s = values.value(d.keys().value(row) as usize);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                DataType::Utf8 => {
                    let s = col.as_string::<i32>().value(row);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                DataType::Timestamp(..) => h.update(
                    col.as_primitive::<TimestampMillisecondType>()
                        .value(row)
                        .to_le_bytes(),
                ),
                DataType::Int64 => {
                    h.update(col.as_primitive::<Int64Type>().value(row).to_le_bytes())
                }
                DataType::Float64 => h.update(
                    col.as_primitive::<Float64Type>()
                        .value(row)
                        .to_bits()
                        .to_le_bytes(),
                ),
                // The dataset schemas hold no other type.
                _ => {}
            }
        }
    }
}

/// `batch` (from the store, `symbol` a dictionary) in the dataset schema `schema`.
fn to_dataset(batch: &RecordBatch, schema: &SchemaRef, key: &str) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    if let Some(d) = columns[0].as_dictionary_opt::<Int32Type>() {
        let values = d.values().as_string::<i32>();
        let plain: arrow_array::StringArray = d
            .keys()
            .iter()
            .map(|k| k.map(|k| values.value(k as usize)))
            .collect();
        columns[0] = Arc::new(plain);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|source| Error::Arrow {
        path: PathBuf::from(key),
        source,
    })
}

/// Streams a partition's rows as batches of its schema, in (symbol, time) order.
pub(crate) struct PartitionRows {
    inner: Rows,
    schema: SchemaRef,
}

enum Rows {
    Klines(marketdb_store::FrameStream),
    Metric,
}

impl PartitionRows {
    fn open(db: &AsyncMarketDB, p: &Partition, symbols: &[String]) -> Result<PartitionRows> {
        let range = TimeRange::new(p.start, p.end)?;
        let inner = match (p.kind.metric(), p.freq) {
            (None, Some(freq)) => Rows::Klines(db.scan(
                range,
                freq,
                symbols,
                &KLINE_FEATURES,
                ScanChunk::Rows(READ_ROWS),
            )),
            _ => Rows::Metric,
        };
        Ok(PartitionRows {
            inner,
            schema: p.kind.schema(),
        })
    }

    async fn next(
        &mut self,
        db: &AsyncMarketDB,
        p: &Partition,
        symbols: &[String],
        first: &mut bool,
    ) -> Result<Option<RecordBatch>> {
        match &mut self.inner {
            Rows::Klines(stream) => match stream.next().await {
                None => Ok(None),
                Some(Err(e)) => Err(Error::store(format!("partition {}", p.key), e)),
                Some(Ok(frame)) => {
                    let batch = frame
                        .into_record_batch()
                        .map_err(|e| Error::store(format!("partition {}", p.key), e))?;
                    Ok(Some(to_dataset(&batch, &self.schema, &p.key)?))
                }
            },
            Rows::Metric if !*first => Ok(None),
            Rows::Metric => {
                *first = false;
                let table = p
                    .kind
                    .metric()
                    .ok_or_else(|| Error::request("partition", &p.key, "has no metric table"))?;
                let batch = db
                    .read_metric_batch(table, TimeRange::new(p.start, p.end)?, symbols)
                    .await
                    .map_err(|e| Error::store(format!("partition {}", p.key), e))?;
                if batch.num_rows() == 0 {
                    return Ok(None);
                }
                Ok(Some(to_dataset(&batch, &self.schema, &p.key)?))
            }
        }
    }
}

/// The digest and row count of a partition's rows as stored now.
async fn digest(db: &AsyncMarketDB, p: &Partition, symbols: &[String]) -> Result<(String, u64)> {
    let mut rows = PartitionRows::open(db, p, symbols)?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut first = true;
    while let Some(batch) = rows.next(db, p, symbols, &mut first).await? {
        n += batch.num_rows() as u64;
        hash_rows(&mut h, &batch);
    }
    Ok((hex(&h.finalize()), n))
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
    WriterProperties::builder()
        .set_compression(crate::parquet::codec(compression))
        .set_max_row_group_row_count(Some(GROUP_MAX_ROWS))
        .set_key_value_metadata(Some(meta))
        .build()
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

/// Writes a partition's file under a temporary name and renames it; returns the digest
/// of the rows written, their count and the file size.
async fn write_partition(
    db: &AsyncMarketDB,
    gate: &OutputGate,
    root: &Path,
    p: &Partition,
    symbols: &[String],
    compression: ParquetCompression,
) -> Result<(String, u64, u64)> {
    let path = root.join(p.file());
    let file = AtomicFile::create_unhashed(gate, &path)?;
    let parquet_err = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let mut writer = ArrowWriter::try_new(
        file,
        p.kind.schema(),
        Some(writer_properties(p, compression)),
    )
    .map_err(parquet_err)?;
    let mut rows = PartitionRows::open(db, p, symbols)?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut first = true;
    while let Some(batch) = rows.next(db, p, symbols, &mut first).await? {
        n += batch.num_rows() as u64;
        hash_rows(&mut h, &batch);
        let mut from = 0;
        for end in symbol_breaks(&batch) {
            writer
                .write(&batch.slice(from, end - from))
                .map_err(parquet_err)?;
            from = end;
            if writer.in_progress_rows() >= GROUP_MIN_ROWS {
                writer.flush().map_err(parquet_err)?;
            }
        }
    }
    let file = writer.into_inner().map_err(parquet_err)?;
    let (_, bytes) = file.commit(true)?;
    Ok((hex(&h.finalize()), n, bytes))
}

/// Publishes the request's partitions under `root` (a folder path), incrementally.
pub async fn export_dataset(
    db: &AsyncMarketDB,
    root: &Path,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    export_dataset_to(db, &DatasetLocation::Local(root.to_path_buf()), req).await
}

/// Publishes the request's partitions at `location` (a folder or an object-store
/// prefix), incrementally.
pub async fn export_dataset_to(
    db: &AsyncMarketDB,
    location: &DatasetLocation,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    let gate = OutputGate::protecting(db.path());
    match location {
        DatasetLocation::Local(root) => {
            let resolved = crate::target::resolve_dataset_folder(&gate, root)?;
            if !req.dry_run {
                gate.create_dir_all(&resolved)?;
                crate::target::sweep_stale_temps(&resolved, ".", true);
            }
            export_into(
                db,
                &gate,
                &Target::Local(&resolved),
                &resolved.display().to_string(),
                req,
            )
            .await
        }
        DatasetLocation::Store(remote) => {
            let staging = tempfile::Builder::new()
                .prefix("marketdb-dataset-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let target = Target::Store {
                remote,
                staging: staging.path(),
            };
            export_into(db, &gate, &target, &remote.url, req).await
        }
    }
}

async fn export_into(
    db: &AsyncMarketDB,
    gate: &OutputGate,
    target: &Target<'_>,
    label: &str,
    req: &DatasetRequest,
) -> Result<DatasetReport> {
    let mut state = target.load_state().await?;
    let mut symbols = req.symbols.clone();
    symbols.sort_unstable();
    symbols.dedup();
    let mut report = DatasetReport {
        root: PathBuf::from(label),
        dry_run: req.dry_run,
        ..DatasetReport::default()
    };
    // The state goes first, so a run killed before its first save still leaves a folder
    // the next run recognises as a dataset.
    if !req.dry_run && !target.state_exists().await? {
        target.save_state(gate, &state).await?;
    }
    // Another selection of symbols changes every partition's content.
    let mut dirty = state.symbols != symbols;
    state.symbols.clone_from(&symbols);
    let mut since_save = 0;
    for p in partitions(db, req, &state).await? {
        let on_disk = target.exists(&p).await?;
        let published = on_disk && state.partitions.contains_key(&p.key);
        if !published && !req.dry_run {
            // Not published (or its file is gone): written in one pass, no digest first.
            let (digest, rows, bytes) =
                write_partition(db, gate, target.staging(), &p, &symbols, req.compression).await?;
            if rows == 0 {
                target.remove(gate, &p).await?;
                if state.partitions.remove(&p.key).is_some() || on_disk {
                    report.removed.push(p.key.clone());
                    since_save += 1;
                    dirty = true;
                }
            } else {
                target.publish(&p).await?;
                published_now(&mut state, &mut report, &p, digest, rows, bytes);
                since_save += 1;
                dirty = true;
            }
        } else {
            let (digest_now, rows) = digest(db, &p, &symbols).await?;
            if rows == 0 {
                if state.partitions.contains_key(&p.key) || on_disk {
                    report.removed.push(p.key.clone());
                    if !req.dry_run {
                        target.remove(gate, &p).await?;
                        state.partitions.remove(&p.key);
                        since_save += 1;
                        dirty = true;
                    }
                }
            } else if published
                && state
                    .partitions
                    .get(&p.key)
                    .is_some_and(|s| s.digest == digest_now)
            {
                report.unchanged += 1;
            } else if req.dry_run {
                report.written.push(p.key.clone());
                report.rows += rows;
            } else {
                let (digest, rows, bytes) =
                    write_partition(db, gate, target.staging(), &p, &symbols, req.compression)
                        .await?;
                target.publish(&p).await?;
                published_now(&mut state, &mut report, &p, digest, rows, bytes);
                since_save += 1;
                dirty = true;
            }
        }
        if since_save >= STATE_EVERY {
            target.save_state(gate, &state).await?;
            since_save = 0;
        }
    }
    // A run that changed nothing leaves the state file alone too.
    if !req.dry_run && dirty {
        state.version = DATASET_VERSION;
        target.save_state(gate, &state).await?;
    }
    tracing::info!(
        written = report.written.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        "dataset export done"
    );
    Ok(report)
}

/// Records a partition just published in the state and the report.
fn published_now(
    state: &mut DatasetState,
    report: &mut DatasetReport,
    p: &Partition,
    digest: String,
    rows: u64,
    bytes: u64,
) {
    tracing::debug!(partition = %p.key, rows, bytes, "partition published");
    state.partitions.insert(
        p.key.clone(),
        PartitionState {
            digest,
            rows,
            bytes,
        },
    );
    report.written.push(p.key.clone());
    report.rows += rows;
    report.bytes += bytes;
}

/// Removes a partition's file (through the gate: never the database, a SQLite file or a
/// special file) and its folder (and the kind's interval folder) when empty.
pub(crate) fn remove_partition(gate: &OutputGate, root: &Path, p: &Partition) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_round_trip_and_refuse_strangers() {
        let jan2 = 1_704_153_600_000;
        let p = Partition::new(DatasetKind::Klines, Some(Freq::M1), jan2);
        assert_eq!(p.key, "klines/freq=1m/date=2024-01-02");
        assert_eq!(p.end - p.start, DAY_MS);
        assert_eq!(Partition::parse(&p.key), Some(p.clone()));
        let f = Partition::new(DatasetKind::FundingRate, None, month_start(jan2));
        assert_eq!(f.key, "funding_rate/month=2024-01");
        assert_eq!(f.end - f.start, 31 * DAY_MS);
        assert_eq!(Partition::parse(&f.key), Some(f));
        for bad in [
            "klines/date=2024-01-02",
            "klines/freq=7m/date=2024-01-02",
            "open_interest/date=2024-02-30",
            "funding_rate/month=2024-13",
            "funding_rate/month=2024-1",
            "../etc/date=2024-01-01",
            "open_interest/date=2024-01-01/x",
        ] {
            assert_eq!(Partition::parse(bad), None, "{bad}");
        }
        let days = covering(DatasetKind::OpenInterest, None, jan2 + 5, jan2 + DAY_MS);
        assert_eq!(days.len(), 2);
        let months = covering(DatasetKind::FundingRate, None, jan2, jan2 + 40 * DAY_MS);
        assert_eq!(
            months.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["funding_rate/month=2024-01", "funding_rate/month=2024-02"]
        );
    }
}
