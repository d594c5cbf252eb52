//! Metric alignment without look-ahead, the one rule shared by the exporter and
//! `read_combined`: a bar (open time `o`, close time `c = freq.close_time(o)`) receives the
//! latest metric point of the same symbol whose time `t` satisfies `c - tolerance < t <= c`,
//! or nothing (NaN, time 0). Points after the close are never used, so no bar sees the
//! future; a point exactly `tolerance` old is too old. Matching a symbol's bars to that
//! symbol's points is the caller's job; this file only walks two sorted lists.

use crate::{Freq, TimeRange};

/// Aligns one symbol's bars (`opens` ascending) onto its `points` (sorted by time; of two
/// points with the same time the later one wins): `values[i]`/`times[i]` receive the match
/// of bar `i`, or NaN and 0. The three slices `opens`, `values`, `times` have one entry per
/// bar; extra entries of the longer ones are left alone.
pub fn align_as_of(
    freq: Freq,
    opens: &[i64],
    points: &[(i64, f64)],
    tolerance_ms: i64,
    values: &mut [f64],
    times: &mut [i64],
) {
    let mut j = 0;
    for ((&open, value), time) in opens.iter().zip(values.iter_mut()).zip(times.iter_mut()) {
        let close = freq.close_time(open);
        while j < points.len() && points[j].0 <= close {
            j += 1;
        }
        match j.checked_sub(1).map(|k| points[k]) {
            Some((t, v)) if t > close.saturating_sub(tolerance_ms) => {
                *value = v;
                *time = t;
            }
            _ => {
                *value = f64::NAN;
                *time = 0;
            }
        }
    }
}

/// The metric times that can match bars opening at `opens` (any order): after the earliest
/// close minus the tolerance, up to and including the latest close. `None` without bars.
pub fn as_of_window(freq: Freq, opens: &[i64], tolerance_ms: i64) -> Option<TimeRange> {
    let first = opens.iter().min()?;
    let last = opens.iter().max()?;
    Some(TimeRange {
        start: freq
            .close_time(*first)
            .saturating_sub(tolerance_ms)
            .saturating_add(1),
        end_exclusive: freq.close_time(*last).saturating_add(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_704_067_200_000;

    #[test]
    fn a_bar_takes_the_latest_point_up_to_its_close() {
        // bars at t0, t0+1h, t0+2h; points at t0, t0+1h-1 (the first close), t0+1h,
        // t0+2.5h
        let pts = [
            (T0, 1.0),
            (T0 + H - 1, 2.0),
            (T0 + H, 3.0),
            (T0 + 5 * H / 2, 4.0),
        ];
        let opens = [T0, T0 + H, T0 + 2 * H];
        let (mut v, mut t) = ([0.0; 3], [0; 3]);
        align_as_of(Freq::H1, &opens, &pts, 6 * H, &mut v, &mut t);
        assert_eq!(t, [T0 + H - 1, T0 + H, T0 + 5 * H / 2]);
        assert_eq!(v, [2.0, 3.0, 4.0]);
        for (i, o) in opens.iter().enumerate() {
            assert!(t[i] <= Freq::H1.close_time(*o), "no look-ahead");
        }
    }

    #[test]
    fn tolerance_is_exclusive_and_missing_is_nan_zero() {
        let opens = [T0 + 10 * H];
        let close = Freq::H1.close_time(opens[0]);
        let (mut v, mut t) = ([0.0; 1], [0; 1]);
        align_as_of(
            Freq::H1,
            &opens,
            &[(close - 6 * H, 1.0)],
            6 * H,
            &mut v,
            &mut t,
        );
        assert!(
            v[0].is_nan() && t[0] == 0,
            "exactly tolerance old is too old"
        );
        let fresh = [(close - 6 * H + 1, 1.0)];
        align_as_of(Freq::H1, &opens, &fresh, 6 * H, &mut v, &mut t);
        assert_eq!((v[0], t[0]), (1.0, close - 6 * H + 1));
        align_as_of(Freq::H1, &opens, &[(close + 1, 1.0)], 6 * H, &mut v, &mut t);
        assert!(v[0].is_nan() && t[0] == 0, "a future point never matches");
        align_as_of(Freq::H1, &opens, &[], 6 * H, &mut v, &mut t);
        assert!(v[0].is_nan() && t[0] == 0);
    }

    #[test]
    fn short_output_slices_are_not_overrun() {
        let (mut v, mut t) = ([0.0; 1], [0; 1]);
        align_as_of(Freq::H1, &[T0, T0 + H], &[(T0, 1.0)], H, &mut v, &mut t);
        assert_eq!((v[0], t[0]), (1.0, T0));
    }

    #[test]
    fn windows_cover_every_possible_match() {
        let w = as_of_window(Freq::H1, &[T0 + H, T0], 6 * H).unwrap();
        assert_eq!(w.start, T0 + H - 1 - 6 * H + 1);
        assert_eq!(w.end_exclusive, T0 + 2 * H);
        assert!(as_of_window(Freq::H1, &[], H).is_none());
        let w = as_of_window(Freq::W1, &[T0], 6 * H).unwrap();
        assert_eq!(
            w.end_exclusive,
            T0 + 7 * 24 * H,
            "a weekly bar closes a week later"
        );
    }
}
