//! Completeness and deletion for the metric tables (funding rates, open interest,
//! long/short ratios), the counterparts of the kline ones.
//!
//! A metric series is complete when every slot of its interval grid over the range holds
//! at least one point: a slot `[s, s + interval)` counts as present when a point falls in
//! it. Binance stamps funding a few milliseconds after the hour, so funding points are
//! matched by slot, never by exact time; open interest and ratios are stamped on the grid,
//! so a point off it is listed as suspicious. The funding interval is the caller's (8 h on
//! most symbols, 4 h or 1 h on some). Points are read in bounded chunks, each its own short
//! read, so memory does not follow the length of the range.

use marketdb_model::{Freq, MetricFamily, TimeRange};
use rusqlite::{Connection, params_from_iter, types::Value};

use crate::completeness::{Grid, push_run};
use crate::db::check_symbols;
use crate::{
    AsyncMarketDB, CompletenessReport, Error, MissingRun, Result, SuspiciousRow,
    SymbolCompleteness, Tables,
};

/// Points read per chunk.
const CHUNK_POINTS: usize = 65_536;

/// The table of `metric`, the SQL condition selecting one series (after `symbol = ?1`,
/// `timestamp >= ?2 AND timestamp < ?3`, numbered from `?4`) and its values. `interval`
/// `None` selects every interval or period.
fn series(
    t: &Tables,
    metric: MetricFamily,
    interval: Option<Freq>,
) -> (&'static str, String, Vec<Value>) {
    let mut cond = String::new();
    let mut values = Vec::new();
    let table = match metric {
        MetricFamily::FundingRate => t.funding,
        MetricFamily::OpenInterest => t.open_interest,
        MetricFamily::LongShortRatio(r) => {
            cond.push_str(" AND ratio_type IN (?4, ?5)");
            values.push(Value::Text(t.ratio_type_name(r).to_owned()));
            values.push(Value::Text(t.other_ratio_type_name(r).to_owned()));
            t.long_short_ratio
        }
    };
    if let Some(i) = interval.filter(|_| metric != MetricFamily::FundingRate) {
        let column = if table == t.open_interest {
            "interval"
        } else {
            "period"
        };
        cond.push_str(&format!(" AND {column} = ?{}", 4 + values.len()));
        values.push(Value::Text(i.as_str().to_owned()));
    }
    (table, cond, values)
}

fn bound(symbol: &str, start: i64, end: i64, rest: &[Value]) -> Vec<Value> {
    let mut v = vec![
        Value::Text(symbol.to_owned()),
        Value::Integer(start),
        Value::Integer(end),
    ];
    v.extend_from_slice(rest);
    v
}

/// The completeness check of one metric series of one symbol, fed chunk by chunk.
#[derive(Debug)]
pub(crate) struct MetricChecker {
    symbol: String,
    metric: MetricFamily,
    interval: Freq,
    grid: Grid,
    range: TimeRange,
    /// The next point time to read (keyset pagination).
    cursor: i64,
    done: bool,
    present: u64,
    missing: Vec<MissingRun>,
    suspicious: Vec<SuspiciousRow>,
}

impl MetricChecker {
    pub(crate) fn new(
        symbol: String,
        metric: MetricFamily,
        interval: Freq,
        range: TimeRange,
    ) -> MetricChecker {
        MetricChecker {
            symbol,
            metric,
            interval,
            grid: Grid::new(interval, range, None),
            range,
            cursor: range.start,
            done: range.start >= range.end_exclusive,
            present: 0,
            missing: Vec::new(),
            suspicious: Vec::new(),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Reads and checks the next chunk of points.
    pub(crate) fn feed(&mut self, conn: &Connection, t: &Tables) -> Result<()> {
        let (table, cond, values) = series(t, self.metric, Some(self.interval));
        // DISTINCT: a ratio may be stored under both spellings at one time.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT DISTINCT timestamp FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 \
             AND timestamp < ?3{cond} ORDER BY timestamp LIMIT {CHUNK_POINTS}"
        ))?;
        let params = bound(&self.symbol, self.cursor, self.range.end_exclusive, &values);
        let times = stmt
            .query_map(params_from_iter(params), |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        self.take(&times);
        Ok(())
    }

    /// Checks sorted point times against the grid.
    fn take(&mut self, times: &[i64]) {
        for &time in times {
            let slot = self.interval.floor(time);
            if self.metric != MetricFamily::FundingRate && slot != time {
                self.suspicious.push(SuspiciousRow {
                    timestamp: time,
                    reason: format!("off the {} grid", self.interval),
                });
            }
            if let Some(run) = self.grid.skip_to(slot) {
                push_run(&mut self.missing, &self.grid, run);
            }
            if self.grid.peek() == Some(slot) {
                self.present += 1;
                self.grid.advance();
            }
        }
        match times.last() {
            Some(&last) if times.len() == CHUNK_POINTS => self.cursor = last + 1,
            _ => self.done = true,
        }
    }

    pub(crate) fn finish(mut self) -> SymbolCompleteness {
        if let Some(run) = self.grid.skip_to(i64::MAX) {
            push_run(&mut self.missing, &self.grid, run);
        }
        let missing: u64 = self.missing.iter().map(|r| r.count).sum();
        let expected = self.present + missing;
        SymbolCompleteness {
            symbol: self.symbol,
            expected,
            present: self.present,
            coverage: if expected == 0 {
                1.0
            } else {
                self.present as f64 / expected as f64
            },
            missing: self.missing,
            suspicious: self.suspicious,
        }
    }
}

/// Deletes the points of `metric` for `symbols` (all of the table when empty) in `range`;
/// for open interest and ratios only those of `interval` when given, every interval
/// otherwise; ratios under both spellings. Returns the rows deleted.
pub(crate) fn delete_metric_range(
    conn: &Connection,
    t: &Tables,
    metric: MetricFamily,
    symbols: &[String],
    range: TimeRange,
    interval: Option<Freq>,
) -> Result<u64> {
    let (table, cond, values) = series(t, metric, interval);
    let symbols = crate::metrics::symbols_of(conn, table, symbols)?;
    crate::changes::with_triggers(conn, || {
        let mut stmt = conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3{cond}"
        ))?;
        let mut n = 0u64;
        for s in &symbols {
            let params = bound(s, range.start, range.end_exclusive, &values);
            n += stmt.execute(params_from_iter(params))? as u64;
        }
        Ok(n)
    })
}

impl AsyncMarketDB {
    /// Completeness of a metric series over `range`: for each symbol (all of the metric's
    /// table when empty), the slots of the `interval` grid (the funding interval, e.g. 8h;
    /// the open interest interval or ratio period, e.g. 5m) that hold no point, merged into
    /// runs. Open interest and ratio points off the grid are listed as suspicious.
    pub async fn check_metric_completeness(
        &self,
        range: TimeRange,
        metric: MetricFamily,
        interval: Freq,
        symbols: &[String],
    ) -> Result<CompletenessReport> {
        let range = range.checked()?;
        if interval.fixed_ms().is_none() {
            return Err(Error::invalid_argument(
                "metric interval",
                interval,
                "must be a fixed length (1m to 1d)",
            ));
        }
        let symbols = check_symbols(symbols)?;
        let symbols = self
            .read(move |c, t| {
                let table = series(t, metric, None).0;
                crate::metrics::symbols_of(c, table, &symbols)
            })
            .await?;
        let mut out = Vec::with_capacity(symbols.len());
        for s in symbols {
            let mut checker = MetricChecker::new(s, metric, interval, range);
            while !checker.is_done() {
                checker = self
                    .read(move |c, t| {
                        checker.feed(c, t)?;
                        Ok(checker)
                    })
                    .await?;
            }
            out.push(checker.finish());
        }
        Ok(CompletenessReport {
            freq: interval,
            range,
            symbols: out,
        })
    }

    /// Deletes the points of a metric for `symbols` (all of its table when empty) in
    /// `range`, in one transaction: open interest and ratios of `interval` only when given
    /// (every interval otherwise), ratios under both spellings. Returns the rows deleted.
    pub async fn delete_metric_range(
        &self,
        metric: MetricFamily,
        symbols: &[String],
        range: TimeRange,
        interval: Option<Freq>,
    ) -> Result<u64> {
        let range = range.checked()?;
        let symbols = check_symbols(symbols)?;
        let n = self
            .write(move |c, t| delete_metric_range(c, t, metric, &symbols, range, interval))
            .await?;
        tracing::info!("deleted {n} {metric:?} rows");
        Ok(n)
    }
}
