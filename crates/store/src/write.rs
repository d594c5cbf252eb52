//! Kline writes: [`KlineInput`] (flat or grouped rows), validation of every row before
//! anything is written, the batched `INSERT OR REPLACE` (multi-row `VALUES` statements of
//! `batch_size` rows, cached per connection, plus a cached single-row statement for the
//! remainder), and range deletes. The caller runs them inside one transaction.
//!
//! It does not open transactions, log or checkpoint; [`crate::AsyncMarketDB`] does.

use std::collections::HashSet;

use marketdb_model::{Freq, Kline, TimeRange, ValidationError, Validator};
use rusqlite::{Connection, params};

use crate::read::resolve_symbols;

use crate::{Result, Tables};

/// Rows handed to [`crate::AsyncMarketDB::store_data`]: one flat list, or one list per
/// symbol (the Python original accepted both).
#[derive(Clone, Debug, PartialEq)]
pub enum KlineInput {
    Flat(Vec<Kline>),
    Grouped(Vec<Vec<Kline>>),
}

impl From<Vec<Kline>> for KlineInput {
    fn from(v: Vec<Kline>) -> Self {
        KlineInput::Flat(v)
    }
}

impl From<Vec<Vec<Kline>>> for KlineInput {
    fn from(v: Vec<Vec<Kline>>) -> Self {
        KlineInput::Grouped(v)
    }
}

impl KlineInput {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            KlineInput::Flat(v) => v.len(),
            KlineInput::Grouped(g) => g.iter().map(Vec::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row, in input order.
    pub fn iter(&self) -> impl Iterator<Item = &Kline> {
        let slices: &[Vec<Kline>] = match self {
            KlineInput::Flat(v) => std::slice::from_ref(v),
            KlineInput::Grouped(g) => g,
        };
        slices.iter().flatten()
    }

    /// `"BTCUSDT"` when every row has that symbol, otherwise `"N symbols"` (for logs).
    pub(crate) fn symbol_summary(&self) -> String {
        let mut it = self.iter();
        let Some(first) = it.next() else {
            return "no symbols".to_owned();
        };
        let mut prev = first.symbol.as_str();
        let mut seen: Option<HashSet<&str>> = None;
        for k in it {
            if k.symbol != prev {
                seen.get_or_insert_with(|| HashSet::from([prev]))
                    .insert(&k.symbol);
                prev = &k.symbol;
            }
        }
        match seen {
            None => first.symbol.clone(),
            Some(s) => format!("{} symbols", s.len()),
        }
    }
}

/// SQLite binds at most 32766 parameters per statement; 2000 rows of 14 stay below.
const MAX_ROWS_PER_STATEMENT: usize = 2000;

fn insert_sql(tables: &Tables, freq: Freq, rows: usize) -> String {
    let close = tables.kline_close_time;
    let mut sql = format!(
        "INSERT OR REPLACE INTO {} (symbol, timestamp, freq, open_price, high_price, \
         low_price, close_price, volume, quote_volume, trades_count, taker_buy_volume, \
         taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume{}) VALUES ",
        tables.kline,
        if close { ", close_time" } else { "" }
    );
    // The interval is a literal from a fixed set of Binance strings: one fewer bind per row.
    let one = format!(
        "(?,?,'{}',?,?,?,?,?,?,?,?,?,?,?{})",
        freq.as_str(),
        if close { ",?" } else { "" }
    );
    sql.reserve(rows * (one.len() + 1));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&one);
    }
    sql
}

/// Binds one kline's values starting at parameter `idx`; returns the next index.
#[inline]
fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    mut idx: usize,
    k: &Kline,
    close_time: bool,
) -> rusqlite::Result<usize> {
    stmt.raw_bind_parameter(idx, k.symbol.as_str())?;
    stmt.raw_bind_parameter(idx + 1, k.open_time)?;
    stmt.raw_bind_parameter(idx + 2, k.open)?;
    stmt.raw_bind_parameter(idx + 3, k.high)?;
    stmt.raw_bind_parameter(idx + 4, k.low)?;
    stmt.raw_bind_parameter(idx + 5, k.close)?;
    stmt.raw_bind_parameter(idx + 6, k.volume)?;
    stmt.raw_bind_parameter(idx + 7, k.quote_volume)?;
    stmt.raw_bind_parameter(idx + 8, k.trades_count)?;
    stmt.raw_bind_parameter(idx + 9, k.taker_buy_volume)?;
    stmt.raw_bind_parameter(idx + 10, k.taker_buy_quote_volume)?;
    stmt.raw_bind_parameter(idx + 11, k.taker_sell_volume())?;
    stmt.raw_bind_parameter(idx + 12, k.taker_sell_quote_volume())?;
    idx += 13;
    if close_time {
        stmt.raw_bind_parameter(idx, k.close_time)?;
        idx += 1;
    }
    Ok(idx)
}

/// Validates every row for `freq` with `validator`; the first bad row is the error. A bar
/// (symbol, open time) given twice is refused too, naming both rows: with `INSERT OR
/// REPLACE` the last would silently win and the count would overstate what is stored.
pub(crate) fn validate_all(input: &KlineInput, freq: Freq, validator: &Validator) -> Result<()> {
    for k in input.iter() {
        validator.kline(k, freq)?;
    }
    if let Some((first, second)) = find_repeat(input)
        && let Some(k) = input.iter().nth(second)
    {
        return Err(ValidationError {
            record: "kline",
            symbol: k.symbol.clone(),
            time: k.open_time,
            field: "open_time",
            value: k.open_time.to_string(),
            reason: format!(
                "input rows {first} and {second} (counting from 0) are the same bar; a call \
                 may hold each bar once"
            ),
        }
        .into());
    }
    Ok(())
}

/// The indices of two rows with the same (symbol, open time), if any. Rows sorted by time
/// within runs of one symbol (every Binance file, every frame) take one comparison per row;
/// anything else is sorted by key first.
fn find_repeat(input: &KlineInput) -> Option<(usize, usize)> {
    let mut prev: Option<(&str, i64, usize)> = None;
    let mut finished: HashSet<&str> = HashSet::new();
    let mut sorted = true;
    for (i, k) in input.iter().enumerate() {
        if let Some((sym, t, j)) = prev {
            if sym == k.symbol {
                if k.open_time == t {
                    return Some((j, i));
                }
                if k.open_time < t {
                    sorted = false;
                    break;
                }
            } else if !finished.insert(sym) || finished.contains(k.symbol.as_str()) {
                sorted = false;
                break;
            }
        }
        prev = Some((&k.symbol, k.open_time, i));
    }
    if sorted {
        return None;
    }
    let mut keys: Vec<(&str, i64, usize)> = input
        .iter()
        .enumerate()
        .map(|(i, k)| (k.symbol.as_str(), k.open_time, i))
        .collect();
    keys.sort_unstable();
    keys.windows(2)
        .find(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
        .map(|w| (w[0].2.min(w[1].2), w[0].2.max(w[1].2)))
}

/// Upserts every row (already validated) with batched statements; returns rows written.
pub(crate) fn insert_klines(
    conn: &Connection,
    tables: &Tables,
    input: &KlineInput,
    freq: Freq,
    batch_size: usize,
) -> Result<usize> {
    let marks = crate::changes::marks_of(
        tables.kline,
        input
            .iter()
            .map(|k| (freq.as_str(), "", k.symbol.as_str(), k.open_time)),
    );
    crate::changes::untracked(conn, marks, || {
        insert_rows(conn, tables, input, freq, batch_size)
    })
}

fn insert_rows(
    conn: &Connection,
    tables: &Tables,
    input: &KlineInput,
    freq: Freq,
    batch_size: usize,
) -> Result<usize> {
    let total = input.len();
    let per_stmt = batch_size.clamp(1, MAX_ROWS_PER_STATEMENT);
    let close = tables.kline_close_time;
    let mut rows = input.iter();
    let full = if per_stmt > 1 { total / per_stmt } else { 0 };
    if full > 0 {
        let mut stmt = conn.prepare_cached(&insert_sql(tables, freq, per_stmt))?;
        for _ in 0..full {
            let mut idx = 1;
            for k in rows.by_ref().take(per_stmt) {
                idx = bind(&mut stmt, idx, k, close)?;
            }
            stmt.raw_execute()?;
        }
    }
    // The rest (a daily 1m file leaves 440) in statements of descending powers of two:
    // at most one statement per size, and few sizes in the statement cache, where single
    // rows cost a statement execution each.
    let mut left = total - full * per_stmt;
    let mut size = per_stmt.next_power_of_two() / 2;
    while left > 0 {
        size = size.max(1);
        if left >= size {
            let mut stmt = conn.prepare_cached(&insert_sql(tables, freq, size))?;
            let mut idx = 1;
            for k in rows.by_ref().take(size) {
                idx = bind(&mut stmt, idx, k, close)?;
            }
            stmt.raw_execute()?;
            left -= size;
        }
        size /= 2;
    }
    Ok(total)
}

/// Deletes the rows of `symbols` (all of `freq` when empty) at `freq` in `range`; returns
/// how many were deleted.
pub(crate) fn delete_range(
    conn: &Connection,
    t: &Tables,
    symbols: &[String],
    range: TimeRange,
    freq: Freq,
) -> Result<u64> {
    let symbols = resolve_symbols(conn, t, freq, symbols)?;
    crate::changes::with_triggers(conn, || {
        let mut stmt = conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
             AND timestamp < ?4",
            t.kline
        ))?;
        let mut n = 0u64;
        for s in &symbols {
            n += stmt.execute(params![s, freq.as_str(), range.start, range.end_exclusive])? as u64;
        }
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(symbol: &str, t: i64) -> Kline {
        Kline {
            symbol: symbol.into(),
            open_time: t,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 10.0,
            close_time: t + 59_999,
            quote_volume: 15.0,
            trades_count: 3,
            taker_buy_volume: 4.0,
            taker_buy_quote_volume: 6.0,
        }
    }

    #[test]
    fn repeated_bars_are_found_in_any_order() {
        let rows =
            |ts: &[(&str, i64)]| KlineInput::Flat(ts.iter().map(|(s, t)| k(s, *t)).collect());
        assert_eq!(find_repeat(&rows(&[("A", 0), ("A", 60), ("B", 0)])), None);
        assert_eq!(
            find_repeat(&rows(&[("A", 0), ("A", 60), ("A", 60)])),
            Some((1, 2))
        );
        assert_eq!(find_repeat(&rows(&[("A", 60), ("A", 0), ("B", 0)])), None);
        assert_eq!(
            find_repeat(&rows(&[("A", 60), ("B", 0), ("A", 60)])),
            Some((0, 2))
        );
        assert_eq!(
            find_repeat(&rows(&[("B", 5), ("A", 7), ("B", 5)])),
            Some((0, 2))
        );
        let grouped = KlineInput::Grouped(vec![vec![k("A", 0)], vec![k("A", 0)]]);
        assert_eq!(find_repeat(&grouped), Some((0, 1)));
        let v = Validator::new(marketdb_model::TimeWindow {
            earliest_ms: 0,
            latest_ms: i64::MAX,
        });
        let err = validate_all(&rows(&[("A", 0), ("A", 0)]), Freq::M1, &v).unwrap_err();
        assert!(err.to_string().contains("input rows 0 and 1"), "{err}");
    }

    #[test]
    fn insert_sql_shape() {
        let sql = insert_sql(&Tables::V19, Freq::M1, 2);
        assert!(sql.starts_with("INSERT OR REPLACE INTO market_data (symbol, timestamp, freq,"));
        assert!(
            sql.ends_with(
                "VALUES (?,?,'1m',?,?,?,?,?,?,?,?,?,?,?),(?,?,'1m',?,?,?,?,?,?,?,?,?,?,?)"
            )
        );
        assert_eq!(sql.matches('?').count(), 26);
    }

    #[test]
    fn batches_and_remainder_store_every_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::schema::Layout::WithoutRowid.ddl())
            .unwrap();
        let input = KlineInput::Grouped(vec![
            (0..7).map(|i| k("AAA", i * 60_000)).collect(),
            (0..5).map(|i| k("BBB", i * 60_000)).collect(),
        ]);
        assert_eq!(input.symbol_summary(), "2 symbols");
        for batch in [1, 3, 5000] {
            assert_eq!(
                insert_klines(&conn, &Tables::V19, &input, Freq::M1, batch).unwrap(),
                12
            );
            let (n, tsv): (i64, f64) = conn
                .query_row(
                    "SELECT COUNT(*), SUM(taker_sell_volume) FROM market_data",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((n, tsv), (12, 72.0));
        }
        assert_eq!(KlineInput::from(vec![k("X", 0)]).symbol_summary(), "X");
    }

    #[test]
    fn every_split_of_a_remainder_stores_each_row_once() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::schema::Layout::WithoutRowid.ddl())
            .unwrap();
        for total in [0usize, 1, 2, 3, 439, 440, 441, 1000, 1023, 1440, 2047, 3001] {
            for batch in [1usize, 2, 3, 7, 512, 1000, 2000, 9999] {
                conn.execute("DELETE FROM market_data", []).unwrap();
                let input =
                    KlineInput::Flat((0..total as i64).map(|i| k("AAA", i * 60_000)).collect());
                assert_eq!(
                    insert_klines(&conn, &Tables::V19, &input, Freq::M1, batch).unwrap(),
                    total
                );
                let (n, minutes): (i64, Option<i64>) = conn
                    .query_row(
                        "SELECT COUNT(*), SUM(timestamp / 60000) FROM market_data",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                let t = total as i64;
                assert_eq!(
                    (n, minutes.unwrap_or(0)),
                    (t, t * (t - 1).max(0) / 2),
                    "{total} rows in statements of {batch}"
                );
            }
        }
    }
}
