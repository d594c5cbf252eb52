//! `export numpy|csv|parquet` and `stats`: thin wrappers over the exporter that resolve
//! symbols, draw progress and print what was written.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use marketdb_export::{AsyncDataExporter, ExportRequest, FillPolicy, ParquetCompression};
use marketdb_model::Freq;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Numpy,
    Csv,
    Parquet,
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
    /// Holes in NumPy matrices: none or ffill (within a day)
    #[arg(long, default_value = "none")]
    pub fill: String,
    /// Parquet compression: zstd, snappy, gzip, lz4 or none
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Split CSV output into parts of this many rows
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
    let fill = FillPolicy::from_str(&a.fill)?;
    let compression = ParquetCompression::from_str(&a.compression)?;
    let to_stdout = is_stdout(&a.out);
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
        println!("{what} {} (replaced the existing file)", output::path(out));
    } else {
        println!("{what} {}", output::path(out));
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
