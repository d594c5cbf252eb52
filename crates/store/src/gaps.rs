//! The `source_gaps` record: files the exchange does not publish (or publishes broken),
//! so a download does not ask again. One row per market, kind, symbol, interval and
//! period (`YYYY-MM-DD` or `YYYY-MM`), with a status and when it was first seen and last
//! checked (ms). The table is created by every writable open ([`crate::schema`]); a file
//! opened read-only without it simply has no gaps.

use rusqlite::params;
use serde::Serialize;

use crate::schema::table_exists;
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
    /// Why it is a gap: `not_published`, `checksum_mismatch`, `partial`...
    pub status: String,
    /// When it was first recorded (ms).
    pub first_seen: i64,
    /// When it was last checked (ms).
    pub last_checked: i64,
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
    /// Records a gap checked at `now_ms`: a new row keeps `now_ms` as `first_seen`, an
    /// existing one keeps its `first_seen` and takes the new status and `last_checked`.
    pub async fn record_source_gap(&self, gap: SourceGap) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO source_gaps (market, kind, symbol, interval, period, status, \
                 first_seen, last_checked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (market, kind, symbol, interval, period) DO UPDATE SET \
                 status = excluded.status, last_checked = excluded.last_checked",
                params![
                    gap.market,
                    gap.kind,
                    gap.symbol,
                    gap.interval,
                    gap.period,
                    gap.status,
                    gap.first_seen,
                    gap.last_checked
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
        let key = [market, kind, symbol, interval, period].map(str::to_owned);
        self.write(move |c, _| {
            let n = c.execute(
                "DELETE FROM source_gaps WHERE market = ?1 AND kind = ?2 AND symbol = ?3 \
                 AND interval = ?4 AND period = ?5",
                params![key[0], key[1], key[2], key[3], key[4]],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// The recorded gaps matching `filter`, ordered by market, kind, symbol, interval
    /// and period.
    pub async fn source_gaps(&self, filter: GapFilter) -> Result<Vec<SourceGap>> {
        self.read(move |c, _| {
            if !table_exists(c, "source_gaps")? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(
                "SELECT market, kind, symbol, interval, period, status, first_seen, \
                 last_checked FROM source_gaps \
                 WHERE (?1 IS NULL OR market = ?1) AND (?2 IS NULL OR kind = ?2) \
                 AND (?3 IS NULL OR symbol = ?3) AND (?4 IS NULL OR interval = ?4) \
                 ORDER BY market, kind, symbol, interval, period",
            )?;
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

    fn gap(period: &str, status: &str, at: i64) -> SourceGap {
        SourceGap {
            market: "spot".into(),
            kind: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: "1m".into(),
            period: period.into(),
            status: status.into(),
            first_seen: at,
            last_checked: at,
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
        db.record_source_gap(gap("2024-01-02", "not_published", 10))
            .await
            .unwrap();
        db.record_source_gap(gap("2024-01-01", "not_published", 11))
            .await
            .unwrap();
        db.record_source_gap(gap("2024-01-02", "checksum_mismatch", 20))
            .await
            .unwrap();
        let all = db.source_gaps(GapFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].period, "2024-01-01");
        let second = &all[1];
        assert_eq!(
            (
                second.status.as_str(),
                second.first_seen,
                second.last_checked
            ),
            ("checksum_mismatch", 10, 20),
            "first_seen kept, status and last_checked updated"
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
}
