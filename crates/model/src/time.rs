//! The calendar helpers: proleptic Gregorian arithmetic on UTC milliseconds ([`DAY_MS`],
//! [`day_floor`], [`parse_ymd`], [`ymd_from_ms`]...) and the few text forms the project
//! prints (RFC 3339, `YYYY-MM-DD`, `YYYYMMDD`). Hand-written because it sits on hot paths
//! (bucket floors, CSV datetimes) and needs no time-zone database: everything is UTC.

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of the civil date `y-m-d` (month 1..=12, day 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `(year, month, day)` of the UTC day containing `ms`.
pub fn ymd_from_ms(ms: i64) -> (i64, u32, u32) {
    civil_from_days(ms.div_euclid(DAY_MS))
}

/// Start (00:00:00.000 UTC) of the day containing `ms`.
pub fn day_floor(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Number of days in month `m` of year `y`.
pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Validates and converts a civil date to the ms of its UTC midnight; `None` if the date does
/// not exist (month 13, February 30...).
pub fn parse_ymd(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS)
}

/// The system clock as ms since the Unix epoch (0 before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2024-01-01T00:00:00Z`, or `2024-01-01T00:00:00.123Z` when the instant has milliseconds.
pub fn format_rfc3339(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    push_rfc3339(&mut out, ms);
    // Only ASCII digits and separators were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 3339 form of `ms` to `out` without allocating (CSV export hot path).
pub fn push_rfc3339(out: &mut Vec<u8>, ms: i64) {
    let (y, mo, d) = ymd_from_ms(ms);
    let in_day = ms.rem_euclid(DAY_MS);
    if (0..=9999).contains(&y) {
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        out.extend_from_slice(y.to_string().as_bytes());
    }
    out.push(b'-');
    push_2(out, i64::from(mo));
    out.push(b'-');
    push_2(out, i64::from(d));
    out.push(b'T');
    push_2(out, in_day / 3_600_000);
    out.push(b':');
    push_2(out, in_day / 60_000 % 60);
    out.push(b':');
    push_2(out, in_day / 1000 % 60);
    let milli = in_day % 1000;
    if milli != 0 {
        out.push(b'.');
        out.push(b'0' + (milli / 100) as u8);
        push_2(out, milli % 100);
    }
    out.push(b'Z');
}

/// Two zero-padded digits of `v` (0..=99).
fn push_2(out: &mut Vec<u8>, v: i64) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// `YYYY-MM-DD` of the UTC day containing `ms`.
pub fn date_string(ms: i64) -> String {
    let (y, m, d) = ymd_from_ms(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYYMMDD` of the UTC day containing `ms` (the export file stem).
pub fn yyyymmdd(ms: i64) -> String {
    let (y, m, d) = ymd_from_ms(ms);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 1) * DAY_MS, 1_704_067_200_000);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(format_rfc3339(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_704_067_200_123),
            "2024-01-01T00:00:00.123Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339(1_704_067_200_007),
            "2024-01-01T00:00:00.007Z"
        );
        assert_eq!(format_rfc3339(253_402_300_800_000), "10000-01-01T00:00:00Z");
        assert_eq!(date_string(1_735_689_599_999), "2024-12-31");
        assert_eq!(yyyymmdd(1_709_164_800_000), "20240229");
        assert_eq!(parse_ymd(2024, 2, 30), None);
        assert_eq!(parse_ymd(2023, 2, 29), None);
        assert_eq!(parse_ymd(2024, 13, 1), None);
    }

    proptest! {
        #[test]
        fn civil_round_trip(z in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), z);
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }
}
