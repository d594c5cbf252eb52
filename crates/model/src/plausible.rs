//! The time limits of the model, in one place.
//!
//! - The **supported span** `[TIME_MIN_MS, TIME_MAX_MS)` (1970-01-01 to 10000-01-01 UTC): every
//!   [`crate::TimeRange`] lies inside it, and [`crate::Freq`]'s bucket arithmetic clamps any
//!   `i64` into it first, so no instant can overflow a computation.
//! - The **plausibility window** [`TimeWindow`] of market data: by default from
//!   2009-01-03 (the first Bitcoin block; no crypto market is older) to one day after now.
//!   Every stored record's time must fall inside it; an open time that looks like epoch
//!   *seconds* is refused with a hint.
//!
//! It reads the clock only in [`TimeWindow::until_tomorrow`].

use crate::{DAY_MS, format_rfc3339};

/// First instant of the supported span: 1970-01-01T00:00:00Z.
pub const TIME_MIN_MS: i64 = 0;

/// End (exclusive) of the supported span: 10000-01-01T00:00:00Z.
pub const TIME_MAX_MS: i64 = 253_402_300_800_000;

/// 2009-01-03T00:00:00Z, the day of the first Bitcoin block: the default earliest time of
/// any market record.
pub const EARLIEST_MARKET_MS: i64 = 1_230_940_800_000;

/// `t` clamped into the supported span (its last millisecond at most).
pub(crate) fn clamp_ms(t: i64) -> i64 {
    t.clamp(TIME_MIN_MS, TIME_MAX_MS - 1)
}

/// The instants a market record may carry: `[earliest_ms, latest_ms]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest accepted time (inclusive).
    pub earliest_ms: i64,
    /// Latest accepted time (inclusive).
    pub latest_ms: i64,
}

impl TimeWindow {
    /// From [`EARLIEST_MARKET_MS`] to one day after the current time (clock skew and the
    /// open time of a bar that has just started are fine; next year's bars are not).
    pub fn until_tomorrow() -> TimeWindow {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        TimeWindow {
            earliest_ms: EARLIEST_MARKET_MS,
            latest_ms: now.saturating_add(DAY_MS),
        }
    }

    /// Whether `t` is inside the window.
    pub fn contains(&self, t: i64) -> bool {
        self.earliest_ms <= t && t <= self.latest_ms
    }

    /// Why `t` is outside the window (`None` when it is inside), with a hint when `t` reads
    /// as epoch seconds or microseconds would.
    pub fn refusal(&self, t: i64) -> Option<String> {
        if self.contains(t) {
            return None;
        }
        let side = if t < self.earliest_ms {
            format!("before {}", format_rfc3339(self.earliest_ms))
        } else {
            format!("after {}", format_rfc3339(self.latest_ms))
        };
        let hint = match t.checked_mul(1000) {
            Some(ms) if self.contains(ms) => format!(
                "; it looks like epoch seconds (x1000 = {}): times are epoch milliseconds",
                format_rfc3339(ms)
            ),
            _ if self.contains(t / 1000) && t > self.latest_ms => format!(
                "; it looks like epoch microseconds (/1000 = {}): times are epoch milliseconds",
                format_rfc3339(t / 1000)
            ),
            _ => String::new(),
        };
        Some(format!(
            "{} is {side}, outside the plausible window of market data{hint}",
            format_rfc3339(t)
        ))
    }
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow::until_tomorrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_and_hints() {
        let w = TimeWindow {
            earliest_ms: EARLIEST_MARKET_MS,
            latest_ms: 1_800_000_000_000,
        };
        assert!(w.contains(1_704_067_200_000));
        assert!(w.refusal(1_704_067_200_000).is_none());
        let secs = w.refusal(1_704_067_200).unwrap();
        assert!(secs.contains("looks like epoch seconds"), "{secs}");
        assert!(secs.contains("2024-01-01T00:00:00Z"), "{secs}");
        let year0 = w.refusal(-62_167_219_200_000).unwrap();
        assert!(year0.contains("before 2009-01-03"), "{year0}");
        let future = w.refusal(95_617_584_000_000).unwrap(); // year 5000
        assert!(future.contains("after"), "{future}");
        assert!(!future.contains("looks like"), "{future}");
        for t in [i64::MIN, -1, 0, i64::MAX] {
            assert!(w.refusal(t).is_some(), "{t}");
        }
        let d = TimeWindow::default();
        assert_eq!(d.earliest_ms, EARLIEST_MARKET_MS);
        assert!(d.latest_ms > 1_764_547_200_000, "after 2025-12-01");
    }

    #[test]
    fn clamp_keeps_the_span() {
        assert_eq!(clamp_ms(i64::MIN), 0);
        assert_eq!(clamp_ms(i64::MAX), TIME_MAX_MS - 1);
        assert_eq!(clamp_ms(5), 5);
        assert_eq!(format_rfc3339(TIME_MAX_MS), "10000-01-01T00:00:00Z");
    }
}
