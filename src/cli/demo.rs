//! `demo`: the quick start. Generates the deterministic synthetic market
//! ([`marketdb::synth`]), stores klines and metrics, prints the summary, and exports the
//! klines with aligned metrics to NumPy. Same seed, same database content, same export bytes.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Result, bail};
use clap::Args;
use marketdb::synth::{self, SynthSpec};
use marketdb_export::{AsyncDataExporter, ExportRequest};
use marketdb_model::{Feature, Freq, TimeRange, parse_bound};
use serde_json::json;

use super::{Global, args, inspect, output, progress};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of symbols
    #[arg(long, default_value_t = 20)]
    pub symbols: usize,
    /// Number of UTC days
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Kline interval
    #[arg(long, default_value = "1m", value_parser = args::freq)]
    pub freq: Freq,
    /// First day (UTC)
    #[arg(long, default_value = "2024-01-01")]
    pub start: String,
    /// Random seed
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Export folder
    #[arg(long, default_value = "data/export")]
    pub out: PathBuf,
}

pub async fn run(g: &Global, a: &DemoArgs) -> Result<ExitCode> {
    if a.symbols == 0 || a.symbols > 1000 {
        bail!("--symbols {} must be between 1 and 1000", a.symbols);
    }
    if a.days == 0 || a.days > 3660 {
        bail!("--days {} must be between 1 and 3660", a.days);
    }
    let start = parse_bound(&a.start)?.start_ms();
    let range = TimeRange::new(start, start + i64::from(a.days) * marketdb_model::DAY_MS)?;
    let spec = SynthSpec {
        symbols: synth::symbol_names(a.symbols),
        freq: a.freq,
        range,
        seed: a.seed,
    };
    let db = args::open_db(g, true).await?;
    let pb = progress::bar(g, spec.symbols.len() as u64, "store");
    let (mut bars, mut metrics) = (0usize, 0usize);
    for symbol in &spec.symbols {
        bars += db
            .store_data(synth::klines_for(&spec, symbol), spec.freq)
            .await?;
        metrics += db
            .store_funding_rate(synth::funding_for(&spec, symbol))
            .await?;
        let (oi, lsr) = synth::metrics_for(&spec, symbol);
        metrics += db.store_open_interest(oi).await?;
        metrics += db.store_long_short_ratio(lsr).await?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    db.checkpoint().await?;
    let summary = serde_json::to_value(db.get_data_summary().await?)?;

    let mut features = Feature::DEFAULT_EXPORT.to_vec();
    features.extend([
        Feature::FundingRate,
        Feature::OpenInterest,
        Feature::LsrTopTraderAccount,
    ]);
    let mut request = ExportRequest::new(spec.symbols.clone(), range, spec.freq);
    request.features = features;
    let pb = progress::bar(g, u64::from(a.days), "export");
    let report = AsyncDataExporter::new(&db)
        .with_progress(progress::export_observer(&pb))
        .export_to_numpy(&request, &a.out)
        .await?;
    pb.finish_and_clear();
    db.close().await;

    if g.json {
        output::json(&json!({
            "database": g.db.display().to_string(),
            "bars_stored": bars,
            "metric_rows_stored": metrics,
            "summary": summary,
            "export": report,
        }))?;
    } else {
        println!(
            "stored {bars} {} bars and {metrics} metric rows for {} symbols in {}",
            spec.freq,
            spec.symbols.len(),
            g.db.display()
        );
        println!();
        inspect::print_summary(&summary);
        println!();
        println!(
            "exported {} day(s) of {} features to {} (see {}/manifest.json)",
            report.days.len(),
            request.features.len(),
            a.out.display(),
            a.out.display()
        );
        println!(
            "load one in Python: np.load('{}/{}/cls/{}.npy', allow_pickle=False)",
            a.out.display(),
            spec.freq,
            marketdb_model::yyyymmdd(start)
        );
    }
    Ok(ExitCode::SUCCESS)
}
