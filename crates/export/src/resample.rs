//! [`Resampler`]: on-the-fly resampling of the exported bars into a coarser interval, a thin
//! driver of the store's [`BucketAggregator`], which holds the one implementation of the
//! rules (behaviour section 4: open = first, high = max, low = min, close = last, every
//! volume and count summed, labelled at the bucket's open; no bar for an empty bucket).
//! Incomplete buckets are kept and counted. At most one open bucket per symbol is held.
//!
//! Day walks push one UTC day (all symbols) at a time and drain the buckets that end by the
//! end of that day, split into one frame per UTC day of the bucket open (one NumPy day
//! each); symbol walks push (symbol, time) chunks and drain every symbol but the last one
//! seen. It owns no aggregation rule of its own.

use marketdb_model::time::day_floor;
use marketdb_model::{Feature, Freq};
use marketdb_store::{BucketAggregator, IncompletePolicy};
use tracing::info;

use crate::{Error, KlineFrame, Result};

/// A streaming resampler; see the module docs.
#[derive(Debug)]
pub(crate) struct Resampler {
    agg: BucketAggregator,
    /// `{from} bars into {to}`, for errors and logs.
    what: String,
}

impl Resampler {
    /// A resampler of `from` bars into `to` for frames holding (at least) `features`, which
    /// must be stored kline columns; drained frames hold exactly `features`.
    pub(crate) fn new(from: Freq, to: Freq, features: &[Feature]) -> Result<Resampler> {
        let what = format!("{from} bars into {to}");
        let agg = BucketAggregator::with_features(from, to, IncompletePolicy::Keep, features)
            .map_err(|e| Error::resample(what.clone(), e))?;
        Ok(Resampler { agg, what })
    }

    /// Adds a frame's rows (each symbol's rows ascending in time, after its earlier ones).
    pub(crate) fn push(&mut self, frame: &KlineFrame) -> Result<()> {
        self.agg
            .push(frame)
            .map_err(|e| Error::resample(self.what.clone(), e))
    }

    /// The buckets that end at or before `watermark` (the end of the day just pushed), as
    /// frames, one per UTC day of the bucket open, in day order, rows by (symbol, open).
    pub(crate) fn drain(&mut self, watermark: i64) -> Vec<KlineFrame> {
        split_days(self.agg.drain_until(watermark))
    }

    /// The buckets of every symbol but `keep` and every finished bucket of `keep`, as one
    /// frame ordered by (symbol, open) (none when empty).
    pub(crate) fn drain_symbols(&mut self, keep: Option<&str>) -> Vec<KlineFrame> {
        let frame = self.agg.drain_except(keep);
        if frame.is_empty() {
            Vec::new()
        } else {
            vec![frame]
        }
    }

    /// Every remaining bucket (the end of a day-by-day stream), split as in [`Self::drain`].
    pub(crate) fn finish(&mut self) -> Vec<KlineFrame> {
        let out = split_days(self.agg.drain_all());
        self.log_counts();
        out
    }

    /// Every remaining bucket (the end of a symbol stream), as in [`Self::drain_symbols`].
    pub(crate) fn finish_symbols(&mut self) -> Vec<KlineFrame> {
        let out = self.drain_symbols(None);
        self.log_counts();
        out
    }

    fn log_counts(&self) {
        let (buckets, incomplete) = (self.agg.buckets(), self.agg.incomplete());
        if incomplete > 0 {
            info!(
                "resampling {}: kept {incomplete} incomplete bucket(s) of {buckets}",
                self.what
            );
        }
    }

    /// Buckets finished so far with fewer source bars than they span.
    #[cfg(test)]
    fn incomplete(&self) -> usize {
        self.agg.incomplete()
    }
}

/// Splits a frame ordered by (symbol, open) into one frame per UTC day of the open, in day
/// order, each ordered by (symbol, open). No frame for no rows.
fn split_days(frame: KlineFrame) -> Vec<KlineFrame> {
    let ts = frame.timestamp();
    let mut days: Vec<i64> = ts.iter().map(|t| day_floor(*t)).collect();
    days.sort_unstable();
    days.dedup();
    match days.len() {
        0 => return Vec::new(),
        1 => return vec![frame],
        _ => {}
    }
    days.into_iter()
        .map(|day| frame.filter_rows(|i| day_floor(ts[i]) == day))
        .collect()
}

#[cfg(test)]
mod tests {
    use marketdb_model::time::{DAY_MS, parse_ymd};

    use super::*;
    use crate::Column;

    const H: i64 = 3_600_000;

    const FEATURES: [Feature; 3] = [Feature::Close, Feature::Volume, Feature::TradesCount];

    /// `n` hourly bars of `sym` from `start` with the columns of [`FEATURES`]: close
    /// 150+i, volume 1000, trades i.
    fn hourly(sym: &str, start: i64, n: i64) -> KlineFrame {
        hourly_closing(sym, start, n, None)
    }

    /// [`hourly`] with the close of the last bar replaced by `last_close`.
    fn hourly_closing(sym: &str, start: i64, n: i64, last_close: Option<f64>) -> KlineFrame {
        let mut close: Vec<f64> = (0..n).map(|i| 150.0 + i as f64).collect();
        if let (Some(c), Some(last)) = (last_close, close.last_mut()) {
            *last = c;
        }
        KlineFrame::new(
            vec![(sym.to_owned(), 0..n as usize)],
            (0..n).map(|i| start + i * H).collect(),
            FEATURES.to_vec(),
            vec![
                Column::F64(close),
                Column::F64(vec![1000.0; n as usize]),
                Column::I64((0..n).collect()),
            ],
        )
        .unwrap()
    }

    /// `a` followed by the rows of `b` (whose symbols sort after `a`'s).
    fn concat(mut a: KlineFrame, b: KlineFrame) -> KlineFrame {
        a.append(b).unwrap();
        a
    }

    #[test]
    fn weekly_buckets_wait_for_their_end_and_come_out_on_their_open_day() {
        let mon = parse_ymd(2024, 1, 1).unwrap();
        let mut r = Resampler::new(Freq::H1, Freq::W1, &FEATURES).unwrap();
        for d in 0..7 {
            let mut day = hourly("A", mon + d * DAY_MS, 24);
            if d == 3 {
                // B trades only two hours on Thursday.
                day = concat(day, hourly("B", mon + d * DAY_MS, 2));
            }
            r.push(&day).unwrap();
            let out = r.drain(mon + (d + 1) * DAY_MS);
            if d < 6 {
                assert!(out.is_empty(), "day {d}");
            } else {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].timestamp(), vec![mon, mon]);
                assert_eq!(
                    out[0].symbols(),
                    vec![("A".to_owned(), 0..1), ("B".to_owned(), 1..2)]
                );
                assert_eq!(out[0].features(), FEATURES);
                assert_eq!(out[0].columns()[0], Column::F64(vec![173.0, 151.0]));
                assert_eq!(
                    out[0].columns()[1],
                    Column::F64(vec![7.0 * 24_000.0, 2000.0])
                );
                assert_eq!(r.incomplete(), 1, "B's week");
            }
        }
        // An incomplete bucket is kept (and counted) at the end of the stream.
        r.push(&hourly("A", mon + 7 * DAY_MS, 3)).unwrap();
        assert!(r.drain(mon + 8 * DAY_MS).is_empty());
        let out = r.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp(), vec![mon + 7 * DAY_MS]);
        assert_eq!(out[0].columns()[1], Column::F64(vec![3000.0]));
        assert_eq!(out[0].columns()[2], Column::I64(vec![3]));
        assert_eq!(r.incomplete(), 2);
        assert!(r.finish().is_empty());
    }

    #[test]
    fn drained_buckets_are_split_by_the_day_they_open() {
        let d0 = parse_ymd(2024, 1, 1).unwrap();
        let mut r = Resampler::new(Freq::H1, Freq::D1, &FEATURES).unwrap();
        // A ends on day 0 with its bucket open, B has days 0 and 1: one drain at the end
        // of day 1 finishes buckets of two open days.
        r.push(&concat(hourly("A", d0, 24), hourly("B", d0, 48)))
            .unwrap();
        let out = r.drain(d0 + 2 * DAY_MS);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timestamp(), vec![d0, d0]);
        assert_eq!(
            out[0].symbols(),
            vec![("A".to_owned(), 0..1), ("B".to_owned(), 1..2)]
        );
        assert_eq!(out[1].timestamp(), vec![d0 + DAY_MS]);
        assert_eq!(out[1].symbols(), vec![("B".to_owned(), 0..1)]);
        assert_eq!(out[1].columns()[0], Column::F64(vec![150.0 + 47.0]));
        assert_eq!(out[1].columns()[2], Column::I64(vec![(24..48).sum()]));
    }

    #[test]
    fn symbol_major_streams_close_finished_symbols() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let mut r = Resampler::new(Freq::H1, Freq::D1, &FEATURES).unwrap();
        // Chunk 1: all of A's first day and half of its second.
        r.push(&hourly("A", t0, 36)).unwrap();
        let out = r.drain_symbols(Some("A"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp(), vec![t0]);
        // Chunk 2: the rest of A, then B.
        let rest = hourly_closing("A", t0 + 36 * H, 12, Some(-1.0));
        r.push(&concat(rest, hourly("B", t0, 24))).unwrap();
        let out = r.drain_symbols(Some("B"));
        assert_eq!(out[0].timestamp(), vec![t0 + DAY_MS]);
        assert_eq!(out[0].symbols(), vec![("A".to_owned(), 0..1)]);
        assert_eq!(out[0].columns()[0], Column::F64(vec![-1.0]), "close = last");
        assert_eq!(out[0].columns()[1], Column::F64(vec![24_000.0]));
        let out = r.finish_symbols();
        assert_eq!(out[0].symbols(), vec![("B".to_owned(), 0..1)]);
        assert!(r.drain_symbols(None).is_empty());
        assert_eq!(r.incomplete(), 0);
    }

    #[test]
    fn bad_streams_are_errors_not_double_bars() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let mut r = Resampler::new(Freq::H1, Freq::D1, &FEATURES).unwrap();
        r.push(&hourly("A", t0, 24)).unwrap();
        assert_eq!(r.drain(t0 + DAY_MS).len(), 1);
        let e = r.push(&hourly("A", t0, 1)).unwrap_err();
        assert!(matches!(e, Error::Resample { .. }), "{e}");
        assert!(e.to_string().contains("1h bars into 1d"), "{e}");
        let mut r = Resampler::new(Freq::H1, Freq::D1, &Feature::KLINE).unwrap();
        assert!(r.push(&hourly("A", t0, 1)).is_err(), "columns missing");
        assert!(Resampler::new(Freq::H1, Freq::D1, &[Feature::Vwap]).is_err());
    }
}
