//! The series of a table, a series being the rows of one symbol and one key (`freq`,
//! `interval`, `(period, ratio_type)` or nothing for funding), and the per-key statistics
//! of the data summary built from them ([`group_stats`]).
//!
//! Where an index (or the `WITHOUT ROWID` primary key) leads with `(symbol, key...,
//! timestamp)`, series are found by skip-scans (one seek per distinct value) and their
//! first and last timestamps by one seek each, so the cost is O(series), not O(rows). Only
//! the row counts need rows: a group holding most of a table is counted as the whole
//! table's `COUNT(*)` (SQLite sums page cell counts without decoding rows) minus the
//! other groups' range counts. Tables without such an index (the metric tables of
//! cryptoservice files, keyed `(symbol, timestamp, key)`) and keys that are not all text
//! fall back to one streaming pass over the table, aggregated in O(series) memory.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use marketdb_model::Freq;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::Result;

/// A stored value, ordered as SQLite orders values under BINARY collation: NULL, then
/// numbers by value, then text and blobs by bytes.
#[derive(Clone, Debug)]
pub(crate) enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn from_ref(v: ValueRef<'_>) -> SqlValue {
        match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Int(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(t.to_vec()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }

    fn class(&self) -> u8 {
        match self {
            SqlValue::Null => 0,
            SqlValue::Int(_) | SqlValue::Real(_) => 1,
            SqlValue::Text(_) => 2,
            SqlValue::Blob(_) => 3,
        }
    }

    /// The value as the summary shows a key: text as is, numbers printed, else empty.
    pub(crate) fn display(&self) -> String {
        match self {
            SqlValue::Text(t) => String::from_utf8_lossy(t).into_owned(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Real(f) => f.to_string(),
            SqlValue::Null | SqlValue::Blob(_) => String::new(),
        }
    }

    /// The value when it is an integer (a timestamp as the summary reports it).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Integer against real as SQLite compares them: exactly, not through a lossy cast.
fn cmp_int_real(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // 2^63, exact as a double: reals outside [-2^63, 2^63) are beyond every integer.
    const TWO_63: f64 = -(i64::MIN as f64);
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // In range, so the truncation converts exactly.
    match i.cmp(&(t as i64)) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        o => o,
    }
}

impl Ord for SqlValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use SqlValue::*;
        match (self, other) {
            (Int(a), Int(b)) => a.cmp(b),
            (Real(a), Real(b)) => a.total_cmp(b),
            (Int(a), Real(b)) => cmp_int_real(*a, *b),
            (Real(a), Int(b)) => cmp_int_real(*b, *a).reverse(),
            (Text(a), Text(b)) | (Blob(a), Blob(b)) => a.cmp(b),
            _ => self.class().cmp(&other.class()),
        }
    }
}

impl PartialOrd for SqlValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SqlValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SqlValue {}

/// Statistics of one key of a table, as `SELECT key, COUNT(*), COUNT(DISTINCT symbol),
/// MIN(timestamp), MAX(timestamp) ... GROUP BY key` gives them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GroupStats {
    pub key: Vec<SqlValue>,
    pub record_count: u64,
    pub unique_symbols: u64,
    pub earliest: Option<SqlValue>,
    pub latest: Option<SqlValue>,
}

/// One series found by seeks: its key bytes (symbol first) and its edges.
struct Series {
    key: Vec<Vec<u8>>,
    first: Option<SqlValue>,
    last: Option<SqlValue>,
}

/// Per-key statistics of `table`, whose series keys are `keys` (after `symbol`), in key
/// order. Reads one snapshot when called inside a transaction.
pub(crate) fn group_stats(
    conn: &Connection,
    table: &str,
    keys: &[&str],
) -> Result<Vec<GroupStats>> {
    let mut cols = vec!["symbol"];
    cols.extend_from_slice(keys);
    if has_series_index(conn, table, &cols)? {
        if let Some(series) = seek_series(conn, table, &cols)? {
            return seek_stats(conn, table, &cols, series);
        }
        tracing::debug!("{table} holds keys that are not text; summarising it in one pass");
    } else {
        tracing::debug!(
            "{table} has no index on ({}, timestamp); one pass",
            cols.join(", ")
        );
    }
    scan_stats(conn, table, &cols)
}

/// Whether an index of `table` (or its `WITHOUT ROWID` key) leads with `cols` then
/// `timestamp`, in BINARY order and over every row (not partial).
pub(crate) fn has_series_index(conn: &Connection, table: &str, cols: &[&str]) -> Result<bool> {
    let mut list = conn.prepare(&format!("PRAGMA index_list({table})"))?;
    let indexes = list
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(4)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let want: Vec<&str> = cols.iter().copied().chain(["timestamp"]).collect();
    for (name, partial) in indexes {
        if partial != 0 {
            continue;
        }
        // The name comes from SQLite; quoted so no name can break out.
        let mut info = conn.prepare(&format!(
            "PRAGMA index_xinfo(\"{}\")",
            name.replace('"', "\"\"")
        ))?;
        let lead = info
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .take(want.len())
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let usable = lead.len() == want.len()
            && lead.iter().zip(&want).all(|((col, coll), w)| {
                col.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(w))
                    && coll
                        .as_deref()
                        .is_some_and(|c| c.eq_ignore_ascii_case("BINARY"))
            });
        if usable {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `c1 = CAST(?1 AS TEXT) AND ...` over `cols` (keys are bound as bytes and cast, so text
/// that is not valid UTF-8 still matches exactly).
fn equalities(cols: &[&str]) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = CAST(?{} AS TEXT)", i + 1))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The smallest value of `cols[depth]` under fixed `cols[..depth]`. It includes NULL
/// (which sorts first) so that a NULL key is noticed. At depth 0 the plan reads "SCAN" but
/// walks the index in order and stops at the first entry.
fn first_sql(table: &str, cols: &[&str], depth: usize) -> String {
    let col = cols[depth];
    let fixed = equalities(&cols[..depth]);
    let filter = if fixed.is_empty() {
        String::new()
    } else {
        format!("WHERE {fixed} ")
    };
    format!("SELECT {col} FROM {table} {filter}ORDER BY {col} LIMIT 1")
}

/// The next value of `cols[depth]` under fixed `cols[..depth]`: one seek.
fn next_sql(table: &str, cols: &[&str], depth: usize) -> String {
    let col = cols[depth];
    let fixed = equalities(&cols[..depth]);
    let scope = if fixed.is_empty() {
        String::new()
    } else {
        format!("{fixed} AND ")
    };
    format!(
        "SELECT {col} FROM {table} WHERE {scope}{col} > CAST(?{} AS TEXT) \
         ORDER BY {col} LIMIT 1",
        depth + 1
    )
}

/// First (`ASC`) or last (`DESC`) non-NULL timestamp of one series (`MIN`/`MAX` skip
/// NULL too).
fn edge_sql(table: &str, cols: &[&str], dir: &str) -> String {
    format!(
        "SELECT timestamp FROM {table} WHERE {} AND timestamp IS NOT NULL \
         ORDER BY timestamp {dir} LIMIT 1",
        equalities(cols)
    )
}

/// Rows of one series: a range count over the index.
fn count_sql(table: &str, cols: &[&str]) -> String {
    format!("SELECT COUNT(*) FROM {table} WHERE {}", equalities(cols))
}

/// Every series of `table` with its first and last timestamp, by seeks. `None` when a key
/// is not text (NULL, a number, a blob): the caller then scans.
fn seek_series(conn: &Connection, table: &str, cols: &[&str]) -> Result<Option<Vec<Series>>> {
    let mut out = Vec::new();
    let mut prefix: Vec<Vec<u8>> = Vec::new();
    if !walk(conn, table, cols, &mut prefix, &mut out)? {
        return Ok(None);
    }
    Ok(Some(out))
}

/// Depth-first skip-scan over the key columns below `prefix`, pushing complete series.
/// Returns false on a key that is not text.
fn walk(
    conn: &Connection,
    table: &str,
    cols: &[&str],
    prefix: &mut Vec<Vec<u8>>,
    out: &mut Vec<Series>,
) -> Result<bool> {
    let depth = prefix.len();
    if depth == cols.len() {
        let series = Series {
            first: edge(conn, table, cols, prefix, "ASC")?,
            last: edge(conn, table, cols, prefix, "DESC")?,
            key: prefix.clone(),
        };
        out.push(series);
        return Ok(true);
    }
    let col = cols[depth];
    let mut first = conn.prepare_cached(&first_sql(table, cols, depth))?;
    let mut next = conn.prepare_cached(&next_sql(table, cols, depth))?;
    let mut value = first
        .query_row(params_from_iter(prefix.iter()), |r| {
            Ok(SqlValue::from_ref(r.get_ref(0)?))
        })
        .optional()?;
    while let Some(v) = value {
        let SqlValue::Text(bytes) = v else {
            return Ok(false);
        };
        prefix.push(bytes);
        let ok = walk(conn, table, cols, prefix, out)?;
        let Some(bytes) = prefix.pop() else {
            return Ok(false);
        };
        if !ok {
            return Ok(false);
        }
        value = next
            .query_row(
                params_from_iter(prefix.iter().chain(std::iter::once(&bytes))),
                |r| Ok(SqlValue::from_ref(r.get_ref(0)?)),
            )
            .optional()?;
        if let Some(SqlValue::Text(n)) = &value
            && *n <= bytes
        {
            // A seek that does not advance would loop forever (a collation mismatch).
            tracing::warn!("skip-scan of {table}.{col} did not advance; one pass instead");
            return Ok(false);
        }
    }
    Ok(true)
}

/// First (`ASC`) or last (`DESC`) timestamp of one series: one seek.
fn edge(
    conn: &Connection,
    table: &str,
    cols: &[&str],
    key: &[Vec<u8>],
    dir: &str,
) -> Result<Option<SqlValue>> {
    let mut stmt = conn.prepare_cached(&edge_sql(table, cols, dir))?;
    Ok(stmt
        .query_row(params_from_iter(key.iter()), |r| {
            Ok(SqlValue::from_ref(r.get_ref(0)?))
        })
        .optional()?)
}

fn series_count(conn: &Connection, table: &str, cols: &[&str], key: &[Vec<u8>]) -> Result<u64> {
    let mut stmt = conn.prepare_cached(&count_sql(table, cols))?;
    let n: i64 = stmt.query_row(params_from_iter(key.iter()), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn table_count(conn: &Connection, table: &str) -> Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Bars a series can hold at most between its edges, when its interval is known.
fn span_estimate(s: &Series, interval: Option<&[u8]>) -> Option<u64> {
    let step = Freq::parse(std::str::from_utf8(interval?).ok()?)
        .ok()?
        .nominal_ms();
    let (a, b) = (s.first.as_ref()?.as_i64()?, s.last.as_ref()?.as_i64()?);
    let n = (i128::from(b) - i128::from(a)) / i128::from(step.max(1)) + 1;
    u64::try_from(n).ok()
}

/// The key (after the symbol) of a series, as bytes.
type GroupKey<'a> = &'a [Vec<u8>];

fn group_key(s: &Series) -> GroupKey<'_> {
    &s.key[1..]
}

/// Groups of seeked series, counted with as few rows visited as the layout allows.
fn seek_stats(
    conn: &Connection,
    table: &str,
    cols: &[&str],
    series: Vec<Series>,
) -> Result<Vec<GroupStats>> {
    let mut groups: BTreeMap<GroupKey, Vec<&Series>> = BTreeMap::new();
    for s in &series {
        groups.entry(group_key(s)).or_default().push(s);
    }
    // The group counted by subtraction, if one holds most rows: the table count visits
    // every page but no row, about half the cost of range-counting the same rows.
    let whole = match groups.len() {
        0 => None,
        1 => groups.keys().next().copied(),
        _ => {
            let estimates: Option<Vec<(GroupKey, u64)>> = groups
                .iter()
                .map(|(k, list)| {
                    let interval = k.first().map(Vec::as_slice);
                    list.iter()
                        .map(|s| span_estimate(s, interval))
                        .sum::<Option<u64>>()
                        .map(|n| (*k, n))
                })
                .collect();
            estimates.and_then(|est| {
                let total: u64 = est.iter().map(|e| e.1).sum();
                est.into_iter()
                    .max_by_key(|e| e.1)
                    .filter(|e| e.1 > total / 2)
                    .map(|e| e.0)
            })
        }
    };
    let mut out = Vec::with_capacity(groups.len());
    let mut counted = 0u64;
    let mut whole_at = None;
    for (key, list) in &groups {
        let mut record_count = 0u64;
        if Some(*key) == whole {
            whole_at = Some(out.len());
        } else {
            for s in list {
                record_count += series_count(conn, table, cols, &s.key)?;
            }
            counted += record_count;
        }
        out.push(GroupStats {
            key: key.iter().map(|k| SqlValue::Text(k.clone())).collect(),
            record_count,
            unique_symbols: list.len() as u64,
            earliest: list.iter().filter_map(|s| s.first.clone()).min(),
            latest: list.iter().filter_map(|s| s.last.clone()).max(),
        });
    }
    if let Some(i) = whole_at {
        // Every row belongs to a seeked series (keys are all text), so the rest is exact.
        out[i].record_count = table_count(conn, table)?.saturating_sub(counted);
    }
    Ok(out)
}

/// One pass over the table, grouped in memory: O(rows) time, O(series) memory.
fn scan_stats(conn: &Connection, table: &str, cols: &[&str]) -> Result<Vec<GroupStats>> {
    struct Acc {
        count: u64,
        symbols: BTreeSet<SqlValue>,
        min: Option<SqlValue>,
        max: Option<SqlValue>,
    }
    let n = cols.len();
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, timestamp FROM {table}",
        cols.join(", ")
    ))?;
    let mut rows = stmt.query([])?;
    let mut groups: BTreeMap<Vec<SqlValue>, Acc> = BTreeMap::new();
    let mut key = Vec::with_capacity(n - 1);
    while let Some(r) = rows.next()? {
        key.clear();
        for i in 1..n {
            key.push(SqlValue::from_ref(r.get_ref(i)?));
        }
        let acc = match groups.get_mut(&key) {
            Some(acc) => acc,
            None => groups.entry(key.clone()).or_insert(Acc {
                count: 0,
                symbols: BTreeSet::new(),
                min: None,
                max: None,
            }),
        };
        acc.count += 1;
        let symbol = r.get_ref(0)?;
        // COUNT(DISTINCT) skips NULL; the set only grows by new symbols.
        if !matches!(symbol, ValueRef::Null) {
            let s = SqlValue::from_ref(symbol);
            if !acc.symbols.contains(&s) {
                acc.symbols.insert(s);
            }
        }
        let ts = r.get_ref(n)?;
        if !matches!(ts, ValueRef::Null) {
            let ts = SqlValue::from_ref(ts);
            if acc.min.as_ref().is_none_or(|m| ts < *m) {
                acc.min = Some(ts.clone());
            }
            if acc.max.as_ref().is_none_or(|m| ts > *m) {
                acc.max = Some(ts);
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(key, a)| GroupStats {
            key,
            record_count: a.count,
            unique_symbols: a.symbols.len() as u64,
            earliest: a.min,
            latest: a.max,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Layout;

    /// (table, key columns) of the four tables of a v1.9-named file.
    const TABLES: [(&str, &[&str]); 4] = [
        ("market_data", &["freq"]),
        ("funding_rate", &[]),
        ("open_interest", &["interval"]),
        ("long_short_ratio", &["period", "ratio_type"]),
    ];

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        stmt.query_map(params_from_iter(vec![Vec::<u8>::new(); n]), |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn seek_queries_use_the_key_and_no_temporary_tree() {
        for layout in [Layout::WithoutRowid, Layout::PkOnly, Layout::Python] {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(&layout.ddl()).unwrap();
            for (table, keys) in TABLES {
                let mut cols = vec!["symbol"];
                cols.extend_from_slice(keys);
                let indexed = has_series_index(&conn, table, &cols).unwrap();
                // Python v1.9 keys the metric tables (symbol, timestamp, key): no seeks.
                let python_metric =
                    layout == Layout::Python && !keys.is_empty() && table != "market_data";
                assert_eq!(indexed, !python_metric, "{layout:?} {table}");
                if !indexed {
                    continue;
                }
                let mut queries = vec![
                    edge_sql(table, &cols, "ASC"),
                    edge_sql(table, &cols, "DESC"),
                    count_sql(table, &cols),
                ];
                for depth in 0..cols.len() {
                    queries.push(first_sql(table, &cols, depth));
                    queries.push(next_sql(table, &cols, depth));
                }
                for sql in &queries {
                    let p = plan(&conn, sql);
                    let ctx = format!("{layout:?} {sql}: {p:?}");
                    assert_eq!(p.len(), 1, "{ctx}");
                    assert!(!p[0].contains("TEMP B-TREE"), "{ctx}");
                    let first_symbol = *sql == first_sql(table, &cols, 0);
                    if first_symbol {
                        // The smallest symbol: the first entry of the key, in its order.
                        assert!(p[0].starts_with(&format!("SCAN {table}")), "{ctx}");
                    } else {
                        // A seek on the symbol (and keys) of an index or the key.
                        assert!(p[0].starts_with(&format!("SEARCH {table} USING")), "{ctx}");
                        assert!(
                            p[0].contains("INDEX") || p[0].contains("PRIMARY KEY"),
                            "{ctx}"
                        );
                        assert!(
                            p[0].contains("(symbol=?") || p[0].contains("(symbol>?)"),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sql_value_order_is_sqlite_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE v (x); INSERT INTO v VALUES (NULL), (3), (2.5), (-1), ('b'), ('a'), \
             ('ab'), (x'00'), (x''), (9223372036854775807), (9.3e18), (-9.3e18), (3.0), ('');",
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT x FROM v ORDER BY x").unwrap();
        let want: Vec<SqlValue> = stmt
            .query_map([], |r| Ok(SqlValue::from_ref(r.get_ref(0)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(want.windows(2).all(|w| w[0] <= w[1]));
        let mut got = want.clone();
        got.reverse();
        got.sort();
        // Equal values (3 and 3.0) may come in either order; equality is SQLite's.
        assert_eq!(got, want);
        assert_eq!(SqlValue::Int(3), SqlValue::Real(3.0));
        assert!(SqlValue::Int(i64::MAX) < SqlValue::Real(9.3e18));
    }

    /// `group_stats` against the plain `GROUP BY`, as (key, rows, symbols, min, max).
    fn assert_matches_group_by(conn: &Connection, table: &str, keys: &[&str]) {
        let got: Vec<String> = group_stats(conn, table, keys)
            .unwrap()
            .into_iter()
            .map(|g| {
                let key: Vec<String> = g.key.iter().map(|k| format!("{k:?}")).collect();
                format!(
                    "{key:?} {} {} {:?} {:?}",
                    g.record_count, g.unique_symbols, g.earliest, g.latest
                )
            })
            .collect();
        let cols: String = keys.iter().map(|k| format!("{k}, ")).collect();
        let group = if keys.is_empty() {
            String::new()
        } else {
            format!("GROUP BY {0} ORDER BY {0}", keys.join(", "))
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {cols}COUNT(*), COUNT(DISTINCT symbol), MIN(timestamp), \
                 MAX(timestamp) FROM {table} {group}"
            ))
            .unwrap();
        let n = keys.len();
        let mut want: Vec<String> = stmt
            .query_map([], |r| {
                let key: Vec<String> = (0..n)
                    .map(|i| Ok(format!("{:?}", SqlValue::from_ref(r.get_ref(i)?))))
                    .collect::<rusqlite::Result<_>>()?;
                let opt = |i: usize| -> rusqlite::Result<Option<SqlValue>> {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => None,
                        v => Some(SqlValue::from_ref(v)),
                    })
                };
                Ok(format!(
                    "{key:?} {} {} {:?} {:?}",
                    r.get::<_, i64>(n)?,
                    r.get::<_, i64>(n + 1)?,
                    opt(n + 2)?,
                    opt(n + 3)?
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        if keys.is_empty() && want.first().is_some_and(|w| w.starts_with("[] 0 ")) {
            want.clear();
        }
        assert_eq!(got, want, "{table}");
    }

    #[test]
    fn keys_that_are_not_text_are_summarised_by_a_scan_with_the_same_answer() {
        for layout in [Layout::WithoutRowid, Layout::Python] {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(&layout.ddl()).unwrap();
            conn.execute_batch(
                "INSERT INTO market_data (symbol, freq, timestamp) VALUES \
                 ('A', '1m', 60000), ('A', '1m', 120000), ('B', '1h', 0), ('B', '1m', 0);
                 INSERT INTO long_short_ratio (symbol, period, ratio_type, timestamp) VALUES \
                 ('A', '5m', 'account', 5), ('A', '5m', 'global', 7), ('B', '5m', 'account', 1);",
            )
            .unwrap();
            for (table, keys) in TABLES {
                assert_matches_group_by(&conn, table, keys);
            }
            // A text timestamp, a blob symbol, a NULL key (rowid tables take NULL in their
            // key; WITHOUT ROWID ones refuse it).
            conn.execute_batch(
                "INSERT INTO market_data (symbol, freq, timestamp) VALUES ('A', '1m', 'x'), \
                 (x'41', '1m', 5), ('C', x'316d', 9);
                 INSERT INTO funding_rate (symbol, timestamp) VALUES ('A', 3), (x'42', 4);",
            )
            .unwrap();
            if layout == Layout::Python {
                conn.execute_batch(
                    "INSERT INTO market_data (symbol, freq, timestamp) VALUES \
                     (NULL, '1m', 1), ('D', NULL, 2), ('E', '1d', NULL);",
                )
                .unwrap();
            }
            for (table, keys) in TABLES {
                assert_matches_group_by(&conn, table, keys);
            }
        }
    }
}
