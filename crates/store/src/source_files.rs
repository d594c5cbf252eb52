//! The `source_files` record: one row per source file a download stored (market, kind,
//! symbol, interval and period, as in `source_gaps`), with where it came from (URL, ETag,
//! Last-Modified), its digest and size, the rows it brought and when it was fetched, so a
//! later run can tell whether the source changed. [`AsyncMarketDB::store_file_records`]
//! stores a file's rows and its record in one transaction: a killed process never leaves
//! rows without their record, or a record without its rows.
//!
//! An extra table like `source_gaps`: created by every writable open ([`crate::schema`]),
//! ignored by cryptoservice; a file opened read-only without it has no records. It does
//! not download or hash anything: the caller gives the facts.

use marketdb_model::Records;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::schema::table_exists;
use crate::{AsyncMarketDB, Error, Result};

/// The table's DDL.
pub(crate) const SOURCE_FILES_DDL: &str = "CREATE TABLE IF NOT EXISTS source_files (
    market TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    period TEXT NOT NULL, url TEXT NOT NULL, etag TEXT, last_modified TEXT,
    sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, rows INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (market, kind, symbol, interval, period)
) WITHOUT ROWID;";

/// One stored source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceFile {
    /// `spot`, `um` or `cm`.
    pub market: String,
    /// `klines`, `funding` or `metrics`.
    pub kind: String,
    pub symbol: String,
    /// The kline interval (`1m`), or `""` for the other kinds.
    pub interval: String,
    /// `YYYY-MM-DD` (a daily file) or `YYYY-MM` (a monthly file).
    pub period: String,
    /// Where it was downloaded from.
    pub url: String,
    /// The `ETag` the server sent, if any.
    pub etag: Option<String>,
    /// The `Last-Modified` the server sent, if any.
    pub last_modified: Option<String>,
    /// SHA-256 of the downloaded bytes (hex).
    pub sha256: String,
    /// Size of the downloaded file.
    pub bytes: u64,
    /// Records stored from it ([`AsyncMarketDB::store_file_records`] sets it).
    pub rows: u64,
    /// When it was fetched (ms).
    pub fetched_at: i64,
}

/// Which records [`AsyncMarketDB::source_files`] lists; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFileFilter {
    pub market: Option<String>,
    pub kind: Option<String>,
    pub symbol: Option<String>,
    pub interval: Option<String>,
}

/// `n` as SQLite's integer; a count past `i64::MAX` cannot be a real file.
fn as_sql_int(what: &'static str, file: &SourceFile, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| {
        Error::invalid_argument(
            what,
            n,
            format!("too large to record for source file {}", file.url),
        )
    })
}

/// Upserts `file` inside the caller's transaction.
pub(crate) fn record_file(c: &Connection, file: &SourceFile) -> Result<()> {
    let bytes = as_sql_int("source file size", file, file.bytes)?;
    let rows = as_sql_int("source file row count", file, file.rows)?;
    c.prepare_cached(
        "INSERT INTO source_files (market, kind, symbol, interval, period, url, etag, \
         last_modified, sha256, bytes, rows, fetched_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (market, kind, symbol, interval, period) DO UPDATE SET \
         url = excluded.url, etag = excluded.etag, last_modified = excluded.last_modified, \
         sha256 = excluded.sha256, bytes = excluded.bytes, rows = excluded.rows, \
         fetched_at = excluded.fetched_at",
    )?
    .execute(params![
        file.market,
        file.kind,
        file.symbol,
        file.interval,
        file.period,
        file.url,
        file.etag,
        file.last_modified,
        file.sha256,
        bytes,
        rows,
        file.fetched_at
    ])?;
    Ok(())
}

/// Records `file`, when given, with `rows` records stored from it.
pub(crate) fn record_stored_file(
    c: &Connection,
    file: Option<SourceFile>,
    rows: usize,
) -> Result<()> {
    let Some(mut file) = file else {
        return Ok(());
    };
    file.rows = u64::try_from(rows).unwrap_or(u64::MAX);
    record_file(c, &file)
}

/// A stored count read back; a negative one (written by someone else) reads as 0.
fn count(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
}

impl AsyncMarketDB {
    /// Records a stored source file (replacing an earlier record of the same file).
    pub async fn record_source_file(&self, file: SourceFile) -> Result<()> {
        self.write(move |c, _| record_file(c, &file)).await
    }

    /// The recorded source files matching `filter`, ordered by market, kind, symbol,
    /// interval and period.
    pub async fn source_files(&self, filter: SourceFileFilter) -> Result<Vec<SourceFile>> {
        self.read(move |c, _| {
            if !table_exists(c, "source_files")? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(
                "SELECT market, kind, symbol, interval, period, url, etag, last_modified, \
                 sha256, bytes, rows, fetched_at FROM source_files \
                 WHERE (?1 IS NULL OR market = ?1) AND (?2 IS NULL OR kind = ?2) \
                 AND (?3 IS NULL OR symbol = ?3) AND (?4 IS NULL OR interval = ?4) \
                 ORDER BY market, kind, symbol, interval, period",
            )?;
            let rows = stmt.query_map(
                params![filter.market, filter.kind, filter.symbol, filter.interval],
                |r| {
                    Ok(SourceFile {
                        market: r.get(0)?,
                        kind: r.get(1)?,
                        symbol: r.get(2)?,
                        interval: r.get(3)?,
                        period: r.get(4)?,
                        url: r.get(5)?,
                        etag: r.get(6)?,
                        last_modified: r.get(7)?,
                        sha256: r.get(8)?,
                        bytes: count(r, 9)?,
                        rows: count(r, 10)?,
                        fetched_at: r.get(11)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Forgets the record of a source file (its rows stay). Returns whether there was one.
    pub async fn forget_source_file(
        &self,
        market: &str,
        kind: &str,
        symbol: &str,
        interval: &str,
        period: &str,
    ) -> Result<bool> {
        self.delete_by_source_key("source_files", [market, kind, symbol, interval, period])
            .await
    }

    /// Deletes the row of `table` (`source_files` or `source_gaps`, keyed alike by market,
    /// kind, symbol, interval and period) with that key. Returns whether there was one.
    pub(crate) async fn delete_by_source_key(
        &self,
        table: &'static str,
        key: [&str; 5],
    ) -> Result<bool> {
        let key = key.map(str::to_owned);
        self.write(move |c, _| {
            let n = c.execute(
                &format!(
                    "DELETE FROM {table} WHERE market = ?1 AND kind = ?2 AND symbol = ?3 \
                     AND interval = ?4 AND period = ?5"
                ),
                params![key[0], key[1], key[2], key[3], key[4]],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// [`Self::store_records`] of one source file's records, recording `file` (its `rows`
    /// set to the records stored) in the same transaction: both commit or neither.
    /// Returns records written.
    pub async fn store_file_records<I, E>(
        &self,
        batches: I,
        file: Option<SourceFile>,
    ) -> Result<usize>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.store_records_then(batches, move |c, n| record_stored_file(c, file, n))
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use marketdb_model::{Freq, Kline};

    pub(crate) fn file(symbol: &str, period: &str) -> SourceFile {
        SourceFile {
            market: "spot".into(),
            kind: "klines".into(),
            symbol: symbol.into(),
            interval: "1m".into(),
            period: period.into(),
            url: format!("https://data.example/{symbol}-1m-{period}.zip"),
            etag: Some("\"abc\"".into()),
            last_modified: None,
            sha256: "00ff".into(),
            bytes: 1234,
            rows: 0,
            fetched_at: 1_700_000_000_000,
        }
    }

    fn bar(t: i64) -> Kline {
        Kline {
            symbol: "BTCUSDT".into(),
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

    const JAN1: i64 = 1_704_067_200_000;

    #[derive(Debug, thiserror::Error)]
    #[error("broken input")]
    struct Broken;

    #[tokio::test]
    async fn record_filter_upsert_and_forget() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("f.db")).await.unwrap();
        let all = || db.source_files(SourceFileFilter::default());
        assert!(all().await.unwrap().is_empty());
        let b = file("BTCUSDT", "2024-01-02");
        db.record_source_file(b.clone()).await.unwrap();
        db.record_source_file(file("BTCUSDT", "2024-01-01"))
            .await
            .unwrap();
        db.record_source_file(file("ETHUSDT", "2024-01-01"))
            .await
            .unwrap();
        let got = all().await.unwrap();
        let keys: Vec<_> = got.iter().map(|f| (&*f.symbol, &*f.period)).collect();
        assert_eq!(
            keys,
            [
                ("BTCUSDT", "2024-01-01"),
                ("BTCUSDT", "2024-01-02"),
                ("ETHUSDT", "2024-01-01")
            ]
        );
        assert_eq!(got[1], b, "every field round-trips");
        let newer = SourceFile {
            etag: None,
            last_modified: Some("Tue, 02 Jan 2024 08:00:00 GMT".into()),
            sha256: "11ee".into(),
            bytes: 99,
            rows: 1440,
            fetched_at: 5,
            ..b.clone()
        };
        db.record_source_file(newer.clone()).await.unwrap();
        let eth = db
            .source_files(SourceFileFilter {
                symbol: Some("ETHUSDT".into()),
                ..SourceFileFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(eth.len(), 1);
        let none = db
            .source_files(SourceFileFilter {
                interval: Some("5m".into()),
                ..SourceFileFilter::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
        let got = all().await.unwrap();
        assert_eq!(got.len(), 3, "an upsert adds no row");
        assert_eq!(got[1], newer);
        assert!(
            db.forget_source_file("spot", "klines", "BTCUSDT", "1m", "2024-01-02")
                .await
                .unwrap()
        );
        assert!(
            !db.forget_source_file("spot", "klines", "BTCUSDT", "1m", "2024-01-02")
                .await
                .unwrap()
        );
        assert_eq!(all().await.unwrap().len(), 2);
        let too_big = SourceFile {
            bytes: u64::MAX,
            ..b
        };
        let err = db.record_source_file(too_big).await.unwrap_err();
        assert!(err.to_string().contains("source file size"), "{err}");
        db.close().await;
    }

    #[tokio::test]
    async fn store_file_records_commits_rows_and_record_together() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("s.db")).await.unwrap();
        let batch = |from: i64, n: i64| Records::Klines {
            freq: Freq::M1,
            rows: (from..from + n).map(|i| bar(JAN1 + i * 60_000)).collect(),
        };
        let ok: Vec<std::result::Result<Records, Broken>> = vec![Ok(batch(0, 3)), Ok(batch(3, 2))];
        let n = db
            .store_file_records(ok, Some(file("BTCUSDT", "2024-01-01")))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let got = db.source_files(SourceFileFilter::default()).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].rows, 5,
            "rows is the stored count, not the given one"
        );
        assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 5);

        // A stream failing after a good batch stores neither rows nor record.
        let broken: Vec<std::result::Result<Records, Broken>> = vec![Ok(batch(10, 3)), Err(Broken)];
        let err = db
            .store_file_records(broken, Some(file("BTCUSDT", "2024-01-02")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Input(_)), "{err}");
        assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 5);
        assert_eq!(
            db.source_files(SourceFileFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );

        // An invalid row (a price of 0) refuses the file the same way.
        let mut bad = bar(JAN1 + 20 * 60_000);
        bad.low = 0.0;
        let invalid: Vec<std::result::Result<Records, Broken>> = vec![Ok(Records::Klines {
            freq: Freq::M1,
            rows: vec![bad],
        })];
        let err = db
            .store_file_records(invalid, Some(file("BTCUSDT", "2024-01-03")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert_eq!(
            db.source_files(SourceFileFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );

        // Without a file it is store_records.
        let plain: Vec<std::result::Result<Records, Broken>> = vec![Ok(batch(30, 2))];
        assert_eq!(db.store_file_records(plain, None).await.unwrap(), 2);
        assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 7);
        db.close().await;
    }
}
