//! `export numpy|csv|parquet` and `stats`: thin wrappers over the exporter that resolve
//! symbols, draw progress and print what was written.

use std::{path::PathBuf, process::ExitCode, str::FromStr};

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
    /// Output folder (numpy) or file (csv, parquet)
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
    /// Output CSV file
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn run(g: &Global, a: &ExportArgs) -> Result<ExitCode> {
    let range = a.range.range()?;
    let fill = FillPolicy::from_str(&a.fill)?;
    let compression = ParquetCompression::from_str(&a.compression)?;
    let db = args::open_db(g, false).await?;
    let symbols = a.symbols.resolve(&db, a.freq).await?;
    let mut request = ExportRequest::new(symbols, range, a.freq);
    request.target_freq = a.target_freq;
    request.features = args::feature_list(&a.features);
    request.fill = fill;
    request.compression = compression;
    request.csv_part_rows = a.part_rows;
    let pb = progress::bar(g, 0, "export");
    let exporter = AsyncDataExporter::new(&db).with_progress(progress::export_observer(&pb));
    let out = &a.out;
    let report = match a.format {
        Format::Numpy => exporter.export_to_numpy(&request, out).await.map(json_of),
        Format::Csv => exporter.export_to_csv(&request, out).await.map(json_of),
        Format::Parquet => exporter.export_to_parquet(&request, out).await.map(json_of),
    }
    .with_context(|| format!("cannot export to {}", out.display()))??;
    pb.finish_and_clear();
    db.close().await;
    if g.json {
        output::json(&report)?;
    } else {
        println!("exported to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn json_of<T: serde::Serialize>(report: T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(report)
}

pub async fn stats(g: &Global, a: &StatsArgs) -> Result<ExitCode> {
    let range = a.range.range()?;
    let db = args::open_db(g, false).await?;
    let symbols = a.symbols.resolve(&db, a.freq).await?;
    let mut request = ExportRequest::new(symbols, range, a.freq);
    request.features = args::feature_list(&a.features);
    let report = AsyncDataExporter::new(&db)
        .export_summary_statistics(&request, &a.out)
        .await
        .with_context(|| format!("cannot write statistics to {}", a.out.display()))?;
    db.close().await;
    if g.json {
        output::json(&report)?;
    } else {
        println!("statistics written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
