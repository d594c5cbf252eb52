//! Inspection: the data summary ([`DataSummary`], serialised with the Python v1.9 sync
//! `get_data_summary()` key names), symbol and interval listings, time ranges, counts,
//! existence checks, available dates and range deletes. Listings seek through the primary
//! key (one index seek per symbol, interval or day) instead of scanning tables; the
//! summary is assembled per series by [`crate::series`].
//!
//! Symbols are validated by the caller before they reach these functions.

use marketdb_model::time::{DAY_MS, date_string, day_floor};
use marketdb_model::{Freq, TimeRange};
use rusqlite::{Connection, OptionalExtension, params, types::ValueRef};
use serde::Serialize;

use crate::series::{GroupStats, SqlValue, group_stats};
use crate::{Result, Tables};

/// Summary of every table, as the Python v1.9 `MarketDB.get_data_summary()` returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataSummary {
    /// One entry per interval, ordered by the interval string (as SQL `GROUP BY` does).
    pub market_data: Vec<KlineSummary>,
    pub funding_rate: FundingSummary,
    /// One entry per open interest interval.
    pub open_interest: Vec<IntervalSummary>,
    /// One entry per (period, ratio_type) as stored.
    pub long_short_ratio: Vec<RatioSummary>,
}

/// Kline rows of one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KlineSummary {
    pub freq: String,
    pub record_count: u64,
    pub unique_symbols: u64,
    pub earliest_timestamp: Option<i64>,
    pub latest_timestamp: Option<i64>,
    /// `YYYY-MM-DD` (UTC) of `earliest_timestamp`.
    pub earliest_date: Option<String>,
    pub latest_date: Option<String>,
}

/// The funding rate table (zero counts and nulls when empty).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FundingSummary {
    pub record_count: u64,
    pub unique_symbols: u64,
    pub earliest_timestamp: Option<i64>,
    pub latest_timestamp: Option<i64>,
}

/// Open interest rows of one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalSummary {
    pub interval: String,
    pub record_count: u64,
    pub unique_symbols: u64,
    pub earliest_timestamp: Option<i64>,
    pub latest_timestamp: Option<i64>,
}

/// Long/short ratio rows of one (period, ratio_type).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioSummary {
    pub period: String,
    pub ratio_type: String,
    pub record_count: u64,
    pub unique_symbols: u64,
    pub earliest_timestamp: Option<i64>,
    pub latest_timestamp: Option<i64>,
}

fn key(g: &GroupStats, i: usize) -> String {
    g.key.get(i).map(SqlValue::display).unwrap_or_default()
}

fn ts(v: &Option<SqlValue>) -> Option<i64> {
    v.as_ref().and_then(SqlValue::as_i64)
}

/// The statistics of table `i` of [`crate::changes::tracked`]: from the change record
/// (O(series x days)) when it can stand for the table, else by seeks and row counts
/// ([`group_stats`]).
fn table_stats(conn: &Connection, t: &Tables, i: usize, keys: &[&str]) -> Result<Vec<GroupStats>> {
    let tr = crate::changes::tracked(t)[i];
    if let Some(stats) = crate::changes::group_stats(conn, t, &tr)? {
        return Ok(stats);
    }
    tracing::info!(
        "{}: the change record cannot stand for this table (none in the file, or odd keys); \
         counting its rows",
        tr.table
    );
    group_stats(conn, tr.table, keys)
}

/// The summary of every table, in one snapshot: from the change record, or O(series)
/// seeks plus the row counts.
pub(crate) fn data_summary(conn: &Connection, t: &Tables) -> Result<DataSummary> {
    let tx = conn.unchecked_transaction()?;
    let market_data = table_stats(&tx, t, 0, &["freq"])?
        .into_iter()
        .map(|g| {
            let (earliest, latest) = (ts(&g.earliest), ts(&g.latest));
            KlineSummary {
                freq: key(&g, 0),
                record_count: g.record_count,
                unique_symbols: g.unique_symbols,
                earliest_timestamp: earliest,
                latest_timestamp: latest,
                earliest_date: earliest.map(date_string),
                latest_date: latest.map(date_string),
            }
        })
        .collect();
    // One group at most: the table has no key column.
    let funding_rate = table_stats(&tx, t, 1, &[])?.into_iter().next().map_or(
        FundingSummary {
            record_count: 0,
            unique_symbols: 0,
            earliest_timestamp: None,
            latest_timestamp: None,
        },
        |g| FundingSummary {
            record_count: g.record_count,
            unique_symbols: g.unique_symbols,
            earliest_timestamp: ts(&g.earliest),
            latest_timestamp: ts(&g.latest),
        },
    );
    let open_interest = table_stats(&tx, t, 2, &["interval"])?
        .into_iter()
        .map(|g| IntervalSummary {
            interval: key(&g, 0),
            record_count: g.record_count,
            unique_symbols: g.unique_symbols,
            earliest_timestamp: ts(&g.earliest),
            latest_timestamp: ts(&g.latest),
        })
        .collect();
    let long_short_ratio = table_stats(&tx, t, 3, &["period", "ratio_type"])?
        .into_iter()
        .map(|g| RatioSummary {
            period: key(&g, 0),
            ratio_type: key(&g, 1),
            record_count: g.record_count,
            unique_symbols: g.unique_symbols,
            earliest_timestamp: ts(&g.earliest),
            latest_timestamp: ts(&g.latest),
        })
        .collect();
    Ok(DataSummary {
        market_data,
        funding_rate,
        open_interest,
        long_short_ratio,
    })
}

/// Intervals stored for `symbol`, finest first. Interval strings this build does not know
/// are skipped with a warning.
pub(crate) fn frequencies(conn: &Connection, t: &Tables, symbol: &str) -> Result<Vec<Freq>> {
    // MIN, not ORDER BY ... LIMIT 1: the same single seek where an index leads with
    // (symbol, freq), and a pass over the symbol's rows without a sort where none does.
    // The last interval is bound as bytes cast to text, so any stored text steps exactly.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT MIN(freq) FROM {} WHERE symbol = ?1 AND freq > CAST(?2 AS TEXT)",
        t.kline
    ))?;
    let mut out = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    loop {
        let next = stmt.query_row(params![symbol, last], |r| {
            Ok(match r.get_ref(0)? {
                ValueRef::Text(f) => Some(f.to_vec()),
                // NULL: no further interval; a blob (after all text) is none either.
                _ => None,
            })
        })?;
        let Some(f) = next else { break };
        if f <= last {
            tracing::warn!("interval listing of {symbol} did not advance; stopping");
            break;
        }
        let name = String::from_utf8_lossy(&f);
        match Freq::parse(&name) {
            Ok(freq) => out.push(freq),
            Err(_) => tracing::warn!("skipping unknown interval {name:?} of {symbol}"),
        }
        last = f;
    }
    out.sort_unstable();
    Ok(out)
}

/// The stored bars of one symbol at one interval: [`crate::AsyncMarketDB::get_symbol_data_range`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SymbolRange {
    pub freq: Freq,
    pub record_count: u64,
    /// Open time (ms UTC) of the first and last bar.
    pub earliest_timestamp: i64,
    pub latest_timestamp: i64,
}

/// Every interval of `symbol` with its bar count and first and last open time, by
/// interval: first and last are index lookups, the count an index range count.
pub(crate) fn symbol_ranges(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
) -> Result<Vec<SymbolRange>> {
    let mut out = Vec::new();
    for freq in frequencies(conn, t, symbol)? {
        if let Some((first, last)) = time_range(conn, t, symbol, freq)? {
            out.push(SymbolRange {
                freq,
                record_count: count_rows(conn, t, symbol, freq, None)?,
                earliest_timestamp: first,
                latest_timestamp: last,
            });
        }
    }
    Ok(out)
}

/// First and last open time of (symbol, freq).
pub(crate) fn time_range(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
    freq: Freq,
) -> Result<Option<(i64, i64)>> {
    let edge = |dir: &str| -> Result<Option<i64>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT timestamp FROM {} WHERE symbol = ?1 AND freq = ?2 \
             ORDER BY timestamp {dir} LIMIT 1",
            t.kline
        ))?;
        Ok(stmt
            .query_row(params![symbol, freq.as_str()], |r| r.get(0))
            .optional()?)
    };
    Ok(edge("ASC")?.zip(edge("DESC")?))
}

/// Rows of (symbol, freq), optionally within a range.
pub(crate) fn count_rows(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
    freq: Freq,
    range: Option<TimeRange>,
) -> Result<u64> {
    let range = range.unwrap_or(TimeRange {
        start: i64::MIN,
        end_exclusive: i64::MAX,
    });
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT COUNT(*) FROM {} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
         AND timestamp < ?4",
        t.kline
    ))?;
    let n: i64 = stmt.query_row(
        params![symbol, freq.as_str(), range.start, range.end_exclusive],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Whether (symbol, freq) has any row in `range`.
pub(crate) fn exists(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
    freq: Freq,
    range: TimeRange,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT 1 FROM {} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
         AND timestamp < ?4 LIMIT 1",
        t.kline
    ))?;
    Ok(stmt.exists(params![
        symbol,
        freq.as_str(),
        range.start,
        range.end_exclusive
    ])?)
}

/// `YYYY-MM-DD` (UTC) of every day with a row of (symbol, freq), ascending; one seek
/// per day.
pub(crate) fn available_dates(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
    freq: Freq,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT timestamp FROM {} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
         ORDER BY timestamp LIMIT 1",
        t.kline
    ))?;
    let mut out = Vec::new();
    let mut from = i64::MIN;
    while let Some(ts) = stmt
        .query_row(params![symbol, freq.as_str(), from], |r| r.get::<_, i64>(0))
        .optional()?
    {
        let day = day_floor(ts);
        out.push(date_string(day));
        from = day.saturating_add(DAY_MS);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Layout, prepare};

    #[test]
    fn frequencies_step_over_foreign_values_and_need_no_index() {
        for layout in [Layout::WithoutRowid, Layout::Python] {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(&layout.ddl()).unwrap();
            if layout == Layout::Python {
                // No index leading with (symbol, freq): the listing scans the symbol.
                conn.execute_batch("DROP INDEX idx_symbol_freq_timestamp")
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO market_data (symbol, freq, timestamp) VALUES ('A', '1h', 1), \
                 ('A', '1m', 2), ('A', '7x', 3), ('A', x'316d', 4), ('B', '1d', 5);",
            )
            .unwrap();
            let t = prepare(&conn, "mem").unwrap();
            assert_eq!(
                frequencies(&conn, &t, "A").unwrap(),
                vec![Freq::M1, Freq::H1],
                "{layout:?}"
            );
            assert!(frequencies(&conn, &t, "C").unwrap().is_empty());
        }
    }
}
