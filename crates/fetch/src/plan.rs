//! Which Vision files to fetch for one symbol and interval over a range, from what is
//! stored (the missing bars, as runs of open times) and from the record of files Vision
//! does not have. Rules:
//! - only closed UTC days are asked for (Vision publishes a day after it ends);
//! - a calendar month wholly inside the range, closed, with nothing stored, is one monthly
//!   file, unless Vision answered 404 for that monthly file: then its days are asked one
//!   by one;
//! - any other day with a missing bar is a daily file;
//! - a period in `skip` is not asked (the caller's gap record decides which: see the
//!   download crate's rule);
//! - intervals above a day have no daily files: each month with a missing bar is a
//!   monthly file.
//!
//! Pure: the caller reads the store and the gap record.

use std::collections::HashSet;

use marketdb_model::time::DAY_MS;
use marketdb_model::{Freq, TimeRange};

use crate::{Market, Period, VisionFile};

/// What the planner needs to know besides the range.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub market: Market,
    pub symbol: &'a str,
    pub freq: Freq,
    pub range: TimeRange,
    /// Missing bars as inclusive runs of open times `(first, last)`, ascending.
    pub missing: &'a [(i64, i64)],
    /// Periods not to ask for (recorded gaps the record says not to ask again).
    pub skip: &'a HashSet<Period>,
    /// Monthly files Vision answered 404 for: their days are asked instead.
    pub months_by_day: &'a HashSet<Period>,
    /// The current time in ms.
    pub now_ms: i64,
}

/// The kline files to fetch, in time order.
pub fn klines(input: &PlanInput<'_>) -> Vec<VisionFile> {
    let today = input.now_ms.div_euclid(DAY_MS) * DAY_MS;
    let end = input.range.end_exclusive.min(today);
    if end <= input.range.start {
        return Vec::new();
    }
    let range = TimeRange {
        start: input.range.start,
        end_exclusive: end,
    };
    let skip = |p: Period| input.skip.contains(&p);
    let file = |p: Period| VisionFile::klines(input.market, input.symbol, input.freq, p);
    let missing_in = |lo: i64, hi: i64| missing_bars(input.freq, input.missing, lo, hi);
    let mut out = Vec::new();
    let mut month = Period::month_of(range.start);
    while month.start_ms() < range.end_exclusive {
        let (lo, hi) = (
            month.start_ms().max(range.start),
            month.end_ms().min(range.end_exclusive),
        );
        let next = Period::month_of(month.end_ms());
        if input.freq.nominal_ms() > DAY_MS {
            if missing_in(lo, hi) > 0 && !skip(month) {
                out.push(file(month));
            }
            month = next;
            continue;
        }
        let whole = lo == month.start_ms() && hi == month.end_ms();
        let expected = input.freq.grid(lo, hi).count() as u64;
        if whole
            && expected > 0
            && missing_in(lo, hi) == expected
            && !input.months_by_day.contains(&month)
            && !skip(month)
        {
            out.push(file(month));
        } else {
            let mut day = lo.div_euclid(DAY_MS) * DAY_MS;
            while day < hi {
                let p = Period::Day(day);
                if missing_in(day.max(lo), (day + DAY_MS).min(hi)) > 0 && !skip(p) {
                    out.push(file(p));
                }
                day += DAY_MS;
            }
        }
        month = next;
    }
    out
}

/// Missing grid bars of `freq` with open times in `[lo, hi)`.
fn missing_bars(freq: Freq, runs: &[(i64, i64)], lo: i64, hi: i64) -> u64 {
    let first = runs.partition_point(|&(_, last)| last < lo);
    runs[first..]
        .iter()
        .take_while(|&&(start, _)| start < hi)
        .map(|&(start, last)| {
            let (a, b) = (start.max(lo), (last + 1).min(hi));
            if a < b {
                freq.grid(a, b).count() as u64
            } else {
                0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketdb_model::time::parse_ymd;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        parse_ymd(y, m, d).unwrap()
    }

    fn names(files: &[VisionFile]) -> Vec<String> {
        files.iter().map(VisionFile::file_name).collect()
    }

    fn input<'a>(
        range: TimeRange,
        missing: &'a [(i64, i64)],
        skip: &'a HashSet<Period>,
        now_ms: i64,
    ) -> PlanInput<'a> {
        PlanInput {
            market: Market::Spot,
            symbol: "BTCUSDT",
            freq: Freq::H1,
            range,
            missing,
            skip,
            months_by_day: skip,
            now_ms,
        }
    }

    #[test]
    fn empty_whole_month_is_one_monthly_file_and_partial_days_are_daily() {
        // Range: all of January and 1..=3 February; nothing stored but 2 Feb complete
        // and one bar of 3 Feb.
        let range = TimeRange::new(day(2024, 1, 1), day(2024, 2, 4)).unwrap();
        let missing = [
            (day(2024, 1, 1), day(2024, 2, 2) - 3_600_000),
            (day(2024, 2, 3) + 3_600_000, day(2024, 2, 4) - 3_600_000),
        ];
        let gaps = HashSet::new();
        let plan = klines(&input(range, &missing, &gaps, day(2024, 3, 1)));
        assert_eq!(
            names(&plan),
            [
                "BTCUSDT-1h-2024-01.zip",
                "BTCUSDT-1h-2024-02-01.zip",
                "BTCUSDT-1h-2024-02-03.zip"
            ]
        );
    }

    #[test]
    fn nothing_missing_nothing_planned_and_today_is_never_asked() {
        let range = TimeRange::new(day(2024, 1, 1), day(2024, 1, 10)).unwrap();
        let gaps = HashSet::new();
        assert!(klines(&input(range, &[], &gaps, day(2024, 3, 1))).is_empty());
        let missing = [(day(2024, 1, 1), day(2024, 1, 10) - 3_600_000)];
        // "Now" is 5 Jan, 12:00: 1..=4 Jan are closed days.
        let plan = klines(&input(range, &missing, &gaps, day(2024, 1, 5) + 43_200_000));
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[3].file_name(), "BTCUSDT-1h-2024-01-04.zip");
    }

    #[test]
    fn skipped_periods_are_not_asked_and_a_404_month_falls_back_to_days() {
        let range = TimeRange::new(day(2024, 1, 1), day(2024, 2, 1)).unwrap();
        let missing = [(day(2024, 1, 1), day(2024, 2, 1) - 3_600_000)];
        let skip = HashSet::from([Period::Day(day(2024, 1, 2))]);
        let months = HashSet::from([Period::Month(2024, 1)]);
        let mut inp = input(range, &missing, &skip, day(2024, 3, 1));
        inp.months_by_day = &months;
        let plan = klines(&inp);
        assert_eq!(plan.len(), 30, "31 days less the skipped 2 Jan");
        assert!(!names(&plan).contains(&"BTCUSDT-1h-2024-01-02.zip".to_owned()));
        // Without the 404 on the month: one monthly file.
        let none = HashSet::new();
        inp.months_by_day = &none;
        inp.skip = &none;
        assert_eq!(names(&klines(&inp)), ["BTCUSDT-1h-2024-01.zip"]);
    }

    #[test]
    fn intervals_above_a_day_use_monthly_files() {
        let range = TimeRange::new(day(2024, 1, 1), day(2024, 3, 1)).unwrap();
        let missing = [(day(2024, 2, 1), day(2024, 2, 1))];
        let gaps = HashSet::new();
        let mut inp = input(range, &missing, &gaps, day(2024, 6, 1));
        inp.freq = Freq::Mo1;
        assert_eq!(names(&klines(&inp)), ["BTCUSDT-1mo-2024-02.zip"]);
    }
}
