//! `download`: Binance Vision files and the REST API into the database. For each symbol, the planner
//! compares the range with what is stored and with the `source_gaps` record, and asks only
//! for what is missing (a monthly file for an empty closed month, daily files otherwise).
//! Up to `--jobs` files download at once, each to a private temporary file that is
//! verified against its `.CHECKSUM`; the writer stores each file in one transaction
//! through the `ingest` path and deletes it (unless `--keep`). A 404, a file that fails
//! its checksum twice, or a daily file that leaves bars of its day missing (`partial`) is
//! recorded in `source_gaps`, so the next run does not ask again.
//! `gaps` lists that record. What Vision does not publish yet (the last days, today's
//! closed bars) comes from the REST API ([`rest`]) with `--source auto` (the default);
//! `--source vision` and `--source rest` use one source only.

use marketdb_model::time::now_ms;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use marketdb_fetch::{
    DEFAULT_BASE_URL, Fetch, FetchConfig, Fetcher, Market, Outcome, Period, VisionFile, plan,
};
use marketdb_ingest::{BadRows, FileKind, Overrides};
use marketdb_model::{Freq, TimeRange};
use marketdb_store::{AsyncMarketDB, GapFilter, SourceGap};
use serde_json::json;

use super::{Global, args, ingest, output, progress};

mod metrics;
mod rest;

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Binance market
    #[arg(long, value_enum)]
    pub market: MarketArg,
    /// Dataset: klines, funding (monthly Vision files, REST for recent months) or metrics
    /// (open interest and long/short ratios: daily Vision files)
    #[arg(long, value_enum, default_value = "klines")]
    pub kind: ingest::Kind,
    /// Symbols (comma- or space-separated)
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
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
    /// Recorded gaps of days younger than this are asked again
    #[arg(long, default_value_t = 3)]
    pub recheck_days: i64,
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

impl DownloadArgs {
    /// The kline interval; [`run`] refuses `--kind klines` without one.
    fn kline_freq(&self) -> Freq {
        self.freq.unwrap_or(Freq::M1)
    }
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

impl Tally {
    /// Counts a failed REST request and reports it (warning and `--json` entry `what`
    /// with `ok: false` and the error); the next run asks again.
    fn rest_failed(&mut self, g: &Global, e: marketdb_fetch::Error, mut what: serde_json::Value) {
        self.failed += 1;
        let msg = output::escaped(&super::one_line(&anyhow::Error::new(e)));
        args::warn(g, &msg);
        what["ok"] = false.into();
        what["error"] = msg.into();
        self.files.push(what);
    }
}

/// What the run did, for the summary and `--json`.
#[derive(Debug, Default)]
struct Tally {
    fetched: u64,
    rows: u64,
    gaps: u64,
    failed: u64,
    retries: u64,
    bytes: u64,
    /// REST requests sent.
    requests: u64,
    /// Recorded gaps in the range not asked again.
    skipped: u64,
    files: Vec<serde_json::Value>,
}

pub async fn run(g: &Global, a: &DownloadArgs) -> Result<ExitCode> {
    let market = Market::from(a.market);
    let kind = FileKind::from(a.kind);
    match kind {
        FileKind::Klines if a.freq.is_none() => {
            return Err(super::usage("--kind klines needs --freq (such as 1m)"));
        }
        FileKind::Funding | FileKind::Metrics if a.freq.is_some() => {
            return Err(super::usage(format!(
                "--freq applies to klines only, not to --kind {}",
                kind.as_str()
            )));
        }
        FileKind::Funding | FileKind::Metrics if market == Market::Spot => {
            return Err(super::usage(format!(
                "binance publishes {} for futures only: give --market um or cm",
                kind.as_str()
            )));
        }
        FileKind::Metrics if a.source == Source::Rest => {
            return Err(super::usage(
                "the rest api keeps no metrics history: use --source vision or auto",
            ));
        }
        _ => {}
    }
    let symbols = args::parse_symbols(&args::split_symbols(&a.symbols))?;
    let range = match a.range.spec()? {
        args::RangeSpec::Fixed(r) => r,
        args::RangeSpec::FromFirst { .. } => {
            return Err(super::usage(
                "download needs a start: give --start or --timerange",
            ));
        }
    };
    // The folder kept files go to is checked before anything is asked or opened.
    let output = marketdb_output::OutputGate::protecting(&g.db_path());
    if let Some(keep) = &a.keep {
        output.check_folder(keep, "--keep")?;
    }
    let now = now_ms();
    let db_exists = g.db_path().exists();
    let db = if a.dry_run {
        if db_exists {
            Some(args::open_db(g, args::Access::ReadOnly).await?)
        } else {
            None
        }
    } else {
        Some(args::open_db(g, args::Access::Create).await?)
    };
    let rest_client = match a.source {
        Source::Vision => None,
        Source::Auto if kind == FileKind::Metrics => None,
        Source::Rest | Source::Auto => {
            let mut config = marketdb_fetch::RestConfig::for_market(market);
            if let Some(url) = &a.rest_url {
                config.base_url.clone_from(url);
            }
            config.retries = a.retries;
            config.backoff = Duration::from_millis(a.backoff_ms);
            config.read_timeout = Duration::from_secs(a.read_timeout_secs.max(1));
            config.timeout = Duration::from_secs(a.timeout_secs.max(1));
            Some(marketdb_fetch::RestClient::new(market, config)?)
        }
    };
    let mut files = Vec::new();
    if a.source != Source::Rest {
        for s in &symbols {
            files.extend(match kind {
                FileKind::Klines => plan_symbol(db.as_ref(), a, market, s, range, now).await?,
                _ => metrics::plan(db.as_ref(), a, market, kind, s, range, now).await?,
            });
        }
    }
    if a.dry_run {
        let mut rest_plan = Vec::new();
        if kind == FileKind::Funding && rest_client.is_some() {
            for s in &symbols {
                for (_, lo, hi) in
                    metrics::rest_funding_plan(db.as_ref(), a, market, s, range, now).await?
                {
                    rest_plan.push((
                        s.clone(),
                        rest::Span {
                            first: lo,
                            last: hi - 1,
                        },
                    ));
                }
            }
        } else if let (Some(client), Some(window)) = (&rest_client, rest::window(a, range, now)) {
            for s in &symbols {
                for span in
                    rest::spans(db.as_ref(), a, market, s, window, client.kline_limit(), now)
                        .await?
                {
                    rest_plan.push((s.clone(), span));
                }
            }
        }
        report_plan(g, a, &files, &rest_plan)?;
        if let Some(db) = db {
            db.close().await;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(db) = db else {
        anyhow::bail!("no database open");
    };
    let fetcher = Arc::new(Fetcher::new(FetchConfig {
        base_url: a.base_url.clone(),
        retries: a.retries,
        backoff: Duration::from_millis(a.backoff_ms),
        read_timeout: Duration::from_secs(a.read_timeout_secs.max(1)),
        timeout: Duration::from_secs(a.timeout_secs.max(1)),
        keep_dir: a.keep.clone(),
        output,
        ..FetchConfig::default()
    })?);
    let mut tally = Tally {
        skipped: skipped_gaps(&db, a, market, kind, &symbols, range, now).await?,
        ..Tally::default()
    };
    let mut round = files;
    // A monthly file Vision lacks is asked again day by day, in a second round.
    for _ in 0..2 {
        if round.is_empty() {
            break;
        }
        let gapped_months = fetch_and_store(g, a, &db, &fetcher, round, now, &mut tally).await?;
        round = Vec::new();
        for (symbol, month) in gapped_months {
            let month_range = TimeRange::new(
                month.start_ms().max(range.start),
                month.end_ms().min(range.end_exclusive),
            )?;
            round.extend(plan_symbol(Some(&db), a, market, &symbol, month_range, now).await?);
        }
    }
    // What Vision does not have yet comes from the REST API; the plan is made after the
    // Vision files are stored, so it asks only for what they left missing.
    if let Some(client) = &rest_client {
        if kind == FileKind::Funding {
            for s in &symbols {
                let plan = metrics::rest_funding_plan(Some(&db), a, market, s, range, now).await?;
                metrics::rest_funding(g, a, &db, client, market, s, &plan, now, &mut tally).await?;
            }
        } else if let Some(window) = rest::window(a, range, now) {
            for s in &symbols {
                let spans =
                    rest::spans(Some(&db), a, market, s, window, client.kline_limit(), now).await?;
                rest::fill(g, a, &db, client, market, s, &spans, now, &mut tally).await?;
            }
        }
        let stats = client.stats();
        tally.retries += stats.retries;
        tally.requests += stats.requests;
    }
    args::checkpoint_or_warn(&db).await;
    db.close().await;
    if g.json {
        output::json(&json!({
            "files": tally.files, "fetched": tally.fetched, "rows": tally.rows,
            "gaps_recorded": tally.gaps, "failed": tally.failed, "retries": tally.retries,
            "bytes": tally.bytes, "rest_requests": tally.requests,
            "skipped": tally.skipped,
        }))?;
    } else {
        outln!(
            "downloaded {} file(s), {} byte(s): {} row(s) stored, {} gap(s) recorded, \
             {} recorded gap(s) skipped, {} retr{}{}",
            tally.fetched,
            tally.bytes,
            tally.rows,
            tally.gaps,
            tally.skipped,
            tally.retries,
            if tally.retries == 1 { "y" } else { "ies" },
            if tally.failed > 0 {
                format!(", {} file(s) failed", tally.failed)
            } else {
                String::new()
            }
        );
    }
    Ok(if tally.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The files to fetch for one symbol: what is stored and what is recorded as a gap.
async fn plan_symbol(
    db: Option<&AsyncMarketDB>,
    a: &DownloadArgs,
    market: Market,
    symbol: &str,
    range: TimeRange,
    now: i64,
) -> Result<Vec<VisionFile>> {
    let (missing, gaps) = match db {
        Some(db) => {
            let report = db
                .check_completeness(range, a.kline_freq(), &[symbol.to_owned()])
                .await?;
            let missing: Vec<(i64, i64)> = report
                .symbols
                .iter()
                .flat_map(|s| s.missing.iter().map(|r| (r.start, r.end)))
                .collect();
            (
                missing,
                recorded_gaps(db, market, symbol, a.kline_freq()).await?,
            )
        }
        None => (
            vec![(range.start, range.end_exclusive.saturating_sub(1))],
            HashSet::new(),
        ),
    };
    Ok(plan::klines(&plan::PlanInput {
        market,
        symbol,
        freq: a.kline_freq(),
        range,
        missing: &missing,
        gaps: &gaps,
        now_ms: now,
        recheck_days: a.recheck_days,
    }))
}

/// Recorded gaps of `symbols` in `range` that the plan does not ask again (older than
/// `--recheck-days`).
async fn skipped_gaps(
    db: &AsyncMarketDB,
    a: &DownloadArgs,
    market: Market,
    kind: FileKind,
    symbols: &[String],
    range: TimeRange,
    now: i64,
) -> Result<u64> {
    let interval = match kind {
        FileKind::Klines => a.kline_freq().as_str(),
        _ => "",
    };
    let gaps = db
        .source_gaps(GapFilter {
            market: Some(market.as_str().to_owned()),
            kind: Some(kind.as_str().to_owned()),
            symbol: None,
            interval: Some(interval.to_owned()),
        })
        .await?;
    let old = now - a.recheck_days.max(0) * marketdb_model::time::DAY_MS;
    Ok(gaps
        .iter()
        .filter(|g| symbols.contains(&g.symbol))
        .filter_map(|g| Period::parse(&g.period))
        .filter(|p| p.start_ms() < range.end_exclusive && p.end_ms() > range.start)
        .filter(|p| p.end_ms() <= old)
        .count() as u64)
}

/// The klines periods of `symbol` and `freq` recorded as gaps.
async fn recorded_gaps(
    db: &AsyncMarketDB,
    market: Market,
    symbol: &str,
    freq: Freq,
) -> Result<HashSet<Period>> {
    Ok(db
        .source_gaps(GapFilter {
            market: Some(market.as_str().to_owned()),
            kind: Some(FileKind::Klines.as_str().to_owned()),
            symbol: Some(symbol.to_owned()),
            interval: Some(freq.as_str().to_owned()),
        })
        .await?
        .iter()
        .filter_map(|g| Period::parse(&g.period))
        .collect())
}

fn report_plan(
    g: &Global,
    a: &DownloadArgs,
    files: &[VisionFile],
    rest_plan: &[(String, rest::Span)],
) -> Result<()> {
    let time = marketdb_model::time::format_rfc3339;
    if g.json {
        let list: Vec<_> = files
            .iter()
            .map(|f| json!({"symbol": f.symbol, "period": f.period.to_string(), "url": f.url(&a.base_url)}))
            .collect();
        let rest: Vec<_> = rest_plan
            .iter()
            .map(|(s, span)| json!({"symbol": s, "first": time(span.first), "last": time(span.last)}))
            .collect();
        output::json(&json!({"dry_run": true, "files": list, "count": files.len(), "rest": rest}))?;
    } else {
        for f in files {
            outln!("{}", f.url(&a.base_url));
        }
        for (s, span) in rest_plan {
            outln!("rest api: {s} {} to {}", time(span.first), time(span.last));
        }
        outln!(
            "{} file(s) to fetch, {} range(s) to ask the rest api for",
            files.len(),
            rest_plan.len()
        );
    }
    Ok(())
}

/// One download's result, with the slot it holds (released once the file is stored, so
/// at most `--jobs` files wait on disk).
type Done = (
    VisionFile,
    marketdb_fetch::Result<Fetch>,
    tokio::sync::OwnedSemaphorePermit,
);

/// Downloads `files` (up to `--jobs` at once) and stores each as it arrives. Returns the
/// monthly files Vision lacks, by symbol.
async fn fetch_and_store(
    g: &Global,
    a: &DownloadArgs,
    db: &AsyncMarketDB,
    fetcher: &Arc<Fetcher>,
    files: Vec<VisionFile>,
    now: i64,
    tally: &mut Tally,
) -> Result<Vec<(String, Period)>> {
    let pb = progress::bar(g, files.len() as u64, "download");
    let slots = Arc::new(tokio::sync::Semaphore::new(a.jobs as usize));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let total = files.len();
    let feeder = {
        let (fetcher, slots) = (Arc::clone(fetcher), Arc::clone(&slots));
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for file in files {
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let (fetcher, tx) = (Arc::clone(&fetcher), tx.clone());
                tasks.spawn(async move {
                    let res = fetcher.fetch(&file).await;
                    let _ = tx.send((file, res, permit));
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut gapped_months = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..total {
        let Some((file, res, permit)) = rx.recv().await else {
            break;
        };
        let url = file.url(&a.base_url);
        let outcome = match res {
            Ok(f) => {
                tally.retries += u64::from(f.retries);
                f.outcome
            }
            Err(e) => {
                tally.failed += 1;
                let msg = output::escaped(&super::one_line(&anyhow::Error::new(e)));
                pb.suspend(|| eprintln!("error: {msg}"));
                tally
                    .files
                    .push(json!({"url": url, "ok": false, "error": msg}));
                pb.inc(1);
                continue;
            }
        };
        match outcome {
            Outcome::Fetched(done) => {
                tally.bytes += done.bytes();
                let mib = tally.bytes as f64 / f64::from(1u32 << 20);
                pb.set_message(format!(
                    "{mib:.1} MiB, {:.1} MiB/s",
                    mib / started.elapsed().as_secs_f64().max(1e-3)
                ));
                let overrides = Overrides {
                    kind: Some(file.kind),
                    symbol: Some(file.symbol.clone()),
                    freq: file.freq,
                };
                let stored =
                    ingest::Pending::start(done.path().to_path_buf(), &overrides, BadRows::Fail)
                        .store(db)
                        .await;
                drop(done);
                match stored {
                    Ok((rows, _)) => {
                        tally.fetched += 1;
                        tally.rows += rows as u64;
                        // A day Vision publishes with bars missing is recorded, so it is
                        // not fetched again on every run.
                        let short = match file.kind {
                            FileKind::Klines => is_partial_day(db, &file).await?,
                            _ => {
                                let (present, expected) = metrics::period_counts(db, &file).await?;
                                present < expected
                            }
                        };
                        if short {
                            record_gap(db, &file, "partial", now).await?;
                            tally.gaps += 1;
                        } else {
                            db.clear_source_gap(
                                file.market.as_str(),
                                file.kind.as_str(),
                                &file.symbol,
                                file.interval_label(),
                                &file.period.to_string(),
                            )
                            .await?;
                        }
                        if !g.json && !g.quiet {
                            pb.suspend(|| outln!("stored {url}: {rows} row(s)"));
                        }
                        tally
                            .files
                            .push(json!({"url": url, "ok": true, "rows": rows}));
                    }
                    Err(e) => {
                        tally.failed += 1;
                        let msg = output::escaped(&super::one_line(&e));
                        pb.suspend(|| eprintln!("error: {msg}"));
                        tally
                            .files
                            .push(json!({"url": url, "ok": false, "error": msg}));
                    }
                }
            }
            Outcome::NotPublished | Outcome::ChecksumMismatch { .. } => {
                let status = if matches!(outcome, Outcome::NotPublished) {
                    "not_published"
                } else {
                    "checksum_mismatch"
                };
                if let Outcome::ChecksumMismatch { expected, actual } = &outcome {
                    args::warn(
                        g,
                        &format!(
                            "{url}: checksum mismatch twice (expected {expected}, got {actual}): recorded"
                        ),
                    );
                }
                record_gap(db, &file, status, now).await?;
                tally.gaps += 1;
                if let (FileKind::Klines, Period::Month(..)) = (file.kind, file.period) {
                    gapped_months.push((file.symbol.clone(), file.period));
                }
                tally
                    .files
                    .push(json!({"url": url, "ok": true, "gap": status}));
            }
        }
        drop(permit);
        pb.inc(1);
    }
    pb.finish_and_clear();
    feeder
        .await
        .context("the download tasks stopped unexpectedly")?;
    Ok(gapped_months)
}

/// Records `file` as a gap with `status`, checked now.
async fn record_gap(db: &AsyncMarketDB, file: &VisionFile, status: &str, now: i64) -> Result<()> {
    db.record_source_gap(SourceGap {
        market: file.market.as_str().to_owned(),
        kind: file.kind.as_str().to_owned(),
        symbol: file.symbol.clone(),
        interval: file.interval_label().to_owned(),
        period: file.period.to_string(),
        status: status.to_owned(),
        first_seen: now,
        last_checked: now,
    })
    .await?;
    Ok(())
}

/// Whether a stored daily klines file left bars of its day missing.
async fn is_partial_day(db: &AsyncMarketDB, file: &VisionFile) -> Result<bool> {
    let (Period::Day(day), Some(freq)) = (file.period, file.freq) else {
        return Ok(false);
    };
    let range = TimeRange::new(day, file.period.end_ms())?;
    let report = db
        .check_completeness(range, freq, std::slice::from_ref(&file.symbol))
        .await?;
    Ok(report.symbols.iter().any(|s| s.present < s.expected))
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
            "first_seen",
            "last_checked",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
