//! [`BucketAggregator`]: the one implementation of the OHLCV resampling rules, used by
//! [`crate::AsyncMarketDB::resample`] and by the exporter's on-the-fly resampling.
//! open = first, high = max, low = min, close = last, every volume summed and trade counts
//! summed (saturating), each bar labelled at its bucket's open (`to.floor(open_time)`:
//! Monday for `1w`, the 1st for `1M`, epoch multiples for `3d`). Empty buckets produce no
//! bar; a bucket with fewer source bars than it spans is incomplete, counted, and kept or
//! dropped by [`IncompletePolicy`].
//!
//! Rows are pushed frame by frame ([`BucketAggregator::push`]), each symbol's rows in
//! ascending time; one bucket per symbol is open at a time and finished bars are held until
//! the caller drains them: by time ([`BucketAggregator::drain_until`], for day-by-day
//! streams), by symbol ([`BucketAggregator::drain_except`], for (symbol, time) streams) or
//! all at once. It reads and writes nothing; reading is the caller's.

use std::collections::BTreeMap;

use marketdb_model::{Feature, Freq, TimeRange};

use crate::{
    Column, Error, KlineFrame, Result,
    resample::{IncompletePolicy, Resampled, check_freqs},
};

/// The summed volume columns, in [`SourceBar::sums`] order.
const SUMMED: [Feature; 6] = [
    Feature::Volume,
    Feature::QuoteVolume,
    Feature::TakerBuyVolume,
    Feature::TakerBuyQuoteVolume,
    Feature::TakerSellVolume,
    Feature::TakerSellQuoteVolume,
];

/// One source bar: open time, open, high, low, close, the six summed volumes (in
/// [`SUMMED`] order) and the trade count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceBar {
    pub(crate) time: i64,
    pub(crate) open: f64,
    pub(crate) high: f64,
    pub(crate) low: f64,
    pub(crate) close: f64,
    pub(crate) sums: [f64; 6],
    pub(crate) trades: i64,
}

/// One bucket being accumulated (or finished).
#[derive(Clone, Copy, Debug)]
struct Bar {
    bucket: i64,
    /// Source bars seen.
    n: u64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    sums: [f64; 6],
    trades: i64,
}

impl Bar {
    fn start(bucket: i64, b: &SourceBar) -> Bar {
        Bar {
            bucket,
            n: 1,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            sums: b.sums,
            trades: b.trades,
        }
    }

    /// The aggregation rules (the first bar sets `open`).
    fn add(&mut self, b: &SourceBar) {
        self.n += 1;
        self.high = self.high.max(b.high);
        self.low = self.low.min(b.low);
        self.close = b.close;
        for (s, v) in self.sums.iter_mut().zip(b.sums) {
            *s += v;
        }
        self.trades = self.trades.saturating_add(b.trades);
    }

    /// The value of a float kline column.
    fn value(&self, f: Feature) -> f64 {
        match f {
            Feature::Open => self.open,
            Feature::High => self.high,
            Feature::Low => self.low,
            Feature::Close => self.close,
            Feature::TradesCount => self.trades as f64,
            _ => SUMMED
                .iter()
                .position(|g| *g == f)
                .map_or(f64::NAN, |i| self.sums[i]),
        }
    }
}

/// One symbol's state.
#[derive(Debug, Default)]
struct Series {
    /// Open time and bucket of the last row pushed.
    last: Option<(i64, i64)>,
    open: Option<Bar>,
    /// Finished bars not drained yet, ascending.
    done: Vec<Bar>,
}

/// The intervals, the policy and the counts (everything but the per-symbol state).
#[derive(Debug)]
struct Rules {
    from: Freq,
    to: Freq,
    policy: IncompletePolicy,
    buckets: usize,
    incomplete: usize,
    dropped: usize,
}

impl Rules {
    /// How many `from` bars a `to` bucket opening at `bucket` spans.
    fn bars_in_bucket(&self, bucket: i64) -> u64 {
        match self.from.fixed_ms() {
            Some(len) => ((self.to.next(bucket) - bucket) / len) as u64,
            None => 1,
        }
    }

    /// Finishes `s`'s open bucket: counts it and keeps it unless the policy drops it.
    fn close(&mut self, s: &mut Series) {
        let Some(bar) = s.open.take() else { return };
        self.buckets += 1;
        if bar.n < self.bars_in_bucket(bar.bucket) {
            self.incomplete += 1;
            if self.policy == IncompletePolicy::Drop {
                self.dropped += 1;
                return;
            }
        }
        s.done.push(bar);
    }

    /// Adds the next source bar of `symbol` (whose state is `s`).
    fn push(&mut self, symbol: &str, s: &mut Series, b: &SourceBar) -> Result<()> {
        let bucket = self.to.floor(b.time);
        if let Some((time, last_bucket)) = s.last {
            let drained = s.open.is_none() && bucket == last_bucket;
            if b.time <= time || drained {
                return Err(Error::invalid_argument(
                    "resample source row",
                    format!("{symbol} at {}", b.time),
                    if b.time <= time {
                        "each symbol's rows must come once each in ascending time"
                    } else {
                        "its bucket was already drained"
                    },
                ));
            }
        }
        s.last = Some((b.time, bucket));
        match &mut s.open {
            Some(bar) if bar.bucket == bucket => bar.add(b),
            _ => {
                self.close(s);
                s.open = Some(Bar::start(bucket, b));
            }
        }
        Ok(())
    }
}

/// Streaming OHLCV aggregation of `from` bars into `to` buckets; see the module docs.
#[derive(Debug)]
pub struct BucketAggregator {
    rules: Rules,
    /// The kline columns of the drained frames.
    features: Vec<Feature>,
    series: BTreeMap<String, Series>,
}

impl BucketAggregator {
    /// An aggregator whose drained frames hold all eleven kline columns
    /// ([`Feature::KLINE`]). Fails unless `from` divides `to`.
    pub fn new(from: Freq, to: Freq, policy: IncompletePolicy) -> Result<BucketAggregator> {
        BucketAggregator::with_features(from, to, policy, &Feature::KLINE)
    }

    /// An aggregator whose drained frames hold `features` (stored kline columns, in that
    /// order); pushed frames must hold at least those. Fails unless `from` divides `to` and
    /// every feature is a kline column.
    pub fn with_features(
        from: Freq,
        to: Freq,
        policy: IncompletePolicy,
        features: &[Feature],
    ) -> Result<BucketAggregator> {
        check_freqs(from, to)?;
        if let Some(f) = features.iter().find(|f| !Feature::KLINE.contains(f)) {
            return Err(Error::InvalidFeature {
                feature: f.short().to_owned(),
                reason: "only stored kline columns can be resampled".to_owned(),
            });
        }
        Ok(BucketAggregator {
            rules: Rules {
                from,
                to,
                policy,
                buckets: 0,
                incomplete: 0,
                dropped: 0,
            },
            features: features.to_vec(),
            series: BTreeMap::new(),
        })
    }

    /// The columns of the drained frames.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Finished buckets so far (kept or dropped; open ones are not counted yet).
    pub fn buckets(&self) -> usize {
        self.rules.buckets
    }

    /// Finished buckets with fewer source bars than they span.
    pub fn incomplete(&self) -> usize {
        self.rules.incomplete
    }

    /// Incomplete buckets left out ([`IncompletePolicy::Drop`]).
    pub fn dropped(&self) -> usize {
        self.rules.dropped
    }

    /// Adds a frame's rows. Each symbol's rows must be ascending in time and later than
    /// the rows pushed for it before, and must not fall into a bucket already drained.
    /// Kline columns the aggregator does not output may be missing from the frame.
    pub fn push(&mut self, frame: &KlineFrame) -> Result<()> {
        let n = frame.len();
        let malformed = frame.columns.len() != frame.features.len()
            || frame.columns.iter().any(|c| c.len() != n)
            || frame
                .symbols
                .iter()
                .any(|(_, r)| r.start > r.end || r.end > n);
        if malformed {
            return Err(Error::invalid_argument(
                "kline frame",
                format!("{n} rows"),
                "every column and symbol run must match its rows",
            ));
        }
        if let Some(f) = self.features.iter().find(|f| frame.column(**f).is_none()) {
            return Err(Error::InvalidFeature {
                feature: f.short().to_owned(),
                reason: "the frame to resample lacks this column".to_owned(),
            });
        }
        let column = |f: Feature| frame.column(f);
        let [open, high, low, close] =
            [Feature::Open, Feature::High, Feature::Low, Feature::Close].map(column);
        let summed = SUMMED.map(column);
        let trades = column(Feature::TradesCount);
        let f = |c: Option<&Column>, i: usize| c.and_then(|c| c.get_f64(i)).unwrap_or(f64::NAN);
        let Self { rules, series, .. } = self;
        for (symbol, rows) in &frame.symbols {
            let s = series.entry(symbol.clone()).or_default();
            for i in rows.clone() {
                let bar = SourceBar {
                    time: frame.timestamp[i],
                    open: f(open, i),
                    high: f(high, i),
                    low: f(low, i),
                    close: f(close, i),
                    sums: summed.map(|c| f(c, i)),
                    trades: match trades {
                        Some(Column::I64(v)) => v[i],
                        Some(Column::F64(v)) => v[i] as i64,
                        None => 0,
                    },
                };
                rules.push(symbol, s, &bar)?;
            }
        }
        Ok(())
    }

    /// Pushes the `from` bars of `symbol` in `range` straight from SQLite (`sql` is a
    /// [`crate::read::ReadPlan`] range query over the eleven kline columns).
    pub(crate) fn feed(
        &mut self,
        conn: &rusqlite::Connection,
        sql: &str,
        symbol: &str,
        range: TimeRange,
    ) -> Result<()> {
        use crate::read::{value_f64, value_i64};
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params![
            symbol,
            self.rules.from.as_str(),
            range.start,
            range.end_exclusive,
            -1
        ])?;
        let Self { rules, series, .. } = self;
        let s = series.entry(symbol.to_owned()).or_default();
        while let Some(r) = rows.next()? {
            let f = |i| r.get_ref(i).map(value_f64);
            let bar = SourceBar {
                time: r.get(0)?,
                open: f(1)?,
                high: f(2)?,
                low: f(3)?,
                close: f(4)?,
                // columns: volume 5, quote 6, trades 7, tbv 8, tbqv 9, tsv 10, tsqv 11
                sums: [f(5)?, f(6)?, f(8)?, f(9)?, f(10)?, f(11)?],
                trades: value_i64(r.get_ref(7)?),
            };
            rules.push(symbol, s, &bar)?;
        }
        Ok(())
    }

    /// Finishes every open bucket that ends at or before `watermark` (for streams pushed
    /// in time order: no row before `watermark` is still to come) and drains the finished
    /// bars, ordered by (symbol, bucket open).
    pub fn drain_until(&mut self, watermark: i64) -> KlineFrame {
        let to = self.rules.to;
        self.drain(|_, bar| to.next(bar.bucket) <= watermark)
    }

    /// Finishes the open buckets of every symbol but `keep` (for streams pushed in
    /// (symbol, time) order, where `keep` is the last symbol seen) and drains the finished
    /// bars, ordered by (symbol, bucket open).
    pub fn drain_except(&mut self, keep: Option<&str>) -> KlineFrame {
        self.drain(|symbol, _| Some(symbol) != keep)
    }

    /// Finishes every open bucket and drains all finished bars, ordered by
    /// (symbol, bucket open).
    pub fn drain_all(&mut self) -> KlineFrame {
        self.drain(|_, _| true)
    }

    /// The resampled frame of everything not drained yet, and the counts.
    pub fn finish(mut self) -> Resampled {
        let frame = self.drain_all();
        Resampled {
            frame,
            buckets: self.rules.buckets,
            incomplete: self.rules.incomplete,
            dropped: self.rules.dropped,
            stored: 0,
        }
    }

    fn drain(&mut self, finished: impl Fn(&str, &Bar) -> bool) -> KlineFrame {
        let mut out = KlineFrame::empty(&self.features);
        let Self {
            rules,
            series,
            features,
        } = self;
        for (symbol, s) in series.iter_mut() {
            if s.open.is_some_and(|bar| finished(symbol, &bar)) {
                rules.close(s);
            }
            if s.done.is_empty() {
                continue;
            }
            let first = out.timestamp.len();
            for bar in s.done.drain(..) {
                out.timestamp.push(bar.bucket);
                for (c, f) in out.columns.iter_mut().zip(features.iter()) {
                    match c {
                        Column::F64(v) => v.push(bar.value(*f)),
                        Column::I64(v) => v.push(bar.trades),
                    }
                }
            }
            out.symbols
                .push((symbol.clone(), first..out.timestamp.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use marketdb_model::time::{DAY_MS, parse_ymd};

    use super::*;

    const H: i64 = 3_600_000;

    /// Hourly bars of `symbol` at hours `idx` after `t0`, with the columns `features`:
    /// open 100+i, high 200+i, low 50-i, close 150+i, volume 1000, quote 10, trades i,
    /// taker buy 400/4, taker sell 600/6.
    fn hourly(symbol: &str, t0: i64, idx: &[i64], features: &[Feature]) -> KlineFrame {
        let mut f = KlineFrame::empty(features);
        f.symbols = vec![(symbol.to_owned(), 0..idx.len())];
        f.timestamp = idx.iter().map(|i| t0 + i * H).collect();
        for (c, feat) in f.columns.iter_mut().zip(features) {
            let g = |i: f64| match feat {
                Feature::Open => 100.0 + i,
                Feature::High => 200.0 + i,
                Feature::Low => 50.0 - i,
                Feature::Close => 150.0 + i,
                Feature::Volume => 1000.0,
                Feature::QuoteVolume => 10.0,
                Feature::TakerBuyVolume => 400.0,
                Feature::TakerBuyQuoteVolume => 4.0,
                Feature::TakerSellVolume => 600.0,
                _ => 6.0,
            };
            *c = match c {
                Column::F64(_) => Column::F64(idx.iter().map(|i| g(*i as f64)).collect()),
                Column::I64(_) => Column::I64(idx.to_vec()),
            };
        }
        f
    }

    fn all(symbol: &str, t0: i64, idx: &[i64]) -> KlineFrame {
        hourly(symbol, t0, idx, &Feature::KLINE)
    }

    #[test]
    fn rules_of_a_day() {
        let t0 = 1_700_006_400_000;
        let idx: Vec<i64> = (0..24).collect();
        let mut agg = BucketAggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
        agg.push(&all("AAA", t0, &idx)).unwrap();
        let r = agg.finish();
        assert_eq!((r.buckets, r.incomplete, r.dropped), (1, 0, 0));
        assert_eq!(r.frame.timestamp, vec![t0]);
        let get = |f| r.frame.column(f).unwrap().get_f64(0).unwrap();
        let prices = [Feature::Open, Feature::High, Feature::Low, Feature::Close].map(get);
        assert_eq!(prices, [100.0, 223.0, 27.0, 173.0]);
        assert_eq!(get(Feature::Volume), 24_000.0);
        assert_eq!(get(Feature::QuoteVolume), 240.0);
        assert_eq!(get(Feature::TradesCount), (0..24).sum::<i64>() as f64);
        assert_eq!(get(Feature::TakerBuyVolume), 9_600.0);
        assert_eq!(get(Feature::TakerSellVolume), 14_400.0);
        assert_eq!(get(Feature::TakerSellQuoteVolume), 144.0);
    }

    #[test]
    fn a_subset_of_columns_in_any_order() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let feats = [Feature::TradesCount, Feature::Close, Feature::Volume];
        let mut agg =
            BucketAggregator::with_features(Freq::H1, Freq::H4, IncompletePolicy::Keep, &feats)
                .unwrap();
        // The frame holds only the output columns (and in another order).
        agg.push(&hourly(
            "AAA",
            t0,
            &[0, 1, 2, 3, 4],
            &[Feature::Volume, Feature::Close, Feature::TradesCount],
        ))
        .unwrap();
        let out = agg.drain_all();
        assert_eq!(out.features, feats);
        assert_eq!(out.columns[0], Column::I64(vec![6, 4]));
        assert_eq!(out.columns[1], Column::F64(vec![153.0, 154.0]));
        assert_eq!(out.columns[2], Column::F64(vec![4000.0, 1000.0]));
        assert_eq!((agg.buckets(), agg.incomplete()), (2, 1));
        // An output column missing from the frame is an error, as is a non-kline feature.
        let e = agg
            .push(&hourly("BBB", t0, &[0], &[Feature::Close]))
            .unwrap_err();
        assert!(e.to_string().contains("\"tnum\""), "{e}");
        assert!(
            BucketAggregator::with_features(
                Freq::H1,
                Freq::H4,
                IncompletePolicy::Keep,
                &[Feature::Vwap]
            )
            .is_err()
        );
    }

    #[test]
    fn empty_buckets_make_no_bar_and_incomplete_ones_are_counted() {
        let t0 = 1_700_006_400_000;
        // hours 0..4 (complete 4h bucket), 5 (incomplete), nothing in 8..12, 12..16 complete
        let idx = [0, 1, 2, 3, 5, 12, 13, 14, 15];
        let run = |policy| {
            let mut agg = BucketAggregator::new(Freq::H1, Freq::H4, policy).unwrap();
            agg.push(&all("AAA", t0, &idx)).unwrap();
            agg.finish()
        };
        let keep = run(IncompletePolicy::Keep);
        assert_eq!(keep.frame.timestamp, vec![t0, t0 + 4 * H, t0 + 12 * H]);
        assert_eq!((keep.buckets, keep.incomplete, keep.dropped), (3, 1, 0));
        let drop = run(IncompletePolicy::Drop);
        assert_eq!(drop.frame.timestamp, vec![t0, t0 + 12 * H]);
        assert_eq!((drop.buckets, drop.incomplete, drop.dropped), (3, 1, 1));
        assert_eq!(drop.frame.symbols, vec![("AAA".to_owned(), 0..2)]);
    }

    #[test]
    fn day_by_day_streams_drain_buckets_at_their_end() {
        let mon = parse_ymd(2024, 1, 1).unwrap();
        let day: Vec<i64> = (0..24).collect();
        let mut agg = BucketAggregator::new(Freq::H1, Freq::W1, IncompletePolicy::Keep).unwrap();
        for d in 0..7 {
            agg.push(&all("AAA", mon + d * DAY_MS, &day)).unwrap();
            if d == 3 {
                // BBB trades two hours on Thursday only.
                agg.push(&all("BBB", mon + d * DAY_MS, &[0, 1])).unwrap();
            }
            let out = agg.drain_until(mon + (d + 1) * DAY_MS);
            if d < 6 {
                assert!(out.is_empty(), "day {d}");
                assert_eq!(agg.buckets(), 0);
            } else {
                assert_eq!(out.timestamp, vec![mon, mon]);
                assert_eq!(
                    out.symbols,
                    vec![("AAA".to_owned(), 0..1), ("BBB".to_owned(), 1..2)]
                );
                assert_eq!(
                    out.column(Feature::Volume),
                    Some(&Column::F64(vec![7.0 * 24_000.0, 2000.0]))
                );
                assert_eq!((agg.buckets(), agg.incomplete()), (2, 1));
            }
        }
        // A row in a drained bucket or going back in time is refused, not double counted.
        let e = agg.push(&all("BBB", mon + 5 * DAY_MS, &[0])).unwrap_err();
        assert!(e.to_string().contains("already drained"), "{e}");
        let e = agg.push(&all("AAA", mon, &[0])).unwrap_err();
        assert!(e.to_string().contains("ascending"), "{e}");
        // The incomplete last bucket comes out at the end.
        agg.push(&all("AAA", mon + 7 * DAY_MS, &[0, 1, 2])).unwrap();
        assert!(agg.drain_until(mon + 8 * DAY_MS).is_empty());
        let r = agg.finish();
        assert_eq!(r.frame.timestamp, vec![mon + 7 * DAY_MS]);
        assert_eq!(
            r.frame.column(Feature::Volume),
            Some(&Column::F64(vec![3000.0]))
        );
        assert_eq!((r.buckets, r.incomplete), (3, 2));
    }

    #[test]
    fn symbol_major_streams_drain_finished_symbols() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let mut agg = BucketAggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
        // Chunk 1: all of AAA's first day and half of its second.
        agg.push(&all("AAA", t0, &(0..36).collect::<Vec<_>>()))
            .unwrap();
        let out = agg.drain_except(Some("AAA"));
        assert_eq!(out.timestamp, vec![t0]);
        // Chunk 2: the rest of AAA, then BBB.
        agg.push(&all("AAA", t0, &(36..48).collect::<Vec<_>>()))
            .unwrap();
        agg.push(&all("BBB", t0, &(0..24).collect::<Vec<_>>()))
            .unwrap();
        let out = agg.drain_except(Some("BBB"));
        assert_eq!(out.timestamp, vec![t0 + DAY_MS]);
        assert_eq!(out.symbols, vec![("AAA".to_owned(), 0..1)]);
        assert_eq!(
            out.column(Feature::Volume),
            Some(&Column::F64(vec![24_000.0]))
        );
        let out = agg.drain_except(None);
        assert_eq!(out.symbols, vec![("BBB".to_owned(), 0..1)]);
        assert!(agg.drain_all().is_empty());
        assert_eq!((agg.buckets(), agg.incomplete()), (3, 0));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut agg = BucketAggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
        let mut f = all("AAA", 0, &[0, 1]);
        f.symbols[0].1 = 0..3;
        assert!(agg.push(&f).is_err());
        let mut f = all("AAA", 0, &[0, 1]);
        f.timestamp.pop();
        assert!(agg.push(&f).is_err());
        assert!(agg.finish().frame.is_empty());
    }
}
