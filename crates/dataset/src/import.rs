//! Replication (`import dataset`): a published dataset into a database, partition by
//! partition, each in one transaction. A partition replaces exactly what it covers (its
//! table, interval, period and covered symbols; `marketdb_store`'s imports) and nothing
//! else: other symbols, intervals, periods and the node's own data are never deleted.
//!
//! - **Unchanged** means the database still holds what the partition brings: the digest of
//!   its rows of the covered symbols equals the state's. Anything else is imported again,
//!   whoever changed it (another source, a local write).
//! - **Checked**: only regular files are read (a FIFO is refused without blocking); a file's
//!   schema must be its kind's, every row must lie inside its partition (symbol covered,
//!   time in the period, the partition's interval), and all rows must hash to the state's
//!   digest, or nothing of the partition is stored.
//! - **One bad partition never stops the others**: it is skipped and named with its reason
//!   in the report ([`ImportReport::failed`]); the caller exits 1.
//! - **Removed**: a partition an earlier import of this source brought that the state no
//!   longer lists has its rows (of the symbols it covered) deleted.
//! - **Several sources**, each tracked on its own; where two cover the same rows the later
//!   import wins, and the report names the other source ([`ImportReport::overlaps`]).
//! - **Stopped** (a signal, a dropped future): the partition in progress rolls back within a
//!   batch of rows, so nothing is half-imported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use marketdb_model::{
    Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType, Records, TimeRange,
};
use marketdb_output::{OutputGate, ScratchDir};
use marketdb_store::{AsyncMarketDB, ImportCounts, ImportTable, PartitionImport};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::layout::{DatasetKind, Partition, STATE_PATH};
use crate::publish::off_runtime;
use crate::remote::{DatasetLocation, Remote};
use crate::rows::{digest, hash_rows};
use crate::state::{DatasetState, PartitionState};
use crate::{Error, Result};

/// Rows per batch read from a partition file.
const READ_ROWS: usize = 16_384;

/// Decoded batches queued between a partition's reader and the writer.
const DECODED_BATCHES: usize = 4;

/// A partition that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedPartition {
    pub partition: String,
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The dataset, as recorded in the database.
    pub source: String,
    /// Partitions imported.
    pub imported: Vec<String>,
    /// Partitions whose rows were removed (the dataset no longer has them).
    pub removed: Vec<String>,
    /// Partitions the database already held as the dataset has them.
    pub unchanged: u64,
    /// Rows the imported partitions brought.
    pub rows: u64,
    /// Rows inserted, replaced and deleted, per table (`klines`, `funding_rate`...).
    pub counts: BTreeMap<String, ImportCounts>,
    /// Partitions skipped, with the reason: the run fails (exit 1), the others are imported.
    pub failed: Vec<FailedPartition>,
    /// Imported partitions that another source had brought too: this import won.
    pub overlaps: Vec<String>,
}

/// Imports the dataset at `src` (a local folder) into `db`.
pub async fn import_dataset(db: &AsyncMarketDB, src: &Path) -> Result<ImportReport> {
    import_dataset_from(db, &DatasetLocation::Local(src.to_path_buf())).await
}

/// Sets the flag when dropped: a dropped import (a signal) stops its partition's rows.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Where the partition files are read from.
enum Source<'a> {
    Local(PathBuf),
    Store {
        remote: &'a Remote,
        scratch: ScratchDir,
    },
}

/// Imports the dataset at `location` (a folder or an object-store prefix) into `db`.
pub async fn import_dataset_from(
    db: &AsyncMarketDB,
    location: &DatasetLocation,
) -> Result<ImportReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(Arc::clone(&stop));
    let (files, source, state) = match location {
        DatasetLocation::Local(src) => {
            let root = std::fs::canonicalize(src).map_err(|e| Error::Read {
                path: src.to_path_buf(),
                source: e,
            })?;
            let r = root.clone();
            let Some(state) = off_runtime(move || DatasetState::load(&r)).await? else {
                return Err(Error::invalid(
                    src,
                    format!("no {STATE_PATH}: not a marketdb dataset"),
                ));
            };
            let source = root.display().to_string();
            (Source::Local(root), source, state)
        }
        DatasetLocation::Store(remote) => {
            let Some(state) = remote.state().await? else {
                return Err(Error::invalid(
                    &remote.url,
                    format!("no {STATE_PATH}: not a marketdb dataset"),
                ));
            };
            let scratch = ScratchDir::create_in(&std::env::temp_dir(), "marketdb-import-")?;
            (Source::Store { remote, scratch }, remote.url.clone(), state)
        }
    };
    let done = db
        .imported_partitions(&source)
        .await
        .map_err(|e| Error::read("the replication record", e))?;
    let mut report = ImportReport {
        source: source.clone(),
        ..ImportReport::default()
    };
    // Partitions in key order, each parsed once; a key this version cannot read fails alone.
    let mut list: Vec<(Partition, &PartitionState)> = Vec::new();
    for (key, ps) in &state.partitions {
        match Partition::parse(key) {
            Some(p) => list.push((p, ps)),
            None => report.failed.push(FailedPartition {
                partition: key.clone(),
                reason: "not a partition key of this dataset version".to_owned(),
            }),
        }
    }
    // The next partition is prepared (compared with the database, its file opened and its
    // first batches decoded) while the writer stores the current one: the writer never
    // waits for a partition's start, only the reading thread does.
    let prepare_at = |i: usize| {
        let item = list.get(i);
        let (files, source, done, stop) = (&files, &source, &done, &stop);
        async move {
            match item {
                Some((p, ps)) => Some(prepare(db, files, source, p, ps, done, stop).await),
                None => None,
            }
        }
    };
    let mut next = prepare_at(0).await;
    for (i, (p, _)) in list.iter().enumerate() {
        let Some(prepared) = next.take() else {
            break;
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (outcome, following) = tokio::join!(
            async {
                match prepared {
                    Ok(Prepared::Unchanged) => Ok(Outcome::Unchanged),
                    Ok(Prepared::Ready(ready)) => store(db, &files, ready).await,
                    Err(e) => Err(e),
                }
            },
            prepare_at(i + 1)
        );
        next = following;
        match outcome {
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Ok(Outcome::Imported { counts, overlaps }) => {
                report.imported.push(p.key.clone());
                report.rows += counts.inserted + counts.replaced;
                *report.counts.entry(p.kind.dir().to_owned()).or_default() += counts;
                for other in overlaps {
                    report.overlaps.push(format!(
                        "{}: also brought by {other}; this import won",
                        p.key
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(partition = %p.key, error = %e, "partition skipped");
                report.failed.push(FailedPartition {
                    partition: p.key.clone(),
                    reason: error_chain(&e),
                });
            }
        }
    }
    // A stop leaves the prepared partition unstored: dropping it ends its reading thread.
    drop(next);
    for (key, brought) in &done {
        if state.partitions.contains_key(key) || stop.load(Ordering::SeqCst) {
            continue;
        }
        let Some(p) = Partition::parse(key) else {
            continue;
        };
        let part = import_of(&source, &p, brought.digest.clone(), &brought.symbols)?;
        match db.remove_imported_partition(part).await {
            Ok(counts) => {
                *report.counts.entry(p.kind.dir().to_owned()).or_default() += counts;
                report.removed.push(key.clone());
            }
            Err(e) => report.failed.push(FailedPartition {
                partition: key.clone(),
                reason: format!("cannot remove its rows: {}", error_chain(&e)),
            }),
        }
    }
    if stop.load(Ordering::SeqCst) {
        return Err(Error::Stopped {
            what: format!("the import of {source}"),
        });
    }
    tracing::info!(
        imported = report.imported.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        failed = report.failed.len(),
        "dataset import done"
    );
    Ok(report)
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

enum Outcome {
    Unchanged,
    Imported {
        counts: ImportCounts,
        /// Other sources whose rows of this partition were replaced.
        overlaps: Vec<String>,
    },
}

/// A partition ready to be stored: its file being read and decoded on its own thread.
struct Ready {
    part: PartitionImport,
    path: PathBuf,
    /// Decoded batches, in file order; the queue holds a few, so memory does not follow
    /// the file.
    batches: std::sync::mpsc::Receiver<Result<Records>>,
    reading: tokio::task::JoinHandle<()>,
    overlaps: Vec<String>,
    stop: Arc<AtomicBool>,
}

enum Prepared {
    /// The database holds what the partition brings.
    Unchanged,
    Ready(Ready),
}

/// Compares a partition with what the database holds and, when it differs, opens its file
/// and starts reading it.
async fn prepare(
    db: &AsyncMarketDB,
    files: &Source<'_>,
    source: &str,
    p: &Partition,
    ps: &PartitionState,
    done: &std::collections::HashMap<String, marketdb_store::ImportedPartition>,
    stop: &Arc<AtomicBool>,
) -> Result<Prepared> {
    let part = import_of(source, p, ps.digest.clone(), &ps.symbols)?;
    // What the database holds of the partition's scope now (partitions never share a
    // scope, so storing the one before does not change it).
    let (held, _) = digest(db, p, &ps.symbols).await?;
    if held == ps.digest {
        let recorded = done
            .get(&p.key)
            .is_some_and(|d| d.digest == ps.digest && d.symbols == ps.symbols);
        if !recorded {
            db.record_imported_partition(part, ps.rows)
                .await
                .map_err(|e| Error::read("the replication record", e))?;
        }
        return Ok(Prepared::Unchanged);
    }
    let path = match files {
        Source::Local(root) => root.join(p.file()),
        Source::Store { remote, scratch } => {
            let bytes = remote.get(&p.file()).await?.ok_or_else(|| {
                Error::invalid(
                    format!("{}/{}", remote.url, p.file()),
                    "listed in the state but missing",
                )
            })?;
            let (path, gate) = (
                scratch.path().join(p.file()),
                OutputGate::protecting(db.path()),
            );
            let to = path.clone();
            off_runtime(move || {
                let mut f = gate.create(&to)?;
                f.write_all(&bytes)?;
                f.commit(false)?;
                Ok(())
            })
            .await?;
            path
        }
    };
    let (kind, freq) = (p.kind, p.freq);
    let open_path = path.clone();
    let reader = off_runtime(move || open(&open_path, kind)).await?;
    let rows = Rows {
        reader,
        path: path.clone(),
        kind,
        freq,
        hash: Some(Sha256::new()),
        digest: ps.digest.clone(),
        stop: Arc::clone(stop),
    };
    let overlaps = db
        .partition_sources(&p.key)
        .await
        .map_err(|e| Error::read("the replication record", e))?
        .into_iter()
        .filter(|(other, symbols)| {
            other != source && symbols.iter().any(|s| ps.symbols.contains(s))
        })
        .map(|(other, _)| other)
        .collect();
    // The file is read, hashed and decoded on its own blocking thread while the writer
    // stores the batches before it: the two overlap instead of taking turns on the
    // writer's thread.
    let (tx, batches) = std::sync::mpsc::sync_channel::<Result<Records>>(DECODED_BATCHES);
    let reading = tokio::task::spawn_blocking(move || {
        for item in rows {
            // The writer gone (it failed or finished): nothing more to read.
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    Ok(Prepared::Ready(Ready {
        part,
        path,
        batches,
        reading,
        overlaps,
        stop: Arc::clone(stop),
    }))
}

/// Stores a prepared partition in one transaction.
async fn store(db: &AsyncMarketDB, files: &Source<'_>, ready: Ready) -> Result<Outcome> {
    let Ready {
        part,
        path,
        batches,
        reading,
        overlaps,
        stop,
    } = ready;
    // A stop is seen by the writer too, before the batches already queued.
    let stopped_path = path.clone();
    let mut stopped = false;
    let queued = std::iter::from_fn(move || {
        if stopped {
            return None;
        }
        if stop.load(Ordering::SeqCst) {
            stopped = true;
            return Some(Err(Error::Stopped {
                what: format!("the import of {}", stopped_path.display()),
            }));
        }
        batches.recv().ok()
    });
    let counts = db.import_partition(part, queued).await;
    // The reader ends once the writer dropped its end of the queue.
    let _ = reading.await;
    let counts = counts.map_err(|e| Error::StoreWrite {
        what: format!("partition {}", path.display()),
        source: Box::new(e),
    })?;
    if let Source::Store { .. } = files {
        let _ = std::fs::remove_file(&path);
    }
    Ok(Outcome::Imported { counts, overlaps })
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

/// Opens a partition file (a regular file only: never blocks on a FIFO) and checks that
/// its schema is the kind's.
fn open(path: &Path, kind: DatasetKind) -> Result<ParquetRecordBatchReader> {
    let file = marketdb_output::open_regular(path)?;
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
        return Err(Error::invalid(
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

/// A partition file's rows as [`Records`], checked against the state's digest at the end;
/// stops (an error, so the partition rolls back) when the import is stopped.
struct Rows {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    kind: DatasetKind,
    freq: Option<Freq>,
    hash: Option<Sha256>,
    digest: String,
    stop: Arc<AtomicBool>,
}

impl Iterator for Rows {
    type Item = Result<Records>;

    fn next(&mut self) -> Option<Result<Records>> {
        if self.stop.load(Ordering::SeqCst) {
            self.hash = None;
            return Some(Err(Error::Stopped {
                what: format!("the import of {}", self.path.display()),
            }));
        }
        match self.reader.next() {
            Some(Ok(batch)) => {
                if let Some(h) = &mut self.hash {
                    hash_rows(h, &batch);
                }
                Some(records(&batch, self.kind, self.freq, &self.path))
            }
            Some(Err(e)) => {
                self.hash = None;
                Some(Err(Error::invalid(
                    &self.path,
                    format!("unreadable rows: {e}"),
                )))
            }
            None => {
                let h = self.hash.take()?;
                let got = marketdb_output::hex(&h.finalize());
                (got != self.digest).then(|| {
                    Err(Error::invalid(
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
    let bad = |what: String| Error::invalid(path, what);
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
