//! `download --kind funding|metrics`: Binance Vision's monthly funding-rate files and
//! daily metrics files (open interest and long/short ratios every 5 minutes), and funding
//! rates from the REST API for months Vision does not publish yet.
//!
//! A period is complete when it holds at least the rows Binance's slowest cadence gives
//! (funding every 8 hours, metrics every 5 minutes): a symbol with hourly funding has more,
//! never fewer. A closed period still short after its file is stored is recorded as
//! `partial`, so it is not asked again. The REST API has no metrics history beyond a few
//! weeks, so metrics come from Vision only.

use std::collections::HashSet;

use anyhow::Result;
use marketdb_fetch::{Market, Period, RestClient, VisionFile};
use marketdb_ingest::FileKind;
use marketdb_model::time::DAY_MS;
use marketdb_model::{Freq, TimeRange};
use marketdb_store::{AsyncMarketDB, GapFilter};
use serde_json::json;

use super::{DownloadArgs, Source, Tally};
use crate::cli::Global;

const HOUR_MS: i64 = 3_600_000;

/// The slowest cadence of `kind`'s rows.
fn cadence(kind: FileKind) -> i64 {
    match kind {
        FileKind::Funding => 8 * HOUR_MS,
        _ => 300_000,
    }
}

/// Rows of `kind` a whole `[lo, hi)` holds at least.
fn expected(kind: FileKind, lo: i64, hi: i64) -> u64 {
    u64::try_from((hi - lo).max(0) / cadence(kind)).unwrap_or(0)
}

/// The stored row times of `symbol` in `range`, ascending.
async fn stored_times(
    db: &AsyncMarketDB,
    kind: FileKind,
    symbol: &str,
    range: TimeRange,
) -> Result<Vec<i64>> {
    let symbols = [symbol.to_owned()];
    let mut times: Vec<i64> = match kind {
        FileKind::Funding => db
            .read_funding_rate(range, &symbols, false)
            .await?
            .iter()
            .map(|r| r.funding_time)
            .collect(),
        _ => db
            .read_open_interest(range, &symbols, Freq::M5, false)
            .await?
            .iter()
            .map(|r| r.time)
            .collect(),
    };
    times.sort_unstable();
    Ok(times)
}

fn count_in(times: &[i64], lo: i64, hi: i64) -> u64 {
    (times.partition_point(|&t| t < hi) - times.partition_point(|&t| t < lo)) as u64
}

/// The periods of `kind` overlapping `[start, end)`: months for funding, days for metrics.
fn periods(kind: FileKind, start: i64, end: i64) -> Vec<Period> {
    let mut out = Vec::new();
    let mut p = match kind {
        FileKind::Funding => Period::month_of(start),
        _ => Period::day_of(start),
    };
    while p.start_ms() < end {
        out.push(p);
        p = match kind {
            FileKind::Funding => Period::month_of(p.end_ms()),
            _ => Period::day_of(p.end_ms()),
        };
    }
    out
}

async fn recorded(
    db: Option<&AsyncMarketDB>,
    market: Market,
    kind: FileKind,
    symbol: &str,
) -> Result<HashSet<Period>> {
    let Some(db) = db else {
        return Ok(HashSet::new());
    };
    Ok(db
        .source_gaps(GapFilter {
            market: Some(market.as_str().to_owned()),
            kind: Some(kind.as_str().to_owned()),
            symbol: Some(symbol.to_owned()),
            interval: Some(String::new()),
        })
        .await?
        .iter()
        .filter_map(|g| Period::parse(&g.period))
        .collect())
}

fn file(market: Market, kind: FileKind, symbol: &str, period: Period) -> VisionFile {
    VisionFile {
        market,
        kind,
        symbol: symbol.to_owned(),
        freq: None,
        period,
    }
}

/// The Vision files to fetch for one symbol: closed periods short of rows, without
/// recorded gaps (unless younger than `--recheck-days`).
pub(super) async fn plan(
    db: Option<&AsyncMarketDB>,
    a: &DownloadArgs,
    market: Market,
    kind: FileKind,
    symbol: &str,
    range: TimeRange,
    now: i64,
) -> Result<Vec<VisionFile>> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let times = match db {
        Some(db) => stored_times(db, kind, symbol, range).await?,
        None => Vec::new(),
    };
    let gaps = recorded(db, market, kind, symbol).await?;
    let old = |p: Period| p.end_ms() <= now - a.recheck_days.max(0) * DAY_MS;
    Ok(periods(kind, range.start, range.end_exclusive)
        .into_iter()
        .filter(|p| p.end_ms() <= today)
        .filter(|&p| {
            let (lo, hi) = (
                p.start_ms().max(range.start),
                p.end_ms().min(range.end_exclusive),
            );
            count_in(&times, lo, hi) < expected(kind, lo, hi) && !(gaps.contains(&p) && old(p))
        })
        .map(|p| file(market, kind, symbol, p))
        .collect())
}

/// The rows stored in `f`'s period and the rows it should hold at least.
pub(super) async fn period_counts(db: &AsyncMarketDB, f: &VisionFile) -> Result<(u64, u64)> {
    let (lo, hi) = (f.period.start_ms(), f.period.end_ms());
    let times = stored_times(db, f.kind, &f.symbol, TimeRange::new(lo, hi)?).await?;
    Ok((times.len() as u64, expected(f.kind, lo, hi)))
}

/// Funding months the REST API is asked for: those short of rows in the range (up to
/// now) that Vision does not cover: every one with `--source rest`, the young and the
/// current ones with `--source auto`. Returns the `[lo, hi)` of each.
pub(super) async fn rest_funding_plan(
    db: Option<&AsyncMarketDB>,
    a: &DownloadArgs,
    market: Market,
    symbol: &str,
    range: TimeRange,
    now: i64,
) -> Result<Vec<(Period, i64, i64)>> {
    let end = range.end_exclusive.min(now);
    if a.source == Source::Vision || end <= range.start {
        return Ok(Vec::new());
    }
    let window = TimeRange::new(range.start, end)?;
    let times = match db {
        Some(db) => stored_times(db, FileKind::Funding, symbol, window).await?,
        None => Vec::new(),
    };
    let gaps = recorded(db, market, FileKind::Funding, symbol).await?;
    let young = |p: Period| p.end_ms() > now - a.recheck_days.max(0) * DAY_MS;
    Ok(
        periods(FileKind::Funding, window.start, window.end_exclusive)
            .into_iter()
            .filter(|&p| a.source == Source::Rest || young(p))
            .filter(|&p| !gaps.contains(&p) || young(p))
            .filter_map(|p| {
                let (lo, hi) = (
                    p.start_ms().max(window.start),
                    p.end_ms().min(window.end_exclusive),
                );
                (count_in(&times, lo, hi) < expected(FileKind::Funding, lo, hi))
                    .then_some((p, lo, hi))
            })
            .collect(),
    )
}

/// Asks for and stores the funding rates of `plan`, page by page (one transaction
/// each); a closed old month still short afterwards is recorded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rest_funding(
    g: &Global,
    a: &DownloadArgs,
    db: &AsyncMarketDB,
    client: &RestClient,
    market: Market,
    symbol: &str,
    plan: &[(Period, i64, i64)],
    now: i64,
    tally: &mut Tally,
) -> Result<()> {
    for &(p, lo, hi) in plan {
        let mut next = lo;
        let mut rows = 0u64;
        while next < hi {
            let page = match client.funding_page(symbol, next, hi).await {
                Ok(page) => page,
                Err(e) => {
                    tally.rest_failed(g, e, json!({"rest": symbol, "period": p.to_string()}));
                    return Ok(());
                }
            };
            let Some(last) = page.last().map(|r| r.funding_time) else {
                break;
            };
            let full = page.len() >= 1000;
            rows += db.store_funding_rate(page).await? as u64;
            next = last + 1;
            if !full {
                break;
            }
        }
        tally.rows += rows;
        tally
            .files
            .push(json!({"rest": symbol, "period": p.to_string(), "ok": true, "rows": rows}));
        if !g.json && !g.quiet {
            outln!("stored {rows} funding rate(s) of {symbol} for {p} from the rest api");
        }
        let old = p.end_ms() <= now - a.recheck_days.max(0) * DAY_MS;
        if old && lo == p.start_ms() && hi == p.end_ms() {
            let f = file(market, FileKind::Funding, symbol, p);
            let (present, expected) = period_counts(db, &f).await?;
            if present < expected {
                let status = if present == 0 {
                    "not_published"
                } else {
                    "partial"
                };
                super::record_gap(db, &f, status, now).await?;
                tally.gaps += 1;
            }
        }
    }
    Ok(())
}
