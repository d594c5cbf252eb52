//! The `source_gaps` record: files the exchange does not publish (or publishes broken),
//! so a download does not ask again. One row per market, kind, symbol, interval and
//! period (`YYYY-MM-DD` or `YYYY-MM`), with a status, the source's answer as evidence, and
//! when it was first seen and last checked (ms). The table is created by every writable
//! open ([`crate::schema`], which also adds `answer` to an older table); a file opened
//! read-only without the table has no gaps, and one without `answer` reads it as `""`.
//!
//! It does not decide what is a gap: the downloader does.

use rusqlite::params;
use serde::Serialize;

use crate::schema::{has_column, table_exists};
use crate::{AsyncMarketDB, Result};

/// One recorded gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceGap {
    /// `spot`, `um` or `cm`.
    pub market: String,
    /// `klines`, `funding` or `metrics`.
    pub kind: String,
    pub symbol: String,
    /// The kline interval (`1m`), or `""` for the other kinds.
    pub interval: String,
    /// `YYYY-MM-DD` (a daily file) or `YYYY-MM` (a monthly file).
    pub period: String,
    /// Why it is a gap: `not_published`, `not_yet_published`, `failed` or `partial`
    /// (files written by older versions may hold `checksum_mismatch`).
    pub status: String,
    /// When it was first recorded (ms).
    pub first_seen: i64,
    /// When it was last checked (ms).
    pub last_checked: i64,
    /// What the source answered at the last check, as evidence: `404`,
    /// `500 after 5 attempts`, `not a zip`, `rest api: 3 of 1440 bars`... (`""` in rows
    /// recorded before the column existed).
    pub answer: String,
}

/// Which gaps [`AsyncMarketDB::source_gaps`] lists; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GapFilter {
    pub market: Option<String>,
    pub kind: Option<String>,
    pub symbol: Option<String>,
    pub interval: Option<String>,
}

impl AsyncMarketDB {
    /// Records a gap: a new row is stored as given, an existing one keeps its
    /// `first_seen` and takes the new status, `last_checked` and answer.
    pub async fn record_source_gap(&self, gap: SourceGap) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO source_gaps (market, kind, symbol, interval, period, status, \
                 first_seen, last_checked, answer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (market, kind, symbol, interval, period) DO UPDATE SET \
                 status = excluded.status, last_checked = excluded.last_checked, \
                 answer = excluded.answer",
                params![
                    gap.market,
                    gap.kind,
                    gap.symbol,
                    gap.interval,
                    gap.period,
                    gap.status,
                    gap.first_seen,
                    gap.last_checked,
                    gap.answer
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets a gap (the file turned up after all). Returns whether there was one.
    pub async fn clear_source_gap(
        &self,
        market: &str,
        kind: &str,
        symbol: &str,
        interval: &str,
        period: &str,
    ) -> Result<bool> {
        self.delete_by_source_key("source_gaps", [market, kind, symbol, interval, period])
            .await
    }

    /// The recorded gaps matching `filter`, ordered by market, kind, symbol, interval
    /// and period.
    pub async fn source_gaps(&self, filter: GapFilter) -> Result<Vec<SourceGap>> {
        self.read(move |c, _| {
            if !table_exists(c, "source_gaps")? {
                return Ok(Vec::new());
            }
            // A read-only open cannot add the column to an older file: read it as "".
            let answer = if has_column(c, "source_gaps", "answer")? {
                "answer"
            } else {
                "''"
            };
            let mut stmt = c.prepare(&format!(
                "SELECT market, kind, symbol, interval, period, status, first_seen, \
                 last_checked, {answer} FROM source_gaps \
                 WHERE (?1 IS NULL OR market = ?1) AND (?2 IS NULL OR kind = ?2) \
                 AND (?3 IS NULL OR symbol = ?3) AND (?4 IS NULL OR interval = ?4) \
                 ORDER BY market, kind, symbol, interval, period"
            ))?;
            let rows = stmt.query_map(
                params![filter.market, filter.kind, filter.symbol, filter.interval],
                |r| {
                    Ok(SourceGap {
                        market: r.get(0)?,
                        kind: r.get(1)?,
                        symbol: r.get(2)?,
                        interval: r.get(3)?,
                        period: r.get(4)?,
                        status: r.get(5)?,
                        first_seen: r.get(6)?,
                        last_checked: r.get(7)?,
                        answer: r.get(8)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(period: &str, status: &str, at: i64, answer: &str) -> SourceGap {
        SourceGap {
            market: "spot".into(),
            kind: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: "1m".into(),
            period: period.into(),
            status: status.into(),
            first_seen: at,
            last_checked: at,
            answer: answer.into(),
        }
    }

    #[tokio::test]
    async fn record_update_list_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("g.db")).await.unwrap();
        assert!(
            db.source_gaps(GapFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        db.record_source_gap(gap("2024-01-02", "not_published", 10, "404"))
            .await
            .unwrap();
        db.record_source_gap(gap("2024-01-01", "not_published", 11, "404"))
            .await
            .unwrap();
        db.record_source_gap(gap("2024-01-02", "failed", 20, "500 after 5 attempts"))
            .await
            .unwrap();
        let all = db.source_gaps(GapFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].period, "2024-01-01");
        assert_eq!(all[0].answer, "404");
        let second = &all[1];
        assert_eq!(
            (
                second.status.as_str(),
                second.first_seen,
                second.last_checked,
                second.answer.as_str()
            ),
            ("failed", 10, 20, "500 after 5 attempts"),
            "first_seen kept, status, last_checked and answer updated"
        );
        let none = db
            .source_gaps(GapFilter {
                symbol: Some("ETHUSDT".into()),
                ..GapFilter::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
        assert!(
            db.clear_source_gap("spot", "klines", "BTCUSDT", "1m", "2024-01-01")
                .await
                .unwrap()
        );
        assert!(
            !db.clear_source_gap("spot", "klines", "BTCUSDT", "1m", "2024-01-01")
                .await
                .unwrap()
        );
        assert_eq!(db.source_gaps(GapFilter::default()).await.unwrap().len(), 1);
        db.close().await;
    }

    /// `source_gaps` as files made before the `answer` column hold it.
    const OLD_GAPS_DDL: &str = "CREATE TABLE source_gaps (
        market TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
        period TEXT NOT NULL, status TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_checked INTEGER NOT NULL,
        PRIMARY KEY (market, kind, symbol, interval, period)
    ) WITHOUT ROWID;
    INSERT INTO source_gaps VALUES
        ('spot', 'klines', 'BTCUSDT', '1m', '2023-12-31', 'checksum_mismatch', 5, 6);";

    #[tokio::test]
    async fn an_older_table_reads_read_only_and_gains_the_column_when_opened_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&crate::schema::DEFAULT_LAYOUT.ddl())
                .unwrap();
            conn.execute_batch(OLD_GAPS_DDL).unwrap();
        }
        let has_answer = || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            has_column(&conn, "source_gaps", "answer").unwrap()
        };
        let old = gap("2023-12-31", "checksum_mismatch", 5, "");
        let expected = SourceGap {
            last_checked: 6,
            ..old
        };

        let ro = AsyncMarketDB::open_read_only(&path).await.unwrap();
        let got = ro.source_gaps(GapFilter::default()).await.unwrap();
        assert_eq!(got, vec![expected.clone()]);
        ro.close().await;
        assert!(!has_answer(), "a read-only open changes nothing");

        let db = AsyncMarketDB::open(&path).await.unwrap();
        assert!(has_answer());
        let got = db.source_gaps(GapFilter::default()).await.unwrap();
        assert_eq!(got, vec![expected], "an older row answers \"\"");
        db.record_source_gap(gap("2023-12-31", "not_published", 9, "404"))
            .await
            .unwrap();
        let got = db.source_gaps(GapFilter::default()).await.unwrap();
        assert_eq!(
            (got[0].first_seen, got[0].answer.as_str()),
            (5, "404"),
            "the added column takes answers"
        );
        db.close().await;
        // A second writable open finds the column and adds nothing.
        AsyncMarketDB::open(&path).await.unwrap().close().await;
    }
}
