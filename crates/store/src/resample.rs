//! Resampling klines to a coarser interval that is a whole multiple of the source:
//! open = first, high = max, low = min, close = last, every volume and count summed,
//! each bar labelled at its bucket's open (`to.floor(open_time)`: Monday for `1w`, the 1st
//! for `1M`, epoch multiples for `3d`). Empty buckets produce no bar; a bucket with fewer
//! source bars than it spans is incomplete, kept and counted, or dropped on request.
//!
//! Pure computation on frames; reading and storing are [`crate::AsyncMarketDB`]'s.

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

/// The source range to read: `range` widened to whole `to` buckets.
pub(crate) fn source_range(range: TimeRange, to: Freq) -> TimeRange {
    if range.is_empty() {
        return range;
    }
    TimeRange {
        start: to.floor(range.start),
        end_exclusive: to.next(to.floor(range.end_exclusive - 1)),
    }
}

/// How many `from` bars a `to` bucket opening at `bucket` spans.
fn bars_in_bucket(from: Freq, to: Freq, bucket: i64) -> u64 {
    match from.fixed_ms() {
        Some(len) => ((to.next(bucket) - bucket) / len) as u64,
        None => 1,
    }
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

/// One bucket being accumulated.
#[derive(Clone, Copy, Debug)]
struct Acc {
    bucket: i64,
    n: u64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    /// volume, quote_volume, taker buy volume, taker buy quote volume, taker sell volume,
    /// taker sell quote volume.
    sums: [f64; 6],
    trades: i64,
}

/// One source bar: open time, open, high, low, close, the six summed volumes (in [`Acc`]
/// order) and the trade count.
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

/// Streaming aggregation: source bars are pushed in (symbol, time) order and only the
/// output bars are kept, so memory is proportional to the result, not the source.
#[derive(Debug)]
pub(crate) struct Aggregator {
    from: Freq,
    to: Freq,
    policy: IncompletePolicy,
    out: KlineFrame,
    /// open, high, low, close, then the six sums.
    cols: [Vec<f64>; 10],
    trades: Vec<i64>,
    symbol: Option<(String, usize)>,
    acc: Option<Acc>,
    buckets: usize,
    incomplete: usize,
    dropped: usize,
}

impl Aggregator {
    pub(crate) fn new(from: Freq, to: Freq, policy: IncompletePolicy) -> Result<Aggregator> {
        check_freqs(from, to)?;
        Ok(Aggregator {
            from,
            to,
            policy,
            out: KlineFrame::empty(&Feature::KLINE),
            cols: Default::default(),
            trades: Vec::new(),
            symbol: None,
            acc: None,
            buckets: 0,
            incomplete: 0,
            dropped: 0,
        })
    }

    /// Starts the bars of `symbol` (symbols must come in ascending order, once each).
    pub(crate) fn begin_symbol(&mut self, symbol: &str) {
        self.end_symbol();
        self.symbol = Some((symbol.to_owned(), self.out.timestamp.len()));
    }

    fn flush(&mut self) {
        let Some(a) = self.acc.take() else { return };
        self.buckets += 1;
        if a.n < bars_in_bucket(self.from, self.to, a.bucket) {
            self.incomplete += 1;
            if self.policy == IncompletePolicy::Drop {
                self.dropped += 1;
                return;
            }
        }
        self.out.timestamp.push(a.bucket);
        let values = [a.open, a.high, a.low, a.close].into_iter().chain(a.sums);
        for (c, v) in self.cols.iter_mut().zip(values) {
            c.push(v);
        }
        self.trades.push(a.trades);
    }

    fn end_symbol(&mut self) {
        self.flush();
        if let Some((symbol, first)) = self.symbol.take() {
            let end = self.out.timestamp.len();
            if end > first {
                self.out.symbols.push((symbol, first..end));
            }
        }
    }

    /// Adds the next source bar of the current symbol (ascending time).
    pub(crate) fn push(&mut self, b: &SourceBar) {
        let bucket = self.to.floor(b.time);
        match &mut self.acc {
            Some(a) if a.bucket == bucket => {
                a.n += 1;
                a.high = a.high.max(b.high);
                a.low = a.low.min(b.low);
                a.close = b.close;
                for (s, v) in a.sums.iter_mut().zip(b.sums) {
                    *s += v;
                }
                a.trades += b.trades;
            }
            _ => {
                self.flush();
                self.acc = Some(Acc {
                    bucket,
                    n: 1,
                    open: b.open,
                    high: b.high,
                    low: b.low,
                    close: b.close,
                    sums: b.sums,
                    trades: b.trades,
                });
            }
        }
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
            self.from.as_str(),
            range.start,
            range.end_exclusive,
            -1
        ])?;
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
            self.push(&bar);
        }
        Ok(())
    }

    /// The resampled frame (all eleven kline columns) and the counts.
    pub(crate) fn finish(mut self) -> Resampled {
        self.end_symbol();
        let [open, high, low, close, vol, quote, tbv, tbqv, tsv, tsqv] = self.cols;
        self.out.columns = [open, high, low, close, vol, quote]
            .into_iter()
            .map(Column::F64)
            .chain([Column::I64(self.trades)])
            .chain([tbv, tbqv, tsv, tsqv].into_iter().map(Column::F64))
            .collect();
        Resampled {
            frame: self.out,
            buckets: self.buckets,
            incomplete: self.incomplete,
            dropped: self.dropped,
            stored: 0,
        }
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

/// Aggregates `src` (all kline columns, bars of `from`) into `to` bars.
#[cfg(test)]
pub(crate) fn aggregate(
    src: &KlineFrame,
    from: Freq,
    to: Freq,
    policy: IncompletePolicy,
) -> Result<Resampled> {
    let col = |f| f64_col(src, f);
    let (open, high, low, close) = (
        col(Feature::Open)?,
        col(Feature::High)?,
        col(Feature::Low)?,
        col(Feature::Close)?,
    );
    let summed = [
        col(Feature::Volume)?,
        col(Feature::QuoteVolume)?,
        col(Feature::TakerBuyVolume)?,
        col(Feature::TakerBuyQuoteVolume)?,
        col(Feature::TakerSellVolume)?,
        col(Feature::TakerSellQuoteVolume)?,
    ];
    let Some(Column::I64(trades)) = src.column(Feature::TradesCount) else {
        return Err(Error::InvalidFeature {
            feature: Feature::TradesCount.short().to_owned(),
            reason: "resampling needs every kline column".to_owned(),
        });
    };
    let mut agg = Aggregator::new(from, to, policy)?;
    for (symbol, rows) in &src.symbols {
        agg.begin_symbol(symbol);
        for i in rows.clone() {
            agg.push(&SourceBar {
                time: src.timestamp[i],
                open: open[i],
                high: high[i],
                low: low[i],
                close: close[i],
                sums: summed.map(|c| c[i]),
                trades: trades[i],
            });
        }
    }
    Ok(agg.finish())
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

    /// A frame of hourly bars for one symbol from `t0`, with bar `i` from `f(i)`.
    fn hourly(t0: i64, idx: &[i64]) -> KlineFrame {
        let mut f = KlineFrame::empty(&Feature::KLINE);
        f.symbols = vec![("AAA".to_owned(), 0..idx.len())];
        f.timestamp = idx.iter().map(|i| t0 + i * 3_600_000).collect();
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
    fn ohlcv_aggregation_of_a_day() {
        let t0 = 1_700_006_400_000;
        let idx: Vec<i64> = (0..24).collect();
        let r = aggregate(
            &hourly(t0, &idx),
            Freq::H1,
            Freq::D1,
            IncompletePolicy::Keep,
        )
        .unwrap();
        assert_eq!((r.buckets, r.incomplete, r.dropped), (1, 0, 0));
        assert_eq!(r.frame.timestamp, vec![t0]);
        let get = |f| r.frame.column(f).unwrap().get_f64(0).unwrap();
        assert_eq!(
            [
                get(Feature::Open),
                get(Feature::High),
                get(Feature::Low),
                get(Feature::Close)
            ],
            [100.0, 223.0, 27.0, 173.0]
        );
        assert_eq!(get(Feature::Volume), 24_000.0);
        assert_eq!(get(Feature::TradesCount), 48.0);
        assert_eq!(get(Feature::TakerSellVolume), 14_400.0);
    }

    #[test]
    fn empty_buckets_make_no_bar_and_incomplete_ones_are_counted() {
        let t0 = 1_700_006_400_000;
        // hours 0..4 (complete 4h bucket), 5 (incomplete), nothing in 8..12, 12..16 complete
        let idx: Vec<i64> = [0, 1, 2, 3, 5, 12, 13, 14, 15].to_vec();
        let keep = aggregate(
            &hourly(t0, &idx),
            Freq::H1,
            Freq::H4,
            IncompletePolicy::Keep,
        )
        .unwrap();
        assert_eq!(
            keep.frame.timestamp,
            vec![t0, t0 + 4 * 3_600_000, t0 + 12 * 3_600_000]
        );
        assert_eq!((keep.buckets, keep.incomplete, keep.dropped), (3, 1, 0));
        let drop = aggregate(
            &hourly(t0, &idx),
            Freq::H1,
            Freq::H4,
            IncompletePolicy::Drop,
        )
        .unwrap();
        assert_eq!(drop.frame.timestamp, vec![t0, t0 + 12 * 3_600_000]);
        assert_eq!((drop.buckets, drop.incomplete, drop.dropped), (3, 1, 1));
        assert_eq!(drop.frame.symbols, vec![("AAA".to_owned(), 0..2)]);
        let klines = to_klines(&drop.frame, Freq::H4).unwrap();
        assert_eq!(klines[1].close_time, t0 + 16 * 3_600_000 - 1);
    }

    #[test]
    fn streaming_through_windows_equals_one_pass() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::Layout::WithoutRowid.ddl())
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
        let range = source_range(TimeRange::new(t0, t0 + 72 * 3_600_000).unwrap(), Freq::D1);
        let run = |rows| {
            let mut agg = Aggregator::new(Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap();
            agg.begin_symbol("AAA");
            for w in windows(range, Freq::H1, Freq::D1, rows) {
                agg.feed(&conn, &sql, "AAA", w).unwrap();
            }
            agg.finish()
        };
        let one = run(1_000);
        let many = run(1);
        assert_eq!(one, many);
        assert_eq!(
            one,
            aggregate(&frame, Freq::H1, Freq::D1, IncompletePolicy::Keep).unwrap()
        );
        assert_eq!((one.buckets, one.incomplete), (3, 1));
    }

    #[test]
    fn only_whole_multiples() {
        assert!(check_freqs(Freq::M3, Freq::M5).is_err());
        assert!(check_freqs(Freq::H1, Freq::M1).is_err());
        let e = check_freqs(Freq::W1, Freq::Mo1).unwrap_err().to_string();
        assert!(e.contains("1w -> 1M"), "{e}");
        let r = source_range(TimeRange::new(1_000, 2 * 86_400_000 + 5).unwrap(), Freq::D1);
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
