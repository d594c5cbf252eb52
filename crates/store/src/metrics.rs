//! Metric tables: upserts and reads of funding rates, open interest and long/short ratios.
//! Optional values keep an exact 0 as 0 and `None` as NULL. Long/short ratios are written
//! with the ratio-type spelling of the file's generation and read under both spellings,
//! one row per timestamp, the written spelling winning.
//!
//! Validation of rows happens here too; transactions, logging and symbol checks of read
//! filters are the caller's.

use marketdb_model::{
    Freq, FundingRate, LongShortRatio, OpenInterest, RatioType, TimeRange, Validator,
};
use rusqlite::{Connection, params, types::ValueRef};

use crate::read::{distinct_symbols, value_f64};
use crate::{Result, Tables};

/// Rows per multi-row metric statement; the rest of a batch goes row by row (at most
/// `METRIC_ROWS - 1` rows, and only two statements in the cache per table).
const METRIC_ROWS: usize = 64;

/// Upserts `rows` as `{head} VALUES (..), (..)` statements of [`METRIC_ROWS`] rows (one
/// statement execution per 64 rows instead of per row), each row's `width` values bound
/// by `bind` from the given first parameter index.
fn upsert_rows<T>(
    conn: &Connection,
    head: &str,
    width: usize,
    rows: &[T],
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> Result<()> {
    let tuple = format!("({})", vec!["?"; width].join(", "));
    let sql = |n: usize| format!("{head} VALUES {}", vec![tuple.as_str(); n].join(", "));
    let mut chunks = rows.chunks_exact(METRIC_ROWS);
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&sql(METRIC_ROWS))?;
        for chunk in chunks.by_ref() {
            for (i, r) in chunk.iter().enumerate() {
                bind(&mut stmt, i * width + 1, r)?;
            }
            stmt.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = conn.prepare_cached(&sql(1))?;
        for r in rest {
            bind(&mut stmt, 1, r)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

fn opt_f64(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Null => None,
        other => Some(value_f64(other)),
    }
}

/// Validates then upserts funding rates (`timestamp` = `funding_time`).
pub(crate) fn store_funding(
    conn: &Connection,
    t: &Tables,
    rows: &[FundingRate],
    v: &Validator,
) -> Result<usize> {
    for r in rows {
        v.funding_rate(r)?;
    }
    let marks = crate::changes::marks_of(
        t.funding,
        rows.iter()
            .map(|r| ("", "", r.symbol.as_str(), r.funding_time)),
    );
    crate::changes::untracked(conn, marks, || {
        let head = format!(
            "INSERT OR REPLACE INTO {} (symbol, timestamp, funding_rate, funding_time, \
             mark_price, index_price)",
            t.funding
        );
        upsert_rows(conn, &head, 6, rows, |stmt, i, r| {
            stmt.raw_bind_parameter(i, &r.symbol)?;
            stmt.raw_bind_parameter(i + 1, r.funding_time)?;
            stmt.raw_bind_parameter(i + 2, r.funding_rate)?;
            stmt.raw_bind_parameter(i + 3, r.funding_time)?;
            stmt.raw_bind_parameter(i + 4, r.mark_price)?;
            stmt.raw_bind_parameter(i + 5, r.index_price)
        })?;
        Ok(rows.len())
    })
}

/// Validates then upserts open interest samples.
pub(crate) fn store_open_interest(
    conn: &Connection,
    t: &Tables,
    rows: &[OpenInterest],
    v: &Validator,
) -> Result<usize> {
    for r in rows {
        v.open_interest(r)?;
    }
    let marks = crate::changes::marks_of(
        t.open_interest,
        rows.iter()
            .map(|r| (r.interval.as_str(), "", r.symbol.as_str(), r.time)),
    );
    crate::changes::untracked(conn, marks, || {
        let head = format!(
            "INSERT OR REPLACE INTO {} (symbol, timestamp, interval, open_interest, \
             open_interest_value)",
            t.open_interest
        );
        upsert_rows(conn, &head, 5, rows, |stmt, i, r| {
            stmt.raw_bind_parameter(i, &r.symbol)?;
            stmt.raw_bind_parameter(i + 1, r.time)?;
            stmt.raw_bind_parameter(i + 2, r.interval.as_str())?;
            stmt.raw_bind_parameter(i + 3, r.open_interest)?;
            stmt.raw_bind_parameter(i + 4, r.open_interest_value)
        })?;
        Ok(rows.len())
    })
}

/// Validates then upserts long/short ratios under the file's spelling of the ratio type.
pub(crate) fn store_long_short_ratio(
    conn: &Connection,
    t: &Tables,
    rows: &[LongShortRatio],
    v: &Validator,
) -> Result<usize> {
    for r in rows {
        v.long_short_ratio(r)?;
    }
    let marks = crate::changes::marks_of(
        t.long_short_ratio,
        rows.iter().map(|r| {
            (
                r.period.as_str(),
                t.ratio_type_name(r.ratio_type),
                r.symbol.as_str(),
                r.timestamp,
            )
        }),
    );
    crate::changes::untracked(conn, marks, || {
        let head = format!(
            "INSERT OR REPLACE INTO {} (symbol, timestamp, period, ratio_type, \
             long_short_ratio, long_account, short_account)",
            t.long_short_ratio
        );
        upsert_rows(conn, &head, 7, rows, |stmt, i, r| {
            stmt.raw_bind_parameter(i, &r.symbol)?;
            stmt.raw_bind_parameter(i + 1, r.timestamp)?;
            stmt.raw_bind_parameter(i + 2, r.period.as_str())?;
            stmt.raw_bind_parameter(i + 3, t.ratio_type_name(r.ratio_type))?;
            stmt.raw_bind_parameter(i + 4, r.long_short_ratio)?;
            stmt.raw_bind_parameter(i + 5, r.long_account)?;
            stmt.raw_bind_parameter(i + 6, r.short_account)
        })?;
        Ok(rows.len())
    })
}

pub(crate) fn symbols_of(
    conn: &Connection,
    table: &str,
    symbols: &[String],
) -> Result<Vec<String>> {
    if symbols.is_empty() {
        distinct_symbols(conn, table, None)
    } else {
        let mut s = symbols.to_vec();
        s.sort_unstable();
        s.dedup();
        Ok(s)
    }
}

/// Funding rates of `symbols` (all when empty) with `timestamp` in `range`, ordered by
/// (symbol, time).
pub(crate) fn read_funding(
    conn: &Connection,
    t: &Tables,
    range: TimeRange,
    symbols: &[String],
) -> Result<Vec<FundingRate>> {
    let tx = conn.unchecked_transaction()?;
    let mut out = Vec::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT timestamp, funding_time, funding_rate, mark_price, index_price FROM {} \
         WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3 ORDER BY timestamp",
        t.funding
    ))?;
    for s in symbols_of(&tx, t.funding, symbols)? {
        let mut rows = stmt.query(params![s, range.start, range.end_exclusive])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            out.push(FundingRate {
                symbol: s.clone(),
                funding_time: row.get::<_, Option<i64>>(1)?.unwrap_or(ts),
                funding_rate: value_f64(row.get_ref(2)?),
                mark_price: opt_f64(row.get_ref(3)?),
                index_price: opt_f64(row.get_ref(4)?),
            });
        }
    }
    Ok(out)
}

/// Open interest of `symbols` (all when empty) at `interval` in `range`, ordered by
/// (symbol, time).
pub(crate) fn read_open_interest(
    conn: &Connection,
    t: &Tables,
    range: TimeRange,
    symbols: &[String],
    interval: Freq,
) -> Result<Vec<OpenInterest>> {
    let tx = conn.unchecked_transaction()?;
    let mut out = Vec::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT timestamp, open_interest, open_interest_value FROM {} WHERE symbol = ?1 \
         AND interval = ?2 AND timestamp >= ?3 AND timestamp < ?4 ORDER BY timestamp",
        t.open_interest
    ))?;
    for s in symbols_of(&tx, t.open_interest, symbols)? {
        let mut rows = stmt.query(params![
            s,
            interval.as_str(),
            range.start,
            range.end_exclusive
        ])?;
        while let Some(row) = rows.next()? {
            out.push(OpenInterest {
                symbol: s.clone(),
                time: row.get(0)?,
                interval,
                open_interest: value_f64(row.get_ref(1)?),
                open_interest_value: opt_f64(row.get_ref(2)?),
            });
        }
    }
    Ok(out)
}

/// Long/short ratios of `symbols` (all when empty) for `period` and `ratio_type` (rows
/// under either spelling) in `range`, ordered by (symbol, time), one row per timestamp:
/// where both spellings hold a row, the one this file's era writes wins
/// ([`Tables::ratio_type_name`]).
pub(crate) fn read_long_short_ratio(
    conn: &Connection,
    t: &Tables,
    range: TimeRange,
    symbols: &[String],
    period: Freq,
    ratio_type: RatioType,
) -> Result<Vec<LongShortRatio>> {
    let tx = conn.unchecked_transaction()?;
    let mut out: Vec<LongShortRatio> = Vec::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT timestamp, long_short_ratio, long_account, short_account FROM {} \
         WHERE symbol = ?1 AND period = ?2 AND ratio_type IN (?3, ?4) \
         AND timestamp >= ?5 AND timestamp < ?6 \
         ORDER BY timestamp, ratio_type = ?3 DESC",
        t.long_short_ratio
    ))?;
    for s in symbols_of(&tx, t.long_short_ratio, symbols)? {
        let first = out.len();
        let mut rows = stmt.query(params![
            s,
            period.as_str(),
            t.ratio_type_name(ratio_type),
            t.other_ratio_type_name(ratio_type),
            range.start,
            range.end_exclusive
        ])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            if out.len() > first && out.last().is_some_and(|r| r.timestamp == ts) {
                continue;
            }
            out.push(LongShortRatio {
                symbol: s.clone(),
                timestamp: ts,
                period,
                ratio_type,
                long_short_ratio: value_f64(row.get_ref(1)?),
                long_account: opt_f64(row.get_ref(2)?),
                short_account: opt_f64(row.get_ref(3)?),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsr_aliases_are_merged_the_written_spelling_first() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::schema::Layout::WithoutRowid.ddl())
            .unwrap();
        conn.execute_batch(
            "INSERT INTO long_short_ratio VALUES ('A', 0, '5m', 'account', 1.0, NULL, NULL), \
             ('A', 0, '5m', 'toptrader_account', 2.0, 0.0, NULL), \
             ('A', 300000, '5m', 'account', 3.0, NULL, NULL), \
             ('A', 300000, '5m', 'taker', 9.0, NULL, NULL)",
        )
        .unwrap();
        let range = TimeRange::new(0, 600_000).unwrap();
        let got = read_long_short_ratio(
            &conn,
            &Tables::V19,
            range,
            &[],
            Freq::M5,
            RatioType::TopTraderAccount,
        )
        .unwrap();
        // v1.9 tables are written with the v1.9 spelling ("account"), which wins.
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].long_short_ratio, 1.0);
        assert_eq!(got[0].long_account, None);
        assert_eq!(got[1].long_short_ratio, 3.0);
        assert!(
            got.iter()
                .all(|r| r.ratio_type == RatioType::TopTraderAccount)
        );
        // Written with the era's spelling: "taker" in a v1.9 table.
        let v = Validator::new(marketdb_model::TimeWindow {
            earliest_ms: 0,
            latest_ms: i64::MAX,
        });
        let row = LongShortRatio {
            symbol: "B".into(),
            timestamp: 0,
            period: Freq::M5,
            ratio_type: RatioType::TakerVol,
            long_short_ratio: 1.5,
            long_account: None,
            short_account: None,
        };
        store_long_short_ratio(&conn, &Tables::V19, std::slice::from_ref(&row), &v).unwrap();
        let stored: String = conn
            .query_row(
                "SELECT ratio_type FROM long_short_ratio WHERE symbol = 'B'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, "taker");
    }
}
