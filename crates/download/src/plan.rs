//! What to ask for: Vision files per symbol (from what is stored and the source record),
//! and the REST ranges for what Vision does not have yet. [`plan`] is the dry run's
//! answer; the run itself plans the same way, the REST part after the Vision files are
//! stored (so it asks only for what they left missing).

use std::collections::HashSet;

use marketdb_fetch::{Market, Period, VisionFile};
use marketdb_ingest::FileKind;
use marketdb_model::TimeRange;
use marketdb_model::time::DAY_MS;
use marketdb_store::AsyncMarketDB;
use serde::Serialize;

use crate::Result;
use crate::record::{self, SeriesRecord};
use crate::request::{DownloadRequest, Source};

/// Missing bars to ask the REST API for: open times `first..=last`, at most a page or a
/// few apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub first: i64,
    pub last: i64,
}

/// A REST range of one symbol: klines open times, or a funding month `[lo, hi)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestRange {
    pub symbol: String,
    pub first: i64,
    pub last: i64,
}

/// What a run would ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub files: Vec<VisionFile>,
    pub rest: Vec<RestRange>,
}

/// The dry run: the Vision files and the REST ranges a run would ask for now.
pub async fn plan(db: Option<&AsyncMarketDB>, req: &DownloadRequest, now: i64) -> Result<Plan> {
    req.check()?;
    let mut out = Plan::default();
    if req.source != Source::Rest {
        for s in &req.symbols {
            let Some(req) = req.for_symbol(s) else {
                continue;
            };
            out.files
                .extend(vision_files(db, &req, s, req.range, now).await?);
        }
    }
    if !req.uses_rest() {
        return Ok(out);
    }
    let page = rest_page(req);
    for s in &req.symbols {
        let Some(req) = &req.for_symbol(s) else {
            continue;
        };
        if req.kind == FileKind::Funding {
            for (_, lo, hi) in funding_months(db, req, s, now).await? {
                out.rest.push(RestRange {
                    symbol: s.clone(),
                    first: lo,
                    last: hi - 1,
                });
            }
        } else if let Some(window) = rest_window(req, now) {
            for span in rest_spans(db, req, s, window, page, now).await? {
                out.rest.push(RestRange {
                    symbol: s.clone(),
                    first: span.first,
                    last: span.last,
                });
            }
        }
    }
    Ok(out)
}

/// Klines per REST page (the exchange's limit).
pub(crate) fn rest_page(req: &DownloadRequest) -> u32 {
    req.market.kline_page()
}

/// The Vision files to fetch for one symbol in `range`.
pub(crate) async fn vision_files(
    db: Option<&AsyncMarketDB>,
    req: &DownloadRequest,
    symbol: &str,
    range: TimeRange,
    now: i64,
) -> Result<Vec<VisionFile>> {
    let record = SeriesRecord::read(db, req.market, req.kind, symbol, req.file_freq()).await?;
    let skip = record.skip(now, req.recheck_days);
    if req.kind != FileKind::Klines {
        return other_files(db, req, symbol, range, &skip, now).await;
    }
    let missing: Vec<(i64, i64)> = match db {
        Some(db) => db
            .check_completeness(range, req.kline_freq(), &[symbol.to_owned()])
            .await?
            .symbols
            .iter()
            .flat_map(|s| s.missing.iter().map(|r| (r.start, r.end)))
            .collect(),
        None => vec![(range.start, range.end_exclusive.saturating_sub(1))],
    };
    let mut months = record.months_by_day();
    // With the catalog's word, a month without a monthly file is asked day by day.
    if let Some(life) = req.lives.get(symbol) {
        let mut month = Period::month_of(range.start);
        while month.start_ms() < range.end_exclusive {
            let listed = life
                .monthly
                .is_some_and(|(a, b)| month.start_ms() >= a && month.end_ms() <= b);
            if !listed {
                months.insert(month);
            }
            month = Period::month_of(month.end_ms());
        }
    }
    Ok(marketdb_fetch::plan::klines(
        &marketdb_fetch::plan::PlanInput {
            market: req.market,
            symbol,
            freq: req.kline_freq(),
            range,
            missing: &missing,
            skip: &skip,
            months_by_day: &months,
            now_ms: now,
        },
    ))
}

/// The periods of a non-kline `kind` overlapping `[start, end)`: months for funding, days
/// for metrics.
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

/// A non-kline Vision file.
pub(crate) fn other_file(
    market: Market,
    kind: FileKind,
    symbol: &str,
    period: Period,
) -> VisionFile {
    VisionFile {
        market,
        kind,
        symbol: symbol.to_owned(),
        freq: None,
        period,
    }
}

/// Funding or metrics files: closed periods short of rows, not skipped by the record.
async fn other_files(
    db: Option<&AsyncMarketDB>,
    req: &DownloadRequest,
    symbol: &str,
    range: TimeRange,
    skip: &HashSet<Period>,
    now: i64,
) -> Result<Vec<VisionFile>> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let times = match db {
        Some(db) => record::stored_times(db, req.kind, symbol, range).await?,
        None => Vec::new(),
    };
    Ok(periods(req.kind, range.start, range.end_exclusive)
        .into_iter()
        .filter(|p| p.end_ms() <= today && !skip.contains(p))
        .filter(|&p| {
            let (lo, hi) = (
                p.start_ms().max(range.start),
                p.end_ms().min(range.end_exclusive),
            );
            record::count_in(&times, lo, hi) < record::expected_rows(req.kind, lo, hi)
        })
        .map(|p| other_file(req.market, req.kind, symbol, p))
        .collect())
}

/// The part of the range the REST API is asked for klines, if any: bars closed by `now`;
/// with `auto`, only the last `recheck_days` days and today (Vision publishes a day after
/// it ends).
pub(crate) fn rest_window(req: &DownloadRequest, now: i64) -> Option<TimeRange> {
    let start = match req.source {
        Source::Vision => return None,
        Source::Rest => req.range.start,
        Source::Auto => {
            let today = now.div_euclid(DAY_MS) * DAY_MS;
            req.range
                .start
                .max(today.saturating_sub(req.recheck_days.max(0).saturating_mul(DAY_MS)))
        }
    };
    // A bar that opened less than its length ago is still open.
    let end = req.range.end_exclusive.min(
        now.saturating_sub(req.kline_freq().nominal_ms())
            .saturating_add(1),
    );
    (start < end).then_some(TimeRange {
        start,
        end_exclusive: end,
    })
}

/// The missing bars of `symbol` in `window`, without the days the record skips, merged
/// into spans one or two requests cover (holes a few bars apart cost one request, not one
/// each).
pub(crate) async fn rest_spans(
    db: Option<&AsyncMarketDB>,
    req: &DownloadRequest,
    symbol: &str,
    window: TimeRange,
    page: u32,
    now: i64,
) -> Result<Vec<Span>> {
    let freq = req.kline_freq();
    let skip = SeriesRecord::read(db, req.market, FileKind::Klines, symbol, Some(freq))
        .await?
        .skip(now, req.recheck_days);
    let runs: Vec<(i64, i64)> = match db {
        Some(db) => db
            .check_completeness(window, freq, &[symbol.to_owned()])
            .await?
            .symbols
            .iter()
            .flat_map(|s| s.missing.iter().map(|r| (r.start, r.end)))
            .collect(),
        None => {
            let mut grid = freq.grid(window.start, window.end_exclusive);
            match grid.next() {
                Some(first) => vec![(first, grid.last().unwrap_or(first))],
                None => Vec::new(),
            }
        }
    };
    // Runs split at day bounds, so a skipped day drops out alone.
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
            if !skip.contains(&Period::Day(day)) {
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

/// Funding months the REST API is asked for: those short of rows in the range (up to
/// now) that Vision does not cover: every one with `rest`, the young and the current ones
/// with `auto`; none the record skips. Returns each month with its `[lo, hi)`.
pub(crate) async fn funding_months(
    db: Option<&AsyncMarketDB>,
    req: &DownloadRequest,
    symbol: &str,
    now: i64,
) -> Result<Vec<(Period, i64, i64)>> {
    let end = req.range.end_exclusive.min(now);
    if req.source == Source::Vision || end <= req.range.start {
        return Ok(Vec::new());
    }
    let window = TimeRange::new(req.range.start, end)?;
    let times = match db {
        Some(db) => record::stored_times(db, FileKind::Funding, symbol, window).await?,
        None => Vec::new(),
    };
    let skip = SeriesRecord::read(db, req.market, FileKind::Funding, symbol, None)
        .await?
        .skip(now, req.recheck_days);
    let young = |p: Period| p.end_ms() > now - req.recheck_days.max(0) * DAY_MS;
    Ok(
        periods(FileKind::Funding, window.start, window.end_exclusive)
            .into_iter()
            .filter(|&p| req.source == Source::Rest || young(p))
            .filter(|p| !skip.contains(p))
            .filter_map(|p| {
                let (lo, hi) = (
                    p.start_ms().max(window.start),
                    p.end_ms().min(window.end_exclusive),
                );
                (record::count_in(&times, lo, hi)
                    < record::expected_rows(FileKind::Funding, lo, hi))
                .then_some((p, lo, hi))
            })
            .collect(),
    )
}

/// Recorded periods of `req`'s symbols in its range that the record says not to ask
/// again.
pub(crate) async fn skipped(db: &AsyncMarketDB, req: &DownloadRequest, now: i64) -> Result<u64> {
    let mut n = 0;
    for s in &req.symbols {
        let Some(req) = &req.for_symbol(s) else {
            continue;
        };
        let skip = SeriesRecord::read(Some(db), req.market, req.kind, s, req.file_freq())
            .await?
            .skip(now, req.recheck_days);
        n += skip
            .iter()
            .filter(|p| p.start_ms() < req.range.end_exclusive && p.end_ms() > req.range.start)
            .count() as u64;
    }
    Ok(n)
}
