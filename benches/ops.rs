//! The operations measured through marketdb's public async API, each on a freshly opened
//! [`AsyncMarketDB`] (opening and closing are not timed): `store_data` one call per symbol,
//! `read_data` of everything, a day-chunked `scan`, the data summary, a completeness check
//! and a 1m -> 1h resample of every symbol over the whole range, the NumPy, CSV and Parquet
//! exports with default options, and an ingest of the Binance Vision files (`parse_file` on
//! a blocking thread, then `store_data`, then one checkpoint; the CLI's own ingest is
//! measured as a subprocess, see `cli.rs`).
//!
//! Every operation checks the row count it got against the workload and fails loudly on a
//! mismatch, so a fast wrong answer is never reported as a result.

use std::{path::Path, path::PathBuf, time::Instant};

use anyhow::{Context, Result, bail};
use marketdb::{
    AsyncDataExporter, AsyncMarketDB, Freq, TimeRange,
    dataset::{DatasetKind, DatasetRequest},
    export::{ExportRequest, ParquetCompression},
    ingest::{BadRows, Overrides, Parsed, parse_file},
    store::{IncompletePolicy, ScanChunk, StoreConfig},
    synth::SynthSpec,
};

use crate::{Timed, workload::bars};

/// Creates `path` with marketdb's own schema (its DDL, layout and `user_version`).
pub async fn create_schema(path: &Path) -> Result<()> {
    let db = AsyncMarketDB::open(path).await?;
    db.close().await;
    // The floors are minimal programs: without the change record's triggers, which
    // marketdb's own bulk inserts do not fire either (they mark what they write instead).
    let conn = rusqlite::Connection::open(path)?;
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'marketdb_changes_%'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for name in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    Ok(())
}

/// Checkpoints the WAL of `path` into the main file (untimed housekeeping between phases).
pub async fn checkpoint(path: &Path) -> Result<()> {
    let db = AsyncMarketDB::open(path).await?;
    db.checkpoint().await?;
    db.close().await;
    Ok(())
}

/// How the database is opened for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mmap {
    /// marketdb's defaults (`mmap_size` 256 MiB).
    Default,
    /// `mmap_size = 0`: pages are read into SQLite's cache instead of mapped.
    Off,
}

async fn open(path: &Path, mmap: Mmap) -> Result<AsyncMarketDB> {
    let mut config = StoreConfig::new(path);
    if mmap == Mmap::Off {
        config.pool.pragmas.mmap_size = 0;
    }
    Ok(AsyncMarketDB::open_with(config).await?)
}

fn expect_rows(what: &str, got: u64, want: u64) -> Result<()> {
    if got != want {
        bail!("{what}: got {got} rows, expected {want}");
    }
    Ok(())
}

/// `store_data` of the workload, one call per symbol (validation included).
pub async fn store(path: &Path, spec: &SynthSpec) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let (mut secs, mut rows) = (0.0, 0u64);
    for symbol in &spec.symbols {
        let bars = bars(spec, symbol);
        let t = Instant::now();
        rows += db.store_data(bars, Freq::M1).await? as u64;
        secs += t.elapsed().as_secs_f64();
    }
    db.close().await;
    Ok(Timed::new(rows, secs).with_detail(format!("{} calls", spec.symbols.len())))
}

/// `read_data` of the whole range, all symbols, the eleven stored columns.
pub async fn read(path: &Path, range: TimeRange, want: u64, mmap: Mmap) -> Result<Timed> {
    let db = open(path, mmap).await?;
    let t = Instant::now();
    let frame = db.read_data(range, Freq::M1, &[], &[], true).await?;
    let secs = t.elapsed().as_secs_f64();
    let (rows, symbols) = (frame.len() as u64, frame.symbols().len());
    drop(frame);
    db.close().await;
    expect_rows("read_data", rows, want)?;
    Ok(Timed::new(rows, secs).with_detail(format!("{symbols} symbols, one frame")))
}

/// `scan` of the whole range in day chunks, counting rows.
pub async fn scan_days(path: &Path, range: TimeRange, want: u64, mmap: Mmap) -> Result<Timed> {
    let db = open(path, mmap).await?;
    let t = Instant::now();
    let mut stream = db.scan(range, Freq::M1, &[], &[], ScanChunk::Day);
    let (mut rows, mut frames) = (0u64, 0usize);
    while let Some(frame) = stream.next().await {
        rows += frame?.len() as u64;
        frames += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    expect_rows("scan", rows, want)?;
    Ok(Timed::new(rows, secs).with_detail(format!("{frames} frames")))
}

/// `get_data_summary`: counts and ranges per table and interval.
pub async fn summary(path: &Path, want: u64) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let t = Instant::now();
    let s = db.get_data_summary().await?;
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    let m1 = s
        .market_data
        .iter()
        .find(|k| k.freq == Freq::M1.as_str())
        .context("the summary has no 1m klines")?;
    expect_rows("summary", m1.record_count, want)?;
    Ok(Timed::new(m1.record_count, secs).with_detail(format!("{} symbols", m1.unique_symbols)))
}

/// `check_completeness` of every symbol over the whole range.
pub async fn check(path: &Path, range: TimeRange, want: u64) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let t = Instant::now();
    let report = db.check_completeness(range, Freq::M1, &[]).await?;
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    let present: u64 = report.symbols.iter().map(|s| s.present).sum();
    let expected: u64 = report.symbols.iter().map(|s| s.expected).sum();
    expect_rows("check_completeness (present)", present, want)?;
    expect_rows("check_completeness (expected)", expected, want)?;
    Ok(Timed::new(present, secs).with_detail(format!("{} symbols", report.symbols.len())))
}

/// `resample` of every symbol from 1m to 1h over the whole range; the rows are the source
/// bars read (the throughput), the detail the hourly bars made.
pub async fn resample(path: &Path, range: TimeRange, want: u64) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let t = Instant::now();
    let r = db
        .resample(range, Freq::M1, Freq::H1, &[], IncompletePolicy::Keep)
        .await?;
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    let bars = r.frame.len() as u64;
    expect_rows("resample (hourly bars)", bars, want / 60)?;
    if r.incomplete != 0 {
        bail!(
            "resample: {} incomplete buckets in complete data",
            r.incomplete
        );
    }
    Ok(Timed::new(want, secs).with_detail(format!("{bars} hourly bars")))
}

/// Which export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Numpy {
        fsync: bool,
    },
    Csv,
    Parquet,
    /// The klines table of the partitioned dataset, with this codec.
    Dataset(ParquetCompression),
}

/// One export with default options (all symbols, default features, zstd), into `out` (a
/// folder for NumPy, a file otherwise).
pub async fn export(
    path: &Path,
    range: TimeRange,
    kind: Export,
    out: &Path,
    want: u64,
) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let request = ExportRequest::new(Vec::new(), range, Freq::M1);
    let t = Instant::now();
    let (rows, detail) = match kind {
        Export::Numpy { fsync } => {
            let r = AsyncDataExporter::new(&db)
                .with_fsync(fsync)
                .export_to_numpy(&request, out)
                .await?;
            (
                r.bars,
                format!("{} files, {:.1} MB", r.files, r.bytes as f64 / 1e6),
            )
        }
        Export::Csv => {
            let r = AsyncDataExporter::new(&db)
                .export_to_csv(&request, out)
                .await?;
            (r.rows, format!("{:.1} MB", r.bytes as f64 / 1e6))
        }
        Export::Parquet => {
            let r = AsyncDataExporter::new(&db)
                .export_to_parquet(&request, out)
                .await?;
            (
                r.rows,
                format!(
                    "{:.1} MB, {} row groups, {}",
                    r.bytes as f64 / 1e6,
                    r.row_groups,
                    r.compression
                ),
            )
        }
        Export::Dataset(compression) => {
            let request = DatasetRequest {
                kinds: vec![DatasetKind::Klines],
                freqs: vec![Freq::M1],
                range: Some(range),
                compression,
                ..DatasetRequest::default()
            };
            let r = marketdb::dataset::export_dataset(&db, out, &request).await?;
            (
                r.rows,
                format!(
                    "{:.1} MB, {} partitions, {:.1} bytes/bar",
                    r.bytes as f64 / 1e6,
                    r.written.len(),
                    r.bytes as f64 / r.rows.max(1) as f64
                ),
            )
        }
    };
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    expect_rows("export", rows, want)?;
    Ok(Timed::new(rows, secs).with_detail(detail))
}

/// What `marketdb ingest` does per file: parse (and validate) on a blocking thread, then
/// store in one call; a final checkpoint as the command does.
pub async fn ingest(files: &[PathBuf], path: &Path, want: u64) -> Result<Timed> {
    let db = AsyncMarketDB::open(path).await?;
    let t = Instant::now();
    let mut rows = 0u64;
    for file in files {
        let f = file.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            parse_file(&f, &Overrides::default(), BadRows::Fail)
        })
        .await
        .context("the parser thread stopped")??;
        match parsed.data {
            Parsed::Klines { freq, rows: bars } => {
                rows += db.store_data(bars, freq).await? as u64;
            }
            _ => bail!("{}: not read as a kline file", file.display()),
        }
    }
    db.checkpoint().await?;
    let secs = t.elapsed().as_secs_f64();
    db.close().await;
    expect_rows("ingest", rows, want)?;
    Ok(Timed::new(rows, secs).with_detail(format!("{} files", files.len())))
}
