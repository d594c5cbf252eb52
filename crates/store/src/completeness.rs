//! Completeness checks: the expected bar grid of an interval over a range compared, in one
//! streaming pass, with the stored open times of a symbol. Reports coverage, missing bars
//! merged into runs, and suspicious rows (open times off the grid, values breaking the
//! kline rules: files written by other tools may hold them).
//!
//! The grid is never materialised: it is an iterator with O(1) skips over holes, so a year
//! of `1s` bars costs no memory beyond the report. `3d` takes its phase from the symbol's
//! first stored `3d` bar (Binance does not document it), else Unix-epoch multiples.

use marketdb_model::{Freq, Kline, TimeRange, Validator};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::read::{value_f64, value_i64};
use crate::{Result, Tables};

/// The result of [`crate::AsyncMarketDB::check_completeness`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompletenessReport {
    pub freq: Freq,
    pub range: TimeRange,
    /// One entry per symbol, ascending.
    pub symbols: Vec<SymbolCompleteness>,
}

/// Completeness of one symbol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SymbolCompleteness {
    pub symbol: String,
    /// Bars the grid expects in the range.
    pub expected: u64,
    /// Stored bars on the grid.
    pub present: u64,
    /// `present / expected`; 1.0 when nothing is expected (an empty range has nothing
    /// missing).
    pub coverage: f64,
    /// Missing bars merged into runs of consecutive grid slots.
    pub missing: Vec<MissingRun>,
    /// Stored rows that are off the grid or break the kline rules.
    pub suspicious: Vec<SuspiciousRow>,
}

/// Consecutive missing bars.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingRun {
    /// Open time of the first missing bar.
    pub start: i64,
    /// Open time of the last missing bar.
    pub end: i64,
    pub count: u64,
}

/// A stored row that should not be there as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuspiciousRow {
    pub timestamp: i64,
    pub reason: String,
}

/// One step of a check ([`Checker::steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read these rows and compare them with the grid.
    Rows(TimeRange),
    /// Every slot of `[start, end)` is stored and valid (the change record says so).
    Whole(i64, i64),
}

/// The bars per UTC day and their spacing, for intervals whose grid tiles each day
/// exactly (`1s` to `1d`, not `3d`, weeks or months): the shape of a whole day.
pub(crate) fn day_shape(freq: Freq) -> Option<(i64, i64)> {
    let len = freq.fixed_ms()?;
    (freq != Freq::D3 && len > 0 && marketdb_model::time::DAY_MS % len == 0)
        .then(|| (marketdb_model::time::DAY_MS / len, len))
}

/// The open times of an interval's buckets in a range, as an iterator with cheap skips.
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    freq: Freq,
    next: i64,
    end: i64,
}

impl Grid {
    /// The grid of `freq` over `range`; `anchor` (a stored `3d` open time) sets the 3-day
    /// phase.
    pub(crate) fn new(freq: Freq, range: TimeRange, anchor: Option<i64>) -> Grid {
        let next = match (freq, freq.fixed_ms()) {
            (Freq::D3, Some(len)) => {
                let anchor = anchor.filter(|a| Freq::D3.is_valid_open(*a)).unwrap_or(0);
                range.start + (anchor - range.start).rem_euclid(len)
            }
            _ => {
                let f = freq.floor(range.start);
                if f < range.start { freq.next(f) } else { f }
            }
        };
        Grid {
            freq,
            next,
            end: range.end_exclusive,
        }
    }

    fn step(&self, t: i64) -> i64 {
        match self.freq.fixed_ms() {
            Some(len) => t + len,
            None => self.freq.next(t),
        }
    }

    pub(crate) fn peek(&self) -> Option<i64> {
        (self.next < self.end).then_some(self.next)
    }

    pub(crate) fn advance(&mut self) {
        self.next = self.step(self.next);
    }

    /// Skips every slot before `t` (and before the end), returning them as one run.
    pub(crate) fn skip_to(&mut self, t: i64) -> Option<MissingRun> {
        let limit = t.min(self.end);
        if self.next >= limit {
            return None;
        }
        let start = self.next;
        match self.freq.fixed_ms() {
            Some(len) => {
                let count = (limit - start + len - 1) / len;
                self.next = start + count * len;
                Some(MissingRun {
                    start,
                    end: start + (count - 1) * len,
                    count: count as u64,
                })
            }
            None => {
                let mut count = 0u64;
                let mut last = start;
                while self.next < limit {
                    last = self.next;
                    count += 1;
                    self.next = self.freq.next(self.next);
                }
                Some(MissingRun {
                    start,
                    end: last,
                    count,
                })
            }
        }
    }

    /// Number of slots left (from the current position).
    pub(crate) fn remaining(&self) -> u64 {
        self.clone().skip_to(i64::MAX).map_or(0, |r| r.count)
    }
}

/// Appends a run, merging it with the previous one when they are adjacent on the grid.
pub(crate) fn push_run(runs: &mut Vec<MissingRun>, grid: &Grid, run: MissingRun) {
    if let Some(last) = runs.last_mut()
        && grid.step(last.end) == run.start
    {
        last.end = run.end;
        last.count += run.count;
        return;
    }
    runs.push(run);
}

/// Stored rows checked per read: a long range is checked in windows, each its own short
/// read, with the grid position carried across.
const WINDOW_BARS: i64 = 1_000_000;

/// The completeness check of one symbol, fed window by window in time order.
#[derive(Debug)]
pub(crate) struct Checker {
    freq: Freq,
    range: TimeRange,
    grid: Grid,
    /// First and last stored open time in the range (two seeks): only windows between
    /// them can hold rows, and a symbol without rows in the range needs no read at all.
    stored: Option<(i64, i64)>,
    expected: u64,
    present: u64,
    missing: Vec<MissingRun>,
    suspicious: Vec<SuspiciousRow>,
    /// One reused record: validation without a per-row allocation.
    k: Kline,
}

impl Checker {
    /// Sets up the grid of `symbol` (reading its first `3d` bar for the phase).
    pub(crate) fn new(
        conn: &Connection,
        t: &Tables,
        symbol: &str,
        freq: Freq,
        range: TimeRange,
    ) -> Result<Checker> {
        let anchor = if freq == Freq::D3 {
            conn.query_row(
                &format!(
                    "SELECT timestamp FROM {} WHERE symbol = ?1 AND freq = ?2 \
                     ORDER BY timestamp LIMIT 1",
                    t.kline
                ),
                params![symbol, freq.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        } else {
            None
        };
        let grid = Grid::new(freq, range, anchor);
        let edge = |dir: &str| -> Result<Option<i64>> {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT timestamp FROM {} WHERE symbol = ?1 AND freq = ?2 \
                 AND timestamp >= ?3 AND timestamp < ?4 ORDER BY timestamp {dir} LIMIT 1",
                t.kline
            ))?;
            Ok(stmt
                .query_row(
                    params![symbol, freq.as_str(), range.start, range.end_exclusive],
                    |r| r.get(0),
                )
                .optional()?)
        };
        let stored = edge("ASC")?.zip(edge("DESC")?);
        Ok(Checker {
            freq,
            range,
            stored,
            expected: grid.remaining(),
            grid,
            present: 0,
            missing: Vec::new(),
            suspicious: Vec::new(),
            k: Kline {
                symbol: symbol.to_owned(),
                open_time: 0,
                open: 0.0,
                high: 0.0,
                low: 0.0,
                close: 0.0,
                volume: 0.0,
                close_time: 0,
                quote_volume: 0.0,
                trades_count: 0,
                taker_buy_volume: 0.0,
                taker_buy_quote_volume: 0.0,
            },
        })
    }

    /// The work of the check in time order: windows of rows to read, and the `whole`
    /// periods (`[start, end)`, sorted, disjoint, inside the range, each holding a stored
    /// row at both ends) whose slots are all present without reading them.
    pub(crate) fn steps(&self, whole: &[(i64, i64)]) -> Vec<Step> {
        let Some((first, last)) = self.stored else {
            return Vec::new();
        };
        let chunk = self.freq.nominal_ms().saturating_mul(WINDOW_BARS);
        let stop = last.saturating_add(1).min(self.range.end_exclusive);
        let rows = |out: &mut Vec<Step>, from: i64, to: i64| {
            let mut start = from;
            while start < to {
                let end = start.saturating_add(chunk).min(to);
                out.push(Step::Rows(TimeRange {
                    start,
                    end_exclusive: end,
                }));
                start = end;
            }
        };
        let mut out = Vec::new();
        let mut cur = first;
        for &(start, end) in whole {
            if end <= cur || start >= stop {
                continue;
            }
            rows(&mut out, cur, start);
            out.push(Step::Whole(start.max(cur), end));
            cur = end;
        }
        rows(&mut out, cur, stop);
        out
    }

    /// Counts every slot of `[start, end)` as present (a period the change record vouches
    /// is whole), after the missing run before it, if any.
    pub(crate) fn whole(&mut self, start: i64, end: i64) {
        if let Some(run) = self.grid.skip_to(start) {
            push_run(&mut self.missing, &self.grid, run);
        }
        while self.grid.peek().is_some_and(|t| t < end) {
            self.grid.advance();
            self.present += 1;
        }
    }

    /// Compares the stored rows in `window` (the next window in time order) with the grid.
    pub(crate) fn feed(&mut self, conn: &Connection, t: &Tables, window: TimeRange) -> Result<()> {
        let freq = self.freq;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT timestamp, open_price, high_price, low_price, close_price, volume, \
             quote_volume, trades_count, taker_buy_volume, taker_buy_quote_volume FROM {} \
             WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 AND timestamp < ?4 \
             ORDER BY timestamp",
            t.kline
        ))?;
        let mut rows = stmt.query(params![
            self.k.symbol,
            freq.as_str(),
            window.start,
            window.end_exclusive
        ])?;
        let validator = Validator::default();
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            if let Some(run) = self.grid.skip_to(ts) {
                push_run(&mut self.missing, &self.grid, run);
            }
            if self.grid.peek() == Some(ts) {
                self.present += 1;
                self.grid.advance();
            } else {
                self.suspicious.push(SuspiciousRow {
                    timestamp: ts,
                    reason: format!("open time is not on the {freq} grid"),
                });
            }
            let k = &mut self.k;
            k.open_time = ts;
            // v1.9 tables keep no close time: judge the row by its values only.
            k.close_time = freq.close_time(ts);
            k.open = value_f64(row.get_ref(1)?);
            k.high = value_f64(row.get_ref(2)?);
            k.low = value_f64(row.get_ref(3)?);
            k.close = value_f64(row.get_ref(4)?);
            k.volume = value_f64(row.get_ref(5)?);
            k.quote_volume = value_f64(row.get_ref(6)?);
            k.trades_count = value_i64(row.get_ref(7)?);
            k.taker_buy_volume = value_f64(row.get_ref(8)?);
            k.taker_buy_quote_volume = value_f64(row.get_ref(9)?);
            // Alignment was judged against the grid above (which knows the 3d phase).
            if let Err(e) = validator.kline(k, freq)
                && e.field != "open_time"
            {
                self.suspicious.push(SuspiciousRow {
                    timestamp: ts,
                    reason: format!("{} = {}: {}", e.field, e.value, e.reason),
                });
            }
        }
        Ok(())
    }

    /// The report, once every window was fed.
    pub(crate) fn finish(mut self) -> SymbolCompleteness {
        if let Some(run) = self.grid.skip_to(i64::MAX) {
            push_run(&mut self.missing, &self.grid, run);
        }
        SymbolCompleteness {
            symbol: self.k.symbol,
            expected: self.expected,
            present: self.present,
            coverage: if self.expected == 0 {
                1.0
            } else {
                self.present as f64 / self.expected as f64
            },
            missing: self.missing,
            suspicious: self.suspicious,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketdb_model::time::{DAY_MS, parse_ymd};

    #[test]
    fn grid_counts_match_the_model_grid() {
        let s = parse_ymd(2023, 11, 17).unwrap() + 12_345;
        let e = parse_ymd(2024, 3, 2).unwrap();
        let range = TimeRange::new(s, e).unwrap();
        for f in Freq::ALL.into_iter().filter(|f| *f >= Freq::M1) {
            let want: Vec<i64> = f.grid(s, e).collect();
            let mut g = Grid::new(f, range, None);
            assert_eq!(g.remaining(), want.len() as u64, "{f}");
            let mut got = Vec::new();
            while let Some(t) = g.peek() {
                got.push(t);
                g.advance();
            }
            assert_eq!(got, want, "{f}");
        }
    }

    #[test]
    fn skips_make_runs_and_adjacent_runs_merge() {
        let range = TimeRange::new(0, 10 * 60_000).unwrap();
        let mut g = Grid::new(Freq::M1, range, None);
        let r = g.skip_to(3 * 60_000 + 5).unwrap();
        assert_eq!(
            r,
            MissingRun {
                start: 0,
                end: 3 * 60_000,
                count: 4
            }
        );
        assert_eq!(g.peek(), Some(4 * 60_000));
        let mut runs = vec![r];
        let r2 = g.skip_to(6 * 60_000).unwrap();
        push_run(&mut runs, &g, r2);
        assert_eq!(
            runs,
            vec![MissingRun {
                start: 0,
                end: 5 * 60_000,
                count: 6
            }]
        );
        g.advance();
        let r3 = g.skip_to(i64::MAX).unwrap();
        push_run(&mut runs, &g, r3.clone());
        assert_eq!(
            r3,
            MissingRun {
                start: 7 * 60_000,
                end: 9 * 60_000,
                count: 3
            }
        );
        assert_eq!(runs.len(), 2);
        assert!(g.skip_to(i64::MAX).is_none());
    }

    #[test]
    fn three_day_phase_comes_from_the_anchor() {
        let range = TimeRange::new(0, 12 * DAY_MS).unwrap();
        let g = Grid::new(Freq::D3, range, Some(DAY_MS));
        assert_eq!(g.peek(), Some(DAY_MS));
        assert_eq!(g.remaining(), 4);
        let g = Grid::new(Freq::D3, range, Some(DAY_MS + 5));
        assert_eq!(
            g.peek(),
            Some(0),
            "a misaligned anchor falls back to epoch multiples"
        );
    }
}
