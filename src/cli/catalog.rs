//! `catalog`: what the exchange's archive holds. `catalog refresh` lists it through its
//! bucket listing into the database; `catalog` prints it (table, `--csv` or `--json`);
//! `catalog alias OLD NEW` links a renamed symbol. The listing, the delisted rule and the
//! symbol patterns are the `marketdb-download` crate's.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use marketdb_download::catalog::{self, CatalogQuery, RefreshRequest};
use marketdb_fetch::{DEFAULT_LISTING_URL, Market};
use marketdb_ingest::FileKind;
use marketdb_model::Freq;
use marketdb_model::time::now_ms;
use marketdb_store::SymbolAlias;

use super::download::MarketArg;
use super::{Global, args, ingest, output, progress};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: Option<CatalogCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the archive (its bucket listing) into the catalog: new symbols, and each
    /// known series after its last listed file
    Refresh(RefreshArgs),
    /// Link a symbol's old name to its new one (the archive cannot tell a rename)
    Alias(AliasArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this market
    #[arg(long, value_enum)]
    pub market: Option<MarketArg>,
    /// Only this dataset
    #[arg(long, value_enum)]
    pub kind: Option<ingest::Kind>,
    /// Only this kline interval
    #[arg(long, value_parser = args::freq)]
    pub freq: Option<Freq>,
    /// Names or patterns: `all`, globs (`*USDT`), `re:REGEX`
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// Only delisted symbols
    #[arg(long)]
    pub delisted: bool,
    /// CSV on stdout instead of a table
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Binance market
    #[arg(long, value_enum)]
    pub market: MarketArg,
    /// Datasets to list (default: klines, and funding and metrics on futures)
    #[arg(long, value_enum, num_args = 1.., value_delimiter = ',')]
    pub kind: Vec<ingest::Kind>,
    /// Kline intervals to list (default: every interval the archive has)
    #[arg(long, value_parser = args::freq, num_args = 1.., value_delimiter = ',')]
    pub freq: Vec<Freq>,
    /// The bucket listing endpoint of the archive
    #[arg(long, default_value = DEFAULT_LISTING_URL)]
    pub listing_url: String,
    /// List every series anew (also delisted ones and new intervals of known symbols)
    #[arg(long)]
    pub full: bool,
    /// Listing requests at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Retries of a failed request (connect error, timeout, 5xx)
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// First retry delay in ms (doubled each retry, with jitter)
    #[arg(long, default_value_t = 500, hide = true)]
    pub backoff_ms: u64,
    /// Longest one request may take, whole, in seconds
    #[arg(long, default_value_t = 120, hide = true)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    /// Binance market
    #[arg(long, value_enum)]
    pub market: MarketArg,
    /// The old (delisted) name
    pub old: String,
    /// The new name
    pub new: String,
}

pub async fn run(g: &Global, a: &CatalogArgs) -> Result<ExitCode> {
    match &a.command {
        Some(CatalogCommand::Refresh(r)) => refresh(g, r).await,
        Some(CatalogCommand::Alias(r)) => alias(g, r).await,
        None => list(g, &a.list).await,
    }
}

async fn refresh(g: &Global, a: &RefreshArgs) -> Result<ExitCode> {
    let market = Market::from(a.market);
    let kinds: Vec<FileKind> = if a.kind.is_empty() {
        match market {
            Market::Spot => vec![FileKind::Klines],
            _ => vec![FileKind::Klines, FileKind::Funding, FileKind::Metrics],
        }
    } else {
        a.kind.iter().map(|&k| FileKind::from(k)).collect()
    };
    let mut req = RefreshRequest::new(market, kinds);
    req.freqs.clone_from(&a.freq);
    req.listing_url.clone_from(&a.listing_url);
    req.full = a.full;
    req.jobs = a.jobs;
    req.retries = a.retries;
    req.backoff = Duration::from_millis(a.backoff_ms);
    req.timeout = Duration::from_secs(a.timeout_secs.max(1));
    let db = args::open_db(g, args::Access::Create).await?;
    let beat = progress::heartbeat(g, "catalog refresh");
    let result = catalog::refresh(&db, &req, now_ms()).await;
    drop(beat);
    db.close().await;
    let report = result.map_err(|e| match e {
        marketdb_download::Error::Invalid { .. } => super::usage(e.to_string()),
        e => e.into(),
    })?;
    if g.json {
        output::json(&report)?;
    } else {
        outln!(
            "listed {} symbol folder(s), {} series ({} not asked again: delisted), {} new file(s), {} request(s)",
            report.symbols,
            report.series_listed,
            report.series_skipped,
            report.new_files,
            report.requests
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn alias(g: &Global, a: &AliasArgs) -> Result<ExitCode> {
    let old = args::parse_symbols(std::slice::from_ref(&a.old))?.remove(0);
    let new = args::parse_symbols(std::slice::from_ref(&a.new))?.remove(0);
    let db = args::open_db(g, args::Access::Create).await?;
    let result = db
        .set_symbol_alias(SymbolAlias {
            market: Market::from(a.market).as_str().to_owned(),
            old_symbol: old.clone(),
            new_symbol: new.clone(),
        })
        .await;
    db.close().await;
    result?;
    if !g.json {
        outln!("{old} -> {new}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(g: &Global, a: &ListArgs) -> Result<ExitCode> {
    let query = CatalogQuery {
        market: a.market.map(Market::from),
        kind: a.kind.map(FileKind::from),
        freq: a.freq,
        symbols: args::split_symbols(&a.symbols),
        delisted_only: a.delisted,
    };
    // Checked before the database is opened: a bad pattern is a usage error.
    marketdb_download::symbols::Matcher::new(&query.symbols)
        .map_err(|e| super::usage(e.to_string()))?;
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let rows = catalog::list(&db, &query).await;
    db.close().await;
    let rows = rows?;
    if g.json {
        output::json(&serde_json::json!({ "catalog": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let header = [
        "market",
        "kind",
        "symbol",
        "interval",
        "first_day",
        "last_day",
        "files",
        "status",
        "renamed_to",
        "listed_at",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.market.clone(),
                r.kind.clone(),
                output::escaped(&r.symbol),
                r.interval.clone(),
                r.first_day.clone(),
                r.last_day.clone(),
                r.files.to_string(),
                if r.delisted { "delisted" } else { "listed" }.to_owned(),
                r.renamed_to
                    .as_deref()
                    .map(output::escaped)
                    .unwrap_or_default(),
                r.listed_at.clone(),
            ]
        })
        .collect();
    if a.csv {
        outln!("{}", header.join(","));
        for row in &cells {
            let quoted: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
            outln!("{}", quoted.join(","));
        }
    } else if rows.is_empty() {
        outln!("the catalog is empty: run `marketdb catalog refresh --market ...`");
    } else {
        output::table(&header, &cells);
    }
    Ok(ExitCode::SUCCESS)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
