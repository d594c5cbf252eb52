//! The REST half of `download`: bars Vision does not publish yet, asked page by page from
//! the exchange's klines endpoint. With `--source auto` that is what is still missing of
//! the last `--recheck-days` days and of today (Vision publishes a day after it ends);
//! with `--source rest`, everything missing in the range. Each page is stored in one
//! transaction, so an interrupted run keeps whole pages and a re-run asks only for what
//! is still missing. Only closed bars are stored. A closed day the exchange leaves
//! incomplete is recorded in `source_gaps` (`partial`, or `not_published` when it has no
//! bar at all), as for Vision files, and not asked again once it is older than
//! `--recheck-days`.

use std::collections::{BTreeSet, HashSet};

use anyhow::Result;
use marketdb_fetch::{Market, Period, RestClient, VisionFile};
use marketdb_model::TimeRange;
use marketdb_model::time::DAY_MS;
use marketdb_store::AsyncMarketDB;
use serde_json::json;

use super::{DownloadArgs, Source, Tally};
use crate::cli::Global;

/// Missing bars to ask for: open times `first..=last`, at most a page or a few apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub first: i64,
    pub last: i64,
}

/// The part of `range` the REST API is asked for, if any: bars closed by `now`.
pub(super) fn window(a: &DownloadArgs, range: TimeRange, now: i64) -> Option<TimeRange> {
    let start = match a.source {
        Source::Vision => return None,
        Source::Rest => range.start,
        Source::Auto => {
            let today = now.div_euclid(DAY_MS) * DAY_MS;
            range
                .start
                .max(today.saturating_sub(a.recheck_days.max(0).saturating_mul(DAY_MS)))
        }
    };
    // A bar that opened less than its length ago is still open.
    let end = range.end_exclusive.min(
        now.saturating_sub(a.kline_freq().nominal_ms())
            .saturating_add(1),
    );
    (start < end).then_some(TimeRange {
        start,
        end_exclusive: end,
    })
}

/// The missing bars of `symbol` in `window`, without days recorded as gaps (unless
/// younger than `--recheck-days`), merged into spans that one or two requests cover
/// (holes a few bars apart cost one request, not one each).
pub(super) async fn spans(
    db: Option<&AsyncMarketDB>,
    a: &DownloadArgs,
    market: Market,
    symbol: &str,
    window: TimeRange,
    page: u32,
    now: i64,
) -> Result<Vec<Span>> {
    let freq = a.kline_freq();
    let gaps: HashSet<Period> = match db {
        Some(db) => super::recorded_gaps(db, market, symbol, freq).await?,
        None => HashSet::new(),
    };
    let skip = |day: i64| {
        gaps.contains(&Period::Day(day))
            && day + DAY_MS <= now - a.recheck_days.max(0).saturating_mul(DAY_MS)
    };
    let runs: Vec<(i64, i64)> = match db {
        Some(db) => db
            .check_completeness(window, freq, &[symbol.to_owned()])
            .await?
            .symbols
            .iter()
            .flat_map(|s| s.missing.iter().map(|r| (r.start, r.end)))
            .collect(),
        None => freq
            .grid(window.start, window.end_exclusive)
            .next()
            .map(|first| {
                let last = freq
                    .grid(window.start, window.end_exclusive)
                    .last()
                    .unwrap_or(first);
                vec![(first, last)]
            })
            .unwrap_or_default(),
    };
    // Runs split at day bounds, so a recorded day drops out alone.
    let mut pieces = Vec::new();
    for (first, last) in runs {
        if freq.nominal_ms() >= DAY_MS {
            pieces.push((first, last));
            continue;
        }
        let mut lo = first;
        while lo <= last {
            let day = lo.div_euclid(DAY_MS) * DAY_MS;
            let hi = last.min(day + DAY_MS - 1);
            if !skip(day) {
                let end = freq.grid(lo, hi + 1).last().unwrap_or(lo);
                pieces.push((lo, end));
            }
            lo = day + DAY_MS;
        }
    }
    let reach = freq.nominal_ms().saturating_mul(i64::from(page));
    let mut out: Vec<Span> = Vec::new();
    for (first, last) in pieces {
        match out.last_mut() {
            Some(s) if last - s.first < reach => s.last = last,
            _ => out.push(Span { first, last }),
        }
    }
    Ok(out)
}

/// Asks for and stores `spans` of `symbol`, then records the closed days the exchange
/// left incomplete; a failed request ends the symbol (counted as failed) and the next run
/// asks again.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fill(
    g: &Global,
    a: &DownloadArgs,
    db: &AsyncMarketDB,
    client: &RestClient,
    market: Market,
    symbol: &str,
    spans: &[Span],
    now: i64,
    tally: &mut Tally,
) -> Result<()> {
    let mut days = BTreeSet::new();
    for span in spans {
        let mut day = span.first.div_euclid(DAY_MS) * DAY_MS;
        while day <= span.last {
            days.insert(day);
            day += DAY_MS;
        }
        let mut next = span.first;
        let mut rows = 0u64;
        while next <= span.last {
            let page = match client
                .klines_page(symbol, a.kline_freq(), next, span.last + 1, now)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tally.rest_failed(
                        g,
                        e,
                        json!({"rest": symbol, "first": span.first, "last": span.last}),
                    );
                    return Ok(());
                }
            };
            if page.is_empty() {
                break;
            }
            let last = page.last().map_or(span.last, |k| k.open_time);
            rows += db.store_data(page, a.kline_freq()).await? as u64;
            next = last + 1;
        }
        tally.rows += rows;
        if !g.json && !g.quiet {
            outln!(
                "stored {rows} row(s) of {symbol} from the rest api ({} to {})",
                marketdb_model::time::format_rfc3339(span.first),
                marketdb_model::time::format_rfc3339(span.last)
            );
        }
        tally.files.push(json!({
            "rest": symbol, "first": span.first, "last": span.last, "ok": true, "rows": rows,
        }));
    }
    if a.kline_freq().nominal_ms() < DAY_MS {
        for day in days.into_iter().filter(|d| d + DAY_MS <= now) {
            let file = VisionFile::klines(market, symbol, a.kline_freq(), Period::Day(day));
            let range = TimeRange::new(day, day + DAY_MS)?;
            let report = db
                .check_completeness(range, a.kline_freq(), &[symbol.to_owned()])
                .await?;
            let (present, expected) = report
                .symbols
                .iter()
                .fold((0, 0), |(p, e), s| (p + s.present, e + s.expected));
            if present < expected {
                let status = if present == 0 {
                    "not_published"
                } else {
                    "partial"
                };
                super::record_gap(db, &file, status, now).await?;
                tally.gaps += 1;
            }
        }
    }
    Ok(())
}
