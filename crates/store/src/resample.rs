//! Resampling klines to a coarser interval that is a whole multiple of the source: the
//! result type [`Resampled`], the [`IncompletePolicy`] for buckets that miss source bars,
//! the checks and read windows of [`crate::AsyncMarketDB::resample`], and the conversion of
//! resampled bars back to klines for storing.
//!
//! The aggregation rules themselves (first/max/min/last/sum, bucket labels, incomplete
//! buckets) live in one place, [`crate::BucketAggregator`]. Pure computation; reading and
//! storing are [`crate::AsyncMarketDB`]'s.

use marketdb_model::{Feature, Freq, Kline, TimeRange};

use crate::{Column, Error, KlineFrame, Result};

/// What to do with buckets that miss source bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IncompletePolicy {
    /// Keep them (and count them).
    #[default]
    Keep,
    /// Drop them (and count them).
    Drop,
}

/// The result of a resample.
#[derive(Clone, Debug, PartialEq)]
pub struct Resampled {
    /// The resampled bars with all eleven kline columns ([`Feature::KLINE`]).
    pub frame: KlineFrame,
    /// Non-empty buckets seen (kept or dropped).
    pub buckets: usize,
    /// Buckets with fewer source bars than they span.
    pub incomplete: usize,
    /// Incomplete buckets left out ([`IncompletePolicy::Drop`]).
    pub dropped: usize,
    /// Bars stored (by `resample_and_store`; 0 otherwise).
    pub stored: usize,
}

/// Checks that `from` can be resampled into `to`.
pub(crate) fn check_freqs(from: Freq, to: Freq) -> Result<()> {
    if from.divides(to) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "resample target",
            format!("{from} -> {to}"),
            format!(
                "every {to} bucket must be a whole number of {from} bars (and {to} coarser \
                 than {from})"
            ),
        ))
    }
}

/// The source range to read: the whole `to` buckets that open in `range`
/// ([`Freq::bucket_span`]).
pub(crate) fn source_range(range: TimeRange, to: Freq) -> TimeRange {
    to.bucket_span(range)
}

fn f64_col(frame: &KlineFrame, f: Feature) -> Result<&[f64]> {
    match frame.column(f) {
        Some(Column::F64(v)) => Ok(v),
        _ => Err(Error::InvalidFeature {
            feature: f.short().to_owned(),
            reason: "resampling needs every kline column".to_owned(),
        }),
    }
}

/// Source windows for one symbol: `range` (already whole `to` buckets) cut at bucket
/// boundaries into pieces of about `rows` source bars, so each is a short read.
pub(crate) fn windows(range: TimeRange, from: Freq, to: Freq, rows: i64) -> Vec<TimeRange> {
    let per_bucket = to.nominal_ms() / from.nominal_ms().max(1);
    let buckets = (rows / per_bucket.max(1)).max(1);
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end_exclusive {
        let mut end = start;
        for _ in 0..buckets {
            end = to.next(end);
            if end >= range.end_exclusive {
                break;
            }
        }
        let end = end.min(range.end_exclusive);
        out.push(TimeRange {
            start,
            end_exclusive: end,
        });
        start = end;
    }
    out
}

/// The frame's bars as klines of `freq` (for storing resampled bars).
pub(crate) fn to_klines(frame: &KlineFrame, freq: Freq) -> Result<Vec<Kline>> {
    let col = |f| f64_col(frame, f);
    let (open, high, low, close) = (
        col(Feature::Open)?,
        col(Feature::High)?,
        col(Feature::Low)?,
        col(Feature::Close)?,
    );
    let (volume, quote, tbv, tbqv) = (
        col(Feature::Volume)?,
        col(Feature::QuoteVolume)?,
        col(Feature::TakerBuyVolume)?,
        col(Feature::TakerBuyQuoteVolume)?,
    );
    let Some(Column::I64(trades)) = frame.column(Feature::TradesCount) else {
        return Err(Error::InvalidFeature {
            feature: Feature::TradesCount.short().to_owned(),
            reason: "storing bars needs every kline column".to_owned(),
        });
    };
    let mut out = Vec::with_capacity(frame.len());
    for (symbol, rows) in &frame.symbols {
        for i in rows.clone() {
            let t = frame.timestamp[i];
            out.push(Kline {
                symbol: symbol.clone(),
                open_time: t,
                open: open[i],
                high: high[i],
                low: low[i],
                close: close[i],
                volume: volume[i],
                close_time: freq.close_time(t),
                quote_volume: quote[i],
                trades_count: trades[i],
                taker_buy_volume: tbv[i],
                taker_buy_quote_volume: tbqv[i],
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BucketAggregator;

    const H: i64 = 3_600_000;

    /// A frame of hourly bars of AAA at hours `idx` after `t0`.
    fn hourly(t0: i64, idx: &[i64]) -> KlineFrame {
        let mut f = KlineFrame::empty(&Feature::KLINE);
        f.symbols = vec![("AAA".to_owned(), 0..idx.len())];
        f.timestamp = idx.iter().map(|i| t0 + i * H).collect();
        let v = |g: &dyn Fn(f64) -> f64| Column::F64(idx.iter().map(|i| g(*i as f64)).collect());
        f.columns = vec![
            v(&|i| 100.0 + i),
            v(&|i| 200.0 + i),
            v(&|i| 50.0 - i),
            v(&|i| 150.0 + i),
            v(&|_| 1000.0),
            v(&|_| 10.0),
            Column::I64(idx.iter().map(|_| 2).collect()),
            v(&|_| 400.0),
            v(&|_| 4.0),
            v(&|_| 600.0),
            v(&|_| 6.0),
        ];
        f
    }

    #[test]
    fn stored_bars_close_at_their_bucket_end() {
        let t0 = 1_700_006_400_000;
        let mut agg = BucketAggregator::new(Freq::H1, Freq::H4, IncompletePolicy::Keep).unwrap();
        agg.push(&hourly(t0, &[0, 1, 2, 3, 12])).unwrap();
        let r = agg.finish();
        let klines = to_klines(&r.frame, Freq::H4).unwrap();
        assert_eq!(klines.len(), 2);
        assert_eq!(klines[1].open_time, t0 + 12 * H);
        assert_eq!(klines[1].close_time, t0 + 16 * H - 1);
        assert_eq!((klines[0].open, klines[0].close), (100.0, 153.0));
        assert_eq!((klines[0].trades_count, klines[0].volume), (8, 4000.0));
    }

    #[test]
    fn streaming_through_windows_equals_one_pass() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::schema::Layout::WithoutRowid.ddl())
            .unwrap();
        let t0 = 1_700_006_400_000;
        let idx: Vec<i64> = (0..72).filter(|i| *i != 30).collect();
        let frame = hourly(t0, &idx);
        let klines = to_klines(&frame, Freq::H1).unwrap();
        let input = crate::KlineInput::Flat(klines);
        crate::write::insert_klines(&conn, &crate::Tables::V19, &input, Freq::H1, 7).unwrap();
        let sql = crate::read::ReadPlan::new(&crate::Tables::V19, &[])
            .unwrap()
            .range_sql();
        let range = source_range(TimeRange::new(t0, t0 + 72 * H).unwrap(), Freq::D1);
        let run = |rows| {
            let mut agg =
                BucketAggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
            for w in windows(range, Freq::H1, Freq::D1, rows) {
                agg.feed(&conn, &sql, "AAA", w).unwrap();
            }
            agg.finish()
        };
        let one = run(1_000);
        let many = run(1);
        assert_eq!(one, many);
        let mut agg = BucketAggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
        agg.push(&frame).unwrap();
        assert_eq!(one, agg.finish());
        assert_eq!((one.buckets, one.incomplete), (3, 1));
        assert_eq!(one.frame.len(), 3);
    }

    #[test]
    fn only_whole_multiples() {
        assert!(check_freqs(Freq::M3, Freq::M5).is_err());
        assert!(check_freqs(Freq::H1, Freq::M1).is_err());
        let e = check_freqs(Freq::W1, Freq::Mo1).unwrap_err().to_string();
        assert!(e.contains("1w -> 1M"), "{e}");
        // The day opening at 0 starts before the range: it is not selected.
        let r = source_range(TimeRange::new(1_000, 2 * 86_400_000 + 5).unwrap(), Freq::D1);
        assert_eq!((r.start, r.end_exclusive), (86_400_000, 3 * 86_400_000));
        let r = source_range(TimeRange::new(0, 2 * 86_400_000 + 5).unwrap(), Freq::D1);
        assert_eq!((r.start, r.end_exclusive), (0, 3 * 86_400_000));
        let w = windows(r, Freq::H1, Freq::D1, 50);
        assert_eq!(
            w.iter()
                .map(|w| (w.start, w.end_exclusive))
                .collect::<Vec<_>>(),
            vec![(0, 2 * 86_400_000), (2 * 86_400_000, 3 * 86_400_000)]
        );
        assert_eq!(
            windows(r, Freq::M1, Freq::D1, 10).len(),
            3,
            "at least one bucket each"
        );
    }
}
