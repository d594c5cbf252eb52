//! `export numpy|csv|parquet` and `stats`: thin wrappers over the exporter that resolve
//! symbols, draw progress and print what was written.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use marketdb_export::{AsyncDataExporter, ExportRequest, FillPolicy, ParquetCompression};
use marketdb_model::Freq;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Numpy,
    Csv,
    Parquet,
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

/// Refuses flags that do not apply to the chosen format (they would be silently ignored).
fn check_flags(a: &ExportArgs) -> Result<()> {
    let refuse = |flag: &str, applies: &str| {
        Err(super::usage(format!(
            "{flag} applies to {applies} exports, not {}",
            format!("{:?}", a.format).to_lowercase()
        )))
    };
    if a.fill.is_some() && a.format != Format::Numpy {
        return refuse("--fill", "numpy");
    }
    if a.part_rows.is_some() && a.format != Format::Csv {
        return refuse("--part-rows", "csv");
    }
    match (a.format, a.compression) {
        (Format::Numpy, Some(_)) => refuse("--compression", "csv and parquet"),
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
    /// Output format: numpy writes a folder, csv and parquet a file
    #[arg(value_enum)]
    pub format: Format,
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
    #[arg(long)]
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
    #[arg(long)]
    pub out: PathBuf,
}

/// `--out -`: stream to stdout.
fn is_stdout(out: &Path) -> bool {
    out.as_os_str() == "-"
}

pub async fn run(g: &Global, a: &ExportArgs) -> Result<ExitCode> {
    a.range.spec()?;
    check_flags(a)?;
    let fill = match a.fill {
        Some(Fill::Ffill) => FillPolicy::Ffill,
        _ => FillPolicy::None,
    };
    let compression = a
        .compression
        .map_or(ParquetCompression::Zstd, ParquetCompression::from);
    let to_stdout = is_stdout(&a.out);
    let csv_gzip = a.format == Format::Csv
        && match a.compression {
            Some(c) => c == Compression::Gzip,
            None => a
                .out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz")),
        };
    if to_stdout && matches!(a.format, Format::Numpy) {
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
    let report = match (a.format, to_stdout) {
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
    } else if replaced {
        outln!("{what} {} (replaced the existing file)", output::path(out));
    } else {
        outln!("{what} {}", output::path(out));
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
