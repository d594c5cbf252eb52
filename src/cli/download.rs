//! `download`: Binance Vision files and the REST API into the database. The policy (what
//! to ask for, what a gap is, the source record, re-verification) is the
//! `marketdb-download` crate's; this file maps the options onto a [`DownloadRequest`],
//! prints the events and the summary, and sets the exit status (1 when a source failed:
//! run again). `gaps` lists the source record.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use marketdb_download::{
    DownloadReport, DownloadRequest, Entry, Event, GapKind, Source as DlSource, SymbolSet,
};
use marketdb_fetch::{DEFAULT_BASE_URL, Market};
use marketdb_ingest::FileKind;
use marketdb_model::Freq;
use marketdb_model::time::now_ms;
use marketdb_store::GapFilter;
use serde_json::json;

use super::{Global, args, ingest, output, progress};

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Binance market
    #[arg(long, value_enum)]
    pub market: MarketArg,
    /// Dataset: klines, funding (monthly Vision files, REST for recent months) or metrics
    /// (open interest and long/short ratios: daily Vision files)
    #[arg(long, value_enum, default_value = "klines")]
    pub kind: ingest::Kind,
    /// Symbols (comma- or space-separated), or sets from the catalog (`catalog refresh`):
    /// `all`, globs (`'*USDT'`), `re:REGEX`
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Only symbols quoted in this asset (USDT: BTCUSDT, BTCUSDT_240329)
    #[arg(long)]
    pub quote: Option<String>,
    /// Sets also take symbols the catalog marks delisted
    #[arg(long)]
    pub include_delisted: bool,
    /// Kline interval (klines only)
    #[arg(long, value_parser = args::freq)]
    pub freq: Option<Freq>,
    #[command(flatten)]
    pub range: args::RangeArgs,
    /// Where bars come from: Vision files for closed days and the REST API for the last
    /// days (auto), or one of them only
    #[arg(long, value_enum, default_value = "auto")]
    pub source: Source,
    /// Binance Vision base URL
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// REST API base URL (default: the market's, e.g. https://fapi.binance.com for um)
    #[arg(long)]
    pub rest_url: Option<String>,
    /// Files downloaded at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Retries of a failed request (connect error, timeout, 5xx, cut body)
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Print the files that would be fetched and exit
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the downloaded files in this folder (in the Vision layout)
    #[arg(long, help_heading = "Output", value_hint = clap::ValueHint::DirPath)]
    pub keep: Option<PathBuf>,
    /// Recorded `not_published` and `partial` periods that ended less than this many days
    /// ago are asked again (`failed` and `not_yet_published` always are)
    #[arg(long, default_value_t = 3)]
    pub recheck_days: i64,
    /// Ask Vision whether stored files were re-published (their .CHECKSUM changed) and
    /// replace the periods of those that were, reporting what changed
    #[arg(long)]
    pub reverify: bool,
    /// First retry delay in ms (doubled each retry, with jitter)
    #[arg(long, default_value_t = 500, hide = true)]
    pub backoff_ms: u64,
    /// Longest wait for the next bytes of an answer, in seconds
    #[arg(long, default_value_t = 30, hide = true)]
    pub read_timeout_secs: u64,
    /// Longest one request may take, whole, in seconds
    #[arg(long, default_value_t = 900, hide = true)]
    pub timeout_secs: u64,
}

/// `--source` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Vision,
    Rest,
    Auto,
}

/// `--market` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MarketArg {
    Spot,
    Um,
    Cm,
}

impl From<MarketArg> for Market {
    fn from(m: MarketArg) -> Market {
        match m {
            MarketArg::Spot => Market::Spot,
            MarketArg::Um => Market::Um,
            MarketArg::Cm => Market::Cm,
        }
    }
}

#[derive(Debug, Args)]
pub struct GapsArgs {
    /// Only this market
    #[arg(long, value_enum)]
    pub market: Option<MarketArg>,
    /// Only these symbols
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub symbols: Vec<String>,
}

impl From<Source> for DlSource {
    fn from(s: Source) -> DlSource {
        match s {
            Source::Vision => DlSource::Vision,
            Source::Rest => DlSource::Rest,
            Source::Auto => DlSource::Auto,
        }
    }
}

/// The request the options describe, and the symbol set its symbols come from (names are
/// checked here; [`marketdb_download::symbols::apply`] resolves the set once the database
/// is open).
fn request(a: &DownloadArgs) -> Result<(DownloadRequest, SymbolSet)> {
    let items = args::split_symbols(&a.symbols);
    let (patterns, names): (Vec<String>, Vec<String>) = items
        .into_iter()
        .partition(|i| marketdb_download::symbols::is_pattern(i));
    let mut symbols = if names.is_empty() {
        Vec::new()
    } else {
        args::parse_symbols(&names)?
    };
    let set = SymbolSet {
        items: symbols.iter().chain(&patterns).cloned().collect(),
        quote: a.quote.clone(),
        include_delisted: a.include_delisted,
    };
    marketdb_download::symbols::Matcher::new(&patterns).map_err(|e| super::usage(e.to_string()))?;
    symbols.extend(patterns);
    let range = match a.range.spec()? {
        args::RangeSpec::Fixed(r) => r,
        args::RangeSpec::FromFirst { .. } => {
            return Err(super::usage(
                "download needs a start: give --start or --timerange",
            ));
        }
    };
    let mut req = DownloadRequest::new(
        Market::from(a.market),
        FileKind::from(a.kind),
        symbols,
        range,
    );
    req.freq = a.freq;
    req.source = a.source.into();
    req.base_url.clone_from(&a.base_url);
    req.rest_url.clone_from(&a.rest_url);
    req.jobs = a.jobs;
    req.retries = a.retries;
    req.keep.clone_from(&a.keep);
    req.recheck_days = a.recheck_days;
    req.reverify = a.reverify;
    req.backoff = Duration::from_millis(a.backoff_ms);
    req.read_timeout = Duration::from_secs(a.read_timeout_secs.max(1));
    req.timeout = Duration::from_secs(a.timeout_secs.max(1));
    // Bad combinations are usage errors, found before anything is opened.
    req.check().map_err(|e| super::usage(e.to_string()))?;
    Ok((req, set))
}

/// Resolves the symbol set against the catalog: a set that matches nothing, or patterns
/// without a catalog, are usage errors.
async fn resolve(
    db: Option<&marketdb_store::AsyncMarketDB>,
    req: &mut DownloadRequest,
    set: &SymbolSet,
) -> Result<()> {
    marketdb_download::symbols::apply(db, req, set)
        .await
        .map_err(|e| match e {
            marketdb_download::Error::Invalid { .. } => super::usage(e.to_string()),
            e => e.into(),
        })
}

pub async fn run(g: &Global, a: &DownloadArgs) -> Result<ExitCode> {
    let (mut req, set) = request(a)?;
    // The folder kept files go to is checked before anything is asked or opened.
    let gate = marketdb_output::OutputGate::protecting(&g.db_path());
    if let Some(keep) = &a.keep {
        gate.check_folder(keep, "--keep")?;
    }
    if a.dry_run {
        let db = if g.db_path().exists() {
            Some(args::open_db(g, args::Access::ReadOnly).await?)
        } else {
            None
        };
        let plan = match resolve(db.as_ref(), &mut req, &set).await {
            Ok(()) => marketdb_download::plan(db.as_ref(), &req, now_ms())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Some(db) = db {
            db.close().await;
        }
        report_plan(g, a, &req, &plan?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let db = args::open_db(g, args::Access::Create).await?;
    if let Err(e) = resolve(Some(&db), &mut req, &set).await {
        db.close().await;
        return Err(e);
    }
    let pb = progress::bar(g, 0, "download");
    let started = std::time::Instant::now();
    let show = |e: Event<'_>| match e {
        Event::Planned { files } => pb.inc_length(files as u64),
        Event::Bytes(bytes) => {
            let mib = bytes as f64 / f64::from(1u32 << 20);
            pb.set_message(format!(
                "{mib:.1} MiB, {:.1} MiB/s",
                mib / started.elapsed().as_secs_f64().max(1e-3)
            ));
        }
        Event::Done(entry) => {
            if entry.url.is_some() {
                pb.inc(1);
            }
            pb.suspend(|| show_entry(g, entry));
        }
        Event::Replaced(r) => {
            if !g.json && !g.quiet {
                pb.suspend(|| {
                    outln!(
                        "re-published {}: {} row(s) added, {} removed, {} changed, {} unchanged",
                        r.url,
                        r.changes.added,
                        r.changes.removed,
                        r.changes.changed,
                        r.changes.unchanged
                    );
                });
            }
        }
    };
    let report = marketdb_download::download(&db, &req, &show).await;
    pb.finish_and_clear();
    if report.is_ok() {
        args::checkpoint_or_warn(&db).await;
    }
    db.close().await;
    let report = report?;
    summary(g, &report)?;
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line per stored file or REST range (unless `--json` or `-q`); a failure is an
/// error line whatever the flags.
fn show_entry(g: &Global, e: &Entry) {
    let time = marketdb_model::time::format_rfc3339;
    if let Some(err) = &e.error {
        eprintln!("error: {}", output::escaped(err));
        return;
    }
    if g.json || g.quiet {
        return;
    }
    match (&e.url, &e.rest, e.gap) {
        (Some(url), _, Some(kind)) if e.rows.is_none() => {
            outln!("{url}: {} ({kind})", e.answer.as_deref().unwrap_or(""));
        }
        (Some(url), _, gap) => {
            outln!(
                "stored {url}: {} row(s){}",
                e.rows.unwrap_or(0),
                gap.map_or(String::new(), |k| format!(" ({k})"))
            );
        }
        (None, Some(symbol), _) => match (e.first, e.last, &e.period) {
            (Some(first), Some(last), _) => outln!(
                "stored {} row(s) of {symbol} from the rest api ({} to {})",
                e.rows.unwrap_or(0),
                time(first),
                time(last)
            ),
            (_, _, Some(period)) => outln!(
                "stored {} funding rate(s) of {symbol} for {period} from the rest api",
                e.rows.unwrap_or(0)
            ),
            _ => {}
        },
        _ => {}
    }
}

fn summary(g: &Global, r: &DownloadReport) -> Result<()> {
    if g.json {
        output::json(&serde_json::to_value(r)?)?;
        return Ok(());
    }
    let kinds: Vec<String> = GapKind::ALL
        .iter()
        .filter_map(|k| r.gap_kinds.get(k).map(|n| format!("{n} {k}")))
        .collect();
    outln!(
        "downloaded {} file(s), {} byte(s) ({} received in {} request(s), {} rest request(s)): \
         {} row(s) stored, {} gap(s) recorded{}, {} recorded gap(s) skipped, {} retr{}{}",
        r.fetched,
        r.bytes,
        r.bytes_received,
        r.requests,
        r.rest_requests,
        r.rows,
        r.gaps_recorded,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        r.skipped,
        r.retries,
        if r.retries == 1 { "y" } else { "ies" },
        if r.failed > 0 {
            format!(", {} failed", r.failed)
        } else {
            String::new()
        }
    );
    if r.not_listed_days > 0 {
        outln!(
            "{} symbol-day(s) outside the listed lives of the archive catalog not asked (not gaps)",
            r.not_listed_days
        );
    }
    if let Some(v) = &r.reverified {
        outln!(
            "re-verified {} stored file(s): {} unchanged, {} re-published and replaced, {} gone from vision, {} not checked",
            v.checked,
            v.unchanged,
            v.replaced.len(),
            v.gone.len(),
            v.failed.len()
        );
        for f in &v.failed {
            eprintln!("error: {}", output::escaped(f));
        }
    }
    Ok(())
}

fn report_plan(
    g: &Global,
    a: &DownloadArgs,
    req: &DownloadRequest,
    plan: &marketdb_download::Plan,
) -> Result<()> {
    let time = marketdb_model::time::format_rfc3339;
    if g.json {
        let list: Vec<_> = plan
            .files
            .iter()
            .map(|f| json!({"symbol": f.symbol, "period": f.period.to_string(), "url": f.url(&a.base_url)}))
            .collect();
        let rest: Vec<_> = plan
            .rest
            .iter()
            .map(|r| json!({"symbol": r.symbol, "first": time(r.first), "last": time(r.last)}))
            .collect();
        output::json(
            &json!({"dry_run": true, "symbols": req.symbols, "files": list, "count": plan.files.len(), "rest": rest}),
        )?;
    } else {
        for f in &plan.files {
            outln!("{}", f.url(&a.base_url));
        }
        for r in &plan.rest {
            outln!(
                "rest api: {} {} to {}",
                r.symbol,
                time(r.first),
                time(r.last)
            );
        }
        outln!(
            "{} file(s) to fetch, {} range(s) to ask the rest api for",
            plan.files.len(),
            plan.rest.len()
        );
    }
    Ok(())
}

pub async fn gaps(g: &Global, a: &GapsArgs) -> Result<ExitCode> {
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = if a.symbols.is_empty() {
        Vec::new()
    } else {
        args::parse_symbols(&args::split_symbols(&a.symbols))?
    };
    let mut list = db
        .source_gaps(GapFilter {
            market: a.market.map(|m| Market::from(m).as_str().to_owned()),
            ..GapFilter::default()
        })
        .await?;
    db.close().await;
    if !symbols.is_empty() {
        list.retain(|gap| symbols.contains(&gap.symbol));
    }
    if g.json {
        output::json(&json!({ "gaps": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("no recorded gaps");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|x| {
            vec![
                x.market.clone(),
                x.kind.clone(),
                x.symbol.clone(),
                x.interval.clone(),
                x.period.clone(),
                x.status.clone(),
                x.answer.clone(),
                marketdb_model::time::format_rfc3339(x.first_seen),
                marketdb_model::time::format_rfc3339(x.last_checked),
            ]
        })
        .collect();
    output::table(
        &[
            "market",
            "kind",
            "symbol",
            "interval",
            "period",
            "status",
            "answer",
            "first_seen",
            "last_checked",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
