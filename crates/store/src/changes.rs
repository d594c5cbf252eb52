//! The change record: per table, series key, symbol and UTC day, how many rows are stored,
//! their first and last timestamp, and a stamp that changes whenever those rows change
//! (table `marketdb_changes`).
//!
//! It is kept by two means that together leave no writer out:
//! - **triggers** in the file, on insert, update and delete of the four data tables. They
//!   fire for every program that writes the file (cryptoservice, the `sqlite3` shell) and
//!   mark the touched days `stale`; they cost about a microsecond per row, so
//! - marketdb's **bulk inserts** turn the triggers off for their own statements
//!   ([`untracked`]) and mark the days they wrote themselves, once per (symbol, day).
//!
//! Every marketdb write transaction ends with [`settle`]: each stale day is counted again
//! from its rows (an index range, O(changes)) and gets a new random stamp. So after a
//! marketdb write nothing is stale; after another program's write the touched days are
//! stale until marketdb's next write. Readers never write: they use the record for clean
//! days and count stale days from the rows ([`group_stats`]).
//!
//! A file whose record is missing or incomplete (made by another program and never opened
//! for writing by marketdb, or whose triggers were dropped) is rebuilt from the rows at the
//! next writable open ([`install`]); until then readers fall back to counting rows.

use std::cell::Cell;
use std::collections::BTreeMap;

use marketdb_model::time::DAY_MS;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::Value;
use rusqlite::{Connection, params};

use crate::schema::table_exists;
use crate::{Result, Tables};

/// The record's table.
pub const CHANGES_TABLE: &str = "marketdb_changes";

/// The day of rows whose timestamp is not an integer (NULL, text, a fraction): counted, in
/// no partition, and a reason for readers to count such a table from its rows.
pub(crate) const ODD_DAY: i64 = -1_000_000_000;

const CHANGES_DDL: &str = "CREATE TABLE IF NOT EXISTS marketdb_changes (
    tbl TEXT NOT NULL, key1 TEXT NOT NULL, key2 TEXT NOT NULL, symbol TEXT NOT NULL,
    day INTEGER NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0, first_ts INTEGER, last_ts INTEGER,
    stamp INTEGER NOT NULL DEFAULT 0, stale INTEGER NOT NULL DEFAULT 1,
    unchecked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tbl, key1, key2, symbol, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS marketdb_changes_stale ON marketdb_changes (stale) WHERE stale = 1;";

/// Which table of a file, and the columns that key its series after `symbol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tracked {
    pub table: &'static str,
    pub key1: Option<&'static str>,
    pub key2: Option<&'static str>,
}

/// The four tracked tables of a file.
pub(crate) fn tracked(t: &Tables) -> [Tracked; 4] {
    [
        Tracked {
            table: t.kline,
            key1: Some("freq"),
            key2: None,
        },
        Tracked {
            table: t.funding,
            key1: None,
            key2: None,
        },
        Tracked {
            table: t.open_interest,
            key1: Some("interval"),
            key2: None,
        },
        Tracked {
            table: t.long_short_ratio,
            key1: Some("period"),
            key2: Some("ratio_type"),
        },
    ]
}

/// The UTC day of a timestamp in milliseconds (floor, also before 1970).
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS)
}

/// The day expression of a trigger for the row `r` (`NEW` or `OLD`): floor division in
/// SQL, [`ODD_DAY`] for a timestamp that is not an integer.
fn day_sql(r: &str) -> String {
    format!(
        "CASE WHEN typeof({r}.timestamp) = 'integer' THEN ({r}.timestamp - \
         ((({r}.timestamp % {DAY_MS}) + {DAY_MS}) % {DAY_MS})) / {DAY_MS} ELSE {ODD_DAY} END"
    )
}

fn key_sql(r: &str, col: Option<&str>) -> String {
    match col {
        Some(c) => format!("ifnull({r}.{c}, '')"),
        None => "''".to_owned(),
    }
}

/// The mark of the row `r`: `NEW` rows come from a program that did not validate them
/// (`unchecked`, so `check` reads that day's rows); a deleted `OLD` row leaves nothing new
/// to validate.
fn mark_sql(t: &Tracked, r: &str) -> String {
    let (unchecked, set) = if r == "NEW" {
        (
            "1",
            "stale = 1, unchecked = 1 WHERE stale = 0 OR unchecked = 0",
        )
    } else {
        ("0", "stale = 1 WHERE stale = 0")
    };
    format!(
        "INSERT INTO marketdb_changes (tbl, key1, key2, symbol, day, unchecked) VALUES ('{}', \
         {}, {}, ifnull({r}.symbol, ''), {}, {unchecked}) ON CONFLICT (tbl, key1, key2, symbol, \
         day) DO UPDATE SET {set};",
        t.table,
        key_sql(r, t.key1),
        key_sql(r, t.key2),
        day_sql(r)
    )
}

fn trigger_name(table: &str, event: &str) -> String {
    format!("marketdb_changes_{table}_{event}")
}

/// The three triggers of one table.
fn triggers_sql(t: &Tracked) -> String {
    let table = t.table;
    format!(
        "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON {table} BEGIN {} END;\n\
         CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON {table} BEGIN {} END;\n\
         CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE ON {table} BEGIN {} {} END;\n",
        trigger_name(table, "insert"),
        mark_sql(t, "NEW"),
        trigger_name(table, "delete"),
        mark_sql(t, "OLD"),
        trigger_name(table, "update"),
        mark_sql(t, "OLD"),
        mark_sql(t, "NEW"),
    )
}

/// Whether the file holds the record and all twelve triggers (read only).
pub(crate) fn is_complete(conn: &Connection, t: &Tables) -> Result<bool> {
    if !table_exists(conn, CHANGES_TABLE)?
        || !crate::schema::has_column(conn, CHANGES_TABLE, "unchecked")?
    {
        return Ok(false);
    }
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1")?;
    for tr in tracked(t) {
        for event in ["insert", "delete", "update"] {
            if !stmt.exists([trigger_name(tr.table, event)])? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Creates the record and its triggers when the file lacks them (a new file, one made by
/// another program, one whose triggers were dropped): the record is then rebuilt from
/// every row, once. Runs in the writer's transaction at open.
pub(crate) fn install(conn: &Connection, t: &Tables, path: &str) -> Result<()> {
    if is_complete(conn, t)? {
        return Ok(());
    }
    tracing::info!("{path}: building the change record from the stored rows (once)");
    // Whatever part of a record is there (an older layout, some triggers) is rebuilt.
    for tr in tracked(t) {
        for event in ["insert", "delete", "update"] {
            conn.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS {}",
                trigger_name(tr.table, event)
            ))?;
        }
    }
    conn.execute_batch("DROP TABLE IF EXISTS marketdb_changes")?;
    conn.execute_batch(CHANGES_DDL)?;
    for tr in tracked(t) {
        conn.execute_batch(&triggers_sql(&tr))?;
        let (k1, k2) = (key_sql("r", tr.key1), key_sql("r", tr.key2));
        let day = day_sql("r");
        // Stale marks, then one settle: the same counting as any later change. Rows
        // already there were written by whoever: unchecked.
        conn.execute(
            &format!(
                "INSERT OR IGNORE INTO marketdb_changes (tbl, key1, key2, symbol, day, \
                 unchecked) SELECT DISTINCT '{}', {k1}, {k2}, ifnull(r.symbol, ''), {day}, 1 \
                 FROM {} AS r",
                tr.table, tr.table
            ),
            [],
        )?;
    }
    settle(conn, t)?;
    Ok(())
}

/// One (table, key1, key2, symbol, day) a bulk insert wrote.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mark {
    pub table: &'static str,
    pub key1: String,
    pub key2: String,
    pub symbol: String,
    pub day: i64,
}

/// Turns this connection's triggers on or off; a no-op when already so (a change
/// expires every prepared statement of the connection, which then prepares again).
fn set_triggers(conn: &Connection, on: bool) -> Result<()> {
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER as TRIGGERS;
    if conn.db_config(TRIGGERS)? != on {
        conn.set_db_config(TRIGGERS, on)?;
    }
    Ok(())
}

thread_local! {
    /// Whether the statements this thread prepares now belong to a declared write
    /// ([`untracked`], [`with_triggers`]).
    static DECLARED: Cell<bool> = const { Cell::new(false) };
}

/// Puts the thread's declaration back when dropped, also when the write panics (the
/// blocking threads that run writes are reused).
struct Declaration(bool);

impl Drop for Declaration {
    fn drop(&mut self) {
        DECLARED.set(self.0);
    }
}

/// Runs `f` as a declared write (see [`guard_writer`]).
fn declared<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _restore = Declaration(DECLARED.replace(true));
    f()
}

/// The data tables of both schema generations.
const DATA_TABLES: [&str; 8] = [
    "market_data",
    "funding_rate",
    "open_interest",
    "long_short_ratio",
    "klines",
    "funding_rates",
    "open_interests",
    "long_short_ratios",
];

/// Set up once on the store's writer connection (through the pool's writer setup): its
/// triggers are off, and an authorizer refuses to prepare any statement that inserts,
/// updates or deletes rows of a data table outside [`untracked`] (which marks what it
/// writes) or [`with_triggers`] (where the triggers mark it). A new write path that
/// forgets the change record therefore fails at once ("not authorized") instead of
/// leaving the record stale.
pub(crate) fn guard_writer(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.authorizer(Some(|ctx: AuthContext<'_>| {
        let table = match ctx.action {
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => table_name,
            _ => return Authorization::Allow,
        };
        let data = ctx.database_name.is_some_and(|d| d == "main")
            && DATA_TABLES.iter().any(|t| t.eq_ignore_ascii_case(table));
        if data && !DECLARED.get() {
            tracing::error!(
                "refused an undeclared write to {table} (it would bypass the change record)"
            );
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    }))?;
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER as TRIGGERS;
    conn.set_db_config(TRIGGERS, false)?;
    Ok(())
}

/// Runs a write that is not a bulk insert (a delete, a replacement) with the triggers on,
/// so they record exactly what it changes.
pub(crate) fn with_triggers<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    set_triggers(conn, true)?;
    declared(f)
}

/// Runs `write` with this connection's triggers off, then records `marks` (the days it
/// writes) as stale for [`settle`]. Only for statements that write exactly the rows the
/// marks describe. On the store's writer the triggers are off already ([`guard_writer`]);
/// [`with_triggers`] turns them on, and this off again (each change prepares the cached
/// statements again, so they are not turned on and off around every batch).
pub(crate) fn untracked<T>(
    conn: &Connection,
    marks: impl IntoIterator<Item = Mark>,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !table_exists(conn, CHANGES_TABLE)? {
        // A bare connection (no writable open prepared it): no record to keep.
        return declared(write);
    }
    set_triggers(conn, false)?;
    let out = declared(write)?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO marketdb_changes (tbl, key1, key2, symbol, day) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tbl, key1, key2, symbol, day) DO UPDATE SET stale = 1 WHERE stale = 0",
    )?;
    for m in marks {
        stmt.execute(params![m.table, m.key1, m.key2, m.symbol, m.day])?;
    }
    Ok(out)
}

/// Marks from rows in key order: one per run of equal (key1, key2, symbol, day).
pub(crate) fn marks_of<'a>(
    table: &'static str,
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str, i64)>,
) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    for (k1, k2, symbol, ts) in rows {
        let day = day_of(ts);
        if let Some(last) = out.last()
            && last.day == day
            && last.symbol == symbol
            && last.key1 == k1
            && last.key2 == k2
        {
            continue;
        }
        out.push(Mark {
            table,
            key1: k1.to_owned(),
            key2: k2.to_owned(),
            symbol: symbol.to_owned(),
            day,
        });
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Rows, first and last timestamp of one recorded day, counted from the table.
pub(crate) type DayCount = (i64, Option<i64>, Option<i64>);

/// Counts the rows of one (key1, key2, symbol, day) of `tr`. An empty key also matches
/// NULL (the triggers record NULL as empty).
pub(crate) fn count_day(
    conn: &Connection,
    tr: &Tracked,
    key1: &Value,
    key2: &Value,
    symbol: &Value,
    day: i64,
) -> Result<DayCount> {
    let empty = |v: &Value| matches!(v, Value::Text(s) if s.is_empty());
    let mut conds = Vec::new();
    let mut args: Vec<&Value> = Vec::new();
    for (col, v) in [("symbol", symbol)]
        .into_iter()
        .chain(tr.key1.map(|c| (c, key1)))
        .chain(tr.key2.map(|c| (c, key2)))
    {
        args.push(v);
        let i = args.len();
        conds.push(if empty(v) {
            format!("({col} = ?{i} OR {col} IS NULL)")
        } else {
            format!("{col} = ?{i}")
        });
    }
    let (lo, hi) = (
        Value::Integer(day.saturating_mul(DAY_MS)),
        Value::Integer(day.saturating_add(1).saturating_mul(DAY_MS)),
    );
    let range = if day == ODD_DAY {
        "typeof(timestamp) != 'integer'".to_owned()
    } else {
        args.push(&lo);
        args.push(&hi);
        format!(
            "timestamp >= ?{} AND timestamp < ?{}",
            args.len() - 1,
            args.len()
        )
    };
    let sql = format!(
        "SELECT COUNT(*), MIN(timestamp), MAX(timestamp) FROM {} WHERE {} AND {range}",
        tr.table,
        conds.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let row = stmt.query_row(rusqlite::params_from_iter(args), |r| {
        let as_int = |v: rusqlite::types::ValueRef<'_>| match v {
            rusqlite::types::ValueRef::Integer(i) => Some(i),
            _ => None,
        };
        Ok((
            r.get::<_, i64>(0)?,
            as_int(r.get_ref(1)?),
            as_int(r.get_ref(2)?),
        ))
    })?;
    Ok(row)
}

/// A stale day of the record.
pub(crate) struct StaleDay {
    pub table: String,
    pub key1: Value,
    pub key2: Value,
    pub symbol: Value,
    pub day: i64,
}

/// Every stale day (a partial index: O(stale)).
pub(crate) fn stale_days(conn: &Connection) -> Result<Vec<StaleDay>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tbl, key1, key2, symbol, day FROM marketdb_changes WHERE stale = 1",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StaleDay {
                table: r.get(0)?,
                key1: r.get(1)?,
                key2: r.get(2)?,
                symbol: r.get(3)?,
                day: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Counts every stale day again and gives each a new stamp (one random number per call);
/// a day left without rows leaves the record. Ends every marketdb write transaction; a
/// file without the record (a read-only open never creates it) is left alone.
pub(crate) fn settle(conn: &Connection, t: &Tables) -> Result<usize> {
    if !table_exists(conn, CHANGES_TABLE)? {
        return Ok(0);
    }
    let stale = stale_days(conn)?;
    if stale.is_empty() {
        return Ok(0);
    }
    let stamp: i64 = conn.query_row("SELECT random()", [], |r| r.get(0))?;
    let by_name: BTreeMap<&str, Tracked> =
        tracked(t).into_iter().map(|tr| (tr.table, tr)).collect();
    let mut update = conn.prepare_cached(
        "UPDATE marketdb_changes SET rows = ?6, first_ts = ?7, last_ts = ?8, stamp = ?9, \
         stale = 0 WHERE tbl = ?1 AND key1 = ?2 AND key2 = ?3 AND symbol = ?4 AND day = ?5",
    )?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM marketdb_changes WHERE tbl = ?1 AND key1 = ?2 AND key2 = ?3 \
         AND symbol = ?4 AND day = ?5",
    )?;
    for s in &stale {
        let Some(tr) = by_name.get(s.table.as_str()) else {
            // A table of another era (the file changed tables): nothing to count.
            delete.execute(params![s.table, s.key1, s.key2, s.symbol, s.day])?;
            continue;
        };
        let (rows, first, last) = count_day(conn, tr, &s.key1, &s.key2, &s.symbol, s.day)?;
        if rows == 0 {
            delete.execute(params![s.table, s.key1, s.key2, s.symbol, s.day])?;
        } else {
            update.execute(params![
                s.table, s.key1, s.key2, s.symbol, s.day, rows, first, last, stamp
            ])?;
        }
    }
    tracing::debug!(days = stale.len(), "change record settled");
    Ok(stale.len())
}

/// Per-key statistics of one table read from the record: recorded days as they are, stale
/// days counted from their rows. `None` when the record cannot stand for the table (the
/// file has no complete record, or the table holds rows with an empty or NULL key or
/// symbol, or a timestamp that is not an integer): the caller then counts rows.
pub(crate) fn group_stats(
    conn: &Connection,
    t: &Tables,
    tr: &Tracked,
) -> Result<Option<Vec<crate::series::GroupStats>>> {
    use crate::series::{GroupStats, SqlValue};
    if !is_complete(conn, t)? {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT key1, key2, symbol, day, rows, first_ts, last_ts, stale FROM marketdb_changes \
         WHERE tbl = ?1 ORDER BY key1, key2, symbol, day",
    )?;
    let mut rows = stmt.query([tr.table])?;
    let mut out: Vec<GroupStats> = Vec::new();
    let mut last_symbol: Option<(Value, Value, Value)> = None;
    let text = |v: &Value| match v {
        Value::Text(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    while let Some(r) = rows.next()? {
        let (key1, key2, symbol): (Value, Value, Value) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let day: i64 = r.get(3)?;
        let (mut n, mut first, mut last): DayCount = (r.get(4)?, r.get(5)?, r.get(6)?);
        let usable_key = |v: &Value, col: Option<&str>| col.is_none() || text(v).is_some();
        if day == ODD_DAY
            || text(&symbol).is_none()
            || !usable_key(&key1, tr.key1)
            || !usable_key(&key2, tr.key2)
        {
            return Ok(None);
        }
        if r.get::<_, i64>(7)? != 0 {
            (n, first, last) = count_day(conn, tr, &key1, &key2, &symbol, day)?;
        }
        if n == 0 {
            continue;
        }
        let mut key = Vec::new();
        for (v, col) in [(&key1, tr.key1), (&key2, tr.key2)] {
            if col.is_some() {
                key.push(SqlValue::Text(text(v).unwrap_or_default().into_bytes()));
            }
        }
        let new_group = out.last().is_none_or(|g| g.key != key);
        if new_group {
            out.push(GroupStats {
                key,
                record_count: 0,
                unique_symbols: 0,
                earliest: None,
                latest: None,
            });
            last_symbol = None;
        }
        let Some(g) = out.last_mut() else {
            continue;
        };
        g.record_count += u64::try_from(n).unwrap_or(0);
        let this = (key1, key2, symbol);
        if last_symbol.as_ref() != Some(&this) {
            g.unique_symbols += 1;
            last_symbol = Some(this);
        }
        if let Some(f) = first {
            g.earliest = Some(match &g.earliest {
                Some(SqlValue::Int(e)) if *e <= f => SqlValue::Int(*e),
                _ => SqlValue::Int(f),
            });
        }
        if let Some(l) = last {
            g.latest = Some(match &g.latest {
                Some(SqlValue::Int(e)) if *e >= l => SqlValue::Int(*e),
                _ => SqlValue::Int(l),
            });
        }
    }
    Ok(Some(out))
}

/// A table the change record follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordedTable {
    Klines,
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

/// One recorded (series, day): what the store knows about it without reading its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedDay {
    pub symbol: String,
    /// `freq`, `interval` or `period` (empty for funding).
    pub key1: String,
    /// `ratio_type` of long/short ratios (empty otherwise).
    pub key2: String,
    /// UTC day number (milliseconds / 86,400,000).
    pub day: i64,
    pub rows: u64,
    /// Changes whenever the day's rows change (random per settling write).
    pub stamp: i64,
    /// Changed by another program since marketdb last counted it: `rows` and `stamp` are
    /// out of date.
    pub stale: bool,
}

/// The recorded days of `table` (of series `key1` when given) in `[from_day, to_day)`, in
/// key order; `None` when the file holds no complete record.
pub(crate) fn recorded_days(
    conn: &Connection,
    t: &Tables,
    table: RecordedTable,
    key1: Option<&str>,
    days: (i64, i64),
) -> Result<Option<Vec<RecordedDay>>> {
    if !is_complete(conn, t)? {
        return Ok(None);
    }
    let tr = tracked(t)[table as usize];
    let mut stmt = conn.prepare_cached(
        "SELECT symbol, key1, key2, day, rows, stamp, stale FROM marketdb_changes \
         WHERE tbl = ?1 AND (?2 IS NULL OR key1 = ?2) AND day >= ?3 AND day < ?4 \
         ORDER BY key1, key2, symbol, day",
    )?;
    let text = |v: Value| match v {
        Value::Text(s) => s,
        other => format!("{other:?}"),
    };
    let out = stmt
        .query_map(params![tr.table, key1, days.0, days.1], |r| {
            Ok(RecordedDay {
                symbol: text(r.get(0)?),
                key1: text(r.get(1)?),
                key2: text(r.get(2)?),
                day: r.get(3)?,
                rows: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                stamp: r.get(5)?,
                stale: r.get::<_, i64>(6)? != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(out))
}

impl crate::AsyncMarketDB {
    /// What the change record holds for `table` (series `key1` when given: a kline
    /// interval such as `1m`) over the UTC days `[from_day, to_day)`; `None` when the file
    /// has no complete record (made by another program and never opened for writing by
    /// marketdb). A read: stale days stay stale.
    pub async fn recorded_days(
        &self,
        table: RecordedTable,
        key1: Option<String>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Option<Vec<RecordedDay>>> {
        self.read(move |c, t| recorded_days(c, t, table, key1.as_deref(), (from_day, to_day)))
            .await
    }
}

/// The days of `symbol`'s `freq` klines in `[from_day, to_day)` that the record vouches are
/// whole: counted since their last change (not stale), written only through marketdb's
/// validating writes (not `unchecked`), holding `per_day` rows from the day's first slot to
/// its last (`step` apart). With rows on the grid (validated) and distinct open times (the
/// key), that is every slot of the day. Sorted. Empty when the file has no record.
pub(crate) fn whole_days(
    conn: &Connection,
    t: &Tables,
    symbol: &str,
    freq: &str,
    days: (i64, i64),
    per_day: i64,
    step: i64,
) -> Result<Vec<i64>> {
    if !is_complete(conn, t)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT day FROM marketdb_changes WHERE tbl = ?1 AND key1 = ?2 AND key2 = '' \
         AND symbol = ?3 AND day >= ?4 AND day < ?5 AND stale = 0 AND unchecked = 0 \
         AND rows = ?6 AND first_ts = day * ?7 AND last_ts = day * ?7 + ?7 - ?8 ORDER BY day",
    )?;
    let out = stmt
        .query_map(
            params![t.kline, freq, symbol, days.0, days.1, per_day, DAY_MS, step],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(out)
}
