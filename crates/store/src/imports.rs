//! Importing a published dataset partition by partition: each partition replaces the rows
//! of its table, period and symbols in one transaction (rows the source no longer has are
//! deleted, the others upserted with the validation of every write), and the partition's
//! digest is recorded in `dataset_imports` in the same transaction, so a second import of
//! an unchanged dataset does nothing and a killed import leaves whole partitions only.
//! The table is created by every writable open, like `source_gaps`; cryptoservice ignores
//! it.

use marketdb_model::time::now_ms;
use std::collections::HashMap;

use marketdb_model::{Freq, Records, TimeRange};
use rusqlite::params;

use crate::read::distinct_symbols;
use crate::schema::table_exists;
use crate::{AsyncMarketDB, Result, Tables};

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
    /// Symbols the dataset was restricted to (only their rows are replaced); empty: all.
    pub symbols: Vec<String>,
}

impl AsyncMarketDB {
    /// The partitions imported from `source`, with the digest each had.
    pub async fn imported_partitions(&self, source: &str) -> Result<HashMap<String, String>> {
        let source = source.to_owned();
        self.read(move |c, _| {
            if !table_exists(c, "dataset_imports")? {
                return Ok(HashMap::new());
            }
            let mut stmt =
                c.prepare("SELECT partition, digest FROM dataset_imports WHERE source = ?1")?;
            let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<HashMap<_, _>>>()?)
        })
        .await
    }

    /// Replaces the rows of `part` with `batches` in one transaction and records the
    /// partition's digest. The iterator runs on the writer's blocking thread (it may read
    /// a file); an `Err` item or an invalid row rolls everything back. Returns rows
    /// written.
    pub async fn import_partition<I, E>(&self, part: PartitionImport, batches: I) -> Result<usize>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let batches = batches.into_iter();
        let (batch, v) = self.write_settings();
        let key = part.partition.clone();
        let n = self
            .write(move |c, t| {
                delete_partition(c, t, &part)?;
                let n = crate::db::store_record_stream(c, t, batches, batch, &v)?;
                c.execute(
                    "INSERT INTO dataset_imports (source, partition, digest, rows, imported_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (source, partition) DO UPDATE SET \
                     digest = excluded.digest, rows = excluded.rows, \
                     imported_at = excluded.imported_at",
                    params![
                        part.source,
                        part.partition,
                        part.digest,
                        i64::try_from(n).unwrap_or(i64::MAX),
                        now_ms()
                    ],
                )?;
                Ok(n)
            })
            .await?;
        tracing::info!(partition = %key, rows = n, "partition imported");
        Ok(n)
    }
}

/// Deletes the rows `part` replaces, symbol by symbol (each a seek on the primary key).
fn delete_partition(c: &rusqlite::Connection, t: &Tables, part: &PartitionImport) -> Result<()> {
    let (table, freq) = match part.table {
        ImportTable::Klines(f) => (t.kline, Some(f)),
        ImportTable::FundingRate => (t.funding, None),
        ImportTable::OpenInterest => (t.open_interest, None),
        ImportTable::LongShortRatio => (t.long_short_ratio, None),
    };
    if !table_exists(c, table)? {
        return Ok(());
    }
    let symbols = if part.symbols.is_empty() {
        distinct_symbols(c, table, None)?
    } else {
        part.symbols.clone()
    };
    let (start, end) = (part.range.start, part.range.end_exclusive);
    match freq {
        Some(f) => {
            let mut stmt = c.prepare_cached(&format!(
                "DELETE FROM {table} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
                 AND timestamp < ?4"
            ))?;
            for s in &symbols {
                stmt.execute(params![s, f.as_str(), start, end])?;
            }
        }
        None => {
            let mut stmt = c.prepare_cached(&format!(
                "DELETE FROM {table} WHERE symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3"
            ))?;
            for s in &symbols {
                stmt.execute(params![s, start, end])?;
            }
        }
    }
    Ok(())
}
