//! [`Table`]: the rows of one export step (one output day, for all or one symbol) with the
//! requested features in output order: stored columns moved out of the store's
//! [`KlineFrame`], derived `vwap` and `ret` computed here (with the model's
//! `marketdb_model::{vwap, ret}`), metric columns NaN until `align.rs` fills them, plus one
//! `{metric}_ts` column per metric (0 = no value). Every writer (NumPy, CSV, Parquet,
//! statistics) consumes tables; none of them reads the store.

use std::ops::Range;

use marketdb_model::{Feature, FeatureKind, ret, vwap};

use crate::{Column, KlineFrame, plan::Plan};

/// Rows ordered by (symbol, open time) with the plan's features.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Table {
    /// Each symbol with the range of its rows, ascending.
    pub symbols: Vec<(String, Range<usize>)>,
    /// Open time (ms UTC) of every row.
    pub timestamp: Vec<i64>,
    /// One column per plan feature, in plan order (`tnum` is `I64`, the rest `F64`).
    pub columns: Vec<Column>,
    /// One column per plan metric: the time of the metric value used (0 = none).
    pub metric_ts: Vec<Vec<i64>>,
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// Builds a table from a frame holding (at least) the plan's scan columns.
    pub(crate) fn from_frame(plan: &Plan, frame: KlineFrame) -> Table {
        let n = frame.len();
        let (symbols, timestamp, features, mut frame_columns) = frame.into_parts();
        let column = |cols: &[Column], f: Feature| -> Option<usize> {
            features
                .iter()
                .position(|g| *g == f)
                .filter(|i| *i < cols.len())
        };
        let f64_of = |cols: &[Column], f: Feature| -> Vec<f64> {
            match column(cols, f).map(|i| &cols[i]) {
                Some(Column::F64(v)) => v.clone(),
                Some(Column::I64(v)) => v.iter().map(|x| *x as f64).collect(),
                None => vec![f64::NAN; n],
            }
        };
        let mut columns = Vec::with_capacity(plan.features.len());
        for (i, &f) in plan.features.iter().enumerate() {
            let col = match f.kind() {
                FeatureKind::Column => {
                    // Move the column out when no later feature needs it, else copy it.
                    let later = plan.features[i + 1..].iter().any(|g| needs(*g, f));
                    match column(&frame_columns, f) {
                        Some(p) if !later => {
                            std::mem::replace(&mut frame_columns[p], Column::F64(Vec::new()))
                        }
                        Some(p) => frame_columns[p].clone(),
                        None if f.is_integer() => Column::I64(vec![0; n]),
                        None => Column::F64(vec![f64::NAN; n]),
                    }
                }
                FeatureKind::Derived if f == Feature::Vwap => {
                    let amt = f64_of(&frame_columns, Feature::QuoteVolume);
                    let vol = f64_of(&frame_columns, Feature::Volume);
                    Column::F64(amt.iter().zip(&vol).map(|(a, v)| vwap(*a, *v)).collect())
                }
                FeatureKind::Derived => {
                    let opn = f64_of(&frame_columns, Feature::Open);
                    let cls = f64_of(&frame_columns, Feature::Close);
                    Column::F64(opn.iter().zip(&cls).map(|(o, c)| ret(*o, *c)).collect())
                }
                FeatureKind::Metric(_) => Column::F64(vec![f64::NAN; n]),
            };
            columns.push(col);
        }
        Table {
            symbols,
            timestamp,
            columns,
            metric_ts: vec![vec![0; n]; plan.metrics.len()],
        }
    }
}

/// Whether computing `g` reads the stored column `f`.
fn needs(g: Feature, f: Feature) -> bool {
    match g {
        Feature::Vwap => matches!(f, Feature::QuoteVolume | Feature::Volume),
        Feature::Ret => matches!(f, Feature::Open | Feature::Close),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use marketdb_model::{Freq, TimeRange};

    use super::*;
    use crate::ExportRequest;

    /// A frame with the eleven kline columns; `rows` = (symbol, open, open price, close
    /// price, volume, quote volume, trades).
    pub(crate) fn frame(rows: &[(&str, i64, f64, f64, f64, f64, i64)]) -> KlineFrame {
        let (mut symbols, mut timestamp) = (Vec::<(String, Range<usize>)>::new(), vec![]);
        let (_, _, features, mut columns) = KlineFrame::empty(&Feature::KLINE).into_parts();
        for (i, r) in rows.iter().enumerate() {
            match symbols.last_mut() {
                Some((s, range)) if s == r.0 => range.end = i + 1,
                _ => symbols.push((r.0.to_owned(), i..i + 1)),
            }
            timestamp.push(r.1);
            for (c, feat) in columns.iter_mut().zip(Feature::KLINE) {
                match c {
                    Column::F64(v) => v.push(match feat {
                        Feature::Open => r.2,
                        Feature::High => r.2.max(r.3) + 1.0,
                        Feature::Low => r.2.min(r.3) - 0.5,
                        Feature::Close => r.3,
                        Feature::Volume => r.4,
                        Feature::QuoteVolume => r.5,
                        Feature::TakerBuyVolume => r.4 / 2.0,
                        Feature::TakerBuyQuoteVolume => r.5 / 2.0,
                        Feature::TakerSellVolume => r.4 - r.4 / 2.0,
                        _ => r.5 - r.5 / 2.0,
                    }),
                    Column::I64(v) => v.push(r.6),
                }
            }
        }
        KlineFrame::new(symbols, timestamp, features, columns).unwrap()
    }

    pub(crate) fn plan(features: Vec<Feature>) -> Plan {
        let mut r = ExportRequest::new(vec![], TimeRange::new(0, 86_400_000).unwrap(), Freq::H1);
        r.features = features;
        Plan::new(&r).unwrap()
    }

    #[test]
    fn derived_features_follow_definitions() {
        let f = frame(&[
            ("AAA", 0, 100.0, 110.0, 2.0, 210.0, 5),
            ("AAA", 3_600_000, 0.0, 1.0, 0.0, 0.0, 0),
        ]);
        let p = plan(vec![
            Feature::Vwap,
            Feature::Ret,
            Feature::Close,
            Feature::TradesCount,
        ]);
        let t = Table::from_frame(&p, f);
        let Column::F64(vw) = &t.columns[0] else {
            panic!()
        };
        assert_eq!(vw[0], 105.0);
        assert!(vw[1].is_nan(), "vol = 0 gives NaN");
        let Column::F64(r) = &t.columns[1] else {
            panic!()
        };
        assert_eq!(r[0], (110.0 - 100.0) / 100.0);
        assert!(r[1].is_nan(), "open = 0 gives NaN");
        assert_eq!(t.columns[2], Column::F64(vec![110.0, 1.0]));
        assert_eq!(t.columns[3], Column::I64(vec![5, 0]));
        assert!(t.metric_ts.is_empty());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn columns_used_by_derived_features_are_copied_not_moved() {
        let f = frame(&[("AAA", 0, 100.0, 110.0, 2.0, 210.0, 5)]);
        let p = plan(vec![Feature::Open, Feature::Ret, Feature::FundingRate]);
        let t = Table::from_frame(&p, f);
        assert_eq!(t.columns[0], Column::F64(vec![100.0]));
        assert_eq!(t.columns[1], Column::F64(vec![0.1]));
        let Column::F64(fr) = &t.columns[2] else {
            panic!()
        };
        assert!(fr[0].is_nan());
        assert_eq!(t.metric_ts, vec![vec![0]]);
    }
}
