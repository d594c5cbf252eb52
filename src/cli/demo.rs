//! `demo`: the quick start. Generates the deterministic synthetic market
//! ([`marketdb::synth`]), stores klines and metrics, prints the summary, and exports the
//! klines with aligned metrics to NumPy. Same seed, same database content, same export bytes.
//!
//! Demo data stays away from real data: its default database is [`DEMO_DB`] (not the
//! default of the other commands), its symbols are synthetic names no exchange lists, it
//! records the symbols it wrote in the file ([`DEMO_MARKER`]), and it refuses a database
//! holding any row it did not write unless `--force` is given; even then it never writes over
//! rows it did not write.

use std::{
    collections::{BTreeSet, VecDeque},
    convert::Infallible,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
};

use anyhow::{Result, bail};
use clap::Args;
use marketdb::synth::{self, SynthSpec};
use marketdb_export::{AsyncDataExporter, ExportRequest};
use marketdb_model::{Feature, Freq, Records, TimeRange, parse_bound};
use marketdb_output::OutputGate;
use marketdb_store::AsyncMarketDB;
use serde_json::json;

use super::{Global, args, inspect, output, progress};

/// Where demo stores its data when `--db` (or `MARKETDB_DB`) is not given.
pub const DEMO_DB: &str = "data/demo/market.db";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of symbols (1 to 1000), named SYN000USDT, SYN001USDT...
    #[arg(long, default_value_t = 20)]
    pub symbols: usize,
    /// Number of UTC days (1 to 3660)
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
    #[arg(
        long,
        default_value = "data/demo/export",
        help_heading = "Output",
        value_hint = clap::ValueHint::DirPath
    )]
    pub out: PathBuf,
    /// Add the synthetic symbols to a database that holds other data
    #[arg(long)]
    pub force: bool,
}

/// Records per generated chunk handed to the writer.
const GENERATE_CHUNK_ROWS: usize = 50_000;
/// Symbols generated ahead of the writer.
const GENERATE_AHEAD: usize = 2;

/// One symbol's synthetic records, generated on a blocking thread into a bounded channel.
struct Generator {
    rx: mpsc::Receiver<Result<Records, Infallible>>,
    /// Resolves to the number of klines generated (the rest are metric rows).
    handle: tokio::task::JoinHandle<usize>,
}

impl Generator {
    fn start(spec: &SynthSpec, symbol: &str) -> Generator {
        let (tx, rx) = mpsc::sync_channel(2);
        let (spec, symbol) = (spec.clone(), symbol.to_owned());
        let handle = tokio::task::spawn_blocking(move || {
            let mut klines = 0;
            for chunk in synth::symbol_chunks(&spec, &symbol, GENERATE_CHUNK_ROWS) {
                if let Records::Klines { rows, .. } = &chunk {
                    klines += rows.len();
                }
                if tx.send(Ok(chunk)).is_err() {
                    break; // the writer stopped: its own error is reported
                }
            }
            klines
        });
        Generator { rx, handle }
    }
}

/// The `marketdb_meta` key under which demo records the symbols it wrote (a JSON array):
/// its marker, so it recognises its own rows by what it wrote, not by their names.
pub const DEMO_MARKER: &str = "demo.symbols";

/// The symbols the marker of `db` names (none when demo never wrote to it).
async fn marked_symbols(db: &AsyncMarketDB, path: &Path) -> Result<BTreeSet<String>> {
    match db.get_meta(DEMO_MARKER).await? {
        None => Ok(BTreeSet::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "database {}: demo's marker {DEMO_MARKER:?} is damaged ({e}); demo will not \
                 guess which rows are its own: choose another --db",
                output::path(path)
            )
        }),
    }
}

/// Opens the demo database, refusing one that holds rows demo did not write (unless
/// `force`), and never writing over such rows: demo's own rows are those of the symbols
/// its marker names. The marker is extended with `symbols` before any row is stored, so
/// rows of an interrupted demo are still recognised as its own.
async fn open_demo_db(
    g: &Global,
    path: &Path,
    force: bool,
    symbols: &[String],
) -> Result<AsyncMarketDB> {
    // The path must be a database file or nothing: never a FIFO, a device or a folder.
    OutputGate::new().check_database(path)?;
    let db = if path.exists() {
        args::open_path(g, path, args::Access::Write).await?
    } else {
        args::open_path(g, path, args::Access::Create).await?
    };
    let mut marked = marked_symbols(&db, path).await?;
    let foreign: Vec<String> = db
        .get_all_symbols()
        .await?
        .into_iter()
        .filter(|s| !marked.contains(s))
        .collect();
    let listed = |names: &[&String]| {
        let shown: Vec<&str> = names.iter().take(5).map(|s| s.as_str()).collect();
        format!(
            "{}{}",
            shown.join(", "),
            if names.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
    };
    if !foreign.is_empty() && !force {
        db.close().await;
        bail!(
            "database {} holds rows demo did not write ({} symbol(s): {}); demo writes \
             synthetic data into its own database ({DEMO_DB} by default): choose another \
             --db, or add --force to add the synthetic SYN...USDT symbols beside that \
             data{}",
            output::path(path),
            foreign.len(),
            listed(&foreign.iter().collect::<Vec<_>>()),
            if foreign.iter().all(|s| synth::is_synthetic(s)) {
                " (a demo database made by an older marketdb carries no marker of its rows: \
                 delete it and run demo again)"
            } else {
                ""
            },
        );
    }
    let clash: Vec<&String> = symbols.iter().filter(|s| foreign.contains(s)).collect();
    if !clash.is_empty() {
        db.close().await;
        bail!(
            "database {} holds rows under {} that demo did not write; demo never replaces \
             them, even with --force: choose another --db",
            output::path(path),
            listed(&clash),
        );
    }
    let before = marked.len();
    marked.extend(symbols.iter().cloned());
    if marked.len() != before || before == 0 {
        db.set_meta(DEMO_MARKER, &serde_json::to_string(&marked)?)
            .await?;
    }
    Ok(db)
}

pub async fn run(g: &Global, a: &DemoArgs) -> Result<ExitCode> {
    if a.symbols == 0 || a.symbols > synth::MAX_SYMBOLS {
        return Err(super::usage(format!(
            "--symbols {} must be between 1 and {}",
            a.symbols,
            synth::MAX_SYMBOLS
        )));
    }
    if a.days == 0 || a.days > 3660 {
        return Err(super::usage(format!(
            "--days {} must be between 1 and 3660",
            a.days
        )));
    }
    let start = parse_bound(&a.start)?.start_ms();
    let range = TimeRange::new(
        start,
        start + i64::from(a.days) * marketdb_model::time::DAY_MS,
    )?;
    let spec = SynthSpec {
        symbols: synth::symbol_names(a.symbols),
        freq: a.freq,
        range,
        seed: a.seed,
    };
    let db_path = g.db.clone().unwrap_or_else(|| PathBuf::from(DEMO_DB));
    // The export folder is checked before the database is opened or anything generated.
    marketdb_export::check_numpy_folder(&db_path, &a.out)?;
    let db = open_demo_db(g, &db_path, a.force, &spec.symbols).await?;
    let pb = progress::bar(g, spec.symbols.len() as u64, "store");
    let (mut bars, mut metrics) = (0usize, 0usize);
    // Each symbol is generated on a blocking thread, chunk by chunk, while the writer stores
    // the symbol before it (one transaction per symbol); memory follows the chunk size and
    // the lookahead, not --days.
    let mut symbols = spec.symbols.iter();
    let mut pending: VecDeque<Generator> = symbols
        .by_ref()
        .take(GENERATE_AHEAD)
        .map(|s| Generator::start(&spec, s))
        .collect();
    while let Some(next) = pending.pop_front() {
        if let Some(s) = symbols.next() {
            pending.push_back(Generator::start(&spec, s));
        }
        let stored = db.store_records(next.rx).await?;
        let klines = next.handle.await?;
        bars += klines;
        metrics += stored - klines;
        pb.inc(1);
    }
    pb.finish_and_clear();
    args::checkpoint_or_warn(&db).await;
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
            "database": db_path.display().to_string(),
            "bars_stored": bars,
            "metric_rows_stored": metrics,
            "summary": summary,
            "export": report,
        }))?;
    } else {
        outln!(
            "stored {bars} {} bars and {metrics} metric rows for {} symbols in {}",
            spec.freq,
            spec.symbols.len(),
            output::path(&db_path)
        );
        outln!();
        inspect::print_summary(&summary);
        outln!();
        outln!(
            "exported {} day(s) of {} features to {} (see {}/manifest.json)",
            report.days.len(),
            request.features.len(),
            output::path(&a.out),
            output::path(&a.out)
        );
        outln!(
            "load one in Python: np.load('{}/{}/cls/{}.npy', allow_pickle=False)",
            output::path(&a.out),
            spec.freq,
            marketdb_model::time::yyyymmdd(start)
        );
    }
    Ok(ExitCode::SUCCESS)
}
