//! The `archive_catalog` record: what the exchange's archive holds, as its bucket listing
//! showed it. One row per market, kind, symbol, interval (`""` for the kinds without one)
//! and folder (`daily` or `monthly`): the first and last period with a file, how many
//! files, the last key listed (a refresh lists only the keys after it) and when it was
//! listed (ms). `archive_aliases` links a symbol's old name to its new one, as the user
//! says (the listing cannot tell a rename from a delisting and a listing).
//!
//! Extra tables like `source_gaps`: created by every writable open ([`crate::schema`]),
//! ignored by cryptoservice; a file opened read-only without them has an empty catalog. It
//! does not list anything or decide what "delisted" means: the downloader does.

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::schema::table_exists;
use crate::{AsyncMarketDB, Result};

/// The tables' DDL.
pub(crate) const CATALOG_DDL: &str = "CREATE TABLE IF NOT EXISTS archive_catalog (
    market TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    folder TEXT NOT NULL, first_period TEXT NOT NULL, last_period TEXT NOT NULL,
    files INTEGER NOT NULL, last_key TEXT NOT NULL, listed_at INTEGER NOT NULL,
    PRIMARY KEY (market, kind, symbol, interval, folder)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_aliases (
    market TEXT NOT NULL, old_symbol TEXT NOT NULL, new_symbol TEXT NOT NULL,
    PRIMARY KEY (market, old_symbol)
) WITHOUT ROWID;";

/// One listed series of archive files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// `spot`, `um` or `cm`.
    pub market: String,
    /// `klines`, `funding` or `metrics`.
    pub kind: String,
    pub symbol: String,
    /// The kline interval (`1m`), or `""` for the other kinds.
    pub interval: String,
    /// `daily` or `monthly`.
    pub folder: String,
    /// The first period with a file (`YYYY-MM-DD` or `YYYY-MM`).
    pub first_period: String,
    /// The last period with a file.
    pub last_period: String,
    /// Files listed (checksums not counted).
    pub files: u64,
    /// The last key listed: a refresh asks only for keys after it.
    pub last_key: String,
    /// When the folder was last listed (ms).
    pub listed_at: i64,
}

/// Which entries [`AsyncMarketDB::catalog`] lists; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogFilter {
    pub market: Option<String>,
    pub kind: Option<String>,
    pub interval: Option<String>,
}

/// A user-given link from a symbol's old name to its new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SymbolAlias {
    pub market: String,
    pub old_symbol: String,
    pub new_symbol: String,
}

fn upsert(c: &Connection, e: &CatalogEntry) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO archive_catalog (market, kind, symbol, interval, folder, first_period, \
         last_period, files, last_key, listed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (market, kind, symbol, interval, folder) DO UPDATE SET \
         first_period = excluded.first_period, last_period = excluded.last_period, \
         files = excluded.files, last_key = excluded.last_key, listed_at = excluded.listed_at",
    )?
    .execute(params![
        e.market,
        e.kind,
        e.symbol,
        e.interval,
        e.folder,
        e.first_period,
        e.last_period,
        i64::try_from(e.files).unwrap_or(i64::MAX),
        e.last_key,
        e.listed_at
    ])?;
    Ok(())
}

impl AsyncMarketDB {
    /// Stores catalog entries (replacing earlier ones of the same series) in one
    /// transaction: what the caller gives is recorded whole or not at all (a refresh
    /// stores each listed folder so).
    pub async fn store_catalog(&self, entries: Vec<CatalogEntry>) -> Result<()> {
        self.write(move |c, _| {
            for e in &entries {
                upsert(c, e)?;
            }
            Ok(())
        })
        .await
    }

    /// The catalog entries matching `filter`, ordered by market, kind, symbol, interval
    /// and folder.
    pub async fn catalog(&self, filter: CatalogFilter) -> Result<Vec<CatalogEntry>> {
        self.read(move |c, _| {
            if !table_exists(c, "archive_catalog")? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(
                "SELECT market, kind, symbol, interval, folder, first_period, last_period, \
                 files, last_key, listed_at FROM archive_catalog \
                 WHERE (?1 IS NULL OR market = ?1) AND (?2 IS NULL OR kind = ?2) \
                 AND (?3 IS NULL OR interval = ?3) \
                 ORDER BY market, kind, symbol, interval, folder",
            )?;
            let rows =
                stmt.query_map(params![filter.market, filter.kind, filter.interval], |r| {
                    Ok(CatalogEntry {
                        market: r.get(0)?,
                        kind: r.get(1)?,
                        symbol: r.get(2)?,
                        interval: r.get(3)?,
                        folder: r.get(4)?,
                        first_period: r.get(5)?,
                        last_period: r.get(6)?,
                        files: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                        last_key: r.get(8)?,
                        listed_at: r.get(9)?,
                    })
                })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Links `old_symbol` to `new_symbol` in `market` (replacing an earlier link of it).
    pub async fn set_symbol_alias(&self, alias: SymbolAlias) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO archive_aliases (market, old_symbol, new_symbol) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (market, old_symbol) DO UPDATE SET new_symbol = excluded.new_symbol",
                params![alias.market, alias.old_symbol, alias.new_symbol],
            )?;
            Ok(())
        })
        .await
    }

    /// Every alias, ordered by market and old name.
    pub async fn symbol_aliases(&self) -> Result<Vec<SymbolAlias>> {
        self.read(move |c, _| {
            if !table_exists(c, "archive_aliases")? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(
                "SELECT market, old_symbol, new_symbol FROM archive_aliases \
                 ORDER BY market, old_symbol",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SymbolAlias {
                    market: r.get(0)?,
                    old_symbol: r.get(1)?,
                    new_symbol: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(symbol: &str, last: &str, files: u64) -> CatalogEntry {
        CatalogEntry {
            market: "um".into(),
            kind: "klines".into(),
            symbol: symbol.into(),
            interval: "1m".into(),
            folder: "daily".into(),
            first_period: "2024-01-01".into(),
            last_period: last.into(),
            files,
            last_key: format!("data/{symbol}-{last}.zip"),
            listed_at: 7,
        }
    }

    #[tokio::test]
    async fn entries_are_replaced_per_series_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("m.db")).await.unwrap();
        db.store_catalog(vec![
            entry("B", "2024-01-03", 3),
            entry("A", "2024-01-02", 2),
        ])
        .await
        .unwrap();
        db.store_catalog(vec![entry("B", "2024-01-05", 5)])
            .await
            .unwrap();
        let all = db.catalog(CatalogFilter::default()).await.unwrap();
        assert_eq!(
            all,
            vec![entry("A", "2024-01-02", 2), entry("B", "2024-01-05", 5)]
        );
        let none = db
            .catalog(CatalogFilter {
                market: Some("spot".into()),
                ..CatalogFilter::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
        let alias = SymbolAlias {
            market: "um".into(),
            old_symbol: "A".into(),
            new_symbol: "B".into(),
        };
        db.set_symbol_alias(alias.clone()).await.unwrap();
        assert_eq!(db.symbol_aliases().await.unwrap(), vec![alias]);
        db.close().await;
    }
}
