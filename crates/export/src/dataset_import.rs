//! `import dataset`: a published dataset back into a database, for multi-node sync (node
//! A publishes, node B imports). Partition by partition, each in one transaction: the
//! partition's rows replace those of its table, period and symbols, with the validation of
//! every write, and its digest is recorded, so an unchanged partition is skipped next time
//! and a killed import keeps whole partitions. A partition the dataset no longer lists has
//! its rows removed. Every file is checked before anything is stored: its schema must be
//! the dataset's, and its rows must hash to the digest the state gives, so a damaged or
//! foreign file stores nothing and is named in the error.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use marketdb_model::{
    Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType, Records, TimeRange,
};
use marketdb_store::{AsyncMarketDB, ImportTable, PartitionImport};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::atomic::hex;
use crate::dataset::{DatasetKind, DatasetState, Partition, STATE_PATH, hash_rows};
use crate::remote::DatasetLocation;
use crate::{Error, Result};

/// Rows per batch read from a partition file.
const READ_ROWS: usize = 65_536;
/// The digest recorded for a partition whose rows were removed.
const REMOVED: &str = "removed";

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The dataset, as recorded in the database.
    pub source: String,
    /// Partitions imported.
    pub imported: Vec<String>,
    /// Partitions removed (the dataset no longer has them).
    pub removed: Vec<String>,
    /// Partitions already imported with the same digest.
    pub unchanged: u64,
    /// Rows written.
    pub rows: u64,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidDataset {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Imports the dataset at `src` (a local folder) into `db`.
pub async fn import_dataset(db: &AsyncMarketDB, src: &Path) -> Result<ImportReport> {
    import_dataset_from(db, &DatasetLocation::Local(src.to_path_buf())).await
}

/// Imports the dataset at `location` (a folder or an object-store prefix) into `db`.
pub async fn import_dataset_from(
    db: &AsyncMarketDB,
    location: &DatasetLocation,
) -> Result<ImportReport> {
    let staging;
    let (root, source, state, remote) = match location {
        DatasetLocation::Local(src) => {
            let root = std::fs::canonicalize(src).map_err(|e| Error::Read {
                path: src.to_path_buf(),
                source: e,
            })?;
            if !root.join(STATE_PATH).is_file() {
                return Err(invalid(
                    src,
                    format!("no {STATE_PATH}: not a marketdb dataset"),
                ));
            }
            let state = DatasetState::load(&root)?;
            let source = root.display().to_string();
            (root, source, state, None)
        }
        DatasetLocation::Store(remote) => {
            let Some(state) = remote.state().await? else {
                return Err(invalid(
                    Path::new(&remote.url),
                    format!("no {STATE_PATH}: not a marketdb dataset"),
                ));
            };
            staging = tempfile::Builder::new()
                .prefix("marketdb-import-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            (
                staging.path().to_path_buf(),
                remote.url.clone(),
                state,
                Some(remote),
            )
        }
    };
    let done = db
        .imported_partitions(&source)
        .await
        .map_err(|e| Error::store("the import record", e))?;
    let mut report = ImportReport {
        source: source.clone(),
        ..ImportReport::default()
    };
    // Check every key before importing anything.
    let mut parts = Vec::with_capacity(state.partitions.len());
    for (key, ps) in &state.partitions {
        let p = Partition::parse(key)
            .ok_or_else(|| invalid(&root.join(STATE_PATH), format!("unknown partition {key:?}")))?;
        parts.push((p, ps.digest.clone()));
    }
    for (p, digest) in parts {
        if done.get(&p.key) == Some(&digest) {
            report.unchanged += 1;
            continue;
        }
        let path = root.join(p.file());
        if let Some(remote) = remote {
            let bytes = remote.get(&p.file()).await?.ok_or_else(|| {
                invalid(
                    Path::new(&format!("{}/{}", remote.url, p.file())),
                    "listed in the state but missing",
                )
            })?;
            crate::atomic::write_atomic(
                &marketdb_output::OutputGate::protecting(db.path()),
                &root,
                &p.file(),
                &bytes,
                false,
            )?;
        }
        let reader = open(&path, p.kind)?;
        let rows = Rows {
            reader,
            path: path.clone(),
            kind: p.kind,
            freq: p.freq,
            hash: Some(Sha256::new()),
            digest: digest.clone(),
        };
        let n = db
            .import_partition(import_of(&source, &p, digest, &state.symbols)?, rows)
            .await
            .map_err(|e| Error::StoreWrite {
                what: format!("partition {}", path.display()),
                source: Box::new(e),
            })?;
        if remote.is_some() {
            let _ = std::fs::remove_file(&path);
        }
        report.imported.push(p.key.clone());
        report.rows += n as u64;
    }
    for (key, digest) in &done {
        if state.partitions.contains_key(key) || digest == REMOVED {
            continue;
        }
        let Some(p) = Partition::parse(key) else {
            continue;
        };
        db.import_partition(
            import_of(&source, &p, REMOVED.to_owned(), &state.symbols)?,
            std::iter::empty::<Result<Records>>(),
        )
        .await
        .map_err(|e| Error::StoreWrite {
            what: format!("the removal of partition {key}"),
            source: Box::new(e),
        })?;
        report.removed.push(key.clone());
    }
    tracing::info!(
        imported = report.imported.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        "dataset import done"
    );
    Ok(report)
}

fn import_of(
    source: &str,
    p: &Partition,
    digest: String,
    symbols: &[String],
) -> Result<PartitionImport> {
    Ok(PartitionImport {
        source: source.to_owned(),
        partition: p.key.clone(),
        digest,
        table: match (p.kind, p.freq) {
            (DatasetKind::Klines, Some(f)) => ImportTable::Klines(f),
            (DatasetKind::FundingRate, _) => ImportTable::FundingRate,
            (DatasetKind::OpenInterest, _) => ImportTable::OpenInterest,
            (DatasetKind::LongShortRatio, _) => ImportTable::LongShortRatio,
            (DatasetKind::Klines, None) => {
                return Err(Error::request("partition", &p.key, "has no interval"));
            }
        },
        range: TimeRange::new(p.start, p.end)?,
        symbols: symbols.to_vec(),
    })
}

/// Opens a partition file and checks that its schema is the kind's.
fn open(path: &Path, kind: DatasetKind) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let parquet_err = |source| Error::ParquetRead {
        path: path.to_path_buf(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let want = kind.schema();
    let got = builder.schema();
    let same = got.fields().len() == want.fields().len()
        && got
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err(invalid(
            path,
            format!(
                "its columns are not the {} schema of this version",
                kind.dir()
            ),
        ));
    }
    builder
        .with_batch_size(READ_ROWS)
        .build()
        .map_err(parquet_err)
}

/// A partition file's rows as [`Records`], checked against the state's digest at the end.
struct Rows {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    kind: DatasetKind,
    freq: Option<Freq>,
    hash: Option<Sha256>,
    digest: String,
}

impl Iterator for Rows {
    type Item = Result<Records>;

    fn next(&mut self) -> Option<Result<Records>> {
        match self.reader.next() {
            Some(Ok(batch)) => {
                if let Some(h) = &mut self.hash {
                    hash_rows(h, &batch);
                }
                Some(records(&batch, self.kind, self.freq, &self.path))
            }
            Some(Err(e)) => Some(Err(invalid(&self.path, format!("unreadable rows: {e}")))),
            None => {
                let h = self.hash.take()?;
                let got = hex(&h.finalize());
                (got != self.digest).then(|| {
                    Err(invalid(
                        &self.path,
                        format!(
                            "its rows do not match the digest in {STATE_PATH} (the file changed \
                             after the export, or is damaged)"
                        ),
                    ))
                })
            }
        }
    }
}

/// A batch of a partition file as records.
fn records(
    batch: &RecordBatch,
    kind: DatasetKind,
    freq: Option<Freq>,
    path: &Path,
) -> Result<Records> {
    let n = batch.num_rows();
    let symbols = batch.column(0).as_string::<i32>();
    let symbol = |i: usize| symbols.value(i).to_owned();
    let ts = batch.column(1).as_primitive::<TimestampMillisecondType>();
    let f64_at = |c: usize, i: usize| {
        let a = batch.column(c).as_primitive::<Float64Type>();
        (!a.is_null(i)).then(|| a.value(i))
    };
    let text_at = |c: usize, i: usize| batch.column(c).as_string::<i32>().value(i).to_owned();
    let bad = |what: String| invalid(path, what);
    Ok(match kind {
        DatasetKind::Klines => {
            let freq = freq.ok_or_else(|| bad("a klines partition without interval".into()))?;
            let count = batch.column(8).as_primitive::<Int64Type>();
            let mut rows = Vec::with_capacity(n);
            for i in 0..n {
                let open_time = ts.value(i);
                let f = |c: usize| f64_at(c, i).unwrap_or(f64::NAN);
                rows.push(Kline {
                    symbol: symbol(i),
                    open_time,
                    open: f(2),
                    high: f(3),
                    low: f(4),
                    close: f(5),
                    volume: f(6),
                    close_time: freq.close_time(open_time),
                    quote_volume: f(7),
                    trades_count: count.value(i),
                    taker_buy_volume: f(9),
                    taker_buy_quote_volume: f(10),
                });
            }
            Records::Klines { freq, rows }
        }
        DatasetKind::FundingRate => {
            let rows = (0..n)
                .map(|i| FundingRate {
                    symbol: symbol(i),
                    funding_time: ts.value(i),
                    funding_rate: f64_at(2, i).unwrap_or(f64::NAN),
                    mark_price: f64_at(4, i),
                    index_price: f64_at(5, i),
                })
                .collect();
            Records::Funding(rows)
        }
        DatasetKind::OpenInterest => {
            let mut rows = Vec::with_capacity(n);
            for i in 0..n {
                let interval = text_at(2, i);
                rows.push(OpenInterest {
                    symbol: symbol(i),
                    time: ts.value(i),
                    interval: interval
                        .parse::<Freq>()
                        .map_err(|_| bad(format!("interval {interval:?} is not an interval")))?,
                    open_interest: f64_at(3, i).unwrap_or(f64::NAN),
                    open_interest_value: f64_at(4, i),
                });
            }
            Records::Metrics {
                open_interest: rows,
                long_short_ratio: Vec::new(),
            }
        }
        DatasetKind::LongShortRatio => {
            let mut rows = Vec::with_capacity(n);
            for i in 0..n {
                let (period, ratio) = (text_at(2, i), text_at(3, i));
                rows.push(LongShortRatio {
                    symbol: symbol(i),
                    timestamp: ts.value(i),
                    period: period
                        .parse::<Freq>()
                        .map_err(|_| bad(format!("period {period:?} is not an interval")))?,
                    ratio_type: RatioType::parse(&ratio)
                        .map_err(|_| bad(format!("ratio type {ratio:?} is unknown")))?,
                    long_short_ratio: f64_at(4, i).unwrap_or(f64::NAN),
                    long_account: f64_at(5, i),
                    short_account: f64_at(6, i),
                });
            }
            Records::Metrics {
                open_interest: Vec::new(),
                long_short_ratio: rows,
            }
        }
    })
}
