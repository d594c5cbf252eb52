//! [`Freq`]: the sixteen Binance kline intervals and their bucket rules. Bars are labelled by
//! open time, buckets are `[open, next_open)`, sub-day buckets are aligned to UTC midnight,
//! `1w` to Monday 00:00 UTC, `1M` to the 1st of the month, and `3d` (whose phase Binance does
//! not document) to Unix-epoch multiples of three days for resampling, while validation only
//! asks for day alignment.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    DAY_MS, Error, Result, TIME_MAX_MS,
    plausible::clamp_ms,
    time::{civil_from_days, days_from_civil},
};

/// A Binance kline interval. `Mo1` is the calendar month (`1M`); `M1` is the minute (`1m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Freq {
    S1,
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D3,
    W1,
    Mo1,
}

const ACCEPTED: &str = "1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M (or 1mo)";
const WEEK_MS: i64 = 7 * DAY_MS;

impl Freq {
    /// Every interval, finest first.
    pub const ALL: [Freq; 16] = [
        Freq::S1,
        Freq::M1,
        Freq::M3,
        Freq::M5,
        Freq::M15,
        Freq::M30,
        Freq::H1,
        Freq::H2,
        Freq::H4,
        Freq::H6,
        Freq::H8,
        Freq::H12,
        Freq::D1,
        Freq::D3,
        Freq::W1,
        Freq::Mo1,
    ];

    /// The Binance interval string (`1m`, `1h`, `1M`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Freq::S1 => "1s",
            Freq::M1 => "1m",
            Freq::M3 => "3m",
            Freq::M5 => "5m",
            Freq::M15 => "15m",
            Freq::M30 => "30m",
            Freq::H1 => "1h",
            Freq::H2 => "2h",
            Freq::H4 => "4h",
            Freq::H6 => "6h",
            Freq::H8 => "8h",
            Freq::H12 => "12h",
            Freq::D1 => "1d",
            Freq::D3 => "3d",
            Freq::W1 => "1w",
            Freq::Mo1 => "1M",
        }
    }

    /// Parses a Binance interval. `1M`, `1mo` and `1Mo` are the month; `1m` is the minute;
    /// hour, day and week forms are accepted in upper case too (`1H`, `1D`, `1W`).
    pub fn parse(input: &str) -> Result<Freq> {
        let s = input.trim();
        let freq = match s {
            "1M" | "1mo" | "1Mo" | "1MO" => Freq::Mo1,
            "1s" | "1S" => Freq::S1,
            "1m" => Freq::M1,
            "3m" => Freq::M3,
            "5m" => Freq::M5,
            "15m" => Freq::M15,
            "30m" => Freq::M30,
            "1h" | "1H" => Freq::H1,
            "2h" | "2H" => Freq::H2,
            "4h" | "4H" => Freq::H4,
            "6h" | "6H" => Freq::H6,
            "8h" | "8H" => Freq::H8,
            "12h" | "12H" => Freq::H12,
            "1d" | "1D" => Freq::D1,
            "3d" | "3D" => Freq::D3,
            "1w" | "1W" => Freq::W1,
            _ => {
                return Err(Error::InvalidFreq {
                    input: input.to_owned(),
                    accepted: ACCEPTED,
                });
            }
        };
        Ok(freq)
    }

    /// Length in ms for fixed-length intervals; `None` for the calendar month.
    pub fn fixed_ms(self) -> Option<i64> {
        Some(match self {
            Freq::S1 => 1000,
            Freq::M1 => 60_000,
            Freq::M3 => 180_000,
            Freq::M5 => 300_000,
            Freq::M15 => 900_000,
            Freq::M30 => 1_800_000,
            Freq::H1 => 3_600_000,
            Freq::H2 => 7_200_000,
            Freq::H4 => 14_400_000,
            Freq::H6 => 21_600_000,
            Freq::H8 => 28_800_000,
            Freq::H12 => 43_200_000,
            Freq::D1 => DAY_MS,
            Freq::D3 => 3 * DAY_MS,
            Freq::W1 => WEEK_MS,
            Freq::Mo1 => return None,
        })
    }

    /// A nominal length in ms (30 days for the month), for ordering and sizing only.
    pub fn nominal_ms(self) -> i64 {
        self.fixed_ms().unwrap_or(30 * DAY_MS)
    }

    /// Whether the interval is shorter than a day (its buckets tile every UTC day).
    pub fn is_intraday(self) -> bool {
        self < Freq::D1
    }

    /// Open time of the bucket containing `t` (clamped into the supported span first, so
    /// any `i64` gives a value).
    pub fn floor(self, t: i64) -> i64 {
        let t = clamp_ms(t);
        match self {
            Freq::W1 => {
                // 1970-01-05 (day 4) was a Monday.
                let day = t.div_euclid(DAY_MS);
                (day - (day - 4).rem_euclid(7)) * DAY_MS
            }
            Freq::Mo1 => {
                let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
                days_from_civil(y, m, 1) * DAY_MS
            }
            fixed => {
                let len = fixed.nominal_ms();
                t.div_euclid(len) * len
            }
        }
    }

    /// Open time of the bucket after the one containing `t` (clamped into the supported
    /// span first).
    pub fn next(self, t: i64) -> i64 {
        let t = clamp_ms(t);
        match self {
            Freq::Mo1 => {
                let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
            other => other.floor(t) + other.nominal_ms(),
        }
    }

    /// Binance close time of the bar opening at `open`: its open plus the interval minus
    /// 1 ms (the next month's 1st minus 1 ms for `1M`). For a `3d` bar opening off the
    /// epoch phase this is still open + 3 days - 1 ms.
    pub fn close_time(self, open: i64) -> i64 {
        match self.fixed_ms() {
            Some(len) => open.saturating_add(len - 1),
            None => self.next(open) - 1,
        }
    }

    /// Whether `t` is a valid open time for a stored bar. `3d` bars only need to start at a
    /// UTC midnight because Binance does not document their phase; every other interval
    /// needs `t` to be its own bucket floor.
    pub fn is_valid_open(self, t: i64) -> bool {
        if clamp_ms(t) != t {
            return false;
        }
        match self {
            Freq::D3 => t.rem_euclid(DAY_MS) == 0,
            other => other.floor(t) == t,
        }
    }

    /// The open times of this interval's buckets that start inside the UTC day starting at
    /// `day_start`: 1440 for 1m, 24 for 1h, 1 for 1d; for 3d, 1w and 1M one slot on the days
    /// a bucket opens and none otherwise.
    pub fn day_grid(self, day_start: i64) -> Vec<i64> {
        let day_start = crate::day_floor(clamp_ms(day_start));
        match self.fixed_ms() {
            Some(len) if len <= DAY_MS => (0..DAY_MS / len).map(|i| day_start + i * len).collect(),
            _ if self.floor(day_start) == day_start => vec![day_start],
            _ => Vec::new(),
        }
    }

    /// Open times of every bucket that opens in `[start, end_exclusive)`, lazily (a range
    /// can hold more buckets than memory); bounds are clamped into the supported span.
    pub fn grid(self, start: i64, end_exclusive: i64) -> impl Iterator<Item = i64> + use<> {
        let start = clamp_ms(start);
        let mut t = self.floor(start);
        if t < start {
            t = self.next(t);
        }
        let end = end_exclusive.min(TIME_MAX_MS);
        std::iter::from_fn(move || {
            if t >= end {
                return None;
            }
            let here = t;
            let next = self.next(t);
            // At the top of the span `next` cannot advance: stop instead of repeating.
            t = if next > here { next } else { end };
            Some(here)
        })
    }

    /// The span of the buckets whose **open time lies in** `range`: from the first such
    /// open to the next open after the last one (empty, at the first open at or after
    /// `range.start`, when no bucket opens in `range`). The one rule of every resampling
    /// (`resample`, exports with a target interval): the range selects buckets by their open
    /// time, as it selects bars, and each selected bucket is built from all its source bars,
    /// also those after `range`'s end.
    pub fn bucket_span(self, range: crate::TimeRange) -> crate::TimeRange {
        let mut first = self.floor(range.start);
        if first < range.start {
            first = self.next(first);
        }
        if range.is_empty() || first >= range.end_exclusive {
            return crate::TimeRange {
                start: first,
                end_exclusive: first,
            };
        }
        let last = self.floor(range.end_exclusive - 1);
        crate::TimeRange {
            start: first,
            end_exclusive: self.next(last),
        }
    }

    /// Whether every bucket of `coarser` is a whole number of buckets of `self`, so bars can
    /// be resampled from `self` into `coarser` (1m->5m, 1h->1d, 1d->1w, 1d->1M...).
    pub fn divides(self, coarser: Freq) -> bool {
        if coarser <= self {
            return false;
        }
        match (self.fixed_ms(), coarser.fixed_ms()) {
            (Some(a), Some(b)) => b % a == 0 && (coarser != Freq::W1 || self != Freq::D3),
            // A month is a whole number of days, hours, minutes... but not of weeks or 3 days.
            (Some(a), None) => DAY_MS % a == 0,
            _ => false,
        }
    }
}

impl fmt::Display for Freq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Freq {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Freq::parse(s)
    }
}

impl TryFrom<String> for Freq {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Freq::parse(&s)
    }
}

impl From<Freq> for String {
    fn from(f: Freq) -> String {
        f.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_ymd, ymd_from_ms};
    use proptest::prelude::*;

    const T_MIN: i64 = 0;
    const T_MAX: i64 = 4_000_000_000_000;

    fn any_freq() -> impl Strategy<Value = Freq> {
        (0..Freq::ALL.len()).prop_map(|i| Freq::ALL[i])
    }

    proptest! {
        #[test]
        fn parse_display_round_trip(f in any_freq()) {
            prop_assert_eq!(Freq::parse(&f.to_string()), Ok(f));
            let json = serde_json::to_string(&f).unwrap();
            prop_assert_eq!(serde_json::from_str::<Freq>(&json).unwrap(), f);
        }

        #[test]
        fn floor_contains_and_next_is_a_floor(f in any_freq(), t in T_MIN..T_MAX) {
            let fl = f.floor(t);
            prop_assert!(fl <= t);
            prop_assert!(t < f.next(fl));
            prop_assert_eq!(f.next(fl), f.next(t));
            let nx = f.next(fl);
            prop_assert_eq!(f.floor(nx), nx);
            prop_assert_eq!(f.close_time(fl), nx - 1);
            prop_assert!(f.is_valid_open(fl));
        }

        #[test]
        fn every_operation_on_any_i64_returns_a_value(f in any_freq(), t in any::<i64>(), u in any::<i64>()) {
            let fl = f.floor(t);
            let nx = f.next(t);
            // A week or month bucket may open a little before 1970 (1970-01-01 was a Thursday).
            prop_assert!((crate::TIME_MIN_MS - 31 * DAY_MS..=TIME_MAX_MS).contains(&fl));
            prop_assert!(nx >= fl);
            let _ = f.close_time(t);
            let _ = f.is_valid_open(t);
            prop_assert!(f.day_grid(t).len() <= 86_400);
            // Lazy: taking a few buckets of any range is cheap and terminates.
            let taken: Vec<i64> = f.grid(t, u).take(3).collect();
            prop_assert!(taken.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(taken.iter().all(|x| *x < u && *x < TIME_MAX_MS));
        }

        #[test]
        fn weekly_floors_are_mondays(t in T_MIN..T_MAX) {
            let fl = Freq::W1.floor(t);
            prop_assert_eq!(fl.rem_euclid(DAY_MS), 0);
            // weekday: 0 = Monday, computed independently from 2024-01-01 (a Monday)
            let monday = parse_ymd(2024, 1, 1).unwrap();
            prop_assert_eq!((fl - monday).rem_euclid(7 * DAY_MS), 0);
            prop_assert!(t - fl < 7 * DAY_MS);
        }

        #[test]
        fn monthly_floors_are_the_first(t in T_MIN..T_MAX) {
            let fl = Freq::Mo1.floor(t);
            let (y, m, d) = ymd_from_ms(fl);
            prop_assert_eq!(d, 1);
            prop_assert_eq!(fl.rem_euclid(DAY_MS), 0);
            let (ty, tm, _) = ymd_from_ms(t);
            prop_assert_eq!((y, m), (ty, tm));
        }

        #[test]
        fn divides_means_coarse_floors_are_fine_floors(a in any_freq(), b in any_freq(), t in T_MIN..T_MAX) {
            if a.divides(b) {
                let fl = b.floor(t);
                prop_assert_eq!(a.floor(fl), fl);
                prop_assert_eq!(a.floor(b.next(fl)), b.next(fl));
            }
        }
    }

    #[test]
    fn bucket_spans_select_buckets_by_open_time() {
        use crate::TimeRange;
        let jan = |d: u32| parse_ymd(2024, 1, d).unwrap();
        let r = TimeRange::new(jan(1) + 1, jan(3)).unwrap();
        assert_eq!(
            Freq::D1.bucket_span(r),
            TimeRange::new(jan(2), jan(3)).unwrap()
        );
        // A one-day range on Monday 2024-01-01 selects its whole week.
        let r = TimeRange::new(jan(1), jan(2)).unwrap();
        assert_eq!(
            Freq::W1.bucket_span(r),
            TimeRange::new(jan(1), jan(8)).unwrap()
        );
        assert!(
            Freq::W1
                .bucket_span(TimeRange::new(jan(2), jan(3)).unwrap())
                .is_empty()
        );
        let h = 3_600_000;
        let r = TimeRange::new(jan(1) + 30 * 60_000, jan(1) + 3 * h + 1).unwrap();
        assert_eq!(
            Freq::H1.bucket_span(r),
            TimeRange::new(jan(1) + h, jan(1) + 4 * h).unwrap()
        );
        assert!(
            Freq::H1
                .bucket_span(TimeRange::new(jan(1), jan(1)).unwrap())
                .is_empty()
        );
    }

    #[test]
    fn close_time_of_every_valid_open() {
        let jan1 = parse_ymd(2024, 1, 1).unwrap(); // not an epoch multiple of 3 days
        assert!(Freq::D3.is_valid_open(jan1));
        assert_eq!(Freq::D3.close_time(jan1), jan1 + 3 * DAY_MS - 1);
        assert_eq!(Freq::M1.close_time(jan1), jan1 + 59_999);
        assert_eq!(
            Freq::Mo1.close_time(jan1),
            parse_ymd(2024, 2, 1).unwrap() - 1
        );
    }

    #[test]
    fn day_grid_sizes() {
        let day = parse_ymd(2024, 3, 10).unwrap();
        let expected = [86_400, 1440, 480, 288, 96, 48, 24, 12, 6, 4, 3, 2, 1];
        for (f, n) in Freq::ALL.iter().zip(expected) {
            let grid = f.day_grid(day);
            assert_eq!(grid.len(), n, "{f}");
            assert_eq!(grid[0], day);
            assert!(
                grid.windows(2)
                    .all(|w| w[1] - w[0] == f.fixed_ms().unwrap())
            );
        }
    }

    #[test]
    fn calendar_grids() {
        let jan1 = parse_ymd(2024, 1, 1).unwrap(); // a Monday, the 1st, not a 3d epoch multiple
        assert_eq!(Freq::W1.day_grid(jan1), vec![jan1]);
        assert_eq!(Freq::Mo1.day_grid(jan1), vec![jan1]);
        assert!(Freq::W1.day_grid(jan1 + DAY_MS).is_empty());
        assert!(Freq::Mo1.day_grid(jan1 + DAY_MS).is_empty());
        let d3_days: usize = (0..30)
            .map(|i| Freq::D3.day_grid(jan1 + i * DAY_MS).len())
            .sum();
        assert_eq!(d3_days, 10);
        // Across a year boundary: 2023-12-25 .. 2024-02-05 holds 7 Mondays and 2 month starts.
        let s = parse_ymd(2023, 12, 20).unwrap();
        let e = parse_ymd(2024, 2, 6).unwrap();
        assert_eq!(Freq::W1.grid(s, e).count(), 7);
        assert_eq!(
            Freq::Mo1.grid(s, e).collect::<Vec<_>>(),
            vec![jan1, parse_ymd(2024, 2, 1).unwrap()]
        );
        // The top of the span ends the grid instead of repeating its last bucket.
        let top: Vec<i64> = Freq::Mo1
            .grid(TIME_MAX_MS - 40 * DAY_MS, i64::MAX)
            .collect();
        assert_eq!(top, vec![TIME_MAX_MS - 31 * DAY_MS], "only December 9999");
        assert_eq!(Freq::Mo1.next(parse_ymd(2023, 12, 5).unwrap()), jan1);
        assert_eq!(
            Freq::Mo1.close_time(parse_ymd(2024, 2, 1).unwrap()),
            parse_ymd(2024, 3, 1).unwrap() - 1
        );
    }

    #[test]
    fn parse_aliases_and_errors() {
        assert_eq!(Freq::parse("1mo"), Ok(Freq::Mo1));
        assert_eq!(Freq::parse("1Mo"), Ok(Freq::Mo1));
        assert_eq!(Freq::parse("1M"), Ok(Freq::Mo1));
        assert_eq!(Freq::parse("1m"), Ok(Freq::M1));
        assert_eq!(Freq::parse("1H"), Ok(Freq::H1));
        assert_eq!(Freq::parse("1D"), Ok(Freq::D1));
        assert_eq!(Freq::parse("1W"), Ok(Freq::W1));
        let err = Freq::parse("7m").unwrap_err().to_string();
        assert!(err.contains("\"7m\"") && err.contains("1s 1m"), "{err}");
    }

    #[test]
    fn divides_rules() {
        assert!(Freq::M1.divides(Freq::M5));
        assert!(Freq::H1.divides(Freq::D1));
        assert!(Freq::D1.divides(Freq::W1));
        assert!(Freq::D1.divides(Freq::Mo1));
        assert!(!Freq::M3.divides(Freq::M5));
        assert!(!Freq::W1.divides(Freq::Mo1));
        assert!(!Freq::D3.divides(Freq::W1));
        assert!(!Freq::H1.divides(Freq::M1));
    }
}
