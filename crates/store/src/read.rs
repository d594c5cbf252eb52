//! Kline reads: the whitelisted SQL builder ([`ReadPlan`]), the columnar frame builder that
//! reads SQLite values straight into `Vec<f64>` / `Vec<i64>` ([`FrameBuilder`]), symbol
//! listing, and `read_data` itself.
//!
//! SQL text is only ever built from [`Feature::column`] names, the fixed table names of
//! [`Tables`] and constant fragments; symbols, intervals and times are bound parameters.
//! It does not validate symbols (callers do, before anything reaches SQL).

use std::ops::Range;

use marketdb_model::{Feature, FeatureKind, Freq, TimeRange};
use rusqlite::{Connection, Rows, types::ValueRef};

use crate::{Column, Error, KlineFrame, Result, Tables};

/// How output features come from stored columns.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Output {
    /// The stored column at this index of the plan's columns.
    Stored(usize),
    /// quote_volume / volume (NaN when volume is 0).
    Vwap { quote_volume: usize, volume: usize },
    /// (close - open) / open.
    Ret { open: usize, close: usize },
}

/// A validated kline read: which stored columns to select and how to build the requested
/// features from them.
#[derive(Clone, Debug)]
pub(crate) struct ReadPlan {
    features: Vec<Feature>,
    columns: Vec<Feature>,
    outputs: Vec<Output>,
    /// `SELECT timestamp, <columns> FROM <kline table>` (no WHERE clause).
    select: String,
}

impl ReadPlan {
    /// Plans a read of `features` (empty = the eleven stored kline columns). Metric
    /// features are refused with [`Error::InvalidFeature`].
    pub(crate) fn new(tables: &Tables, features: &[Feature]) -> Result<ReadPlan> {
        let features: Vec<Feature> = if features.is_empty() {
            Feature::KLINE.to_vec()
        } else {
            features.to_vec()
        };
        let mut columns: Vec<Feature> = Vec::new();
        let mut col = |f: Feature| -> usize {
            match columns.iter().position(|c| *c == f) {
                Some(i) => i,
                None => {
                    columns.push(f);
                    columns.len() - 1
                }
            }
        };
        let mut outputs = Vec::with_capacity(features.len());
        for &f in &features {
            let out = match (f.kind(), f) {
                (FeatureKind::Column, _) => Output::Stored(col(f)),
                (FeatureKind::Derived, Feature::Vwap) => Output::Vwap {
                    quote_volume: col(Feature::QuoteVolume),
                    volume: col(Feature::Volume),
                },
                (FeatureKind::Derived, Feature::Ret) => Output::Ret {
                    open: col(Feature::Open),
                    close: col(Feature::Close),
                },
                (FeatureKind::Derived, _) => {
                    return Err(Error::InvalidFeature {
                        feature: f.short().to_owned(),
                        reason: "unknown derived feature".to_owned(),
                    });
                }
                (FeatureKind::Metric(_), _) => {
                    return Err(Error::InvalidFeature {
                        feature: f.short().to_owned(),
                        reason: "metric features are not kline columns; read them with the \
                                 metric readers or export them"
                            .to_owned(),
                    });
                }
            };
            outputs.push(out);
        }
        let mut select = String::from("SELECT timestamp");
        for c in &columns {
            let name = c.column().ok_or_else(|| Error::InvalidFeature {
                feature: c.short().to_owned(),
                reason: "not a stored column".to_owned(),
            })?;
            select.push_str(", ");
            select.push_str(name);
        }
        select.push_str(" FROM ");
        select.push_str(tables.kline);
        Ok(ReadPlan {
            features,
            columns,
            outputs,
            select,
        })
    }

    /// Rows of one symbol and interval in `[start, end)`, ascending, at most `?5` rows
    /// (`-1` = no limit). Parameters: symbol, freq, start, end, limit.
    pub(crate) fn range_sql(&self) -> String {
        format!(
            "{} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 AND timestamp < ?4 \
             ORDER BY timestamp LIMIT ?5",
            self.select
        )
    }

    /// The latest `?3` rows of one symbol and interval, newest first. Parameters: symbol,
    /// freq, limit.
    pub(crate) fn latest_sql(&self) -> String {
        format!(
            "{} WHERE symbol = ?1 AND freq = ?2 ORDER BY timestamp DESC LIMIT ?3",
            self.select
        )
    }
}

/// A SQLite value as f64: integers converted, NULL (and anything non-numeric) as NaN.
#[inline]
pub(crate) fn value_f64(v: ValueRef<'_>) -> f64 {
    match v {
        ValueRef::Real(f) => f,
        ValueRef::Integer(i) => i as f64,
        _ => f64::NAN,
    }
}

/// A SQLite value as i64: reals truncated, NULL (and anything non-numeric) as 0.
#[inline]
pub(crate) fn value_i64(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    }
}

/// Accumulates rows into columns, symbol run by symbol run, then builds a [`KlineFrame`].
#[derive(Debug)]
pub(crate) struct FrameBuilder<'p> {
    plan: &'p ReadPlan,
    symbols: Vec<(String, Range<usize>)>,
    timestamp: Vec<i64>,
    cols: Vec<Column>,
}

impl<'p> FrameBuilder<'p> {
    pub(crate) fn new(plan: &'p ReadPlan) -> Self {
        FrameBuilder {
            plan,
            symbols: Vec::new(),
            timestamp: Vec::new(),
            cols: plan
                .columns
                .iter()
                .map(|f| {
                    if f.is_integer() {
                        Column::I64(Vec::new())
                    } else {
                        Column::F64(Vec::new())
                    }
                })
                .collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// Reserves room for `rows` more rows (when the count is known, e.g. bounded chunks).
    pub(crate) fn reserve(&mut self, rows: usize) {
        self.timestamp.reserve(rows);
        for col in &mut self.cols {
            match col {
                Column::F64(c) => c.reserve(rows),
                Column::I64(c) => c.reserve(rows),
            }
        }
    }

    /// Open time of the last row added.
    pub(crate) fn last_timestamp(&self) -> Option<i64> {
        self.timestamp.last().copied()
    }

    /// Appends every row of `rows` (columns: timestamp, then the plan's columns) as rows of
    /// `symbol`; returns how many were added.
    pub(crate) fn push_rows(&mut self, symbol: &str, mut rows: Rows<'_>) -> Result<usize> {
        let first = self.timestamp.len();
        while let Some(row) = rows.next()? {
            self.timestamp.push(row.get(0)?);
            for (i, col) in self.cols.iter_mut().enumerate() {
                let v = row.get_ref(i + 1)?;
                match col {
                    Column::F64(c) => c.push(value_f64(v)),
                    Column::I64(c) => c.push(value_i64(v)),
                }
            }
        }
        let end = self.timestamp.len();
        if end > first {
            match self.symbols.last_mut() {
                Some((s, r)) if s == symbol && r.end == first => r.end = end,
                _ => self.symbols.push((symbol.to_owned(), first..end)),
            }
        }
        Ok(end - first)
    }

    /// Reverses the rows `from..` (used for newest-first queries).
    pub(crate) fn reverse_from(&mut self, from: usize) {
        self.timestamp[from..].reverse();
        for col in &mut self.cols {
            match col {
                Column::F64(c) => c[from..].reverse(),
                Column::I64(c) => c[from..].reverse(),
            }
        }
    }

    /// Appends the rows of `symbol` at `freq` in `range` (at most `limit`, if given).
    pub(crate) fn read_range(
        &mut self,
        conn: &Connection,
        sql: &str,
        symbol: &str,
        freq: Freq,
        range: TimeRange,
        limit: Option<usize>,
    ) -> Result<usize> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query(rusqlite::params![
            symbol,
            freq.as_str(),
            range.start,
            range.end_exclusive,
            limit
        ])?;
        self.push_rows(symbol, rows)
    }

    /// The finished frame: the requested features in request order.
    pub(crate) fn finish(self) -> KlineFrame {
        let FrameBuilder {
            plan,
            symbols,
            mut timestamp,
            mut cols,
        } = self;
        // Growth by doubling can leave up to half of each column unused; give it back.
        timestamp.shrink_to_fit();
        for col in &mut cols {
            match col {
                Column::F64(c) => c.shrink_to_fit(),
                Column::I64(c) => c.shrink_to_fit(),
            }
        }
        let mut stored: Vec<Option<Column>> = cols.into_iter().map(Some).collect();
        // A stored column used by several outputs (or by a derived one) is cloned; the
        // last stored use takes it.
        let mut uses = vec![0usize; stored.len()];
        for o in &plan.outputs {
            if let Output::Stored(i) = o {
                uses[*i] += 1;
            }
        }
        // Derived features only use price and volume columns, which are f64.
        fn f64_of(c: &Option<Column>) -> &[f64] {
            match c {
                Some(Column::F64(v)) => v,
                _ => &[],
            }
        }
        // Derived columns first, while every stored column is still in place.
        let mut derived: Vec<Option<Column>> = plan
            .outputs
            .iter()
            .map(|o| match *o {
                Output::Stored(_) => None,
                Output::Vwap {
                    quote_volume,
                    volume,
                } => {
                    let (q, v) = (f64_of(&stored[quote_volume]), f64_of(&stored[volume]));
                    Some(Column::F64(
                        q.iter()
                            .zip(v)
                            .map(|(q, v)| marketdb_model::vwap(*q, *v))
                            .collect(),
                    ))
                }
                Output::Ret { open, close } => {
                    let (o, c) = (f64_of(&stored[open]), f64_of(&stored[close]));
                    Some(Column::F64(
                        o.iter()
                            .zip(c)
                            .map(|(o, c)| marketdb_model::ret(*o, *c))
                            .collect(),
                    ))
                }
            })
            .collect();
        let columns = plan
            .outputs
            .iter()
            .enumerate()
            .map(|(k, o)| match *o {
                Output::Stored(i) => {
                    uses[i] -= 1;
                    if uses[i] == 0 {
                        stored[i].take()
                    } else {
                        stored[i].clone()
                    }
                    .unwrap_or(Column::F64(Vec::new()))
                }
                _ => derived[k].take().unwrap_or(Column::F64(Vec::new())),
            })
            .collect();
        KlineFrame {
            symbols,
            timestamp,
            features: plan.features.clone(),
            columns,
        }
    }
}

/// Distinct symbols of `table` (optionally only those with rows at `freq`, for the kline
/// table), ascending. Walks the symbol index with one seek per symbol instead of scanning
/// the table.
pub(crate) fn distinct_symbols(
    conn: &Connection,
    table: &str,
    freq_filter: Option<(&str, Freq)>,
) -> Result<Vec<String>> {
    // The last key is bound as bytes cast to TEXT, so a stored symbol that is not valid
    // UTF-8 is still stepped over exactly (a lossy copy would compare lower and repeat).
    let mut next = conn.prepare_cached(&format!(
        "SELECT symbol FROM {table} WHERE symbol > CAST(?1 AS TEXT) ORDER BY symbol LIMIT 1"
    ))?;
    let mut has = match freq_filter {
        Some((col, _)) => Some(conn.prepare_cached(&format!(
            "SELECT 1 FROM {table} WHERE symbol = ?1 AND {col} = ?2 LIMIT 1"
        ))?),
        None => None,
    };
    let mut out = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    loop {
        let mut rows = next.query([&last])?;
        let Some(row) = rows.next()? else { break };
        // Integers sort before text and blobs after it: past the text keys, stop.
        let key: Vec<u8> = match row.get_ref(0)? {
            ValueRef::Text(t) => t.to_vec(),
            _ => break,
        };
        drop(rows);
        if key <= last {
            tracing::warn!("symbol listing of {table} did not advance; stopping");
            break;
        }
        match std::str::from_utf8(&key) {
            Ok(sym) => {
                let keep = match (&mut has, freq_filter) {
                    (Some(stmt), Some((_, freq))) => {
                        stmt.exists(rusqlite::params![sym, freq.as_str()])?
                    }
                    _ => true,
                };
                if keep {
                    out.push(sym.to_owned());
                }
            }
            Err(_) => tracing::warn!(
                "{table} holds a symbol that is not valid UTF-8 ({}); skipped",
                String::from_utf8_lossy(&key)
            ),
        }
        last = key;
    }
    Ok(out)
}

/// Sorted, de-duplicated symbols to read: the given ones, or every symbol with rows at
/// `freq` when none are given.
pub(crate) fn resolve_symbols(
    conn: &Connection,
    tables: &Tables,
    freq: Freq,
    symbols: &[String],
) -> Result<Vec<String>> {
    if symbols.is_empty() {
        distinct_symbols(conn, tables.kline, Some(("freq", freq)))
    } else {
        let mut s = symbols.to_vec();
        s.sort_unstable();
        s.dedup();
        Ok(s)
    }
}

/// Reads the frame of `symbols` (all of `freq` when empty) in `range`, in one snapshot.
pub(crate) fn read_frame(
    conn: &Connection,
    tables: &Tables,
    plan: &ReadPlan,
    freq: Freq,
    symbols: &[String],
    range: TimeRange,
) -> Result<KlineFrame> {
    let tx = conn.unchecked_transaction()?;
    let symbols = resolve_symbols(&tx, tables, freq, symbols)?;
    let sql = plan.range_sql();
    let mut b = FrameBuilder::new(plan);
    for s in &symbols {
        b.read_range(&tx, &sql, s, freq, range, None)?;
    }
    Ok(b.finish())
}

/// One part of a read split across readers: the frame of the `part`-th of `parts`
/// contiguous slices of the resolved symbols, and the evidence that its snapshot is the
/// state every other part saw.
#[derive(Debug)]
pub(crate) struct PartRead {
    pub frame: KlineFrame,
    /// `PRAGMA data_version` did not change between just before the snapshot was opened and
    /// just after it was closed: no other connection committed in that window.
    pub unchanged: bool,
    /// Tickets drawn from a counter shared by the parts, inside that window.
    pub opened: u64,
    pub closed: u64,
}

fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// Reads one part of a split read (see [`PartRead`]). The parts saw one and the same state
/// when every part is `unchanged` and their ticket windows overlap (the latest `opened` is
/// below the earliest `closed`): then there is an instant inside every window, and no
/// commit landed in any window, so each snapshot is the state at that instant.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_frame_part(
    conn: &Connection,
    tables: &Tables,
    plan: &ReadPlan,
    freq: Freq,
    symbols: &[String],
    range: TimeRange,
    (part, parts): (usize, usize),
    tickets: &std::sync::atomic::AtomicU64,
) -> Result<PartRead> {
    use std::sync::atomic::Ordering::SeqCst;
    let before = data_version(conn)?;
    let opened = tickets.fetch_add(1, SeqCst);
    let frame = {
        let tx = conn.unchecked_transaction()?;
        // Every part resolves the whole list in its own snapshot; equal snapshots give equal
        // lists, so the slices partition it.
        let all = resolve_symbols(&tx, tables, freq, symbols)?;
        let per_part = all.len().div_ceil(parts.max(1)).max(1);
        let mine = all.chunks(per_part).nth(part).unwrap_or(&[]);
        let sql = plan.range_sql();
        let mut b = FrameBuilder::new(plan);
        for s in mine {
            b.read_range(&tx, &sql, s, freq, range, None)?;
        }
        b.finish()
    };
    let closed = tickets.fetch_add(1, SeqCst);
    let after = data_version(conn)?;
    Ok(PartRead {
        frame,
        unchanged: before == after,
        opened,
        closed,
    })
}

/// The latest `limit` bars of each symbol, ascending within each symbol.
pub(crate) fn read_latest(
    conn: &Connection,
    tables: &Tables,
    plan: &ReadPlan,
    freq: Freq,
    symbols: &[String],
    limit: usize,
) -> Result<KlineFrame> {
    let tx = conn.unchecked_transaction()?;
    let symbols = resolve_symbols(&tx, tables, freq, symbols)?;
    let sql = plan.latest_sql();
    let mut b = FrameBuilder::new(plan);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    for s in &symbols {
        let from = b.len();
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query(rusqlite::params![s, freq.as_str(), limit])?;
        b.push_rows(s, rows)?;
        b.reverse_from(from);
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_listing_steps_over_invalid_utf8_and_odd_types() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE market_data (symbol, timestamp, freq);
             INSERT INTO market_data VALUES ('AAA', 1, '1m'), (CAST(X'41FF42' AS TEXT), 1, '1m'),
               ('BBB', 1, '1m'), ('BBB', 2, '1h'), (7, 1, '1m'), (X'00', 1, '1m'),
               ('CCC', 1, '1h');",
        )
        .unwrap();
        // Terminates, keeps the valid ones in byte order, skips the invalid one.
        assert_eq!(
            distinct_symbols(&conn, "market_data", None).unwrap(),
            vec!["AAA", "BBB", "CCC"]
        );
        assert_eq!(
            distinct_symbols(&conn, "market_data", Some(("freq", Freq::H1))).unwrap(),
            vec!["BBB", "CCC"]
        );
    }

    #[test]
    fn sql_is_built_from_whitelisted_columns_only() {
        let plan = ReadPlan::new(&Tables::V19, &[Feature::Close, Feature::Vwap]).unwrap();
        assert_eq!(
            plan.select,
            "SELECT timestamp, close_price, quote_volume, volume FROM market_data"
        );
        assert_eq!(plan.features, vec![Feature::Close, Feature::Vwap]);
        let all = ReadPlan::new(&Tables::V19, &[]).unwrap();
        assert_eq!(all.features, Feature::KLINE.to_vec());
        assert!(all.select.contains("taker_sell_quote_volume"));
        for metric in [
            Feature::FundingRate,
            Feature::OpenInterest,
            Feature::LsrTakerVol,
        ] {
            let err = ReadPlan::new(&Tables::V19, &[metric]).unwrap_err();
            assert!(matches!(err, Error::InvalidFeature { .. }), "{err}");
            assert!(err.to_string().contains(metric.short()), "{err}");
        }
        assert!(Feature::parse("close_price; DROP TABLE market_data").is_err());
    }

    #[test]
    fn derived_and_repeated_features() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::schema::Layout::WithoutRowid.ddl())
            .unwrap();
        conn.execute_batch(
            "INSERT INTO market_data (symbol, timestamp, freq, open_price, close_price, volume, \
             quote_volume, trades_count) VALUES ('A', 0, '1m', 2, 3, 4, 10, 5), \
             ('A', 60000, '1m', 4, 2, 0, 0, NULL), ('B', 0, '1m', 1, 1, 1, 1, 1)",
        )
        .unwrap();
        let feats = [
            Feature::Vwap,
            Feature::Ret,
            Feature::Close,
            Feature::Close,
            Feature::TradesCount,
        ];
        let plan = ReadPlan::new(&Tables::V19, &feats).unwrap();
        let range = TimeRange::new(0, 120_000).unwrap();
        let f = read_frame(&conn, &Tables::V19, &plan, Freq::M1, &[], range).unwrap();
        assert_eq!(
            f.symbols,
            vec![("A".to_owned(), 0..2), ("B".to_owned(), 2..3)]
        );
        assert_eq!(f.timestamp, vec![0, 60_000, 0]);
        let Column::F64(vwap) = &f.columns[0] else {
            panic!()
        };
        assert_eq!(vwap[0], 2.5);
        assert!(vwap[1].is_nan());
        assert_eq!(f.columns[1], Column::F64(vec![0.5, -0.5, 0.0]));
        assert_eq!(f.columns[2], Column::F64(vec![3.0, 2.0, 1.0]));
        assert_eq!(f.columns[3], f.columns[2]);
        assert_eq!(f.columns[4], Column::I64(vec![5, 0, 1]));
        let latest = read_latest(&conn, &Tables::V19, &plan, Freq::M1, &["A".into()], 5).unwrap();
        assert_eq!(latest.timestamp, vec![0, 60_000]);
        assert_eq!(
            distinct_symbols(&conn, "market_data", Some(("freq", Freq::H1))).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            distinct_symbols(&conn, "market_data", None).unwrap(),
            vec!["A", "B"]
        );
    }
}
