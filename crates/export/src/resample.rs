//! [`Resampler`]: streaming resampling of kline frames into a coarser interval, so a
//! `target_freq` export never holds more than one open bucket per symbol. Rules (behaviour
//! section 4): open = first, high = max, low = min, close = last, every volume and count
//! summed, labelled at the bucket's open time; no bar for an empty bucket; incomplete
//! buckets are kept. Frames are pushed in time order (per day, all symbols, or per symbol);
//! after each push the caller drains the buckets that end at or before a watermark (the end
//! of the day just pushed), grouped into one frame per UTC day of the bucket open.

use std::collections::BTreeMap;

use marketdb_model::{Feature, Freq, day_floor};

use crate::{Column, KlineFrame};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    F(f64),
    I(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    First,
    Max,
    Min,
    Last,
    Sum,
}

fn rule(f: Feature) -> Rule {
    match f {
        Feature::Open => Rule::First,
        Feature::High => Rule::Max,
        Feature::Low => Rule::Min,
        Feature::Close => Rule::Last,
        _ => Rule::Sum,
    }
}

#[derive(Clone, Debug)]
struct Bar {
    open: i64,
    vals: Vec<Val>,
}

/// A streaming resampler; see the module docs.
#[derive(Debug)]
pub(crate) struct Resampler {
    to: Freq,
    features: Vec<Feature>,
    rules: Vec<Rule>,
    open: BTreeMap<String, Bar>,
    done: Vec<(String, Bar)>,
}

impl Resampler {
    /// A resampler into `to` for frames holding exactly `features` (stored columns).
    pub(crate) fn new(to: Freq, features: &[Feature]) -> Resampler {
        Resampler {
            to,
            features: features.to_vec(),
            rules: features.iter().map(|f| rule(*f)).collect(),
            open: BTreeMap::new(),
            done: Vec::new(),
        }
    }

    /// Adds a frame's rows (each symbol's rows ascending in time).
    pub(crate) fn push(&mut self, frame: &KlineFrame) {
        let cols: Vec<Option<&Column>> = self.features.iter().map(|f| frame.column(*f)).collect();
        let val = |c: Option<&Column>, row: usize| match c {
            Some(Column::F64(v)) => Val::F(v[row]),
            Some(Column::I64(v)) => Val::I(v[row]),
            None => Val::F(f64::NAN),
        };
        for (sym, rows) in &frame.symbols {
            if !self.open.contains_key(sym) {
                self.open.insert(
                    sym.clone(),
                    Bar {
                        open: i64::MIN,
                        vals: Vec::new(),
                    },
                );
            }
            let Some(bar) = self.open.get_mut(sym) else {
                continue;
            };
            for row in rows.clone() {
                let bucket = self.to.floor(frame.timestamp[row]);
                if bar.open != bucket {
                    let fresh = Bar {
                        open: bucket,
                        vals: cols.iter().map(|c| val(*c, row)).collect(),
                    };
                    let old = std::mem::replace(bar, fresh);
                    if old.open != i64::MIN {
                        self.done.push((sym.clone(), old));
                    }
                    continue;
                }
                for ((acc, rule), c) in bar.vals.iter_mut().zip(&self.rules).zip(&cols) {
                    *acc = merge(*acc, val(*c, row), *rule);
                }
            }
        }
    }

    /// Closes every bucket that ends at or before `watermark` and returns the finished bars
    /// as frames, one per UTC day of the bucket open, in day order, rows by (symbol, open).
    /// For frames pushed day by day (all symbols), with the end of the day as watermark.
    pub(crate) fn drain(&mut self, watermark: i64) -> Vec<KlineFrame> {
        let to = self.to;
        self.close_where(|_, b| to.next(b.open) <= watermark);
        self.take_done(true)
    }

    /// Closes the buckets of every symbol but `keep` and returns the finished bars as one
    /// frame ordered by (symbol, open). For frames pushed in (symbol, time) order, where
    /// `keep` is the last symbol seen (the only one that can still get rows).
    pub(crate) fn drain_symbols(&mut self, keep: Option<&str>) -> Vec<KlineFrame> {
        self.close_where(|s, _| Some(s) != keep);
        self.take_done(false)
    }

    /// Closes every bucket (the end of a day-by-day stream).
    pub(crate) fn finish(&mut self) -> Vec<KlineFrame> {
        self.drain(i64::MAX)
    }

    fn close_where(&mut self, pred: impl Fn(&str, &Bar) -> bool) {
        let closing: Vec<String> = self
            .open
            .iter()
            .filter(|(s, b)| b.open != i64::MIN && pred(s, b))
            .map(|(s, _)| s.clone())
            .collect();
        for sym in closing {
            if let Some(bar) = self.open.remove(&sym) {
                self.done.push((sym, bar));
            }
        }
    }

    /// The finished bars as frames: per UTC day of the open (`by_day`) or all in one.
    fn take_done(&mut self, by_day: bool) -> Vec<KlineFrame> {
        let mut done = std::mem::take(&mut self.done);
        let key = |b: &Bar| if by_day { day_floor(b.open) } else { 0 };
        done.sort_by(|a, b| (key(&a.1), &a.0, a.1.open).cmp(&(key(&b.1), &b.0, b.1.open)));
        let mut out: Vec<KlineFrame> = Vec::new();
        let mut current = None;
        for (sym, bar) in done {
            if current != Some(key(&bar)) {
                current = Some(key(&bar));
                out.push(KlineFrame::empty(&self.features));
            }
            let Some(frame) = out.last_mut() else {
                continue;
            };
            let row = frame.timestamp.len();
            match frame.symbols.last_mut() {
                Some((s, r)) if *s == sym => r.end = row + 1,
                _ => frame.symbols.push((sym, row..row + 1)),
            }
            frame.timestamp.push(bar.open);
            for (col, v) in frame.columns.iter_mut().zip(bar.vals) {
                match (col, v) {
                    (Column::F64(c), Val::F(x)) => c.push(x),
                    (Column::I64(c), Val::I(x)) => c.push(x),
                    (Column::F64(c), Val::I(x)) => c.push(x as f64),
                    (Column::I64(c), Val::F(x)) => c.push(x as i64),
                }
            }
        }
        out
    }
}

fn merge(acc: Val, v: Val, rule: Rule) -> Val {
    match (acc, v) {
        (Val::F(a), Val::F(b)) => Val::F(match rule {
            Rule::First => a,
            Rule::Last => b,
            Rule::Max => a.max(b),
            Rule::Min => a.min(b),
            Rule::Sum => a + b,
        }),
        (Val::I(a), Val::I(b)) => Val::I(match rule {
            Rule::First => a,
            Rule::Last => b,
            Rule::Max => a.max(b),
            Rule::Min => a.min(b),
            Rule::Sum => a.saturating_add(b),
        }),
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use marketdb_model::{DAY_MS, parse_ymd};

    use super::*;

    const H: i64 = 3_600_000;

    fn hourly(sym: &str, start: i64, n: i64) -> KlineFrame {
        let mut f = KlineFrame::empty(&[
            Feature::Open,
            Feature::High,
            Feature::Low,
            Feature::Close,
            Feature::Volume,
            Feature::TradesCount,
        ]);
        f.symbols.push((sym.to_owned(), 0..n as usize));
        for i in 0..n {
            f.timestamp.push(start + i * H);
            let vals = [
                100.0 + i as f64,
                200.0 + i as f64,
                50.0 - i as f64,
                150.0 + i as f64,
                1000.0,
            ];
            for (c, v) in f.columns.iter_mut().zip(vals) {
                if let Column::F64(c) = c {
                    c.push(v);
                }
            }
            if let Column::I64(c) = &mut f.columns[5] {
                c.push(i);
            }
        }
        f
    }

    #[test]
    fn python_ohlcv_aggregation_case() {
        // 24 hourly bars from 1700006400000: open 100+i, high 200+i, low 50-i, close 150+i.
        let t0 = 1_700_006_400_000;
        let mut r = Resampler::new(Freq::D1, &hourly("BTC", t0, 1).features);
        r.push(&hourly("BTC", t0, 24));
        let out = r.drain(t0 + DAY_MS);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.timestamp, vec![t0]);
        assert_eq!(f.columns[0], Column::F64(vec![100.0]));
        assert_eq!(f.columns[1], Column::F64(vec![223.0]));
        assert_eq!(f.columns[2], Column::F64(vec![27.0]));
        assert_eq!(f.columns[3], Column::F64(vec![173.0]));
        assert_eq!(f.columns[4], Column::F64(vec![24_000.0]));
        assert_eq!(f.columns[5], Column::I64(vec![(0..24).sum()]));
        assert!(r.finish().is_empty());
    }

    #[test]
    fn weekly_buckets_wait_for_their_end_and_group_by_open_day() {
        let mon = parse_ymd(2024, 1, 1).unwrap();
        let feats = hourly("A", mon, 1).features;
        let mut r = Resampler::new(Freq::W1, &feats);
        for d in 0..7 {
            let mut a = hourly("A", mon + d * DAY_MS, 24);
            if d == 3 {
                // B trades only on Thursday.
                let b = hourly("B", mon + d * DAY_MS, 2);
                a.symbols.push(("B".into(), 24..26));
                a.timestamp.extend(&b.timestamp);
                for (c, bc) in a.columns.iter_mut().zip(b.columns) {
                    match (c, bc) {
                        (Column::F64(x), Column::F64(y)) => x.extend(y),
                        (Column::I64(x), Column::I64(y)) => x.extend(y),
                        _ => unreachable!(),
                    }
                }
            }
            r.push(&a);
            let out = r.drain(mon + (d + 1) * DAY_MS);
            if d < 6 {
                assert!(out.is_empty(), "day {d}");
            } else {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].timestamp, vec![mon, mon]);
                assert_eq!(out[0].symbols[0].0, "A");
                assert_eq!(out[0].symbols[1], ("B".to_owned(), 1..2));
                assert_eq!(out[0].columns[4], Column::F64(vec![7.0 * 24_000.0, 2000.0]));
            }
        }
        // An incomplete bucket is kept at the end of the stream.
        r.push(&hourly("A", mon + 7 * DAY_MS, 3));
        assert!(r.drain(mon + 8 * DAY_MS).is_empty());
        let out = r.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp, vec![mon + 7 * DAY_MS]);
        assert_eq!(out[0].columns[4], Column::F64(vec![3000.0]));
    }

    #[test]
    fn symbol_major_streams_close_finished_symbols() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let mut r = Resampler::new(Freq::D1, &hourly("A", t0, 1).features);
        // Chunk 1: all of A's first day and half of its second.
        let mut a = hourly("A", t0, 36);
        r.push(&a);
        let out = r.drain_symbols(Some("A"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp, vec![t0]);
        // Chunk 2: the rest of A, then B.
        a = hourly("A", t0 + 36 * H, 12);
        r.push(&a);
        r.push(&hourly("B", t0, 24));
        let out = r.drain_symbols(Some("B"));
        assert_eq!(out[0].timestamp, vec![t0 + DAY_MS]);
        assert_eq!(out[0].symbols, vec![("A".to_owned(), 0..1)]);
        assert_eq!(out[0].columns[4], Column::F64(vec![24_000.0]));
        let out = r.drain_symbols(None);
        assert_eq!(out[0].symbols, vec![("B".to_owned(), 0..1)]);
        assert!(r.drain_symbols(None).is_empty());
    }

    #[test]
    fn intraday_buckets_and_gaps() {
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let mut f = hourly("A", t0, 5);
        f.timestamp[3] += 0; // bars at 0..5h
        let mut r = Resampler::new(Freq::H4, &f.features);
        r.push(&f);
        let out = r.drain(t0 + DAY_MS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp, vec![t0, t0 + 4 * H]);
        assert_eq!(out[0].columns[0], Column::F64(vec![100.0, 104.0]));
        assert_eq!(out[0].columns[3], Column::F64(vec![153.0, 154.0]));
        f.timestamp.clear();
        assert!(r.finish().is_empty());
    }
}
