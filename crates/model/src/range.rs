//! [`TimeRange`]: user-facing time bounds parsed to UTC milliseconds, and the end-of-day
//! rule. Accepted: `YYYY-MM-DD`, `YYYYMMDD`, `YYYY-MM-DD HH:MM[:SS[.fff]]` (UTC, `T` or a
//! space), RFC 3339 with `Z` or an offset, epoch milliseconds (up to 13 digits) and epoch
//! microseconds (16 digits). A date-only end includes its whole day; an instant end is
//! inclusive. Internally the range is half-open `[start, end_exclusive)`.

use serde::{Deserialize, Serialize};

use crate::{DAY_MS, Error, Result, TIME_MAX_MS, TIME_MIN_MS, format_rfc3339, time::parse_ymd};

/// One parsed bound: a whole UTC day or an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// A date without a time: the ms of its 00:00:00.000 UTC.
    Date(i64),
    /// An exact instant in ms.
    Instant(i64),
}

impl Bound {
    /// The first instant the bound covers.
    pub fn start_ms(self) -> i64 {
        match self {
            Bound::Date(t) | Bound::Instant(t) => t,
        }
    }

    /// The first instant after what the bound covers when it ends a range.
    pub fn end_exclusive_ms(self) -> i64 {
        match self {
            Bound::Date(t) => t.saturating_add(DAY_MS),
            Bound::Instant(t) => t.saturating_add(1),
        }
    }
}

/// A half-open UTC range `[start, end_exclusive)` in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: i64,
    pub end_exclusive: i64,
}

impl TimeRange {
    /// A range from raw ms; errors when `start > end_exclusive` or when either bound lies
    /// outside the supported span `[TIME_MIN_MS, TIME_MAX_MS]` (1970 to 10000).
    pub fn new(start: i64, end_exclusive: i64) -> Result<TimeRange> {
        for (what, t) in [("start", start), ("end", end_exclusive)] {
            if !(TIME_MIN_MS..=TIME_MAX_MS).contains(&t) {
                return Err(Error::InvalidTime {
                    input: t.to_string(),
                    reason: format!(
                        "the range {what} is outside the supported span {} to {}",
                        format_rfc3339(TIME_MIN_MS),
                        format_rfc3339(TIME_MAX_MS)
                    ),
                });
            }
        }
        if start > end_exclusive {
            return Err(Error::StartAfterEnd {
                start: format_rfc3339(start),
                end: format_rfc3339(end_exclusive),
            });
        }
        Ok(TimeRange {
            start,
            end_exclusive,
        })
    }

    /// Re-checks a range built field by field (the fields are public): the rules of
    /// [`TimeRange::new`].
    pub fn checked(self) -> Result<TimeRange> {
        TimeRange::new(self.start, self.end_exclusive)
    }

    /// Parses user bounds: `start` is an instant (a date means its midnight), a date `end`
    /// includes that whole day, an instant `end` is inclusive. `start` after `end` is an error.
    pub fn parse(start: &str, end: &str) -> Result<TimeRange> {
        let s = parse_bound(start)?;
        let e = parse_bound(end)?;
        if s.start_ms() >= e.end_exclusive_ms() {
            return Err(Error::StartAfterEnd {
                start: start.trim().to_owned(),
                end: end.trim().to_owned(),
            });
        }
        TimeRange::new(s.start_ms(), e.end_exclusive_ms())
    }

    /// Parses a freqtrade style `--timerange 20240101-20240131` (both days included).
    pub fn parse_timerange(input: &str) -> Result<TimeRange> {
        match TimeRange::parse_open_timerange(input)? {
            (Some(start), Some(end_exclusive)) => TimeRange::new(start, end_exclusive),
            _ => Err(Error::InvalidTime {
                input: input.to_owned(),
                reason: "expected START-END such as 20240101-20240131".to_owned(),
            }),
        }
    }

    /// Parses a freqtrade style range whose ends may be open: `A-B` (both days included),
    /// `A-` (no end given) or `-B` (no start given); A and B are `YYYYMMDD`. Returns
    /// `(start, end_exclusive)`; the caller decides what an open end means.
    pub fn parse_open_timerange(input: &str) -> Result<(Option<i64>, Option<i64>)> {
        let bad = || Error::InvalidTime {
            input: input.to_owned(),
            reason: "expected START-END, START- or -END with YYYYMMDD dates, such as \
                     20240101-20240131, 20240101- or -20240131"
                .to_owned(),
        };
        let (a, b) = input.trim().split_once('-').ok_or_else(bad)?;
        let day = |s: &str| -> Result<Option<Bound>> {
            match s.len() {
                0 => Ok(None),
                8 => parse_bound(s).map(Some),
                _ => Err(bad()),
            }
        };
        let (a, b) = (day(a)?, day(b)?);
        if a.is_none() && b.is_none() {
            return Err(bad());
        }
        let (start, end) = (a.map(Bound::start_ms), b.map(Bound::end_exclusive_ms));
        if let (Some(s), Some(e)) = (start, end)
            && s >= e
        {
            return Err(Error::StartAfterEnd {
                start: format_rfc3339(s),
                end: format_rfc3339(e - 1),
            });
        }
        Ok((start, end))
    }

    /// The last instant inside the range.
    pub fn end_inclusive(&self) -> i64 {
        self.end_exclusive - 1
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end_exclusive
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end_exclusive
    }

    /// Start of every UTC day that overlaps the range, in order.
    pub fn days(&self) -> impl Iterator<Item = i64> + use<> {
        let first = crate::day_floor(self.start);
        let end = self.end_exclusive;
        (0..)
            .map(move |i| first + i * DAY_MS)
            .take_while(move |d| *d < end)
    }
}

/// Parses one bound in any accepted format.
pub fn parse_bound(input: &str) -> Result<Bound> {
    let s = input.trim();
    let bad = |reason: &str| Error::InvalidTime {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if s.is_empty() {
        return Err(bad("empty time"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.len() {
            8 => parse_date(s, &s[0..4], &s[4..6], &s[6..8]).map(Bound::Date),
            1..=13 => s
                .parse::<i64>()
                .map(Bound::Instant)
                .map_err(|_| bad("not a number")),
            16 => s
                .parse::<i64>()
                .map(|us| Bound::Instant(us.div_euclid(1000)))
                .map_err(|_| bad("not a number")),
            n => Err(bad(&format!(
                "a {n}-digit number is neither epoch milliseconds (up to 13 digits) nor \
                 microseconds (16 digits)"
            ))),
        };
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim_start())),
        None => (s, None),
    };
    let date_bytes = date.as_bytes();
    if date.len() != 10 || date_bytes[4] != b'-' || date_bytes[7] != b'-' {
        return Err(bad(
            "expected YYYY-MM-DD, YYYYMMDD, YYYY-MM-DD HH:MM[:SS[.fff]], RFC 3339 or epoch ms",
        ));
    }
    let day = parse_date(s, &date[0..4], &date[5..7], &date[8..10])?;
    match rest {
        None => Ok(Bound::Date(day)),
        Some(rest) => parse_time_of_day(input, rest).map(|ms| Bound::Instant(day + ms)),
    }
}

fn parse_date(input: &str, y: &str, m: &str, d: &str) -> Result<i64> {
    let bad = |reason: String| Error::InvalidTime {
        input: input.to_owned(),
        reason,
    };
    let num = |part: &str| -> Result<u32> {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse::<u32>()
                .map_err(|_| bad(format!("{part:?} is not a number")))
        } else {
            Err(bad(format!("{part:?} is not a number")))
        }
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    parse_ymd(i64::from(y), m, d)
        .ok_or_else(|| bad(format!("{y:04}-{m:02}-{d:02} is not a calendar date")))
}

/// `HH:MM[:SS[.f{1,9}]]` followed by nothing (UTC), `Z`, or an offset `±HH:MM` / `±HHMM`.
fn parse_time_of_day(input: &str, s: &str) -> Result<i64> {
    let bad = |reason: &str| Error::InvalidTime {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let (clock, offset_ms) = if let Some(c) = s.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = s.rfind(['+', '-']) {
        let (c, off) = s.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("bad UTC offset, expected +HH:MM"));
        }
        let h: i64 = digits[0..2].parse().map_err(|_| bad("bad UTC offset"))?;
        let m: i64 = digits[2..4].parse().map_err(|_| bad("bad UTC offset"))?;
        if h > 23 || m > 59 {
            return Err(bad("bad UTC offset"));
        }
        (c, sign * (h * 3_600_000 + m * 60_000))
    } else {
        (s, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("expected a time of day HH:MM[:SS[.fff]]"));
    }
    let field = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<i64>());
    let (h, m, sec) = match (field(0), field(1), field(2)) {
        (Ok(h), Ok(m), Ok(sec)) => (h, m, sec),
        _ => return Err(bad("expected a time of day HH:MM[:SS[.fff]]")),
    };
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad("time of day out of range"));
    }
    let millis = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut padded = f.to_owned();
            padded.extend(std::iter::repeat_n('0', 9 - f.len()));
            padded.parse::<i64>().map_err(|_| bad("bad fraction"))? / 1_000_000
        }
        Some(_) => return Err(bad("bad fraction of a second")),
    };
    Ok(h * 3_600_000 + m * 60_000 + sec * 1000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JAN1: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    #[test]
    fn every_accepted_format() {
        let cases: &[(&str, i64)] = &[
            ("2024-01-01", JAN1),
            ("20240101", JAN1),
            ("2024-01-01 05:00", JAN1 + 5 * 3_600_000),
            ("2024-01-01 05:00:07", JAN1 + 5 * 3_600_000 + 7000),
            ("2024-01-01 05:00:07.250", JAN1 + 5 * 3_600_000 + 7250),
            ("2024-01-01T05:00:07.25", JAN1 + 5 * 3_600_000 + 7250),
            ("2024-01-01T05:00:00Z", JAN1 + 5 * 3_600_000),
            ("2024-01-01T05:00:00+08:00", JAN1 - 3 * 3_600_000),
            (
                "2024-01-01T05:00:00-0130",
                JAN1 + 6 * 3_600_000 + 30 * 60_000,
            ),
            ("2024-01-01T00:00:00.123456789Z", JAN1 + 123),
            ("1704067200000", JAN1),
            ("1704067200000000", JAN1),
            ("0", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse_bound(input).unwrap().start_ms(), *want, "{input}");
        }
        assert_eq!(parse_bound("2024-01-01").unwrap(), Bound::Date(JAN1));
        assert_eq!(parse_bound("1704067200000").unwrap(), Bound::Instant(JAN1));
    }

    #[test]
    fn end_date_includes_whole_day() {
        let r = TimeRange::parse("2024-12-01", "2024-12-31").unwrap();
        let last_minute = parse_bound("2024-12-31 23:59").unwrap().start_ms();
        assert!(r.contains(last_minute));
        assert!(r.contains(last_minute + 59_999));
        assert!(!r.contains(last_minute + 60_000));
        assert_eq!(
            r.end_exclusive,
            parse_bound("2025-01-01").unwrap().start_ms()
        );
        let inst = TimeRange::parse("2024-01-01", "2024-01-01 01:00").unwrap();
        assert_eq!(inst.end_exclusive, JAN1 + 3_600_000 + 1);
        let same_day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
        assert_eq!(same_day.days().count(), 1);
    }

    #[test]
    fn open_timeranges() {
        let jan1 = 1_704_067_200_000;
        assert_eq!(
            TimeRange::parse_open_timerange("20240101-20240102").unwrap(),
            (Some(jan1), Some(jan1 + 2 * DAY_MS))
        );
        assert_eq!(
            TimeRange::parse_open_timerange("20240101-").unwrap(),
            (Some(jan1), None)
        );
        assert_eq!(
            TimeRange::parse_open_timerange("-20240101").unwrap(),
            (None, Some(jan1 + DAY_MS))
        );
        for bad in ["-", "2024-01-01", "202401-", "x-y", "", "20240102-20240101"] {
            assert!(TimeRange::parse_open_timerange(bad).is_err(), "{bad}");
        }
        assert!(TimeRange::parse_timerange("20240101-").is_err());
    }

    #[test]
    fn the_span_is_enforced() {
        assert!(TimeRange::new(-1, 5).is_err());
        assert!(TimeRange::new(0, TIME_MAX_MS).is_ok());
        let err = TimeRange::new(0, i64::MAX).unwrap_err().to_string();
        assert!(err.contains("outside the supported span"), "{err}");
        let err = TimeRange::parse("0000-01-01", "0001-01-01")
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the supported span"), "{err}");
        assert!(TimeRange::parse("9999-12-31", "9999-12-31").is_ok());
    }

    #[test]
    fn errors_are_clear() {
        let e = TimeRange::parse("2024-02-01", "2024-01-31").unwrap_err();
        assert!(matches!(e, Error::StartAfterEnd { .. }));
        assert!(e.to_string().contains("2024-02-01") && e.to_string().contains("after"));
        let e = parse_bound("170406720000000").unwrap_err().to_string();
        assert!(
            e.contains("15-digit") && e.contains("170406720000000"),
            "{e}"
        );
        let e = parse_bound("2024-13-01").unwrap_err().to_string();
        assert!(
            e.contains("not a calendar date") && e.contains("2024-13-01"),
            "{e}"
        );
        for bad in [
            "",
            "yesterday",
            "2024-1-1",
            "2024-01-01 25:00",
            "2024-01-01 10:00+99:00",
            "17040672000000",
            "12345678901234567",
            "2024-02-30",
            "-5",
            "2024-01-01 10:00:00.x",
        ] {
            assert!(parse_bound(bad).is_err(), "{bad:?} should be an error");
        }
        assert!(TimeRange::parse_timerange("20240101-20240131").is_ok());
        assert_eq!(
            TimeRange::parse_timerange("20240101-20240101")
                .unwrap()
                .end_exclusive,
            JAN1 + DAY_MS
        );
        assert!(TimeRange::parse_timerange("2024").is_err());
    }

    proptest! {
        #[test]
        fn any_i64_bounds_give_a_range_or_an_error(a in any::<i64>(), b in any::<i64>()) {
            match TimeRange::new(a, b) {
                Ok(r) => {
                    prop_assert!(r.start <= r.end_exclusive);
                    prop_assert!(r.start >= TIME_MIN_MS && r.end_exclusive <= TIME_MAX_MS);
                    prop_assert_eq!(r.checked(), Ok(r));
                    let _ = r.days().take(3).count();
                    let _ = format_rfc3339(r.end_inclusive());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let _ = Bound::Instant(a).end_exclusive_ms();
            let _ = Bound::Date(b).end_exclusive_ms();
            let _ = TimeRange { start: a, end_exclusive: b }.checked();
        }

        #[test]
        fn any_text_parses_or_errors(s in ".{0,40}", t in "[0-9 :TZ+.-]{0,30}") {
            let _ = parse_bound(&s);
            let _ = parse_bound(&t);
            let _ = TimeRange::parse(&s, &t);
            let _ = TimeRange::parse_timerange(&t);
        }

        #[test]
        fn rfc3339_round_trip(t in 0i64..4_102_444_800_000) {
            prop_assert_eq!(parse_bound(&format_rfc3339(t)).unwrap().start_ms(), t);
            prop_assert_eq!(parse_bound(&t.to_string()).unwrap().start_ms(), t);
        }
    }
}
