//! Allocation-free parsing of single CSV cells from `&[u8]`: decimals, integers, epoch
//! timestamps in ms or µs, the metrics `YYYY-MM-DD HH:MM:SS` UTC datetime, and the header
//! test ("is the first cell of the first line a column name?"). A failure is a
//! [`Fault`] carrying the field name and reason; the caller adds file and line.
//!
//! Nothing here reads files or knows about row layouts.

use marketdb_model::normalize_epoch;
use marketdb_model::time::parse_ymd;

/// Longest cell text kept in an error message.
const MAX_VALUE_CHARS: usize = 64;

/// A refused cell or line, without its location.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fault {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl Fault {
    pub(crate) fn new(field: &'static str, value: &[u8], reason: impl Into<String>) -> Fault {
        Fault {
            field,
            value: shown(value),
            reason: reason.into(),
        }
    }
}

/// The cell as text for a message: lossy UTF-8, shortened to [`MAX_VALUE_CHARS`].
pub(crate) fn shown(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.chars().count() <= MAX_VALUE_CHARS {
        text.into_owned()
    } else {
        let mut s: String = text.chars().take(MAX_VALUE_CHARS).collect();
        s.push_str("...");
        s
    }
}

/// The cell without surrounding ASCII whitespace.
#[inline]
pub(crate) fn trim(cell: &[u8]) -> &[u8] {
    cell.trim_ascii()
}

#[inline]
fn as_str(cell: &[u8]) -> Option<&str> {
    std::str::from_utf8(trim(cell)).ok()
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Fast path for plain decimals (`-123.4500`): when the digits, without trailing fraction
/// zeros, form an integer `m <= 2^53` and there are at most 22 fraction digits, `m / 10^k`
/// is one correctly rounded IEEE division of two exact values, so the result equals what
/// `str::parse::<f64>` gives (Clinger's fast path). Anything else returns `None` and goes to
/// the standard parser.
#[inline]
fn fast_float(b: &[u8]) -> Option<f64> {
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let (int_part, rest) = b.split_at(int_len);
    let frac = match rest {
        [] => &[][..],
        [b'.', frac @ ..] if frac.iter().all(u8::is_ascii_digit) => frac,
        _ => return None,
    };
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    let frac = match frac.iter().rposition(|&c| c != b'0') {
        Some(last) => &frac[..=last],
        None => &[][..],
    };
    if int_part.len() + frac.len() > 19 || frac.len() >= POW10.len() {
        return None;
    }
    let mut m = 0u64;
    for &c in int_part {
        m = m * 10 + u64::from(c - b'0');
    }
    for &c in frac {
        m = m * 10 + u64::from(c - b'0');
    }
    if m > 1 << 53 {
        return None;
    }
    let v = m as f64 / POW10[frac.len()];
    Some(if neg { -v } else { v })
}

/// Fast path for plain integers of up to 18 digits (no overflow possible).
#[inline]
fn fast_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
    Some(if neg { -v } else { v })
}

/// A decimal number (`NaN` and `inf` parse; validation rejects them later with a reason).
#[inline]
pub(crate) fn float(field: &'static str, cell: &[u8]) -> Result<f64, Fault> {
    if let Some(v) = fast_float(trim(cell)) {
        return Ok(v);
    }
    match as_str(cell) {
        Some("") => Err(Fault::new(field, cell, "empty")),
        Some(s) => s
            .parse::<f64>()
            .map_err(|_| Fault::new(field, cell, "not a number")),
        None => Err(Fault::new(field, cell, "not a number")),
    }
}

/// A decimal number, or `None` for an empty cell.
#[inline]
pub(crate) fn opt_float(field: &'static str, cell: &[u8]) -> Result<Option<f64>, Fault> {
    if trim(cell).is_empty() {
        Ok(None)
    } else {
        float(field, cell).map(Some)
    }
}

/// An integer; an integral decimal such as `12.0` is accepted (some tools write counts
/// that way), as in `marketdb_model::Kline::from_binance`.
#[inline]
pub(crate) fn int(field: &'static str, cell: &[u8]) -> Result<i64, Fault> {
    if let Some(v) = fast_int(trim(cell)) {
        return Ok(v);
    }
    let Some(s) = as_str(cell) else {
        return Err(Fault::new(field, cell, "not an integer"));
    };
    if s.is_empty() {
        return Err(Fault::new(field, cell, "empty"));
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(i);
    }
    match s.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Ok(_) => Err(Fault::new(field, cell, "not an integer")),
        Err(_) => Err(Fault::new(field, cell, "not a number")),
    }
}

/// An epoch timestamp in ms or µs, returned in ms.
#[inline]
pub(crate) fn epoch_ms(field: &'static str, cell: &[u8]) -> Result<i64, Fault> {
    int(field, cell).map(normalize_epoch)
}

/// A UTC datetime `YYYY-MM-DD HH:MM:SS` (also with `T` instead of the space, an optional
/// fraction of a second and an optional trailing `Z`), or an epoch in ms or µs. Returns ms
/// since the epoch, UTC. The text is never read as local time.
pub(crate) fn utc_datetime(field: &'static str, cell: &[u8]) -> Result<i64, Fault> {
    let t = trim(cell);
    if t.is_empty() {
        return Err(Fault::new(field, cell, "empty"));
    }
    if t.iter().all(u8::is_ascii_digit) {
        return epoch_ms(field, cell);
    }
    parse_datetime(t).ok_or_else(|| {
        Fault::new(
            field,
            cell,
            "not a UTC datetime of the form YYYY-MM-DD HH:MM:SS",
        )
    })
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn parse_datetime(t: &[u8]) -> Option<i64> {
    let t = t.strip_suffix(b"Z").unwrap_or(t);
    if t.len() < 19 || t[4] != b'-' || t[7] != b'-' || t[13] != b':' || t[16] != b':' {
        return None;
    }
    if t[10] != b' ' && t[10] != b'T' {
        return None;
    }
    let (y, mo, d) = (digits(&t[0..4])?, digits(&t[5..7])?, digits(&t[8..10])?);
    let (h, mi, s) = (
        digits(&t[11..13])?,
        digits(&t[14..16])?,
        digits(&t[17..19])?,
    );
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let millis = match &t[19..] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            let mut ms = 0i64;
            for i in 0..3 {
                let d = frac.get(i).copied().unwrap_or(b'0');
                if !d.is_ascii_digit() {
                    return None;
                }
                ms = ms * 10 + i64::from(d - b'0');
            }
            if !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            ms
        }
        _ => return None,
    };
    let day = parse_ymd(i64::from(y), mo, d)?;
    Some(day + i64::from(h) * 3_600_000 + i64::from(mi) * 60_000 + i64::from(s) * 1000 + millis)
}

/// Whether the first cell of a file's first line is a column name rather than data: it
/// starts with a letter or `_` and is not a number spelled with letters (`NaN`, `inf`).
/// Data cells (epoch integers, decimals, `YYYY-MM-DD ...` datetimes) start with a digit or a
/// sign, so they are never taken for a header; an empty first cell is data too.
pub(crate) fn is_header_cell(cell: &[u8]) -> bool {
    let t = trim(cell);
    match t.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
            std::str::from_utf8(t).map_or(true, |s| s.parse::<f64>().is_err())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_detection() {
        assert!(is_header_cell(b"open_time"));
        assert!(is_header_cell(b" calc_time "));
        assert!(is_header_cell(b"create_time"));
        assert!(is_header_cell(b"_c0"));
        assert!(!is_header_cell(b"1704067200000"));
        assert!(!is_header_cell(b"1735689600000000"));
        assert!(!is_header_cell(b"2025-01-21 00:05:00"));
        assert!(!is_header_cell(b"-1"));
        assert!(!is_header_cell(b"+1.5"));
        assert!(!is_header_cell(b".5"));
        assert!(!is_header_cell(b""));
        // Numbers spelled with letters are data, so they reach validation and get refused.
        assert!(!is_header_cell(b"NaN"));
        assert!(!is_header_cell(b"inf"));
        assert!(!is_header_cell(b"infinity"));
    }

    #[test]
    fn numbers() {
        assert_eq!(float("open", b"42283.58"), Ok(42283.58));
        assert_eq!(float("open", b" 1e3 "), Ok(1000.0));
        assert!(float("open", b"NaN").is_ok_and(f64::is_nan));
        let e = float("high", b"abc").unwrap_err();
        assert_eq!(
            (e.field, e.value.as_str(), e.reason.as_str()),
            ("high", "abc", "not a number")
        );
        assert_eq!(float("high", b"").unwrap_err().reason, "empty");
        assert_eq!(opt_float("x", b" "), Ok(None));
        assert_eq!(opt_float("x", b"0"), Ok(Some(0.0)));
        assert_eq!(int("count", b"47134"), Ok(47134));
        assert_eq!(int("count", b"12.0"), Ok(12));
        assert_eq!(int("count", b"3.5").unwrap_err().reason, "not an integer");
        assert_eq!(int("count", b"x").unwrap_err().reason, "not a number");
        assert!(float("open", &[0xff, 0xfe]).is_err());
    }

    /// xorshift64*: deterministic pseudo-random numbers for the comparison below.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn fast_paths_equal_the_standard_parsers() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let mut fast = 0;
        for _ in 0..200_000 {
            let r = rng(&mut state);
            let int_digits = (r % 12) as usize;
            let frac_digits = ((r >> 8) % 14) as usize;
            let mut s = String::new();
            if r >> 16 & 1 == 1 {
                s.push('-');
            }
            for i in 0..int_digits {
                s.push(char::from(b'0' + (rng(&mut state) % 10) as u8));
                if i == 0 && r >> 17 & 1 == 1 {
                    s.push('0');
                }
            }
            if frac_digits > 0 || r >> 18 & 1 == 1 {
                s.push('.');
                for _ in 0..frac_digits {
                    s.push(char::from(b'0' + (rng(&mut state) % 10) as u8));
                }
                for _ in 0..(r >> 20) % 4 {
                    s.push('0');
                }
            }
            let std = s.parse::<f64>().ok();
            let got = float("x", s.as_bytes()).ok();
            assert_eq!(got.map(f64::to_bits), std.map(f64::to_bits), "{s:?}");
            fast += usize::from(fast_float(s.as_bytes()).is_some());
            let std = s.parse::<i64>().ok();
            if std.is_some() {
                assert_eq!(int("x", s.as_bytes()).ok(), std, "{s:?}");
            }
        }
        assert!(
            fast > 100_000,
            "the fast path is taken for plain decimals: {fast}"
        );
        for s in [
            "0.00037409",
            "42283.58000000",
            "53957248.97350000",
            "-0.0001",
            "+1",
            "5.",
            ".5",
        ] {
            assert_eq!(fast_float(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        for s in ["", ".", "-", "1e3", "1.2.3", "nan", "--1", "1-"] {
            assert_eq!(fast_float(s.as_bytes()), None, "{s}");
        }
        assert_eq!(float("x", b"-0").map(f64::to_bits), Ok((-0.0f64).to_bits()));
        assert_eq!(int("x", b"-0"), Ok(0));
        assert_eq!(int("x", b"9223372036854775807"), Ok(i64::MAX));
    }

    #[test]
    fn epochs_in_ms_and_micros() {
        assert_eq!(epoch_ms("t", b"1704067200000"), Ok(1_704_067_200_000));
        assert_eq!(epoch_ms("t", b"1735689600000000"), Ok(1_735_689_600_000));
        assert_eq!(epoch_ms("t", b"1735693199999999"), Ok(1_735_693_199_999));
    }

    #[test]
    fn utc_datetimes() {
        // 2025-01-21 00:05:00 UTC, not local time.
        assert_eq!(
            utc_datetime("create_time", b"2025-01-21 00:05:00"),
            Ok(1_737_417_900_000)
        );
        assert_eq!(
            utc_datetime("create_time", b"2025-01-21T00:05:00Z"),
            Ok(1_737_417_900_000)
        );
        assert_eq!(
            utc_datetime("create_time", b"2025-01-21 00:05:00.25"),
            Ok(1_737_417_900_250)
        );
        assert_eq!(
            utc_datetime("create_time", b"1737417900000"),
            Ok(1_737_417_900_000)
        );
        assert_eq!(
            utc_datetime("create_time", b"2024-02-29 23:59:59"),
            Ok(1_709_251_199_000)
        );
        for bad in [
            &b"2025-02-30 00:00:00"[..],
            b"2025-01-21 24:00:00",
            b"2025-01-21",
            b"2025/01/21 00:05:00",
            b"2025-01-21 00:05:00.",
            b"2025-01-21 00:05:00x",
            b"2025-01-21 0a:05:00",
        ] {
            let e = utc_datetime("create_time", bad).unwrap_err();
            assert_eq!(e.field, "create_time");
            assert!(e.reason.contains("YYYY-MM-DD HH:MM:SS"), "{e:?}");
        }
        assert_eq!(
            utc_datetime("create_time", b"").unwrap_err().reason,
            "empty"
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = vec![b'9'; 200];
        let shown = shown(&long);
        assert_eq!(shown.len(), MAX_VALUE_CHARS + 3);
        assert!(shown.ends_with("..."));
    }
}
