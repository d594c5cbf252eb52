//! The producer half of an export: streams bars from the store, resamples them on the fly
//! (through the store's aggregation rules, see `resample.rs`), builds [`Table`]s with
//! derived features, reads the metrics each table needs (with a lookback of one tolerance
//! before its first bar) and aligns them, then hands the tables to the writer thread
//! through a bounded channel ([`Msg`]). Day walks (NumPy) scan the two halves of the symbol
//! list with two concurrent store scans merged day by day, so two store readers work while
//! the writer writes; symbol walks (CSV, Parquet, statistics) use one scan of bounded row
//! chunks in (symbol, time) order. It writes no file.

use std::ops::Range;

use marketdb_model::time::{DAY_MS, day_floor, format_rfc3339};
use marketdb_model::{Feature, FeatureKind, MetricFamily, as_of_window};
use marketdb_store::{AsyncMarketDB, FrameStream, ScanChunk};
use tokio::sync::mpsc;

use crate::{
    Error, KlineFrame, Result,
    align::{MetricSeries, align_table},
    plan::Plan,
    resample::Resampler,
    table::Table,
};

/// Rows per store chunk for the CSV, Parquet and statistics exports.
const ROW_CHUNK: usize = 65_536;

/// Concurrent store scans of a day walk.
const DAY_SCANS: usize = 2;

/// What flows from the producer to the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    Table(Table),
    Progress(u64),
    /// The stream is complete: commit.
    Finish,
}

/// How the producer walks the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walk {
    /// One UTC day of all symbols at a time; tables are whole output days.
    Days,
    /// Row chunks in (symbol, time) order; tables follow that order.
    Symbols,
}

/// The store's frames for a plan: one scan, or for day walks several scans over slices of
/// the symbol list, merged into one frame per day (symbols stay sorted because the slices
/// are consecutive).
struct Frames {
    streams: Vec<FrameStream>,
    heads: Vec<Option<KlineFrame>>,
    ended: Vec<bool>,
}

impl Frames {
    fn start(db: &AsyncMarketDB, plan: &Plan, chunk: ScanChunk) -> Frames {
        let parts = match chunk {
            ScanChunk::Day => DAY_SCANS.min(plan.symbols.len()).max(1),
            _ => 1,
        };
        let per = plan.symbols.len().div_ceil(parts);
        let streams: Vec<FrameStream> = plan
            .symbols
            .chunks(per.max(1))
            .map(|symbols| {
                db.scan(
                    plan.scan_range,
                    plan.source_freq,
                    symbols,
                    &plan.scan_columns,
                    chunk,
                )
            })
            .collect();
        let n = streams.len();
        Frames {
            streams,
            heads: (0..n).map(|_| None).collect(),
            ended: vec![false; n],
        }
    }

    /// The next frame (for several scans: every head of the earliest day, concatenated).
    async fn next(&mut self) -> Option<marketdb_store::Result<KlineFrame>> {
        if self.streams.len() == 1 {
            return self.streams[0].next().await;
        }
        for i in 0..self.streams.len() {
            while self.heads[i].is_none() && !self.ended[i] {
                match self.streams[i].next().await {
                    Some(Ok(f)) if f.is_empty() => {}
                    Some(Ok(f)) => self.heads[i] = Some(f),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.ended[i] = true,
                }
            }
        }
        let day_of = |f: &KlineFrame| f.timestamp().first().map(|t| day_floor(*t));
        let day = self.heads.iter().flatten().filter_map(day_of).min()?;
        let mut out: Option<KlineFrame> = None;
        for head in &mut self.heads {
            if head.as_ref().and_then(day_of) == Some(day)
                && let Some(f) = head.take()
            {
                match out.as_mut() {
                    None => out = Some(f),
                    Some(o) => {
                        // Several scans of one day hold disjoint, ordered symbol sets.
                        if let Err(e) = o.append(f) {
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
        out.map(Ok)
    }
}

/// Streams tables to the writer; returns early (Ok) when the writer has gone away.
pub(crate) async fn produce(
    db: &AsyncMarketDB,
    plan: &Plan,
    walk: Walk,
    tx: &mpsc::Sender<Msg>,
) -> Result<()> {
    if plan.symbols.is_empty() || plan.scan_range.is_empty() {
        return Ok(());
    }
    let chunk = match walk {
        Walk::Days => ScanChunk::Day,
        Walk::Symbols => ScanChunk::Rows(ROW_CHUNK),
    };
    let what = || {
        format!(
            "{} klines in [{}, {})",
            plan.source_freq,
            format_rfc3339(plan.scan_range.start),
            format_rfc3339(plan.scan_range.end_exclusive)
        )
    };
    let mut stream = Frames::start(db, plan, chunk);
    let mut resampler = plan
        .resamples()
        .then(|| Resampler::new(plan.source_freq, plan.out_freq, &plan.scan_columns))
        .transpose()?;
    let first_day = day_floor(plan.scan_range.start);
    let days = plan.total_days();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| Error::store(what(), e))?;
        let Some(&last_ts) = frame.timestamp().last() else {
            continue;
        };
        let day_index = ((day_floor(last_ts) - first_day) / DAY_MS) as u64;
        let done = match walk {
            Walk::Days => day_index + 1,
            Walk::Symbols => {
                let last_sym = frame
                    .symbols()
                    .last()
                    .map(|(s, _)| s.as_str())
                    .unwrap_or("");
                let idx = plan.symbols.partition_point(|s| s.as_str() < last_sym) as u64;
                idx * days + day_index + 1
            }
        };
        let outputs = match (&mut resampler, walk) {
            (None, _) => vec![frame],
            (Some(r), Walk::Days) => {
                r.push(&frame)?;
                r.drain(day_floor(last_ts) + DAY_MS)
            }
            (Some(r), Walk::Symbols) => {
                r.push(&frame)?;
                let keep = frame.symbols().last().map(|(s, _)| s.clone());
                r.drain_symbols(keep.as_deref())
            }
        };
        for out in outputs {
            if !send_table(db, plan, walk, out, tx).await? {
                return Ok(());
            }
        }
        if tx.send(Msg::Progress(done)).await.is_err() {
            return Ok(());
        }
    }
    if let Some(mut r) = resampler {
        let outputs = match walk {
            Walk::Days => r.finish(),
            Walk::Symbols => r.finish_symbols(),
        };
        for out in outputs {
            if !send_table(db, plan, walk, out, tx).await? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Builds, enriches and sends one table; `false` when the writer has gone away.
async fn send_table(
    db: &AsyncMarketDB,
    plan: &Plan,
    walk: Walk,
    frame: KlineFrame,
    tx: &mpsc::Sender<Msg>,
) -> Result<bool> {
    if frame.is_empty() {
        return Ok(true);
    }
    let mut table = Table::from_frame(plan, frame);
    if !plan.metrics.is_empty() {
        // NumPy days read the metrics of all the day's symbols at once; symbol-ordered
        // chunks read them per symbol run, whose time spans may differ widely.
        let groups: Vec<Range<usize>> = match walk {
            Walk::Days => std::iter::once(0..table.symbols.len()).collect(),
            Walk::Symbols => (0..table.symbols.len()).map(|i| i..i + 1).collect(),
        };
        for runs in groups {
            align_metrics(db, plan, &mut table, runs).await?;
        }
    }
    Ok(tx.send(Msg::Table(table)).await.is_ok())
}

/// Reads and aligns every metric of the plan for the symbol runs `runs` of `table`.
async fn align_metrics(
    db: &AsyncMarketDB,
    plan: &Plan,
    table: &mut Table,
    runs: Range<usize>,
) -> Result<()> {
    let Some(rows) = table
        .symbols
        .get(runs.clone())
        .and_then(|r| Some(r.first()?.1.start..r.last()?.1.end))
    else {
        return Ok(());
    };
    let symbols: Vec<String> = table.symbols[runs.clone()]
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    for family in plan.metric_families() {
        let tolerance = family.tolerance_ms();
        let Some(range) = as_of_window(plan.out_freq, &table.timestamp[rows.clone()], tolerance)
        else {
            continue;
        };
        let what = |name: &str| {
            format!(
                "{name} of {} in [{}, {})",
                symbols.join(","),
                format_rfc3339(range.start),
                format_rfc3339(range.end_exclusive)
            )
        };
        let features: Vec<(usize, usize, Feature)> = plan
            .metrics
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind() == FeatureKind::Metric(family))
            .filter_map(|(ts_col, f)| {
                let col = plan.features.iter().position(|g| g == f)?;
                Some((col, ts_col, *f))
            })
            .collect();
        let series: Vec<MetricSeries> = match family {
            MetricFamily::FundingRate => {
                let rows = db
                    .read_funding_rate(range, &symbols, false)
                    .await
                    .map_err(|e| Error::store(what("funding rates"), e))?;
                let s = MetricSeries::from_points(
                    rows.iter()
                        .map(|r| (r.symbol.as_str(), r.funding_time, Some(r.funding_rate))),
                );
                vec![s; features.len()]
            }
            MetricFamily::OpenInterest => {
                let rows = db
                    .read_open_interest(range, &symbols, plan.metric_period, false)
                    .await
                    .map_err(|e| Error::store(what("open interest"), e))?;
                features
                    .iter()
                    .map(|(_, _, f)| {
                        MetricSeries::from_points(rows.iter().map(|r| {
                            let v = if *f == Feature::OpenInterestValue {
                                r.open_interest_value
                            } else {
                                Some(r.open_interest)
                            };
                            (r.symbol.as_str(), r.time, v)
                        }))
                    })
                    .collect()
            }
            MetricFamily::LongShortRatio(ratio) => {
                let rows = db
                    .read_long_short_ratio(range, &symbols, plan.metric_period, ratio, false)
                    .await
                    .map_err(|e| Error::store(what("long/short ratios"), e))?;
                let s = MetricSeries::from_points(
                    rows.iter()
                        .map(|r| (r.symbol.as_str(), r.timestamp, Some(r.long_short_ratio))),
                );
                vec![s; features.len()]
            }
        };
        for ((col, ts_col, _), s) in features.iter().zip(&series) {
            align_table(
                table,
                runs.clone(),
                plan.out_freq,
                *col,
                *ts_col,
                s,
                tolerance,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use crate::table::tests::frame;

    #[test]
    fn append_shifts_symbol_runs() {
        let mut a = frame(&[
            ("AAA", 0, 1.0, 2.0, 1.0, 1.0, 1),
            ("AAA", 60_000, 1.0, 2.0, 1.0, 1.0, 2),
        ]);
        let b = frame(&[("BBB", 0, 3.0, 4.0, 1.0, 1.0, 3)]);
        a.append(b).unwrap();
        assert_eq!(
            a.symbols(),
            vec![("AAA".to_owned(), 0..2), ("BBB".to_owned(), 2..3)]
        );
        assert_eq!(a.timestamp(), vec![0, 60_000, 0]);
        assert_eq!(
            a.column(Feature::Close),
            Some(&Column::F64(vec![2.0, 2.0, 4.0]))
        );
        assert_eq!(
            a.column(Feature::TradesCount),
            Some(&Column::I64(vec![1, 2, 3]))
        );
        assert_eq!(a.symbol_of(2), Some("BBB"));
    }
}
