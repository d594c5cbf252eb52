//! Metric alignment without look-ahead. [`MetricSeries`] holds one metric feature's
//! (time, value) points per symbol, sorted by time; [`align_table`] writes into each bar
//! of a [`Table`] the latest point of the SAME symbol whose time is <= the bar's close time
//! (`Freq::close_time(open)`) and > close time - tolerance, and the point's time into the
//! matching `{metric}_ts` column (0 when nothing matches). The rule itself is
//! `marketdb_model::align_as_of`, shared with the store's `read_combined`. Matching is by symbol and time,
//! never by position (the Python original's bug #20). Reading the metrics is the
//! exporter's job; this file does no I/O.

use std::collections::HashMap;

use marketdb_model::{Freq, align_as_of};

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
        align_as_of(
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
}
