//! Replacing one source period with a diff: [`AsyncMarketDB::replace_period`] swaps the
//! rows of one symbol in one period of one or more tables ([`PeriodScope`]) for a new
//! version of that period (a source file downloaded again), and says what changed
//! ([`PeriodChanges`]: keys added, removed, with changed values, unchanged).
//!
//! In one write transaction: the scope's rows are copied to a TEMP table, deleted, the new
//! records stored with the validation of every write, the source file recorded (as
//! [`AsyncMarketDB::store_file_records`] does), and the copy compared with what is now
//! stored, in SQL, so memory holds one scope's copy (in SQLite's temp store) and never the
//! table. A record outside the scope (another symbol, time, table or interval) rolls
//! everything back. Rows outside the scope are never touched.
//!
//! It does not decide when a period needs replacing, nor read files: the caller streams
//! the records.

use marketdb_model::time::format_rfc3339;
use marketdb_model::{Freq, Records, TimeRange, validate_symbol};
use rusqlite::Connection;
use rusqlite::types::Value;
use serde::Serialize;

use crate::imports::table_of;
use crate::schema::table_exists;
use crate::source_files::record_stored_file;
use crate::{AsyncMarketDB, Error, ImportTable, Result, SourceFile, Tables};

/// What [`AsyncMarketDB::replace_period`] replaces: the rows of `symbol` with a time in
/// `range` in each of `tables` (for klines, of that interval only). A metrics file covers
/// both [`ImportTable::OpenInterest`] and [`ImportTable::LongShortRatio`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodScope {
    pub tables: Vec<ImportTable>,
    pub symbol: String,
    pub range: TimeRange,
}

/// What a replacement changed, by row key (the table's primary key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeriodChanges {
    /// Keys stored now that were not before.
    pub added: u64,
    /// Keys that were stored before and are gone.
    pub removed: u64,
    /// Keys in both whose values differ in some column.
    pub changed: u64,
    /// Keys in both with identical rows (NULL equal to NULL).
    pub unchanged: u64,
}

impl std::ops::AddAssign for PeriodChanges {
    fn add_assign(&mut self, o: PeriodChanges) {
        self.added += o.added;
        self.removed += o.removed;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
    }
}

impl PeriodScope {
    /// "BTCUSDT 1m klines in [start, end)", for errors and logs.
    fn describe(&self) -> String {
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|t| match t {
                ImportTable::Klines(f) => format!("{f} klines"),
                ImportTable::FundingRate => "funding rates".to_owned(),
                ImportTable::OpenInterest => "open interest".to_owned(),
                ImportTable::LongShortRatio => "long/short ratios".to_owned(),
            })
            .collect();
        format!(
            "{} {} in [{}, {})",
            self.symbol,
            tables.join(" and "),
            format_rfc3339(self.range.start),
            format_rfc3339(self.range.end_exclusive)
        )
    }
}

/// One table of a scope.
struct Part {
    table: &'static str,
    freq: Option<Freq>,
    /// The primary-key columns (as in `Layout::ddl`).
    keys: &'static str,
    /// The TEMP table holding the rows before the replacement.
    before: String,
}

impl Part {
    fn new(t: &Tables, table: ImportTable, i: usize) -> Part {
        let (name, freq) = table_of(t, table);
        let keys = match table {
            ImportTable::Klines(_) => "symbol, timestamp, freq",
            ImportTable::FundingRate => "symbol, timestamp",
            ImportTable::OpenInterest => "symbol, timestamp, interval",
            ImportTable::LongShortRatio => "symbol, timestamp, period, ratio_type",
        };
        Part {
            table: name,
            freq,
            keys,
            before: format!("marketdb_period_before_{i}"),
        }
    }

    /// The condition selecting the scope's rows of the table, with [`Self::params`].
    fn scope_sql(&self) -> &'static str {
        match self.freq {
            Some(_) => "symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3 AND freq = ?4",
            None => "symbol = ?1 AND timestamp >= ?2 AND timestamp < ?3",
        }
    }

    fn params(&self, scope: &PeriodScope) -> Vec<Value> {
        let mut p = vec![
            Value::Text(scope.symbol.clone()),
            Value::Integer(scope.range.start),
            Value::Integer(scope.range.end_exclusive),
        ];
        if let Some(f) = self.freq {
            p.push(Value::Text(f.as_str().to_owned()));
        }
        p
    }

    /// Copies the scope's rows to the TEMP table, then deletes them.
    fn take(&self, c: &Connection, scope: &PeriodScope) -> Result<()> {
        let (table, before, cond) = (self.table, &self.before, self.scope_sql());
        let p = || rusqlite::params_from_iter(self.params(scope));
        // The same columns in the same order, so INTERSECT can compare whole rows later.
        c.execute_batch(&format!(
            "CREATE TEMP TABLE {before} AS SELECT * FROM main.{table} WHERE 0"
        ))?;
        c.execute(
            &format!("INSERT INTO temp.{before} SELECT * FROM main.{table} WHERE {cond}"),
            p(),
        )?;
        crate::changes::with_triggers(c, || {
            c.execute(&format!("DELETE FROM main.{table} WHERE {cond}"), p())?;
            Ok(())
        })
    }

    /// Compares the TEMP copy with the scope's rows now stored.
    fn changes(&self, c: &Connection, scope: &PeriodScope) -> Result<PeriodChanges> {
        let (table, before, cond, keys) = (self.table, &self.before, self.scope_sql(), self.keys);
        let params = self.params(scope);
        let count = |sql: String, scoped: bool| -> Result<u64> {
            let n: i64 = if scoped {
                c.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
                    r.get(0)
                })?
            } else {
                c.query_row(&sql, [], |r| r.get(0))?
            };
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let old = count(format!("SELECT COUNT(*) FROM temp.{before}"), false)?;
        let now = count(
            format!("SELECT COUNT(*) FROM main.{table} WHERE {cond}"),
            true,
        )?;
        // Every key of the copy lies in the scope, so the join needs no condition on `a`.
        let both = count(
            format!(
                "SELECT COUNT(*) FROM temp.{before} AS b JOIN main.{table} AS a USING ({keys})"
            ),
            false,
        )?;
        // INTERSECT compares every column and takes NULL as equal to NULL.
        let same = count(
            format!(
                "SELECT COUNT(*) FROM (SELECT * FROM temp.{before} \
                 INTERSECT SELECT * FROM main.{table} WHERE {cond})"
            ),
            true,
        )?;
        Ok(PeriodChanges {
            added: now.saturating_sub(both),
            removed: old.saturating_sub(both),
            changed: both.saturating_sub(same),
            unchanged: same,
        })
    }
}

/// Checks every record against the scope.
struct Fence<'a> {
    scope: &'a PeriodScope,
    label: &'a str,
}

impl Fence<'_> {
    fn check(&self, r: Records) -> Result<Records> {
        let has = |t: ImportTable| self.scope.tables.contains(&t);
        match &r {
            Records::Klines { freq, rows } => {
                let fits = has(ImportTable::Klines(*freq));
                for k in rows {
                    self.row(fits, &format!("{freq} kline"), &k.symbol, k.open_time)?;
                }
            }
            Records::Funding(rows) => {
                let fits = has(ImportTable::FundingRate);
                for f in rows {
                    self.row(fits, "funding rate", &f.symbol, f.funding_time)?;
                }
            }
            Records::Metrics {
                open_interest,
                long_short_ratio,
            } => {
                let fits = has(ImportTable::OpenInterest);
                for o in open_interest {
                    self.row(fits, "open interest", &o.symbol, o.time)?;
                }
                let fits = has(ImportTable::LongShortRatio);
                for l in long_short_ratio {
                    self.row(fits, "long/short ratio", &l.symbol, l.timestamp)?;
                }
            }
        }
        Ok(r)
    }

    /// Refuses a row of a table outside the scope (`fits` false), of another symbol, or
    /// at a time outside the range.
    fn row(&self, fits: bool, what: &str, symbol: &str, time: i64) -> Result<()> {
        let why = if !fits {
            "its table or interval is not in the scope"
        } else if symbol != self.scope.symbol {
            "another symbol"
        } else if time < self.scope.range.start || time >= self.scope.range.end_exclusive {
            "outside the period"
        } else {
            return Ok(());
        };
        Err(Error::invalid_argument(
            "period scope",
            self.label,
            format!(
                "holds a {what} of {symbol} at {} ({why}); nothing was changed",
                format_rfc3339(time)
            ),
        ))
    }
}

/// The store's wrapping of an input error taken off again when it is this crate's own
/// (a refusal by [`Fence`]), so the caller sees the refusal itself.
fn own_error(e: Error) -> Error {
    match e {
        Error::Input(b) => match b.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(b) => Error::Input(b),
        },
        e => e,
    }
}

impl AsyncMarketDB {
    /// Replaces the rows of `scope` with `batches` in one transaction, records `file`
    /// (its `rows` set to the records stored) in it too, and returns what changed. The
    /// iterator runs on the writer's blocking thread (it may read a file). An `Err` item,
    /// an invalid row or a row outside the scope rolls everything back, the file record
    /// included.
    pub async fn replace_period<I, E>(
        &self,
        scope: PeriodScope,
        batches: I,
        file: Option<SourceFile>,
    ) -> Result<PeriodChanges>
    where
        I: IntoIterator<Item = std::result::Result<Records, E>>,
        I::IntoIter: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut scope = scope;
        scope.symbol = validate_symbol(&scope.symbol)?;
        scope.range = scope.range.checked()?;
        let mut tables = Vec::with_capacity(scope.tables.len());
        for t in scope.tables.drain(..) {
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        scope.tables = tables;
        let label = scope.describe();
        if scope.tables.is_empty() {
            return Err(Error::invalid_argument(
                "period scope",
                &label,
                "names no table",
            ));
        }
        let batches = batches.into_iter();
        let (batch, v) = self.write_settings();
        let log_label = label.clone();
        let (changes, stored) = self
            .write(move |c, t| {
                let parts: Vec<Part> = scope
                    .tables
                    .iter()
                    .enumerate()
                    .map(|(i, table)| Part::new(t, *table, i))
                    .collect();
                for p in &parts {
                    if !table_exists(c, p.table)? {
                        return Err(Error::invalid_argument(
                            "period scope",
                            &label,
                            format!("the database has no table {}", p.table),
                        ));
                    }
                    // A copy left by an earlier call that died mid-way (its rollback
                    // drops it too; this is cheap insurance).
                    c.execute_batch(&format!("DROP TABLE IF EXISTS temp.{}", p.before))?;
                }
                let replaced = (|| -> Result<(PeriodChanges, usize)> {
                    for p in &parts {
                        p.take(c, &scope)?;
                    }
                    let fence = Fence {
                        scope: &scope,
                        label: &label,
                    };
                    let checked = batches.map(|item| {
                        item.map_err(|e| Error::Input(Box::new(e)))
                            .and_then(|r| fence.check(r))
                    });
                    let n = crate::db::store_record_stream(c, t, checked, batch, &v)
                        .map_err(own_error)?;
                    record_stored_file(c, file, n)?;
                    let mut changes = PeriodChanges::default();
                    for p in &parts {
                        changes += p.changes(c, &scope)?;
                    }
                    Ok((changes, n))
                })();
                // Dropped whatever happened: the writer connection outlives the call.
                let mut dropped = Ok(());
                for p in &parts {
                    let d = c.execute_batch(&format!("DROP TABLE IF EXISTS temp.{}", p.before));
                    dropped = dropped.and(d);
                }
                let out = replaced?;
                dropped?;
                Ok(out)
            })
            .await?;
        tracing::info!(scope = %log_label, ?changes, stored, "period replaced");
        self.fold_if_large(stored).await;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFileFilter;
    use crate::source_files::tests::file;
    use marketdb_model::{FundingRate, Kline, LongShortRatio, OpenInterest, RatioType};
    use rusqlite::OptionalExtension;

    const DAY: i64 = 86_400_000;
    const MIN: i64 = 60_000;
    /// 2024-01-01T00:00:00Z.
    const D: i64 = 1_704_067_200_000;

    type Items = Vec<std::result::Result<Records, Broken>>;

    #[derive(Debug, thiserror::Error)]
    #[error("broken input")]
    struct Broken;

    fn bar(symbol: &str, t: i64, freq: Freq, close: f64) -> Kline {
        Kline {
            symbol: symbol.into(),
            open_time: t,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 10.0,
            close_time: freq.close_time(t),
            quote_volume: 15.0,
            trades_count: 3,
            taker_buy_volume: 4.0,
            taker_buy_quote_volume: 6.0,
        }
    }

    /// `rows` as batches of at most 500 (so a replacement spans several).
    fn klines(freq: Freq, rows: Vec<Kline>) -> Items {
        rows.chunks(500)
            .map(|c| {
                Ok(Records::Klines {
                    freq,
                    rows: c.to_vec(),
                })
            })
            .collect()
    }

    fn day_scope(symbol: &str, tables: Vec<ImportTable>) -> PeriodScope {
        PeriodScope {
            tables,
            symbol: symbol.into(),
            range: TimeRange::new(D, D + DAY).unwrap(),
        }
    }

    /// Every row of every table (the four, and the two records) as committed, in key order.
    fn dump(path: &std::path::Path) -> Vec<Vec<Value>> {
        let conn = Connection::open(path).unwrap();
        let mut out = Vec::new();
        for table in [
            "market_data",
            "funding_rate",
            "open_interest",
            "long_short_ratio",
            "source_files",
            "source_gaps",
        ] {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT '{table}', * FROM {table} ORDER BY 1, 2, 3, 4, 5"
                ))
                .unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    /// The rows of the kline table outside BTCUSDT's 1m bars of day D.
    fn outside(path: &std::path::Path) -> Vec<Vec<Value>> {
        dump(path)
            .into_iter()
            .filter(|r| r[0] == Value::Text("market_data".into()))
            .filter(|r| {
                !(r[1] == Value::Text("BTCUSDT".into())
                    && r[3] == Value::Text("1m".into())
                    && matches!(r[2], Value::Integer(t) if (D..D + DAY).contains(&t)))
            })
            .collect()
    }

    /// The TEMP tables on the writer connection.
    async fn temp_tables(db: &AsyncMarketDB) -> i64 {
        db.write(|c, _| {
            Ok(c.query_row("SELECT COUNT(*) FROM sqlite_temp_master", [], |r| r.get(0))?)
        })
        .await
        .unwrap()
    }

    /// BTCUSDT's 1m bars of day D but minute 300, with the neighbouring days' edges, and
    /// rows of another symbol and another interval on day D.
    async fn seeded(path: &std::path::Path) -> AsyncMarketDB {
        let db = AsyncMarketDB::open(path).await.unwrap();
        let m1: Vec<Kline> = (-5..1445)
            .filter(|&i| i != 300)
            .map(|i| bar("BTCUSDT", D + i * MIN, Freq::M1, 1.5))
            .collect();
        db.store_data(m1, Freq::M1).await.unwrap();
        let eth: Vec<Kline> = (0..10)
            .map(|i| bar("ETHUSDT", D + i * MIN, Freq::M1, 1.5))
            .collect();
        db.store_data(eth, Freq::M1).await.unwrap();
        let m5: Vec<Kline> = (0..10)
            .map(|i| bar("BTCUSDT", D + i * 5 * MIN, Freq::M5, 1.5))
            .collect();
        db.store_data(m5, Freq::M5).await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_day_of_klines_is_replaced_and_diffed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = seeded(&path).await;
        let before = outside(&path);
        assert_eq!(before.len(), 10 + 10 + 10, "edges, ETHUSDT, 5m");

        // Minute 300 added, minute 100 removed, minute 200's close changed.
        let new: Vec<Kline> = (0..1440)
            .filter(|&i| i != 100)
            .map(|i| {
                let close = if i == 200 { 1.25 } else { 1.5 };
                bar("BTCUSDT", D + i * MIN, Freq::M1, close)
            })
            .collect();
        let scope = day_scope("BTCUSDT", vec![ImportTable::Klines(Freq::M1)]);
        let changes = db
            .replace_period(
                scope.clone(),
                klines(Freq::M1, new.clone()),
                Some(file("BTCUSDT", "2024-01-01")),
            )
            .await
            .unwrap();
        assert_eq!(
            changes,
            PeriodChanges {
                added: 1,
                removed: 1,
                changed: 1,
                unchanged: 1437
            }
        );
        assert_eq!(outside(&path), before, "rows outside the scope untouched");
        let conn = Connection::open(&path).unwrap();
        let close_at = |minute: i64| -> Option<f64> {
            conn.query_row(
                "SELECT close_price FROM market_data WHERE symbol = 'BTCUSDT' AND freq = '1m' \
                 AND timestamp = ?1",
                [D + minute * MIN],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
        };
        let in_day: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM market_data WHERE symbol = 'BTCUSDT' AND freq = '1m' \
                 AND timestamp >= ?1 AND timestamp < ?2",
                [D, D + DAY],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_day, 1439);
        assert_eq!(close_at(100), None);
        assert_eq!(close_at(300), Some(1.5));
        assert_eq!(close_at(200), Some(1.25));
        let files = db.source_files(SourceFileFilter::default()).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 1439, "the file record counts what it stored");
        assert_eq!(temp_tables(&db).await, 0);

        // The same version again changes nothing.
        let again = db
            .replace_period(scope, klines(Freq::M1, new), None)
            .await
            .unwrap();
        assert_eq!(
            again,
            PeriodChanges {
                unchanged: 1439,
                ..PeriodChanges::default()
            }
        );
        db.close().await;
    }

    #[tokio::test]
    async fn a_record_outside_the_scope_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = seeded(&path).await;
        let before = dump(&path);
        let scope = day_scope("BTCUSDT", vec![ImportTable::Klines(Freq::M1)]);
        let good = || klines(Freq::M1, vec![bar("BTCUSDT", D, Freq::M1, 1.0)]);
        let cases: Vec<(&str, Items)> = vec![
            (
                "a 1m kline of ETHUSDT at 2024-01-01T00:01:00",
                klines(Freq::M1, vec![bar("ETHUSDT", D + MIN, Freq::M1, 1.0)]),
            ),
            (
                "a 1m kline of BTCUSDT at 2024-01-02T00:00:00",
                klines(Freq::M1, vec![bar("BTCUSDT", D + DAY, Freq::M1, 1.0)]),
            ),
            (
                "a 1m kline of BTCUSDT at 2023-12-31T23:59:00",
                klines(Freq::M1, vec![bar("BTCUSDT", D - MIN, Freq::M1, 1.0)]),
            ),
            (
                "a 5m kline of BTCUSDT",
                klines(Freq::M5, vec![bar("BTCUSDT", D, Freq::M5, 1.0)]),
            ),
            (
                "a funding rate of BTCUSDT",
                vec![Ok(Records::Funding(vec![FundingRate {
                    symbol: "BTCUSDT".into(),
                    funding_time: D,
                    funding_rate: 0.0001,
                    mark_price: None,
                    index_price: None,
                }]))],
            ),
        ];
        for (offending, bad) in cases {
            // A good batch first: its rows and the deletion must be rolled back too.
            let items: Items = good().into_iter().chain(bad).collect();
            let err = db
                .replace_period(scope.clone(), items, Some(file("BTCUSDT", "2024-01-01")))
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{msg}");
            assert!(
                msg.contains("BTCUSDT 1m klines in [2024-01-01T00:00:00")
                    && msg.contains(offending),
                "{msg}"
            );
            assert_eq!(dump(&path), before, "{offending}: nothing changed");
            assert_eq!(temp_tables(&db).await, 0, "{offending}: the copy is gone");
        }

        // An input error and an invalid row roll back the same way.
        let broken: Items = good().into_iter().chain([Err(Broken)]).collect();
        let err = db
            .replace_period(scope.clone(), broken, Some(file("BTCUSDT", "2024-01-01")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Input(e) if e.to_string() == "broken input"),
            "{err}"
        );
        let mut zero = bar("BTCUSDT", D + MIN, Freq::M1, 1.0);
        zero.low = 0.0;
        let invalid: Items = good()
            .into_iter()
            .chain(klines(Freq::M1, vec![zero]))
            .collect();
        let err = db
            .replace_period(scope.clone(), invalid, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert_eq!(dump(&path), before);
        assert_eq!(temp_tables(&db).await, 0);

        // Nothing is left in the way of the next call.
        let changes = db.replace_period(scope, good(), None).await.unwrap();
        assert_eq!(
            changes,
            PeriodChanges {
                added: 0,
                removed: 1438,
                changed: 1,
                unchanged: 0
            }
        );
        db.close().await;
    }

    #[tokio::test]
    async fn nulls_compare_equal() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("n.db")).await.unwrap();
        let rate = |h: i64, mark: Option<f64>, index: Option<f64>| FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: D + h * 3_600_000,
            funding_rate: 0.0001,
            mark_price: mark,
            index_price: index,
        };
        let old = vec![
            rate(0, None, None),
            rate(8, Some(42_000.0), None),
            rate(16, None, Some(42_000.0)),
        ];
        db.store_funding_rate(old).await.unwrap();
        let new: Items = vec![Ok(Records::Funding(vec![
            rate(0, None, None),
            rate(8, Some(42_000.0), None),
            rate(16, None, None),
        ]))];
        let changes = db
            .replace_period(
                day_scope("BTCUSDT", vec![ImportTable::FundingRate]),
                new,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            changes,
            PeriodChanges {
                changed: 1,
                unchanged: 2,
                ..PeriodChanges::default()
            }
        );
        db.close().await;
    }

    #[tokio::test]
    async fn a_metrics_scope_covers_both_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let db = AsyncMarketDB::open(&path).await.unwrap();
        let oi = |t: i64, v: f64| OpenInterest {
            symbol: "BTCUSDT".into(),
            time: t,
            interval: Freq::M5,
            open_interest: v,
            open_interest_value: Some(v * 2.0),
        };
        let lsr = |t: i64, r: RatioType| LongShortRatio {
            symbol: "BTCUSDT".into(),
            timestamp: t,
            period: Freq::M5,
            ratio_type: r,
            long_short_ratio: 1.5,
            long_account: Some(0.6),
            short_account: None,
        };
        let m5 = 5 * MIN;
        db.store_metrics(
            vec![
                oi(D, 1.0),
                oi(D + m5, 2.0),
                oi(D + 2 * m5, 3.0),
                oi(D + DAY, 9.0),
            ],
            vec![
                lsr(D, RatioType::TopTraderAccount),
                lsr(D + m5, RatioType::TopTraderAccount),
                lsr(D, RatioType::TakerVol),
            ],
        )
        .await
        .unwrap();
        let scope = day_scope(
            "BTCUSDT",
            vec![ImportTable::OpenInterest, ImportTable::LongShortRatio],
        );

        // A scope of one table refuses rows of the other.
        let only_oi = day_scope("BTCUSDT", vec![ImportTable::OpenInterest]);
        let before = dump(&path);
        let stray: Items = vec![Ok(Records::Metrics {
            open_interest: vec![oi(D, 1.0)],
            long_short_ratio: vec![lsr(D, RatioType::GlobalAccount)],
        })];
        let err = db.replace_period(only_oi, stray, None).await.unwrap_err();
        assert!(
            err.to_string().contains("a long/short ratio of BTCUSDT"),
            "{err}"
        );
        assert_eq!(dump(&path), before);

        let new: Items = vec![Ok(Records::Metrics {
            // 0 same, 5m changed, 10m removed, 15m added.
            open_interest: vec![oi(D, 1.0), oi(D + m5, 2.5), oi(D + 3 * m5, 4.0)],
            // Top trader ones the same, taker removed, global added.
            long_short_ratio: vec![
                lsr(D, RatioType::TopTraderAccount),
                lsr(D + m5, RatioType::TopTraderAccount),
                lsr(D, RatioType::GlobalAccount),
            ],
        })];
        let mut f = file("BTCUSDT", "2024-01-01");
        f.kind = "metrics".into();
        f.interval = String::new();
        let changes = db.replace_period(scope, new, Some(f)).await.unwrap();
        assert_eq!(
            changes,
            PeriodChanges {
                added: 2,
                removed: 2,
                changed: 1,
                unchanged: 3
            }
        );
        let files = db.source_files(SourceFileFilter::default()).await.unwrap();
        assert_eq!(files[0].rows, 6);
        let next_day: Vec<Vec<Value>> = dump(&path)
            .into_iter()
            .filter(|r| r[2] == Value::Integer(D + DAY))
            .collect();
        assert_eq!(next_day.len(), 1, "the next day's sample is untouched");
        assert_eq!(next_day[0][4], Value::Real(9.0));
        db.close().await;
    }

    #[tokio::test]
    async fn a_scope_without_tables_or_with_a_bad_symbol_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("e.db")).await.unwrap();
        let err = db
            .replace_period(day_scope("BTCUSDT", vec![]), Items::new(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("names no table"), "{err}");
        let err = db
            .replace_period(
                day_scope("BTC'USDT", vec![ImportTable::FundingRate]),
                Items::new(),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Model(_)), "{err}");
        db.close().await;
    }
}
