//! Replication: a published dataset imported partition by partition. A partition replaces
//! exactly what it covers (its table, interval, period and **covered symbols**) and nothing
//! else: rows of other symbols, intervals and periods, and the node's own data, are never
//! touched. Within that scope, in one transaction: the rows there are deleted, the
//! partition's rows stored (with the validation of every write, missing values allowed as
//! the source stored them), and what the partition brought recorded in `replica_partitions`
//! (source, partition, digest, covered symbols). A row outside the scope (another symbol,
//! another period, another interval) refuses the partition: nothing of it is stored. The
//! counts say how many rows were inserted, replaced (same key) and deleted.
//!
//! `replica_partitions` is an extra table like `source_gaps`: created by every writable open,
//! ignored by cryptoservice. (The `dataset_imports` table of earlier versions is no longer
//! read.)

use std::collections::{HashMap, HashSet};

use marketdb_model::time::now_ms;
use marketdb_model::{Freq, RatioType, Records, TimeRange};
use rusqlite::params;
use serde::Serialize;

use crate::schema::table_exists;
use crate::{AsyncMarketDB, Error, Result, Tables};

/// The table's DDL.
pub(crate) const REPLICA_PARTITIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS replica_partitions (
    source TEXT NOT NULL, partition TEXT NOT NULL, digest TEXT NOT NULL,
    symbols TEXT NOT NULL, rows INTEGER NOT NULL, imported_at INTEGER NOT NULL,
    PRIMARY KEY (source, partition)
) WITHOUT ROWID;";

/// The table a partition replaces rows of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportTable {
    Klines(Freq),
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

/// One partition to import: where it comes from, its digest, and what it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImport {
    /// The dataset's location, as the caller names it (a canonical path or a URL).
    pub source: String,
    /// The partition key, such as `klines/freq=1m/date=2024-01-01`.
    pub partition: String,
    /// The digest the dataset's state gives for the partition.
    pub digest: String,
    pub table: ImportTable,
    /// The partition's period: rows of the table in it are replaced.
    pub range: TimeRange,
    /// The symbols the partition covers: only their rows are replaced, and every row the
    /// partition brings must be of one of them.
    pub symbols: Vec<String>,
}

/// What an import (or a removal) did to the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    /// Rows whose key was not there before.
    pub inserted: u64,
    /// Rows whose key was there before (their values replaced).
    pub replaced: u64,
    /// Rows in the partition's scope that it no longer holds.
    pub deleted: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, o: ImportCounts) {
        self.inserted += o.inserted;
        self.replaced += o.replaced;
        self.deleted += o.deleted;
    }
}

/// What an earlier import of a partition brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedPartition {
    pub digest: String,
    /// The symbols it covered.
    pub symbols: Vec<String>,
}

impl AsyncMarketDB {
    /// The partitions imported from `source`, with what each brought.
    pub async fn imported_partitions(
        &self,
        source: &str,
    ) -> Result<HashMap<String, ImportedPartition>> {
        let source = source.to_owned();
        self.read(move |c, _| {
            if !table_exists(c, "replica_partitions")? {
                return Ok(HashMap::new());
            }
            let mut stmt = c.prepare(
                "SELECT partition, digest, symbols FROM replica_partitions WHERE source = ?1",
            )?;
            let rows = stmt.query_map(params![source], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (partition, digest, symbols) = row?;
                let symbols: Vec<String> = serde_json::from_str(&symbols).map_err(|e| {
                    Error::invalid_argument(
                        "replica record",
                        &partition,
                        format!("its covered symbols are not a json list: {e}"),
                    )
                })?;
                out.insert(partition, ImportedPartition { digest, symbols });
            }
            Ok(out)
        })
        .await
    }

    /// Records that the database holds what `part` brings (found equal without importing
    /// it), so a later removal of the partition at its source removes its rows here.
    pub async fn record_imported_partition(&self, part: PartitionImport, rows: u64) -> Result<()> {
        self.write(move |c, _| record(c, &part, rows)).await
    }

    /// Every source that brought the partition `key`, with the symbols it covered.
    pub async fn partition_sources(&self, key: &str) -> Result<Vec<(String, Vec<String>)>> {
        let key = key.to_owned();
        self.read(move |c, _| {
            if !table_exists(c, "replica_partitions")? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(
                "SELECT source, symbols FROM replica_partitions WHERE partition = ?1 \
                 ORDER BY source",
            )?;
            let rows = stmt.query_map(params![key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (source, symbols) = row?;
                out.push((source, serde_json::from_str(&symbols).unwrap_or_default()));
            }
            Ok(out)
        })
        .await
    }

    /// Replaces the rows `part` covers with `batches` in one transaction and records what it
    /// brought. The iterator runs on the writer's blocking thread (it may read a file); an
    /// `Err` item, an invalid row or a row outside the partition rolls everything back.
    pub async fn import_partition<I, E>(
        &self,
        part: PartitionImport,
        batches: I,
    ) -> Result<ImportCounts>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let batches = batches.into_iter();
        let (batch, v) = self.write_settings();
        // A replica keeps the values its source stored, NULLs included.
        let v = v.with_missing_allowed();
        let key = part.partition.clone();
        let counts = self
            .write(move |c, t| {
                let before = existing_keys(c, t, &part)?;
                delete_scope(c, t, &part)?;
                let mut seen = Seen {
                    part: &part,
                    covered: part.symbols.iter().map(String::as_str).collect(),
                    before: &before,
                    replaced: 0,
                    outside: None,
                };
                let checked = batches.map(|item| {
                    item.map_err(|e| Error::Input(Box::new(e)))
                        .and_then(|r| seen.check(r))
                });
                let n = crate::db::store_record_stream(c, t, checked, batch, &v);
                if let Some(e) = seen.outside.take() {
                    return Err(e);
                }
                let n = n? as u64;
                let replaced = seen.replaced;
                record(c, &part, n)?;
                Ok(ImportCounts {
                    inserted: n - replaced.min(n),
                    replaced,
                    deleted: before.len() as u64 - replaced.min(before.len() as u64),
                })
            })
            .await?;
        tracing::info!(partition = %key, ?counts, "partition imported");
        Ok(counts)
    }

    /// Deletes the rows an earlier import of a partition brought (the dataset no longer
    /// has it) and forgets the record.
    pub async fn remove_imported_partition(&self, part: PartitionImport) -> Result<ImportCounts> {
        let key = part.partition.clone();
        let counts = self
            .write(move |c, t| {
                let before = existing_keys(c, t, &part)?;
                delete_scope(c, t, &part)?;
                c.execute(
                    "DELETE FROM replica_partitions WHERE source = ?1 AND partition = ?2",
                    params![part.source, part.partition],
                )?;
                Ok(ImportCounts {
                    deleted: before.len() as u64,
                    ..ImportCounts::default()
                })
            })
            .await?;
        tracing::info!(partition = %key, ?counts, "imported partition removed");
        Ok(counts)
    }
}

/// A row's key within a partition's table: symbol, time, and the other key columns
/// (interval, ratio type in its canonical spelling).
type Key = (String, i64, String);

/// Checks every record against the partition's scope and counts the keys that were there.
struct Seen<'a> {
    part: &'a PartitionImport,
    covered: HashSet<&'a str>,
    before: &'a HashSet<Key>,
    replaced: u64,
    /// The first row outside the partition (the import then fails with it).
    outside: Option<Error>,
}

impl Seen<'_> {
    fn check(&mut self, r: Records) -> Result<Records> {
        let want = self.part.table;
        let fits = match (&r, want) {
            (Records::Klines { freq, .. }, ImportTable::Klines(f)) => *freq == f,
            (Records::Funding(_), ImportTable::FundingRate) => true,
            (Records::Metrics { .. }, ImportTable::OpenInterest | ImportTable::LongShortRatio) => {
                true
            }
            _ => false,
        };
        if !fits {
            return Err(self.fail("rows of another table or interval".to_owned()));
        }
        // Rows come grouped by symbol: the covered set is asked once per run of a symbol,
        // and a key is built only when the scope held rows before (to count replacements).
        let mut last_symbol: Option<String> = None;
        let mut visit = |symbol: &str, ts: i64, extra: &dyn Fn() -> String| -> Result<()> {
            if last_symbol.as_deref() != Some(symbol) {
                if !self.covered.contains(symbol) {
                    return Err(self.fail(format!(
                        "a row of {symbol} (the partition covers {} symbol(s), not this one)",
                        self.covered.len()
                    )));
                }
                last_symbol = Some(symbol.to_owned());
            }
            let range = self.part.range;
            if ts < range.start || ts >= range.end_exclusive {
                return Err(self.fail(format!(
                    "a row of {symbol} at {} (outside the partition's period)",
                    marketdb_model::time::format_rfc3339(ts)
                )));
            }
            if !self.before.is_empty() && self.before.contains(&(symbol.to_owned(), ts, extra())) {
                self.replaced += 1;
            }
            Ok(())
        };
        match &r {
            Records::Klines { rows, .. } => {
                for k in rows {
                    visit(&k.symbol, k.open_time, &String::new)?;
                }
            }
            Records::Funding(rows) => {
                for f in rows {
                    visit(&f.symbol, f.funding_time, &String::new)?;
                }
            }
            Records::Metrics {
                open_interest,
                long_short_ratio,
            } => {
                if want == ImportTable::OpenInterest && !long_short_ratio.is_empty()
                    || want == ImportTable::LongShortRatio && !open_interest.is_empty()
                {
                    return Err(self.fail("rows of another table".to_owned()));
                }
                for o in open_interest {
                    visit(&o.symbol, o.time, &|| o.interval.to_string())?;
                }
                for l in long_short_ratio {
                    visit(&l.symbol, l.timestamp, &|| {
                        format!("{}/{}", l.period, l.ratio_type.as_str())
                    })?;
                }
            }
        }
        Ok(r)
    }

    /// The error for a row outside the partition; a copy is kept, since the stream that
    /// stores the rows wraps the errors of its input.
    fn fail(&mut self, what: String) -> Error {
        let reason = format!("holds {what}; nothing of it was stored");
        let e = |reason: &str| Error::invalid_argument("partition", &self.part.partition, reason);
        self.outside = Some(e(&reason));
        e(&reason)
    }
}

/// The table and interval of a partition.
pub(crate) fn table_of(t: &Tables, table: ImportTable) -> (&'static str, Option<Freq>) {
    match table {
        ImportTable::Klines(f) => (t.kline, Some(f)),
        ImportTable::FundingRate => (t.funding, None),
        ImportTable::OpenInterest => (t.open_interest, None),
        ImportTable::LongShortRatio => (t.long_short_ratio, None),
    }
}

/// The keys stored in the partition's scope now.
fn existing_keys(
    c: &rusqlite::Connection,
    t: &Tables,
    part: &PartitionImport,
) -> Result<HashSet<Key>> {
    let (table, freq) = table_of(t, part.table);
    let mut out = HashSet::new();
    if !table_exists(c, table)? {
        return Ok(out);
    }
    let (start, end) = (part.range.start, part.range.end_exclusive);
    let extra = match part.table {
        ImportTable::Klines(_) | ImportTable::FundingRate => "''",
        ImportTable::OpenInterest => "interval",
        ImportTable::LongShortRatio => "period || '/' || ratio_type",
    };
    let sql = match freq {
        Some(_) => format!(
            "SELECT timestamp, {extra} FROM {table} WHERE symbol = ?1 AND freq = ?4 \
             AND timestamp >= ?2 AND timestamp < ?3"
        ),
        None => format!(
            "SELECT timestamp, {extra} FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 \
             AND timestamp < ?3"
        ),
    };
    let keys = key_columns(part.table);
    let by_key = format!(
        "SELECT timestamp FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3{}",
        key_conditions(keys)
    );
    for s in &part.symbols {
        if let Some(values) = listed_keys(c, table, keys, s)? {
            let mut stmt = c.prepare_cached(&by_key)?;
            for value in values {
                let extra = match part.table {
                    ImportTable::LongShortRatio => {
                        let ratio = match RatioType::parse(&value[1]) {
                            Ok(r) => r.as_str().to_owned(),
                            Err(_) => value[1].clone(),
                        };
                        format!("{}/{ratio}", value[0])
                    }
                    _ => value.join("/"),
                };
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![s, &start, &end];
                params.extend(value.iter().map(|v| v as &dyn rusqlite::ToSql));
                let mut rows = stmt.query(params.as_slice())?;
                while let Some(row) = rows.next()? {
                    out.insert((s.clone(), row.get(0)?, extra.clone()));
                }
            }
            continue;
        }
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = match freq {
            Some(f) => stmt.query(params![s, start, end, f.as_str()])?,
            None => stmt.query(params![s, start, end])?,
        };
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let mut extra: String = row.get::<_, Option<String>>(1)?.unwrap_or_default();
            if part.table == ImportTable::LongShortRatio
                && let Some((period, ratio)) = extra.split_once('/')
                && let Ok(r) = RatioType::parse(ratio)
            {
                extra = format!("{period}/{}", r.as_str());
            }
            out.insert((s.clone(), ts, extra));
        }
    }
    Ok(out)
}

/// The key columns after `symbol` in the primary key of a metric table (none for klines,
/// whose interval is given, and funding).
fn key_columns(table: ImportTable) -> &'static [&'static str] {
    match table {
        ImportTable::OpenInterest => &["interval"],
        ImportTable::LongShortRatio => &["period", "ratio_type"],
        ImportTable::Klines(_) | ImportTable::FundingRate => &[],
    }
}

/// ` AND key = ?4 ...` for `keys`.
fn key_conditions(keys: &[&str]) -> String {
    keys.iter()
        .enumerate()
        .map(|(i, k)| format!(" AND {k} = ?{}", i + 4))
        .collect()
}

/// The symbol's key values in a metric table, when they can be listed: a time range is
/// then read or deleted one key range at a time instead of through the symbol's whole
/// history (`crate::key_skip`).
fn listed_keys(
    c: &rusqlite::Connection,
    table: &str,
    keys: &[&str],
    symbol: &str,
) -> Result<Option<Vec<Vec<String>>>> {
    if keys.is_empty() {
        return Ok(None);
    }
    crate::key_skip::key_values(c, table, keys, symbol)
}

/// Deletes the rows of the partition's scope, symbol by symbol (each a seek on the key).
fn delete_scope(c: &rusqlite::Connection, t: &Tables, part: &PartitionImport) -> Result<()> {
    let (table, freq) = table_of(t, part.table);
    if !table_exists(c, table)? {
        return Ok(());
    }
    let (start, end) = (part.range.start, part.range.end_exclusive);
    crate::changes::with_triggers(c, || delete_symbols(c, table, freq, part, start, end))
}

fn delete_symbols(
    c: &rusqlite::Connection,
    table: &str,
    freq: Option<Freq>,
    part: &PartitionImport,
    start: i64,
    end: i64,
) -> Result<()> {
    match freq {
        Some(f) => {
            let mut stmt = c.prepare_cached(&format!(
                "DELETE FROM {table} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
                 AND timestamp < ?4"
            ))?;
            for s in &part.symbols {
                stmt.execute(params![s, f.as_str(), start, end])?;
            }
        }
        None => {
            let keys = key_columns(part.table);
            let by_key = format!(
                "DELETE FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3{}",
                key_conditions(keys)
            );
            let whole = format!(
                "DELETE FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3"
            );
            for s in &part.symbols {
                match listed_keys(c, table, keys, s)? {
                    Some(values) => {
                        let mut stmt = c.prepare_cached(&by_key)?;
                        for value in &values {
                            let mut params: Vec<&dyn rusqlite::ToSql> = vec![s, &start, &end];
                            params.extend(value.iter().map(|v| v as &dyn rusqlite::ToSql));
                            stmt.execute(params.as_slice())?;
                        }
                    }
                    None => {
                        c.prepare_cached(&whole)?.execute(params![s, start, end])?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Records what a partition brought.
fn record(c: &rusqlite::Connection, part: &PartitionImport, rows: u64) -> Result<()> {
    let symbols = serde_json::to_string(&part.symbols).map_err(|e| {
        Error::invalid_argument("partition", &part.partition, format!("symbols: {e}"))
    })?;
    c.execute(
        "INSERT INTO replica_partitions (source, partition, digest, symbols, rows, imported_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (source, partition) DO UPDATE SET \
         digest = excluded.digest, symbols = excluded.symbols, rows = excluded.rows, \
         imported_at = excluded.imported_at",
        params![
            part.source,
            part.partition,
            part.digest,
            symbols,
            i64::try_from(rows).unwrap_or(i64::MAX),
            now_ms()
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AsyncMarketDB;
    use marketdb_model::{Freq, LongShortRatio};

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_704_067_200_000; // 2024-01-01

    fn ratio(symbol: &str, timestamp: i64, ratio_type: RatioType, v: f64) -> LongShortRatio {
        LongShortRatio {
            symbol: symbol.into(),
            timestamp,
            period: Freq::M5,
            ratio_type,
            long_short_ratio: v,
            long_account: None,
            short_account: None,
        }
    }

    fn count(path: &std::path::Path, sql: &str) -> i64 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn a_metric_partition_replaces_its_day_of_every_key_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let db = AsyncMarketDB::open(&path).await.unwrap();
        // Three days of two ratio types for two symbols; the partition is the middle day of
        // AAAUSDT only.
        let mut held = Vec::new();
        for symbol in ["AAAUSDT", "BBBUSDT"] {
            for day in 0..3 {
                for m in 0..4 {
                    let ts = T0 + day * DAY + m * 300_000;
                    held.push(ratio(symbol, ts, RatioType::GlobalAccount, 1.0));
                    held.push(ratio(symbol, ts, RatioType::TakerVol, 1.0));
                }
            }
        }
        db.store_long_short_ratio(held).await.unwrap();
        // The partition brings 2 of the 4 global samples again, and 1 new top-trader one.
        let brought = vec![
            ratio("AAAUSDT", T0 + DAY, RatioType::GlobalAccount, 2.0),
            ratio("AAAUSDT", T0 + DAY + 300_000, RatioType::GlobalAccount, 2.0),
            ratio(
                "AAAUSDT",
                T0 + DAY + 600_000,
                RatioType::TopTraderPosition,
                2.0,
            ),
        ];
        let part = PartitionImport {
            source: "src".into(),
            partition: "long_short_ratio/date=2024-01-02".into(),
            digest: "d".into(),
            table: ImportTable::LongShortRatio,
            range: TimeRange::new(T0 + DAY, T0 + 2 * DAY).unwrap(),
            symbols: vec!["AAAUSDT".into()],
        };
        let records = Records::Metrics {
            open_interest: Vec::new(),
            long_short_ratio: brought,
        };
        let counts = db
            .import_partition(part, [Ok::<_, std::io::Error>(records)])
            .await
            .unwrap();
        assert_eq!(
            counts,
            ImportCounts {
                inserted: 1,
                replaced: 2,
                deleted: 6,
            }
        );
        db.close().await;
        // The day of AAAUSDT holds exactly what was brought; every other row is as it was.
        let in_day = format!(
            "symbol = 'AAAUSDT' AND timestamp >= {} AND timestamp < {}",
            T0 + DAY,
            T0 + 2 * DAY
        );
        assert_eq!(
            count(
                &path,
                &format!("SELECT count(*) FROM long_short_ratio WHERE {in_day}")
            ),
            3
        );
        assert_eq!(
            count(
                &path,
                &format!(
                    "SELECT count(*) FROM long_short_ratio WHERE {in_day} AND long_short_ratio = 2.0"
                )
            ),
            3
        );
        assert_eq!(
            count(
                &path,
                &format!("SELECT count(*) FROM long_short_ratio WHERE NOT ({in_day})")
            ),
            2 * 3 * 8 - 8
        );
    }
}
