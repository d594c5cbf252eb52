//! Completeness of funding rates with each symbol's own interval, read from the data.
//! Binance pays funding every 8 hours on most symbols, every 4, 2 or 1 hour on others, and
//! changes a symbol's interval during its life; the stored rows do not say which (the
//! Python original's table has no such column, and it must stay as it is).
//!
//! The rule: payment times are taken to the nearest hour (Binance stamps them a few
//! milliseconds off). Each gap between two payments that is 1, 2, 4 or 8 hours long
//! votes for that interval; a gap's interval is the most voted among it and the three gaps
//! on each side (a tie goes to the longer interval, so a switch is never taken for a
//! hole). A gap longer than its interval holds missing payments, one per interval step.
//! Before the first and after the last payment, the nearest gap's interval continues to
//! the range's edges; a symbol without any gap is judged at 8 hours. Payments in the three
//! days around the range are read too, so its edges are judged like its middle.

use std::collections::BTreeMap;

use marketdb_model::time::DAY_MS;
use marketdb_model::{Freq, TimeRange};
use serde::Serialize;

use crate::db::check_symbols;
use crate::{AsyncMarketDB, CompletenessReport, MissingRun, Result, SymbolCompleteness};

const HOUR_MS: i64 = 3_600_000;

/// The funding intervals Binance uses, in hours.
const INTERVAL_HOURS: [i64; 4] = [1, 2, 4, 8];

/// The interval of a series with nothing to judge from.
const DEFAULT_HOURS: i64 = 8;

/// Gaps on each side of a gap that vote for its interval.
const NEIGHBOURS: usize = 3;

/// Read around the range, so that its first and last gaps have neighbours.
const MARGIN_MS: i64 = 3 * DAY_MS;

/// From `from` (ms) on, payments came every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IntervalSpan {
    pub from: i64,
    pub interval: Freq,
}

/// [`AsyncMarketDB::check_funding_completeness`]'s answer: the report (its `freq` is 8h,
/// the nominal interval; each symbol's own are in `intervals`) and the intervals used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FundingCompleteness {
    pub report: CompletenessReport,
    /// Per symbol, the intervals used over the range, in time order.
    pub intervals: BTreeMap<String, Vec<IntervalSpan>>,
}

fn freq_of(hours: i64) -> Freq {
    match hours {
        1 => Freq::H1,
        2 => Freq::H2,
        4 => Freq::H4,
        _ => Freq::H8,
    }
}

/// The interval (hours) of each gap between `slots` (sorted, distinct hour starts).
fn gap_intervals(slots: &[i64]) -> Vec<i64> {
    let votes: Vec<Option<i64>> = slots
        .windows(2)
        .map(|w| {
            let hours = (w[1] - w[0]) / HOUR_MS;
            INTERVAL_HOURS.contains(&hours).then_some(hours)
        })
        .collect();
    (0..votes.len())
        .map(|i| {
            let lo = i.saturating_sub(NEIGHBOURS);
            let hi = (i + NEIGHBOURS + 1).min(votes.len());
            let mut counts = [0usize; INTERVAL_HOURS.len()];
            for v in votes[lo..hi].iter().flatten() {
                if let Some(k) = INTERVAL_HOURS.iter().position(|h| h == v) {
                    counts[k] += 1;
                }
            }
            // Ties go to the longer interval: `max_by_key` keeps the last maximum.
            INTERVAL_HOURS
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .max_by_key(|(_, n)| *n)
                .map_or(DEFAULT_HOURS, |(h, _)| *h)
        })
        .collect()
}

/// Adds `slot` (missing, with step `step`) to `runs`, merging with the last run.
fn push_missing(runs: &mut Vec<MissingRun>, slot: i64, step: i64) {
    if let Some(last) = runs.last_mut()
        && last.end + step == slot
    {
        last.end = slot;
        last.count += 1;
        return;
    }
    runs.push(MissingRun {
        start: slot,
        end: slot,
        count: 1,
    });
}

/// Judges one symbol's payment `times` (ms, sorted; the range and its margin) over `range`.
pub(crate) fn judge(
    symbol: String,
    times: &[i64],
    range: TimeRange,
) -> (SymbolCompleteness, Vec<IntervalSpan>) {
    let mut slots: Vec<i64> = times
        .iter()
        .map(|t| t.saturating_add(HOUR_MS / 2).div_euclid(HOUR_MS) * HOUR_MS)
        .collect();
    slots.dedup();
    let gaps = gap_intervals(&slots);
    let inside = |t: i64| t >= range.start && t < range.end_exclusive;
    let mut missing = Vec::new();
    let mut spans: Vec<IntervalSpan> = Vec::new();
    let note = |from: i64, hours: i64, spans: &mut Vec<IntervalSpan>| {
        let interval = freq_of(hours);
        if spans.last().is_none_or(|s| s.interval != interval) {
            spans.push(IntervalSpan {
                from: from.max(range.start),
                interval,
            });
        }
    };
    let first_hours = gaps.first().copied().unwrap_or(DEFAULT_HOURS);
    let last_hours = gaps.last().copied().unwrap_or(DEFAULT_HOURS);
    match slots.first() {
        // Before the first payment, its interval runs back to the range's start.
        Some(&first) if first > range.start => {
            let step = first_hours * HOUR_MS;
            let n = (first - range.start - 1).div_euclid(step);
            note(range.start, first_hours, &mut spans);
            for k in (1..=n).rev() {
                let slot = first - k * step;
                if inside(slot) {
                    push_missing(&mut missing, slot, step);
                }
            }
        }
        None => {
            // Nothing at all: the grid of the default interval.
            let step = DEFAULT_HOURS * HOUR_MS;
            note(range.start, DEFAULT_HOURS, &mut spans);
            let mut slot = Freq::H8.floor(range.start);
            if slot < range.start {
                slot += step;
            }
            while slot < range.end_exclusive {
                push_missing(&mut missing, slot, step);
                slot += step;
            }
        }
        _ => {}
    }
    for (i, w) in slots.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if b <= range.start || a >= range.end_exclusive {
            continue;
        }
        let hours = gaps[i];
        note(a, hours, &mut spans);
        let step = hours * HOUR_MS;
        let mut slot = a + step;
        while slot < b {
            if inside(slot) {
                push_missing(&mut missing, slot, step);
            }
            slot += step;
        }
    }
    if let Some(&last) = slots.last()
        && last < range.end_exclusive
    {
        // After the last payment, its interval runs on to the range's end.
        let step = last_hours * HOUR_MS;
        if last + step < range.end_exclusive {
            note(last, last_hours, &mut spans);
        }
        let mut slot = last + step;
        while slot < range.end_exclusive {
            if inside(slot) {
                push_missing(&mut missing, slot, step);
            }
            slot += step;
        }
    }
    if spans.is_empty() {
        note(range.start, first_hours, &mut spans);
    }
    let present = slots.iter().filter(|&&s| inside(s)).count() as u64;
    let lost: u64 = missing.iter().map(|r| r.count).sum();
    let expected = present + lost;
    let report = SymbolCompleteness {
        symbol,
        expected,
        present,
        coverage: if expected == 0 {
            1.0
        } else {
            present as f64 / expected as f64
        },
        missing,
        suspicious: Vec::new(),
    };
    (report, spans)
}

impl AsyncMarketDB {
    /// Completeness of funding rates over `range` for `symbols` (every symbol of the
    /// funding table when empty), each judged with its own interval, read from its
    /// payments (see the module docs); the intervals used are in the answer.
    pub async fn check_funding_completeness(
        &self,
        range: TimeRange,
        symbols: &[String],
    ) -> Result<FundingCompleteness> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let (lo, hi) = (
            range.start.saturating_sub(MARGIN_MS),
            range.end_exclusive.saturating_add(MARGIN_MS),
        );
        let judged = self
            .read(move |c, t| {
                let symbols = crate::metrics::symbols_of(c, t.funding, &symbols)?;
                let mut stmt = c.prepare(&format!(
                    "SELECT DISTINCT timestamp FROM {} WHERE symbol = ?1 AND timestamp >= ?2 \
                     AND timestamp < ?3 ORDER BY timestamp",
                    t.funding
                ))?;
                let mut out = Vec::with_capacity(symbols.len());
                for s in symbols {
                    let times = stmt
                        .query_map(rusqlite::params![s, lo, hi], |r| r.get::<_, i64>(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()?;
                    out.push(judge(s, &times, range));
                }
                Ok(out)
            })
            .await?;
        let mut intervals = BTreeMap::new();
        let mut list = Vec::with_capacity(judged.len());
        for (report, spans) in judged {
            intervals.insert(report.symbol.clone(), spans);
            list.push(report);
        }
        Ok(FundingCompleteness {
            report: CompletenessReport {
                freq: Freq::H8,
                range,
                symbols: list,
            },
            intervals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;
    /// A few milliseconds late, as Binance stamps funding.
    const LATE: i64 = 7;

    fn every(from: i64, to: i64, hours: i64) -> Vec<i64> {
        (0..)
            .map(|k| from + k * hours * H)
            .take_while(|&t| t < to)
            .map(|t| t + LATE)
            .collect()
    }

    #[test]
    fn a_switch_from_8h_to_4h_is_complete_when_every_payment_is_there() {
        let switch = 10 * DAY_MS;
        let mut times = every(0, switch, 8);
        times.extend(every(switch, 20 * DAY_MS, 4));
        let range = TimeRange::new(2 * DAY_MS, 18 * DAY_MS).unwrap();
        let (report, spans) = judge("X".into(), &times, range);
        assert_eq!(report.missing, vec![]);
        assert_eq!(report.present, 8 * 3 + 8 * 6);
        assert_eq!(report.expected, report.present);
        assert_eq!(
            spans,
            vec![
                IntervalSpan {
                    from: 2 * DAY_MS,
                    interval: Freq::H8
                },
                IntervalSpan {
                    from: switch,
                    interval: Freq::H4
                },
            ]
        );
    }

    #[test]
    fn a_missing_4h_payment_is_reported_at_its_time() {
        let switch = 10 * DAY_MS;
        let lost = switch + 3 * DAY_MS + 8 * H;
        let mut times = every(0, switch, 8);
        times.extend(
            every(switch, 20 * DAY_MS, 4)
                .into_iter()
                .filter(|&t| t != lost + LATE),
        );
        let range = TimeRange::new(2 * DAY_MS, 18 * DAY_MS).unwrap();
        let (report, _) = judge("X".into(), &times, range);
        assert_eq!(
            report.missing,
            vec![MissingRun {
                start: lost,
                end: lost,
                count: 1
            }]
        );
        assert_eq!(report.expected, report.present + 1);
        // Two in a row in the 8h part, too.
        let mut times = every(0, switch, 8);
        times.retain(|&t| t != 4 * DAY_MS + LATE && t != 4 * DAY_MS + 8 * H + LATE);
        times.extend(every(switch, 20 * DAY_MS, 4));
        let (report, _) = judge("X".into(), &times, range);
        assert_eq!(
            report.missing,
            vec![MissingRun {
                start: 4 * DAY_MS,
                end: 4 * DAY_MS + 8 * H,
                count: 2
            }]
        );
    }

    #[test]
    fn edges_and_empty_series_follow_the_nearest_interval() {
        let range = TimeRange::new(0, 2 * DAY_MS).unwrap();
        // 1h funding that stops at noon of the second day: the rest of it is missing.
        let times = every(0, DAY_MS + 12 * H, 1);
        let (report, spans) = judge("X".into(), &times, range);
        assert_eq!(report.missing.len(), 1);
        assert_eq!(report.missing[0].start, DAY_MS + 12 * H);
        assert_eq!(report.missing[0].count, 12);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].interval, Freq::H1);
        // Nothing stored: the 8h grid, all missing.
        let (report, spans) = judge("Y".into(), &[], range);
        assert_eq!(report.expected, 6);
        assert_eq!(report.present, 0);
        assert_eq!(spans[0].interval, Freq::H8);
    }

    #[test]
    fn payments_stamped_a_little_early_or_late_fall_in_their_hour() {
        // Every other payment 2 ms before the hour: taken down to the hour below, it
        // would make 7h and 9h gaps and false holes.
        let times: Vec<i64> = (0..60)
            .map(|k| k * 8 * H + if k % 2 == 0 { -2 } else { LATE })
            .collect();
        let range = TimeRange::new(DAY_MS, 15 * DAY_MS).unwrap();
        let (report, spans) = judge("X".into(), &times, range);
        assert_eq!(report.missing, vec![]);
        assert_eq!(report.present, 14 * 3);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].interval, Freq::H8);
    }
}
