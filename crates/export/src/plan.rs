//! [`Plan`]: an [`ExportRequest`] resolved against the feature catalogue and the bucket
//! rules. It decides which stored columns to scan, which derived and metric features to
//! compute, the output interval, and the range to scan when resampling (whole target
//! buckets whose open time lies in the requested range). Pure: it reads nothing.

use marketdb_model::{Feature, FeatureKind, Freq, MetricFamily, TimeRange, validate_symbol};

use crate::{Error, ExportRequest, FillPolicy, Result};

/// A resolved export request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Validated, upper-cased, sorted, deduplicated; empty means "every stored symbol"
    /// until the exporter resolves it.
    pub symbols: Vec<String>,
    /// The stored interval read.
    pub source_freq: Freq,
    /// The interval of the output (the target freq when resampling).
    pub out_freq: Freq,
    /// The requested range.
    pub range: TimeRange,
    /// The range actually scanned at `source_freq` (whole target buckets when resampling).
    pub scan_range: TimeRange,
    /// Output features in order.
    pub features: Vec<Feature>,
    /// Stored kline columns to read (never empty).
    pub scan_columns: Vec<Feature>,
    /// The metric features among `features`, in order.
    pub metrics: Vec<Feature>,
    pub fill: FillPolicy,
    /// Sampling period of the OI and long/short ratio series to align.
    pub metric_period: Freq,
}

impl Plan {
    pub(crate) fn new(req: &ExportRequest) -> Result<Plan> {
        let mut symbols = req
            .symbols
            .iter()
            .map(|s| validate_symbol(s))
            .collect::<Result<Vec<_>, _>>()?;
        symbols.sort_unstable();
        symbols.dedup();

        let out_freq = match req.target_freq {
            Some(t) if t != req.freq => {
                if !req.freq.divides(t) {
                    return Err(Error::request(
                        "target freq",
                        t,
                        format!(
                            "cannot resample {} into {t}: the target must be a coarser whole \
                             multiple of the source (1m->5m, 1h->1d, 1d->1w, 1d->1M...)",
                            req.freq
                        ),
                    ));
                }
                t
            }
            _ => req.freq,
        };
        if req.csv_part_rows == Some(0) {
            return Err(Error::request("csv part rows", 0, "must be at least 1"));
        }

        let mut features: Vec<Feature> = Vec::new();
        let requested: &[Feature] = if req.features.is_empty() {
            &Feature::DEFAULT_EXPORT
        } else {
            &req.features
        };
        for f in requested {
            if !features.contains(f) {
                features.push(*f);
            }
        }
        let mut scan_columns: Vec<Feature> = Vec::new();
        let mut need = |f: Feature| {
            if !scan_columns.contains(&f) {
                scan_columns.push(f);
            }
        };
        let mut metrics = Vec::new();
        for &f in &features {
            match f.kind() {
                FeatureKind::Column => need(f),
                FeatureKind::Derived if f == Feature::Vwap => {
                    need(Feature::QuoteVolume);
                    need(Feature::Volume);
                }
                FeatureKind::Derived => {
                    need(Feature::Open);
                    need(Feature::Close);
                }
                FeatureKind::Metric(_) => metrics.push(f),
            }
        }
        // Bars are needed even when only metrics are exported: they define K and T.
        if scan_columns.is_empty() {
            scan_columns.push(Feature::Close);
        }

        let scan_range = if out_freq == req.freq {
            req.range
        } else {
            out_freq.bucket_span(req.range)
        };
        Ok(Plan {
            symbols,
            source_freq: req.freq,
            out_freq,
            range: req.range,
            scan_range,
            features,
            scan_columns,
            metrics,
            fill: req.fill,
            metric_period: req.metric_period,
        })
    }

    /// Whether bars are resampled.
    pub(crate) fn resamples(&self) -> bool {
        self.out_freq != self.source_freq
    }

    /// The metric families needed, each once.
    pub(crate) fn metric_families(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        for f in &self.metrics {
            if let FeatureKind::Metric(m) = f.kind()
                && !out.contains(&m)
            {
                out.push(m);
            }
        }
        out
    }

    /// Number of UTC days the scan walks.
    pub(crate) fn total_days(&self) -> u64 {
        if self.scan_range.is_empty() {
            0
        } else {
            self.scan_range.days().count() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use marketdb_model::time::{DAY_MS, parse_ymd};

    use super::*;

    fn jan(d: u32) -> i64 {
        parse_ymd(2024, 1, d).unwrap()
    }

    fn req(features: Vec<Feature>) -> ExportRequest {
        let mut r = ExportRequest::new(
            vec!["ethusdt".into(), "BTCUSDT".into(), "BTCUSDT".into()],
            TimeRange::new(jan(1), jan(2)).unwrap(),
            Freq::H1,
        );
        r.features = features;
        r
    }

    #[test]
    fn resolves_symbols_features_and_columns() {
        let p = Plan::new(&req(vec![])).unwrap();
        assert_eq!(p.symbols, vec!["BTCUSDT", "ETHUSDT"]);
        assert_eq!(p.features, Feature::DEFAULT_EXPORT.to_vec());
        assert_eq!(p.scan_columns, Feature::KLINE.to_vec());
        assert!(p.metrics.is_empty() && !p.resamples());
        assert_eq!(p.total_days(), 1);

        let p = Plan::new(&req(vec![
            Feature::Vwap,
            Feature::FundingRate,
            Feature::OpenInterestValue,
            Feature::OpenInterest,
            Feature::Vwap,
        ]))
        .unwrap();
        assert_eq!(
            p.features,
            vec![
                Feature::Vwap,
                Feature::FundingRate,
                Feature::OpenInterestValue,
                Feature::OpenInterest
            ]
        );
        assert_eq!(p.scan_columns, vec![Feature::QuoteVolume, Feature::Volume]);
        assert_eq!(p.metrics.len(), 3);
        assert_eq!(
            p.metric_families(),
            vec![MetricFamily::FundingRate, MetricFamily::OpenInterest]
        );
        let p = Plan::new(&req(vec![Feature::LsrTakerVol])).unwrap();
        assert_eq!(p.scan_columns, vec![Feature::Close]);
    }

    #[test]
    fn refuses_bad_symbols_targets_and_parts() {
        let mut r = req(vec![]);
        r.symbols = vec!["BTC/USDT".into()];
        assert!(Plan::new(&r).unwrap_err().to_string().contains("BTC/USDT"));
        let mut r = req(vec![]);
        r.target_freq = Some(Freq::M1);
        let e = Plan::new(&r).unwrap_err().to_string();
        assert!(e.contains("target freq") && e.contains("\"1m\""), "{e}");
        let mut r = req(vec![]);
        r.freq = Freq::M3;
        r.target_freq = Some(Freq::M5);
        assert!(Plan::new(&r).is_err());
        let mut r = req(vec![]);
        r.target_freq = Some(Freq::H1);
        assert!(
            !Plan::new(&r).unwrap().resamples(),
            "same freq is no resampling"
        );
        let mut r = req(vec![]);
        r.csv_part_rows = Some(0);
        assert!(
            Plan::new(&r)
                .unwrap_err()
                .to_string()
                .contains("csv part rows")
        );
    }

    #[test]
    fn resampled_plans_scan_whole_buckets() {
        let mut rq = req(vec![]);
        rq.freq = Freq::M5;
        rq.target_freq = Some(Freq::D1);
        rq.range = TimeRange::new(jan(1), jan(3) + 1).unwrap();
        let p = Plan::new(&rq).unwrap();
        assert_eq!(p.scan_range, TimeRange::new(jan(1), jan(4)).unwrap());
        assert_eq!(p.total_days(), 3);
        assert_eq!(p.scan_range.end_exclusive - p.scan_range.start, 3 * DAY_MS);
    }
}
