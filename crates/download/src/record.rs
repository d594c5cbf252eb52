//! Reading and writing the source record (`source_gaps`) through the rule in
//! [`crate::rule`]: the periods a plan skips, the months whose days are asked instead, and
//! the judgement of a period once a source answered for it. Also how many rows a period
//! should hold, per kind (one place, used by the plans and the judgements alike).

use std::collections::HashSet;

use marketdb_fetch::{Market, Period, VisionFile};
use marketdb_ingest::FileKind;
use marketdb_model::{Freq, TimeRange};
use marketdb_store::{AsyncMarketDB, GapFilter, SourceGap};

use crate::Result;
use crate::rule::{self, GapKind, Recorded};

const HOUR_MS: i64 = 3_600_000;

/// The recorded gaps of one series (market, kind, symbol and kline interval).
#[derive(Clone, Debug, Default)]
pub struct SeriesRecord {
    pub gaps: Vec<Recorded>,
}

impl SeriesRecord {
    /// Reads the record of a series; an absent database has none.
    pub async fn read(
        db: Option<&AsyncMarketDB>,
        market: Market,
        kind: FileKind,
        symbol: &str,
        freq: Option<Freq>,
    ) -> Result<SeriesRecord> {
        let Some(db) = db else {
            return Ok(SeriesRecord::default());
        };
        let list = db
            .source_gaps(GapFilter {
                market: Some(market.as_str().to_owned()),
                kind: Some(kind.as_str().to_owned()),
                symbol: Some(symbol.to_owned()),
                interval: Some(freq.map_or("", Freq::as_str).to_owned()),
            })
            .await?;
        Ok(SeriesRecord {
            gaps: list
                .iter()
                .filter_map(|g| {
                    Some(Recorded {
                        period: Period::parse(&g.period)?,
                        kind: GapKind::parse(&g.status),
                        last_checked: g.last_checked,
                    })
                })
                .collect(),
        })
    }

    /// The periods not asked again at `now`.
    pub fn skip(&self, now: i64, recheck_days: i64) -> HashSet<Period> {
        self.gaps
            .iter()
            .filter(|r| !rule::ask_again(r, now, recheck_days))
            .map(|r| r.period)
            .collect()
    }

    /// Months Vision answered 404 for (now or not yet): their days are asked instead.
    pub fn months_by_day(&self) -> HashSet<Period> {
        self.gaps
            .iter()
            .filter(|r| matches!(r.period, Period::Month(..)))
            .filter(|r| matches!(r.kind, GapKind::NotPublished | GapKind::NotYetPublished))
            .map(|r| r.period)
            .collect()
    }

    /// Whether `period` has a record.
    pub fn has(&self, period: Period) -> bool {
        self.gaps.iter().any(|r| r.period == period)
    }
}

/// Records `kind` for `file`'s period, asked at `now`, with the answer that shows it.
pub async fn write(
    db: &AsyncMarketDB,
    file: &VisionFile,
    kind: GapKind,
    answer: &str,
    now: i64,
) -> Result<()> {
    db.record_source_gap(SourceGap {
        market: file.market.as_str().to_owned(),
        kind: file.kind.as_str().to_owned(),
        symbol: file.symbol.clone(),
        interval: file.interval_label().to_owned(),
        period: file.period.to_string(),
        status: kind.as_str().to_owned(),
        answer: answer.to_owned(),
        first_seen: now,
        last_checked: now,
    })
    .await?;
    Ok(())
}

/// Forgets the record of `file`'s period (its rows are all there now).
pub async fn clear(db: &AsyncMarketDB, file: &VisionFile) -> Result<bool> {
    Ok(db
        .clear_source_gap(
            file.market.as_str(),
            file.kind.as_str(),
            &file.symbol,
            file.interval_label(),
            &file.period.to_string(),
        )
        .await?)
}

/// What a judgement did to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// Complete: any record cleared.
    Complete,
    /// Recorded as this kind.
    Recorded(GapKind),
    /// Left as it was (nothing to judge by).
    Left,
}

/// Judges `file`'s period once `source` (`"vision"`, `"rest api"`) answered for it: a
/// complete period loses its record, one short of rows becomes `partial`. With
/// `keep_if_empty`, a period holding no row at all keeps the record it has (a REST API
/// that has nothing for a day Vision answered 404 for says nothing new).
pub async fn judge(
    db: &AsyncMarketDB,
    file: &VisionFile,
    source: &str,
    keep_if_empty: bool,
    now: i64,
) -> Result<Judged> {
    let (present, expected) = period_counts(db, file).await?;
    if present == 0 && keep_if_empty {
        let had = SeriesRecord::read(Some(db), file.market, file.kind, &file.symbol, file.freq)
            .await?
            .has(file.period);
        if had {
            return Ok(Judged::Left);
        }
    }
    match rule::after_stored(present, expected) {
        None => {
            clear(db, file).await?;
            Ok(Judged::Complete)
        }
        Some(kind) => {
            let answer = format!("{source}: {present} of {expected} row(s)");
            write(db, file, kind, &answer, now).await?;
            Ok(Judged::Recorded(kind))
        }
    }
}

/// The slowest cadence of `kind`'s rows (funding every 8 hours, metrics every 5 minutes):
/// a period is complete when it holds at least the rows this cadence gives (a symbol with
/// hourly funding has more, never fewer).
fn cadence(kind: FileKind) -> i64 {
    match kind {
        FileKind::Funding => 8 * HOUR_MS,
        _ => 300_000,
    }
}

/// Rows of a non-kline `kind` a whole `[lo, hi)` holds at least.
pub fn expected_rows(kind: FileKind, lo: i64, hi: i64) -> u64 {
    u64::try_from((hi - lo).max(0) / cadence(kind)).unwrap_or(0)
}

/// The stored row times of a non-kline `kind` of `symbol` in `range`, ascending.
pub async fn stored_times(
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

/// Rows in `[lo, hi)` of ascending `times`.
pub fn count_in(times: &[i64], lo: i64, hi: i64) -> u64 {
    (times.partition_point(|&t| t < hi) - times.partition_point(|&t| t < lo)) as u64
}

/// The rows stored in `file`'s period and the rows it should hold.
pub async fn period_counts(db: &AsyncMarketDB, file: &VisionFile) -> Result<(u64, u64)> {
    let range = TimeRange::new(file.period.start_ms(), file.period.end_ms())?;
    match (file.kind, file.freq) {
        (FileKind::Klines, Some(freq)) => {
            let report = db
                .check_completeness(range, freq, std::slice::from_ref(&file.symbol))
                .await?;
            Ok(report
                .symbols
                .iter()
                .fold((0, 0), |(p, e), s| (p + s.present, e + s.expected)))
        }
        (FileKind::Klines, None) => Ok((0, 0)),
        (kind, _) => {
            let times = stored_times(db, kind, &file.symbol, range).await?;
            Ok((
                times.len() as u64,
                expected_rows(kind, range.start, range.end_exclusive),
            ))
        }
    }
}

/// A recorded period as a span of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedSpan {
    pub start: i64,
    pub end_exclusive: i64,
    pub kind: GapKind,
}

/// The recorded kline periods of `freq` (every market), by symbol, as spans that do not
/// overlap, ascending: a day's record wins over its month's (it is the newer, finer
/// answer), and the month keeps the rest of its time.
pub async fn kline_spans(
    db: &AsyncMarketDB,
    freq: Freq,
) -> Result<std::collections::HashMap<String, Vec<RecordedSpan>>> {
    let gaps = db
        .source_gaps(GapFilter {
            kind: Some(FileKind::Klines.as_str().to_owned()),
            interval: Some(freq.as_str().to_owned()),
            ..GapFilter::default()
        })
        .await?;
    let mut days: std::collections::HashMap<String, Vec<RecordedSpan>> = Default::default();
    let mut months: std::collections::HashMap<String, Vec<RecordedSpan>> = Default::default();
    for g in gaps {
        let Some(p) = Period::parse(&g.period) else {
            continue;
        };
        let span = RecordedSpan {
            start: p.start_ms(),
            end_exclusive: p.end_ms(),
            kind: GapKind::parse(&g.status),
        };
        match p {
            Period::Day(_) => days.entry(g.symbol).or_default().push(span),
            Period::Month(..) => months.entry(g.symbol).or_default().push(span),
        }
    }
    let mut out = days;
    for (symbol, list) in months {
        let taken = out.get(&symbol).cloned().unwrap_or_default();
        let mut rest = Vec::new();
        for m in list {
            rest.extend(subtract(m, &taken));
        }
        out.entry(symbol).or_default().extend(rest);
    }
    for spans in out.values_mut() {
        spans.sort_by_key(|s| s.start);
    }
    Ok(out)
}

/// `span` less the time of `taken`.
fn subtract(span: RecordedSpan, taken: &[RecordedSpan]) -> Vec<RecordedSpan> {
    let mut cuts: Vec<(i64, i64)> = taken
        .iter()
        .filter(|t| t.start < span.end_exclusive && t.end_exclusive > span.start)
        .map(|t| (t.start, t.end_exclusive))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = span.start;
    for (lo, hi) in cuts {
        if lo > at {
            out.push(RecordedSpan {
                start: at,
                end_exclusive: lo,
                kind: span.kind,
            });
        }
        at = at.max(hi);
    }
    if at < span.end_exclusive {
        out.push(RecordedSpan {
            start: at,
            end_exclusive: span.end_exclusive,
            kind: span.kind,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_keeps_the_time_its_days_do_not_take() {
        let day = |d: i64, kind| RecordedSpan {
            start: d * 10,
            end_exclusive: d * 10 + 10,
            kind,
        };
        let month = RecordedSpan {
            start: 0,
            end_exclusive: 100,
            kind: GapKind::NotPublished,
        };
        let taken = [
            day(2, GapKind::Failed),
            day(3, GapKind::Partial),
            day(9, GapKind::Failed),
        ];
        let left: Vec<(i64, i64)> = subtract(month, &taken)
            .iter()
            .map(|s| (s.start, s.end_exclusive))
            .collect();
        assert_eq!(left, [(0, 20), (40, 90)]);
        assert!(subtract(day(1, GapKind::Failed), &taken).len() == 1);
    }
}
