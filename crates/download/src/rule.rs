//! The one rule for the source record: what a source's answer means for a period, and
//! whether a recorded period is asked again. Every writer of `source_gaps` (Vision files,
//! REST fills of klines and funding rates) goes through these functions, so the kinds
//! mean the same thing whoever wrote them.
//!
//! Four kinds:
//! - `not_published`: Vision answered 404 for a period older than its publication lag;
//! - `not_yet_published`: Vision answered 404 before the lag had passed (always asked
//!   again: the file may still come);
//! - `failed`: a transient answer (a `5xx`, a timeout, a body cut or larger than its rows
//!   allow, a page that is not a zip, a checksum that does not match, a failed REST
//!   request): always asked again;
//! - `partial`: the exchange published the period with bars missing.
//!
//! Publication lag: a daily file is due 36 hours after its day ends (the next UTC day,
//! plus 12 hours of margin); a monthly file is due on the 16th of the next month, 00:00
//! UTC. Binance's archive usually has a day's file a few hours into the next day and a
//! month's file in the first days of the next month; the margins keep a slow publication
//! from being recorded as "never".

use marketdb_fetch::Period;
use marketdb_model::TimeRange;
use marketdb_model::time::DAY_MS;
use serde::Serialize;

/// Hours after a day ends before its daily file is due.
pub const DAILY_LAG_HOURS: i64 = 36;

/// Day of the next month from which a monthly file is due.
pub const MONTHLY_DUE_DAY: i64 = 16;

const HOUR_MS: i64 = 3_600_000;

/// The kind of a recorded gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    NotPublished,
    NotYetPublished,
    Failed,
    Partial,
}

impl GapKind {
    /// The `source_gaps.status` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::NotPublished => "not_published",
            GapKind::NotYetPublished => "not_yet_published",
            GapKind::Failed => "failed",
            GapKind::Partial => "partial",
        }
    }

    /// Reads a status. Older files may hold `checksum_mismatch` (a failed transfer); an
    /// unknown status counts as failed, so it is asked again rather than skipped.
    pub fn parse(status: &str) -> GapKind {
        match status {
            "not_published" => GapKind::NotPublished,
            "not_yet_published" => GapKind::NotYetPublished,
            "partial" => GapKind::Partial,
            _ => GapKind::Failed,
        }
    }

    /// Every kind, in report order.
    pub const ALL: [GapKind; 4] = [
        GapKind::NotPublished,
        GapKind::NotYetPublished,
        GapKind::Failed,
        GapKind::Partial,
    ];
}

impl std::fmt::Display for GapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When Vision's file for `period` is due (ms): a 404 from then on means "never".
pub fn due(period: Period) -> i64 {
    match period {
        Period::Day(_) => period.end_ms().saturating_add(DAILY_LAG_HOURS * HOUR_MS),
        Period::Month(..) => period
            .end_ms()
            .saturating_add((MONTHLY_DUE_DAY - 1) * DAY_MS),
    }
}

/// What a Vision 404 for `period`, answered at `asked_at`, means.
pub fn after_not_found(period: Period, asked_at: i64) -> GapKind {
    if asked_at >= due(period) {
        GapKind::NotPublished
    } else {
        GapKind::NotYetPublished
    }
}

/// A recorded gap, as the rule reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub period: Period,
    pub kind: GapKind,
    /// When it was last asked (ms).
    pub last_checked: i64,
}

/// Whether a recorded period is asked again at `now`. `failed` and `not_yet_published`
/// always are. `not_published` is skipped only when its 404 was answered after the period
/// was due (a record from an earlier version, made too early, is asked again) and the
/// period ended at least `recheck_days` ago; `partial` only when the period ended at least
/// `recheck_days` ago (the exchange may still complete it).
pub fn ask_again(r: &Recorded, now: i64, recheck_days: i64) -> bool {
    let young = r.period.end_ms() > now.saturating_sub(recheck_days.max(0).saturating_mul(DAY_MS));
    match r.kind {
        GapKind::Failed | GapKind::NotYetPublished => true,
        GapKind::NotPublished => young || r.last_checked < due(r.period),
        GapKind::Partial => young,
    }
}

/// What a period holding `present` of its `expected` rows is, once its source answered:
/// `None` when complete (its record, whatever it was, is cleared), else partial.
pub fn after_stored(present: u64, expected: u64) -> Option<GapKind> {
    (present < expected).then_some(GapKind::Partial)
}

/// The daily periods wholly inside `window` that have ended by `now`: the only days a
/// REST fill may judge (a window starting or ending mid-day asked for part of its edge
/// days only).
pub fn days_inside(window: TimeRange, now: i64) -> Vec<Period> {
    let mut out = Vec::new();
    let mut day = window.start.div_euclid(DAY_MS) * DAY_MS;
    if day < window.start {
        day += DAY_MS;
    }
    while day + DAY_MS <= window.end_exclusive && day + DAY_MS <= now {
        out.push(Period::Day(day));
        day += DAY_MS;
    }
    out
}

/// Whether `period` lies wholly inside `window` and has ended by `now`.
pub fn judged_inside(period: Period, window: TimeRange, now: i64) -> bool {
    period.start_ms() >= window.start
        && period.end_ms() <= window.end_exclusive
        && period.end_ms() <= now
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketdb_model::time::parse_ymd;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        parse_ymd(y, m, d).unwrap()
    }

    #[test]
    fn a_404_before_the_lag_is_not_yet_published_and_after_it_not_published() {
        let d = Period::Day(day(2024, 3, 1));
        // Yesterday's file asked at 00:30 on 2 March, and at 11:59 on 3 March.
        assert_eq!(
            after_not_found(d, day(2024, 3, 2) + HOUR_MS / 2),
            GapKind::NotYetPublished
        );
        assert_eq!(
            after_not_found(d, day(2024, 3, 3) + 12 * HOUR_MS - 1),
            GapKind::NotYetPublished
        );
        assert_eq!(
            after_not_found(d, day(2024, 3, 3) + 12 * HOUR_MS),
            GapKind::NotPublished
        );
        // February's monthly file: asked on 10 March, then on 16 March.
        let m = Period::Month(2024, 2);
        assert_eq!(
            after_not_found(m, day(2024, 3, 10)),
            GapKind::NotYetPublished
        );
        assert_eq!(after_not_found(m, day(2024, 3, 16)), GapKind::NotPublished);
    }

    #[test]
    fn only_old_enough_evidence_is_skipped() {
        let p = Period::Day(day(2024, 1, 10));
        let now = day(2024, 3, 1);
        let r = |kind, last_checked| Recorded {
            period: p,
            kind,
            last_checked,
        };
        assert!(!ask_again(
            &r(GapKind::NotPublished, day(2024, 1, 20)),
            now,
            3
        ));
        assert!(!ask_again(&r(GapKind::Partial, day(2024, 1, 20)), now, 3));
        assert!(ask_again(&r(GapKind::Failed, day(2024, 1, 20)), now, 3));
        assert!(ask_again(
            &r(GapKind::NotYetPublished, day(2024, 1, 11)),
            now,
            3
        ));
        // A "not published" recorded 30 minutes after the day: made too early.
        assert!(ask_again(
            &r(GapKind::NotPublished, day(2024, 1, 11) + HOUR_MS / 2),
            now,
            3
        ));
        // Young periods are asked again whatever they hold.
        assert!(ask_again(
            &r(GapKind::NotPublished, day(2024, 1, 20)),
            day(2024, 1, 12),
            3
        ));
        assert_eq!(GapKind::parse("checksum_mismatch"), GapKind::Failed);
        for k in GapKind::ALL {
            assert_eq!(GapKind::parse(k.as_str()), k);
        }
    }

    #[test]
    fn a_window_starting_or_ending_mid_day_judges_only_its_whole_days() {
        let w = TimeRange::new(day(2024, 1, 1) + 12 * HOUR_MS, day(2024, 1, 4) + HOUR_MS).unwrap();
        assert_eq!(
            days_inside(w, day(2024, 2, 1)),
            [Period::Day(day(2024, 1, 2)), Period::Day(day(2024, 1, 3))]
        );
        // A day not over yet is not judged.
        assert_eq!(
            days_inside(w, day(2024, 1, 3) + HOUR_MS),
            [Period::Day(day(2024, 1, 2))]
        );
        assert!(judged_inside(
            Period::Day(day(2024, 1, 2)),
            w,
            day(2024, 2, 1)
        ));
        assert!(!judged_inside(
            Period::Day(day(2024, 1, 1)),
            w,
            day(2024, 2, 1)
        ));
        assert_eq!(after_stored(10, 10), None);
        assert_eq!(after_stored(3, 10), Some(GapKind::Partial));
    }
}
