//! `export numpy|csv|parquet|dataset`, `import dataset` and `stats`: thin wrappers over
//! the exporter that resolve symbols, draw progress and print what was written.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use marketdb_dataset::{DatasetKind, DatasetLocation, DatasetRequest};
use marketdb_export::{AsyncDataExporter, ExportRequest, FillPolicy, ParquetCompression};
use marketdb_model::Freq;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Numpy,
    Csv,
    Parquet,
    #[cfg(feature = "hdf5")]
    Hdf5,
}

/// `--fill` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fill {
    None,
    Ffill,
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    Zstd,
    Snappy,
    Gzip,
    Lz4,
    None,
}

impl From<Compression> for ParquetCompression {
    fn from(c: Compression) -> ParquetCompression {
        match c {
            Compression::Zstd => ParquetCompression::Zstd,
            Compression::Snappy => ParquetCompression::Snappy,
            Compression::Gzip => ParquetCompression::Gzip,
            Compression::Lz4 => ParquetCompression::Lz4,
            Compression::None => ParquetCompression::None,
        }
    }
}

/// `export` and its formats.
#[derive(Debug, clap::Subcommand)]
pub enum ExportCommand {
    /// A folder of per-day (K, T) float64 matrices with a manifest
    Numpy(ExportArgs),
    /// One CSV file (or parts), gzip optional
    Csv(ExportArgs),
    /// One Parquet file
    Parquet(ExportArgs),
    /// A Hive-partitioned Parquet dataset (one table per kind), published incrementally
    Dataset(DatasetArgs),
    /// One HDF5 file in the NumPy layout (built with the `hdf5` feature)
    #[cfg(feature = "hdf5")]
    Hdf5(ExportArgs),
}

/// `import` and its sources.
#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// A dataset written by `export dataset`: its partitions replace the rows they cover
    Dataset(ImportDatasetArgs),
}

/// `--kinds` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Klines,
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

impl From<KindArg> for DatasetKind {
    fn from(k: KindArg) -> DatasetKind {
        match k {
            KindArg::Klines => DatasetKind::Klines,
            KindArg::FundingRate => DatasetKind::FundingRate,
            KindArg::OpenInterest => DatasetKind::OpenInterest,
            KindArg::LongShortRatio => DatasetKind::LongShortRatio,
        }
    }
}

#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Output folder (new, empty, or a dataset written before), or s3://bucket/prefix
    /// (credentials and endpoint from the AWS_* variables)
    #[arg(long, help_heading = "Output", value_hint = clap::ValueHint::DirPath)]
    pub out: String,
    /// Only these symbols (default: all); the dataset then holds only them
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// Only these kline intervals (default: every stored one)
    #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = args::freq)]
    pub freq: Vec<Freq>,
    /// Tables (default: all)
    #[arg(long, num_args = 1.., value_delimiter = ',', value_enum)]
    pub kinds: Vec<KindArg>,
    /// Start (widened to whole days; months for funding); default: the first stored row
    #[arg(long)]
    pub start: Option<String>,
    /// End, inclusive (a date includes its whole day); default: the last stored row
    #[arg(long)]
    pub end: Option<String>,
    /// zstd (default), snappy, gzip, lz4 or none
    #[arg(long, value_enum, default_value = "zstd")]
    pub compression: Compression,
    /// List the partitions that would be written or removed, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the lock another export left on the dataset (after a crash) and publish
    #[arg(long)]
    pub break_lock: bool,
}

#[derive(Debug, Args)]
pub struct ImportDatasetArgs {
    /// The dataset folder, or s3://bucket/prefix (AWS_* variables as for export)
    pub src: String,
}

/// Refuses flags that do not apply to the chosen format (they would be silently ignored).
fn check_flags(format: Format, a: &ExportArgs) -> Result<()> {
    let refuse = |flag: &str, applies: &str| {
        Err(super::usage(format!(
            "{flag} applies to {applies} exports, not {}",
            format!("{format:?}").to_lowercase()
        )))
    };
    if a.fill.is_some() && format != Format::Numpy {
        return refuse("--fill", "numpy");
    }
    if a.part_rows.is_some() && format != Format::Csv {
        return refuse("--part-rows", "csv");
    }
    match (format, a.compression) {
        (Format::Numpy, Some(_)) => refuse("--compression", "csv and parquet"),
        #[cfg(feature = "hdf5")]
        (Format::Hdf5, Some(_)) => refuse("--compression", "csv and parquet"),
        (Format::Csv, Some(c)) if c != Compression::Gzip && c != Compression::None => {
            Err(super::usage(format!(
                "csv exports take --compression gzip or none, not {}",
                format!("{c:?}").to_lowercase()
            )))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Stored interval to read
    #[arg(long, value_parser = args::freq)]
    pub freq: Freq,
    /// Resample to this coarser interval first
    #[arg(long, value_parser = args::freq)]
    pub target_freq: Option<Freq>,
    /// Features, short or long names (default: the kline features plus vwap and ret)
    #[arg(long, value_parser = args::features)]
    pub features: Option<args::FeatureList>,
    /// NumPy only: holes in the matrices stay NaN (none, the default) or are filled
    /// forward within a day (ffill)
    #[arg(long, value_enum)]
    pub fill: Option<Fill>,
    /// Parquet: zstd (default), snappy, gzip, lz4 or none; CSV: gzip or none (a .gz
    /// output name gzips too)
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// CSV only: split the output into parts of this many rows
    #[arg(long)]
    pub part_rows: Option<usize>,
    /// Output folder (numpy) or file (csv, parquet); `-` streams csv or parquet to stdout
    #[arg(long, help_heading = "Output", value_hint = clap::ValueHint::AnyPath)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Stored interval to read
    #[arg(long, value_parser = args::freq)]
    pub freq: Freq,
    /// Features (default: the kline features plus vwap and ret)
    #[arg(long, value_parser = args::features)]
    pub features: Option<args::FeatureList>,
    /// Output CSV file; `-` for stdout
    #[arg(long, help_heading = "Output", value_hint = clap::ValueHint::FilePath)]
    pub out: PathBuf,
}

/// `--out -`: stream to stdout.
fn is_stdout(out: &Path) -> bool {
    out.as_os_str() == "-"
}

pub async fn run(g: &Global, cmd: &ExportCommand) -> Result<ExitCode> {
    let (format, a) = match cmd {
        ExportCommand::Numpy(a) => (Format::Numpy, a),
        ExportCommand::Csv(a) => (Format::Csv, a),
        ExportCommand::Parquet(a) => (Format::Parquet, a),
        ExportCommand::Dataset(a) => return dataset(g, a).await,
        #[cfg(feature = "hdf5")]
        ExportCommand::Hdf5(a) => (Format::Hdf5, a),
    };
    a.range.spec()?;
    check_flags(format, a)?;
    let fill = match a.fill {
        Some(Fill::Ffill) => FillPolicy::Ffill,
        _ => FillPolicy::None,
    };
    let compression = a
        .compression
        .map_or(ParquetCompression::Zstd, ParquetCompression::from);
    let to_stdout = is_stdout(&a.out);
    let csv_gzip = format == Format::Csv
        && match a.compression {
            Some(c) => c == Compression::Gzip,
            None => a
                .out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz")),
        };
    if to_stdout && matches!(format, Format::Numpy) {
        return Err(super::usage(
            "--out - streams csv or parquet to stdout; a numpy export writes a folder",
        ));
    }
    if to_stdout && a.part_rows.is_some() {
        return Err(super::usage(
            "--part-rows cannot split stdout into part files; give --out FILE",
        ));
    }
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = a.symbols.resolve(g, &db, a.freq).await?;
    let range = a.range.resolve(&db, a.freq, &symbols).await?;
    let mut request = ExportRequest::new(symbols, range, a.freq);
    request.target_freq = a.target_freq;
    request.features = args::feature_list(&a.features);
    request.fill = fill;
    request.compression = compression;
    request.csv_part_rows = a.part_rows;
    request.csv_gzip = csv_gzip;
    let pb = progress::bar(g, 0, "export");
    let exporter = AsyncDataExporter::new(&db).with_progress(progress::export_observer(&pb));
    let out = &a.out;
    let stdout = std::io::stdout;
    let report = match (format, to_stdout) {
        (Format::Numpy, _) => exporter.export_to_numpy(&request, out).await.map(json_of),
        (Format::Csv, false) => exporter.export_to_csv(&request, out).await.map(json_of),
        (Format::Csv, true) => exporter
            .export_csv_to_writer(&request, stdout())
            .await
            .map(json_of),
        (Format::Parquet, false) => exporter.export_to_parquet(&request, out).await.map(json_of),
        (Format::Parquet, true) => exporter
            .export_parquet_to_writer(&request, stdout())
            .await
            .map(json_of),
        #[cfg(feature = "hdf5")]
        (Format::Hdf5, false) => exporter.export_to_hdf5(&request, out).await.map(json_of),
        #[cfg(feature = "hdf5")]
        (Format::Hdf5, true) => {
            return Err(super::usage(
                "an hdf5 export needs seeking: give --out FILE, not -",
            ));
        }
    }
    .with_context(|| format!("cannot export to {}", output::path(out)))??;
    pb.finish_and_clear();
    db.close().await;
    report_written(g, &report, out, to_stdout, "exported to")
}

/// Prints what an export wrote: JSON, or one line naming the output and whether it
/// replaced a file; nothing on stdout when the data itself went there.
fn report_written(
    g: &Global,
    report: &serde_json::Value,
    out: &Path,
    to_stdout: bool,
    what: &str,
) -> Result<ExitCode> {
    let replaced = report["replaced"].as_bool().unwrap_or(false);
    if to_stdout {
        tracing::info!("{what} stdout");
    } else if g.json {
        output::json(report)?;
    } else {
        let files = report["files"].as_array().map_or(0, Vec::len);
        let parts = if files > 1 {
            format!(" ({files} parts)")
        } else {
            String::new()
        };
        if replaced {
            outln!(
                "{what} {}{parts} (replaced the existing file)",
                output::path(out)
            );
        } else {
            outln!("{what} {}{parts}", output::path(out));
        }
        // Parts of an earlier export of this name that this one did not produce.
        for p in report["removed"].as_array().into_iter().flatten() {
            if let Some(p) = p.as_str() {
                outln!(
                    "removed {} (a part of the earlier export)",
                    output::path(Path::new(p))
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_of<T: serde::Serialize>(report: T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(report)
}

pub async fn stats(g: &Global, a: &StatsArgs) -> Result<ExitCode> {
    a.range.spec()?;
    let to_stdout = is_stdout(&a.out);
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = a.symbols.resolve(g, &db, a.freq).await?;
    let range = a.range.resolve(&db, a.freq, &symbols).await?;
    let mut request = ExportRequest::new(symbols, range, a.freq);
    request.features = args::feature_list(&a.features);
    let exporter = AsyncDataExporter::new(&db);
    let report = match to_stdout {
        true => {
            exporter
                .export_summary_statistics_to_writer(&request, std::io::stdout())
                .await
        }
        false => exporter.export_summary_statistics(&request, &a.out).await,
    }
    .with_context(|| format!("cannot write statistics to {}", output::path(&a.out)))?;
    db.close().await;
    report_written(
        g,
        &serde_json::to_value(report)?,
        &a.out,
        to_stdout,
        "statistics written to",
    )
}

/// The range of `export dataset`: either bound may be left out (the first or last stored
/// row then bounds it).
fn dataset_range(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Option<marketdb_model::TimeRange>> {
    use marketdb_model::{TIME_MAX_MS, TIME_MIN_MS};
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let lo = match start {
        Some(s) => marketdb_model::parse_bound(s)?.start_ms(),
        None => TIME_MIN_MS,
    };
    let hi = match end {
        Some(e) => marketdb_model::parse_bound(e)?.end_exclusive_ms(),
        None => TIME_MAX_MS,
    };
    if lo >= hi {
        return Err(super::usage(format!(
            "--start {} is not before --end {}",
            start.unwrap_or("(first row)"),
            end.unwrap_or("(last row)")
        )));
    }
    Ok(Some(marketdb_model::TimeRange::new(lo, hi)?))
}

/// `export dataset`.
async fn dataset(g: &Global, a: &DatasetArgs) -> Result<ExitCode> {
    let range = dataset_range(a.start.as_deref(), a.end.as_deref())?;
    let symbols = if a.symbols.is_empty() {
        Vec::new()
    } else {
        args::parse_symbols(&args::split_symbols(&a.symbols))?
    };
    let mut kinds: Vec<DatasetKind> = a.kinds.iter().map(|k| DatasetKind::from(*k)).collect();
    if kinds.is_empty() {
        kinds = DatasetKind::ALL.to_vec();
    }
    kinds.sort_unstable();
    kinds.dedup();
    let request = DatasetRequest {
        kinds,
        freqs: a.freq.clone(),
        symbols,
        range,
        compression: a.compression.into(),
        dry_run: a.dry_run,
        break_lock: a.break_lock,
    };
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let beat = progress::heartbeat(g, "export dataset");
    let location = DatasetLocation::parse(&a.out, &[])?;
    let report = marketdb_dataset::export_dataset_to(&db, &location, &request).await;
    drop(beat);
    db.close().await;
    let report = report.with_context(|| format!("cannot export the dataset to {}", a.out))?;
    if g.json {
        output::json(&serde_json::to_value(&report)?)?;
    } else {
        // Partition lines are a dry run's answer; otherwise -q leaves the summary only.
        if report.dry_run || !g.quiet {
            let verb = if report.dry_run {
                "would write"
            } else {
                "wrote"
            };
            for p in &report.written {
                outln!("{verb} {p}");
            }
            let verb = if report.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for p in &report.removed {
                outln!("{verb} {p}");
            }
        }
        if let Some(how) = &report.scope_extended {
            outln!("the dataset's symbol selection grew {how}");
        }
        // How many partitions were hashed is in the JSON (`compared_by_rows`); the text
        // says only when the database could not vouch for any.
        if report.no_change_record {
            outln!(
                "the database has no change record (made by another program and never opened \
                 for writing by marketdb): every published partition was compared by its rows"
            );
        }
        if report.dry_run {
            outln!(
                "{}: dry run, nothing written: {} partition(s) would be written, {} removed, \
                 {} unchanged; {} row(s)",
                report.root.display(),
                report.written.len(),
                report.removed.len(),
                report.unchanged,
                report.rows,
            );
        } else {
            outln!(
                "{}: {} partition(s) written, {} removed, {} unchanged; {} row(s), {} byte(s)",
                report.root.display(),
                report.written.len(),
                report.removed.len(),
                report.unchanged,
                report.rows,
                report.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `import dataset`.
pub async fn import(g: &Global, cmd: &ImportCommand) -> Result<ExitCode> {
    let ImportCommand::Dataset(a) = cmd;
    let location = DatasetLocation::parse(&a.src, &[])?;
    let db = args::open_db(g, args::Access::Create).await?;
    let beat = progress::heartbeat(g, "import dataset");
    let report = marketdb_dataset::import_dataset_from(&db, &location).await;
    drop(beat);
    if report.is_ok() {
        args::checkpoint_or_warn(&db).await;
    }
    db.close().await;
    let report = report.with_context(|| format!("cannot import {}", a.src))?;
    if g.json {
        output::json(&serde_json::to_value(&report)?)?;
    } else {
        if !g.quiet {
            for p in &report.imported {
                outln!("imported {p}");
            }
            for p in &report.removed {
                outln!("removed {p}");
            }
            for o in &report.overlaps {
                outln!("{o}");
            }
        }
        outln!(
            "{}: {} partition(s) imported, {} removed, {} unchanged, {} failed; {} row(s)",
            a.src,
            report.imported.len(),
            report.removed.len(),
            report.unchanged,
            report.failed.len(),
            report.rows
        );
        for (kind, c) in &report.counts {
            outln!(
                "  {kind}: {} inserted, {} replaced, {} deleted",
                c.inserted,
                c.replaced,
                c.deleted
            );
        }
    }
    // A skipped partition fails the run; the good ones are imported all the same.
    for f in &report.failed {
        eprintln!("error: partition {} skipped: {}", f.partition, f.reason);
    }
    if !report.failed.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
