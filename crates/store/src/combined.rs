//! Bars with their metrics: [`AsyncMarketDB::read_combined`] and
//! [`AsyncMarketDB::combine`] put funding rates, open interest and long/short ratios
//! beside each bar, as of the bar's close, by the exporter's no-look-ahead rule
//! ([`marketdb_model::align_as_of`], tolerances from [`MetricFamily::tolerance_ms`]). Unlike
//! the Python `get_combined_data`, which joined on exact (symbol, timestamp) keys and so
//! found a funding rate only for bars opening at the funding instant, every bar gets the
//! latest value known at its close, and the value's own time comes with it.

use marketdb_model::{
    Feature, FeatureKind, Freq, MetricFamily, TimeRange, align_as_of, as_of_window,
};

use crate::{AsyncMarketDB, Column, Error, KlineFrame, Result, Tables, metrics};

/// A [`KlineFrame`] whose metric features were aligned onto its bars, with the time of the
/// value each bar received (`as_of`, 0 where none was recent enough; the value is NaN then).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CombinedFrame {
    frame: KlineFrame,
    as_of: Vec<(Feature, Vec<i64>)>,
}

impl CombinedFrame {
    /// The bars, with every requested feature (metric ones as f64 columns).
    pub fn frame(&self) -> &KlineFrame {
        &self.frame
    }

    /// The time (ms UTC) of the metric value each bar received for `feature`, 0 for none;
    /// `None` when `feature` is not a metric feature of this frame.
    pub fn as_of(&self, feature: Feature) -> Option<&[i64]> {
        self.as_of
            .iter()
            .find(|(f, _)| *f == feature)
            .map(|(_, t)| t.as_slice())
    }

    /// The frame and the `as_of` times per metric feature, in request order.
    pub fn into_parts(self) -> (KlineFrame, Vec<(Feature, Vec<i64>)>) {
        (self.frame, self.as_of)
    }
}

impl CombinedFrame {
    /// The stored and derived features a read must fetch so that [`AsyncMarketDB::combine`]
    /// can produce `features`: those of `features` in order, or the close alone (to know
    /// the bars) when `features` holds only metrics.
    pub fn bar_features(features: &[Feature]) -> Vec<Feature> {
        let (bars, metrics) = split(features);
        if bars.is_empty() && !metrics.is_empty() {
            vec![Feature::Close]
        } else {
            bars
        }
    }
}

impl AsyncMarketDB {
    /// Bars of `symbols` (all symbols of `freq` when empty) in `range` with `features`,
    /// which may mix stored, derived and metric features (`fr`, `oi`, `oiv`, `lsr_*`) in any
    /// order; metric values are aligned as of each bar's close (no look-ahead; funding
    /// within 48 h, open interest and ratios within 6 h), open interest and ratios read at
    /// `metric_period` (Binance's metrics files: 5m). Empty `features` = the eleven stored
    /// columns. `raise_on_empty` turns a result without bars into [`Error::NoData`].
    pub async fn read_combined(
        &self,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
        features: &[Feature],
        metric_period: Freq,
        raise_on_empty: bool,
    ) -> Result<CombinedFrame> {
        let read = CombinedFrame::bar_features(features);
        let frame = self
            .read_data(range, freq, symbols, &read, raise_on_empty)
            .await?;
        if features.is_empty() {
            return Ok(CombinedFrame {
                frame,
                as_of: Vec::new(),
            });
        }
        self.combine(frame, freq, features, metric_period).await
    }

    /// The bars of `frame` (of `freq`, read with at least
    /// [`CombinedFrame::bar_features`]`(features)`) with exactly `features`, in that order:
    /// stored and derived ones taken from the frame, metric ones aligned as
    /// [`Self::read_combined`] does. Metrics are read per symbol over the window its bars
    /// can use, so a frame of a few bars reads a few metric rows; this is how a stream of
    /// frames gets its metrics chunk by chunk.
    pub async fn combine(
        &self,
        frame: KlineFrame,
        freq: Freq,
        features: &[Feature],
        metric_period: Freq,
    ) -> Result<CombinedFrame> {
        let (bars, metrics) = split(features);
        if let Some(f) = bars.iter().find(|f| !frame.features().contains(f)) {
            return Err(Error::invalid_argument(
                "feature",
                f.short(),
                "is not a column of the frame to combine",
            ));
        }
        let (symbols, timestamp, mut have, mut columns) = frame.into_parts();
        let mut as_of = Vec::with_capacity(metrics.len());
        for &feature in &metrics {
            let FeatureKind::Metric(family) = feature.kind() else {
                continue;
            };
            let tolerance = family.tolerance_ms();
            let windows: Vec<(String, TimeRange)> = symbols
                .iter()
                .filter_map(|(sym, rows)| {
                    let opens = timestamp.get(rows.clone())?;
                    Some((sym.clone(), as_of_window(freq, opens, tolerance)?))
                })
                .collect();
            let points = self
                .read(move |c, t| read_points(c, t, &windows, feature, family, metric_period))
                .await?;
            let mut values = vec![f64::NAN; timestamp.len()];
            let mut times = vec![0_i64; timestamp.len()];
            for ((_, rows), pts) in symbols.iter().zip(&points) {
                if let (Some(opens), Some(v), Some(t)) = (
                    timestamp.get(rows.clone()),
                    values.get_mut(rows.clone()),
                    times.get_mut(rows.clone()),
                ) {
                    align_as_of(freq, opens, pts, tolerance, v, t);
                }
            }
            // A metric column already in the frame is replaced by the aligned one.
            if let Some(i) = have.iter().position(|h| *h == feature) {
                have.remove(i);
                columns.remove(i);
            }
            have.push(feature);
            columns.push(Column::F64(values));
            as_of.push((feature, times));
        }
        order(
            CombinedFrame {
                frame: KlineFrame::new(symbols, timestamp, have, columns)?,
                as_of,
            },
            features,
        )
    }
}

/// Stored/derived features and metric features, each in request order, duplicates removed.
fn split(features: &[Feature]) -> (Vec<Feature>, Vec<Feature>) {
    let mut bars = Vec::new();
    let mut metrics = Vec::new();
    for &f in features {
        let list = match f.kind() {
            FeatureKind::Metric(_) => &mut metrics,
            _ => &mut bars,
        };
        if !list.contains(&f) {
            list.push(f);
        }
    }
    (bars, metrics)
}

/// The combined frame with exactly the columns of `features` in their order (first
/// occurrence); columns not asked for (the helper close of a metrics-only read) dropped.
fn order(combined: CombinedFrame, features: &[Feature]) -> Result<CombinedFrame> {
    let CombinedFrame { frame, as_of } = combined;
    let (symbols, timestamp, have, columns) = frame.into_parts();
    let mut slots: Vec<Option<Column>> = columns.into_iter().map(Some).collect();
    let mut out_features = Vec::new();
    let mut out_columns = Vec::new();
    for &f in features {
        if out_features.contains(&f) {
            continue;
        }
        if let Some(column) = have
            .iter()
            .position(|h| *h == f)
            .and_then(|i| slots.get_mut(i)?.take())
        {
            out_features.push(f);
            out_columns.push(column);
        }
    }
    Ok(CombinedFrame {
        frame: KlineFrame::new(symbols, timestamp, out_features, out_columns)?,
        as_of,
    })
}

/// Each window's points of one metric feature, sorted by time, NULL and NaN values skipped
/// so an earlier valid value can still be used.
fn read_points(
    conn: &rusqlite::Connection,
    t: &Tables,
    windows: &[(String, TimeRange)],
    feature: Feature,
    family: MetricFamily,
    period: Freq,
) -> Result<Vec<Vec<(i64, f64)>>> {
    let mut out = Vec::with_capacity(windows.len());
    for (symbol, range) in windows {
        let symbols = std::slice::from_ref(symbol);
        let mut points: Vec<(i64, Option<f64>)> = match family {
            MetricFamily::FundingRate => metrics::read_funding(conn, t, *range, symbols)?
                .into_iter()
                .map(|r| (r.funding_time, Some(r.funding_rate)))
                .collect(),
            MetricFamily::OpenInterest => {
                metrics::read_open_interest(conn, t, *range, symbols, period)?
                    .into_iter()
                    .map(|r| {
                        let v = if feature == Feature::OpenInterestValue {
                            r.open_interest_value
                        } else {
                            Some(r.open_interest)
                        };
                        (r.time, v)
                    })
                    .collect()
            }
            MetricFamily::LongShortRatio(ratio) => {
                metrics::read_long_short_ratio(conn, t, *range, symbols, period, ratio)?
                    .into_iter()
                    .map(|r| (r.timestamp, Some(r.long_short_ratio)))
                    .collect()
            }
        };
        points.sort_by_key(|p| p.0);
        out.push(
            points
                .into_iter()
                .filter_map(|(t, v)| Some((t, v.filter(|v| !v.is_nan())?)))
                .collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_request_order_and_drops_repeats() {
        let (bars, metrics) = split(&[
            Feature::FundingRate,
            Feature::Close,
            Feature::OpenInterest,
            Feature::Close,
            Feature::FundingRate,
            Feature::Vwap,
        ]);
        assert_eq!(bars, vec![Feature::Close, Feature::Vwap]);
        assert_eq!(metrics, vec![Feature::FundingRate, Feature::OpenInterest]);
    }

    #[test]
    fn order_follows_the_request_and_drops_the_helper_close() {
        let frame = KlineFrame::new(
            vec![("AAAUSDT".into(), 0..1)],
            vec![0],
            vec![Feature::Close, Feature::FundingRate],
            vec![Column::F64(vec![1.0]), Column::F64(vec![0.5])],
        )
        .unwrap();
        let combined = CombinedFrame {
            frame,
            as_of: vec![(Feature::FundingRate, vec![0])],
        };
        let only = order(combined.clone(), &[Feature::FundingRate]).unwrap();
        assert_eq!(only.frame().features(), &[Feature::FundingRate]);
        assert_eq!(only.frame().columns(), &[Column::F64(vec![0.5])]);
        let both = order(combined, &[Feature::FundingRate, Feature::Close]).unwrap();
        assert_eq!(
            both.frame().features(),
            &[Feature::FundingRate, Feature::Close]
        );
        assert_eq!(both.as_of(Feature::FundingRate), Some(&[0_i64][..]));
        assert_eq!(both.as_of(Feature::Close), None);
    }
}
