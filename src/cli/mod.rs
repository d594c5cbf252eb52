//! Command definitions (clap derive) and dispatch for the `marketdb` binary. Each command
//! lives in its own module; this one holds the shared options, logging set-up, and the
//! error-to-exit-code rules. It prints; the libraries never do.

// First: its `outln!` macro serves the modules below.
#[macro_use]
mod output;

mod args;
mod catalog;
mod check;
mod demo;
mod download;
mod export;
mod ingest;
mod inspect;
mod maintain;
mod metrics;
mod progress;
mod query;
mod stream;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

pub use args::{RangeArgs, SymbolArgs};
pub use output::escaped;

/// Crypto market data in SQLite: store, check, resample and export Binance klines and metrics.
#[derive(Debug, Parser)]
#[command(name = "marketdb", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (before or after the command name).
#[derive(Debug, Args)]
pub struct Global {
    /// Database file [default: data/market.db; demo: data/demo/market.db]
    #[arg(long, global = true, env = "MARKETDB_DB")]
    pub db: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG is honoured too
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Connection pool backend
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "bb8", "builtin"])]
    pub pool: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a deterministic synthetic market, store it, summarise it and export it
    Demo(demo::DemoArgs),
    /// Load Binance Vision files (.csv or .zip, files or folders)
    Ingest(ingest::IngestArgs),
    /// Fetch missing Binance Vision files (verified) and store them
    Download(download::DownloadArgs),
    /// Store closed klines from Binance WebSocket streams in real time (reconnects, REST
    /// backfill of holes); stops on --for, SIGINT or SIGTERM with every received bar stored
    Stream(stream::StreamArgs),
    /// Files the exchange does not publish, as recorded by download
    Gaps(download::GapsArgs),
    /// What the exchange's archive holds (listed and delisted symbols, first and last
    /// days); `catalog refresh` lists it
    Catalog(catalog::CatalogArgs),
    /// Data summary per table and freq
    Summary,
    /// Stored symbols
    Symbols(inspect::SymbolsArgs),
    /// Print bars
    Query(query::QueryArgs),
    /// Print stored metric records: funding, open-interest or long-short-ratio
    Metrics(metrics::MetricsArgs),
    /// Completeness report: expected, present, coverage, missing runs, suspicious rows
    Check(check::CheckArgs),
    /// Build coarser bars from stored ones and store them under the target freq
    Resample(maintain::ResampleArgs),
    /// Export to NumPy (folder), CSV or Parquet (file), or a Hive-partitioned dataset
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Import a dataset written by `export dataset` (replication between nodes)
    #[command(subcommand)]
    Import(export::ImportCommand),
    /// Summary statistics per symbol and feature to a CSV file
    Stats(export::StatsArgs),
    /// Delete a range of bars (needs --yes)
    Delete(maintain::DeleteArgs),
    /// Integrity check, sizes, schema version, pool backend; maintenance
    Doctor(maintain::DoctorArgs),
}

/// The database of every command but `demo` when `--db` is not given.
pub const DEFAULT_DB: &str = "data/market.db";

impl Global {
    /// The database file: `--db` (or `MARKETDB_DB`), else [`DEFAULT_DB`].
    pub fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
    }
}

impl Cli {
    /// Whether the command handles SIGINT and SIGTERM itself (a stream commits what it
    /// received and exits 0) instead of being dropped by `main`.
    pub fn handles_signals(&self) -> bool {
        matches!(self.command, Command::Stream(_))
    }
}

/// Runs the parsed command; `Ok` carries the exit code (a check below its threshold is 1).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Demo(a) => demo::run(g, a).await,
        Command::Ingest(a) => ingest::run(g, a).await,
        Command::Download(a) => download::run(g, a).await,
        Command::Gaps(a) => download::gaps(g, a).await,
        Command::Catalog(a) => catalog::run(g, a).await,
        Command::Stream(a) => stream::run(g, a).await,
        Command::Summary => inspect::summary(g).await,
        Command::Symbols(a) => inspect::symbols(g, a).await,
        Command::Query(a) => query::run(g, a).await,
        Command::Metrics(a) => metrics::run(g, a).await,
        Command::Check(a) => check::run(g, a).await,
        Command::Resample(a) => maintain::resample(g, a).await,
        Command::Export(a) => export::run(g, a).await,
        Command::Import(a) => export::import(g, a).await,
        Command::Stats(a) => export::stats(g, a).await,
        Command::Delete(a) => maintain::delete(g, a).await,
        Command::Doctor(a) => maintain::doctor(g, a).await,
    }
}

/// Prints a clap error: help and version as clap renders them, usage errors as one line
/// (exit 2).
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = err.render().to_string();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or("invalid arguments").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // clap lists missing arguments on indented lines below the first: name them.
            let listed: Vec<&str> = lines
                .take_while(|l| l.starts_with("  "))
                .map(str::trim)
                .collect();
            let first = escaped(first);
            if listed.is_empty() {
                eprintln!("error: {first} (see 'marketdb --help')");
            } else {
                eprintln!(
                    "error: {} {} (see 'marketdb --help')",
                    first.trim_end_matches(':'),
                    escaped(&listed.join(", "))
                );
            }
            ExitCode::from(2)
        }
    }
}

/// A usage error found after parsing (a value out of range, flags that do not go
/// together): printed like clap's and exits 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A [`Usage`] error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// The error and its causes on one line, each cause once.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Installs the stderr subscriber: warnings by default, `-v` info, `-vv` debug; `RUST_LOG`
/// wins when set.
pub fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = match g.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
