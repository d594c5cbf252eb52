//! Metric alignment without look-ahead. [`MetricSeries`] holds one metric feature's
//! (time, value) points per symbol, sorted by time; [`align_table`] writes into each bar
//! of a [`Table`] the latest point of the SAME symbol whose time is <= the bar's close time
//! (`Freq::close_time(open)`) and > close time - tolerance, and the point's time into the
//! matching `{metric}_ts` column (0 when nothing matches). Matching is by symbol and time,
//! never by position (the Python original's bug #20). Reading the metrics is the
//! exporter's job; this file does no I/O.

use std::collections::HashMap;

use marketdb_model::{Freq, TimeRange};

use crate::{Column, table::Table};

/// One metric feature's points per symbol, each list sorted by time.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MetricSeries {
    by_symbol: HashMap<String, Vec<(i64, f64)>>,
}

impl MetricSeries {
    /// Groups `(symbol, time, value)` points; missing (`None`) and NaN values are skipped
    /// so an earlier valid point can still be used.
    pub(crate) fn from_points<'a>(
        points: impl IntoIterator<Item = (&'a str, i64, Option<f64>)>,
    ) -> MetricSeries {
        let mut by_symbol: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
        for (sym, t, v) in points {
            let Some(v) = v.filter(|v| !v.is_nan()) else {
                continue;
            };
            match by_symbol.get_mut(sym) {
                Some(list) => list.push((t, v)),
                None => {
                    by_symbol.insert(sym.to_owned(), vec![(t, v)]);
                }
            }
        }
        for list in by_symbol.values_mut() {
            // Stable: of two points at the same time the later one read wins below.
            list.sort_by_key(|p| p.0);
        }
        MetricSeries { by_symbol }
    }

    /// The points of `symbol` (empty when it has none).
    pub(crate) fn points(&self, symbol: &str) -> &[(i64, f64)] {
        self.by_symbol.get(symbol).map_or(&[], Vec::as_slice)
    }
}

/// The window of metric times that can match bars opening at `opens` (any order): from
/// (earliest close - tolerance, exclusive) to the latest close (inclusive).
pub(crate) fn window(freq: Freq, opens: &[i64], tolerance_ms: i64) -> Option<TimeRange> {
    let first = opens.iter().min()?;
    let last = opens.iter().max()?;
    Some(TimeRange {
        start: freq.close_time(*first) - tolerance_ms + 1,
        end_exclusive: freq.close_time(*last) + 1,
    })
}

/// Aligns one symbol's bars (open times ascending) onto `points` (sorted by time).
pub(crate) fn align_run(
    freq: Freq,
    opens: &[i64],
    points: &[(i64, f64)],
    tolerance_ms: i64,
    values: &mut [f64],
    times: &mut [i64],
) {
    let mut j = 0;
    for (i, &open) in opens.iter().enumerate() {
        let close = freq.close_time(open);
        while j < points.len() && points[j].0 <= close {
            j += 1;
        }
        match j.checked_sub(1).map(|k| points[k]) {
            Some((t, v)) if t > close - tolerance_ms => {
                values[i] = v;
                times[i] = t;
            }
            _ => {
                values[i] = f64::NAN;
                times[i] = 0;
            }
        }
    }
}

/// Fills the table's column `col` and metric-time column `ts_col` from `series`, for the
/// symbol runs `runs` (indices into `table.symbols`).
pub(crate) fn align_table(
    table: &mut Table,
    runs: std::ops::Range<usize>,
    freq: Freq,
    col: usize,
    ts_col: usize,
    series: &MetricSeries,
    tolerance_ms: i64,
) {
    let Table {
        symbols,
        timestamp,
        columns,
        metric_ts,
    } = table;
    let (Some(Column::F64(values)), Some(times)) =
        (columns.get_mut(col), metric_ts.get_mut(ts_col))
    else {
        return;
    };
    for (sym, rows) in symbols.get(runs).unwrap_or_default() {
        align_run(
            freq,
            &timestamp[rows.clone()],
            series.points(sym),
            tolerance_ms,
            &mut values[rows.clone()],
            &mut times[rows.clone()],
        );
    }
}

#[cfg(test)]
mod tests {
    use marketdb_model::{Feature, MetricFamily};

    use super::*;
    use crate::table::tests::{frame, plan};

    const H: i64 = 3_600_000;
    const T0: i64 = 1_704_067_200_000;

    #[test]
    fn python_semantics_table_with_close_time_and_equal() {
        // klines at t0, t0+1h, t0+2h; metrics at t0, t0+1h-1, t0+1h, t0+2.5h
        let pts = [
            (T0, 1.0),
            (T0 + H - 1, 2.0),
            (T0 + H, 3.0),
            (T0 + 5 * H / 2, 4.0),
        ];
        let opens = [T0, T0 + H, T0 + 2 * H];
        let (mut v, mut t) = ([0.0; 3], [0; 3]);
        align_run(Freq::H1, &opens, &pts, 6 * H, &mut v, &mut t);
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
        align_run(
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
        align_run(
            Freq::H1,
            &opens,
            &[(close - 6 * H + 1, 1.0)],
            6 * H,
            &mut v,
            &mut t,
        );
        assert_eq!((v[0], t[0]), (1.0, close - 6 * H + 1));
        align_run(Freq::H1, &opens, &[(close + 1, 1.0)], 6 * H, &mut v, &mut t);
        assert!(v[0].is_nan() && t[0] == 0, "a future point never matches");
        align_run(Freq::H1, &opens, &[], 6 * H, &mut v, &mut t);
        assert!(v[0].is_nan() && t[0] == 0);
    }

    #[test]
    fn rows_match_their_own_symbol_never_by_position() {
        // AAA sorts first and has no metric; BBB has funding every 8h.
        let f = frame(&[
            ("AAA", T0, 1.0, 1.0, 1.0, 1.0, 1),
            ("AAA", T0 + H, 1.0, 1.0, 1.0, 1.0, 1),
            ("BBB", T0, 1.0, 1.0, 1.0, 1.0, 1),
            ("BBB", T0 + 9 * H, 1.0, 1.0, 1.0, 1.0, 1),
        ]);
        let p = plan(vec![Feature::Close, Feature::FundingRate]);
        let mut t = Table::from_frame(&p, f);
        let series = MetricSeries::from_points([
            ("BBB", T0 + 8 * H, Some(0.02)),
            ("BBB", T0 - 16 * H, Some(0.01)),
            ("BBB", T0 - 8 * H, None),
            ("CCC", T0, Some(9.0)),
        ]);
        let tol = MetricFamily::FundingRate.tolerance_ms();
        align_table(&mut t, 0..2, Freq::H1, 1, 0, &series, tol);
        let Column::F64(v) = &t.columns[1] else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1].is_nan());
        assert_eq!(&v[2..], &[0.01, 0.02]);
        assert_eq!(t.metric_ts[0], vec![0, 0, T0 - 16 * H, T0 + 8 * H]);
    }

    #[test]
    fn windows_cover_every_possible_match() {
        let w = window(Freq::H1, &[T0 + H, T0], 6 * H).unwrap();
        assert_eq!(w.start, T0 + H - 1 - 6 * H + 1);
        assert_eq!(w.end_exclusive, T0 + 2 * H);
        assert!(window(Freq::H1, &[], H).is_none());
        let w = window(Freq::W1, &[T0], 6 * H).unwrap();
        assert_eq!(
            w.end_exclusive,
            T0 + 7 * 24 * H,
            "a weekly bar closes a week later"
        );
    }
}
