//! The database schema: the Python v1.9 tables (`market_data`, `funding_rate`,
//! `open_interest`, `long_short_ratio`) with their names, columns and primary-key column
//! sets, in one of three physical [`Layout`]s; detection of an existing file's tables
//! ([`Tables`], including Python 1.10+ files whose tables are `klines`, `funding_rates`...),
//! and forward-only migrations tracked in `PRAGMA user_version`.
//!
//! It never rewrites an existing table or drops an index: a file created by Python keeps
//! its layout and its secondary indexes.

use rusqlite::{Connection, OptionalExtension};

use crate::{Error, Result};

/// The schema version this build writes to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// Physical layout of newly created tables. The column names and the primary-key column
/// sets are the same in all three, so the Python original's `INSERT OR REPLACE` and its
/// queries work on every one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Exactly the Python v1.9 DDL: rowid tables, primary key `(symbol, timestamp, freq)`,
    /// plus its ten secondary indexes.
    Python,
    /// Rowid tables with the primary key ordered `(symbol, freq, timestamp)` and no
    /// secondary index.
    PkOnly,
    /// `WITHOUT ROWID` tables clustered on `(symbol, freq, timestamp)`: each symbol's bars
    /// of one interval are stored contiguously in time order (the default, chosen by
    /// measurement: see `docs/architecture.md`).
    WithoutRowid,
}

/// The layout of tables this build creates.
pub const DEFAULT_LAYOUT: Layout = Layout::WithoutRowid;

const KLINE_COLUMNS: &str = "symbol TEXT, timestamp INTEGER, freq TEXT, \
    open_price REAL, high_price REAL, low_price REAL, close_price REAL, \
    volume REAL, quote_volume REAL, trades_count INTEGER, \
    taker_buy_volume REAL, taker_buy_quote_volume REAL, \
    taker_sell_volume REAL, taker_sell_quote_volume REAL";
const FUNDING_COLUMNS: &str = "symbol TEXT, timestamp INTEGER, funding_rate REAL, \
    funding_time INTEGER, mark_price REAL, index_price REAL";
const OI_COLUMNS: &str = "symbol TEXT, timestamp INTEGER, interval TEXT, \
    open_interest REAL, open_interest_value REAL";
const LSR_COLUMNS: &str = "symbol TEXT, timestamp INTEGER, period TEXT, ratio_type TEXT, \
    long_short_ratio REAL, long_account REAL, short_account REAL";

/// The secondary indexes the Python v1.9 `MarketDB` creates (and re-creates with
/// `CREATE INDEX IF NOT EXISTS` every time it opens a file).
pub const PYTHON_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS idx_symbol ON market_data(symbol);
CREATE INDEX IF NOT EXISTS idx_timestamp ON market_data(timestamp);
CREATE INDEX IF NOT EXISTS idx_freq ON market_data(freq);
CREATE INDEX IF NOT EXISTS idx_symbol_freq_timestamp ON market_data(symbol, freq, timestamp);
CREATE INDEX IF NOT EXISTS idx_funding_symbol ON funding_rate(symbol);
CREATE INDEX IF NOT EXISTS idx_funding_timestamp ON funding_rate(timestamp);
CREATE INDEX IF NOT EXISTS idx_oi_symbol ON open_interest(symbol);
CREATE INDEX IF NOT EXISTS idx_oi_timestamp ON open_interest(timestamp);
CREATE INDEX IF NOT EXISTS idx_lsr_symbol ON long_short_ratio(symbol);
CREATE INDEX IF NOT EXISTS idx_lsr_timestamp ON long_short_ratio(timestamp);
";

impl Layout {
    /// `CREATE TABLE IF NOT EXISTS` statements (and, for [`Layout::Python`], its indexes)
    /// for the four v1.9 tables.
    pub fn ddl(self) -> String {
        let (pk, suffix): ([&str; 4], &str) = match self {
            Layout::Python => (
                [
                    "symbol, timestamp, freq",
                    "symbol, timestamp",
                    "symbol, timestamp, interval",
                    "symbol, timestamp, period, ratio_type",
                ],
                "",
            ),
            Layout::PkOnly | Layout::WithoutRowid => (
                [
                    "symbol, freq, timestamp",
                    "symbol, timestamp",
                    "symbol, interval, timestamp",
                    "symbol, period, ratio_type, timestamp",
                ],
                if self == Layout::WithoutRowid {
                    " WITHOUT ROWID"
                } else {
                    ""
                },
            ),
        };
        let mut sql = String::new();
        for (i, (name, cols)) in [
            ("market_data", KLINE_COLUMNS),
            ("funding_rate", FUNDING_COLUMNS),
            ("open_interest", OI_COLUMNS),
            ("long_short_ratio", LSR_COLUMNS),
        ]
        .into_iter()
        .enumerate()
        {
            sql.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {name} ({cols}, PRIMARY KEY ({})){suffix};\n",
                pk[i]
            ));
        }
        if self == Layout::Python {
            sql.push_str(PYTHON_INDEXES);
        }
        sql
    }
}

/// Which generation of the Python schema a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// `market_data`, `funding_rate`, `open_interest`, `long_short_ratio` (Python v1.9 and
    /// marketdb).
    V19,
    /// `klines`, `funding_rates`, `open_interests`, `long_short_ratios` (Python 1.10 and
    /// later, whose `klines` also has a `NOT NULL close_time`).
    V110,
}

/// The tables of an opened database. Names come from this fixed set only, so they are
/// safe to format into SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub era: Era,
    pub kline: &'static str,
    pub funding: &'static str,
    pub open_interest: &'static str,
    pub long_short_ratio: &'static str,
    /// Whether the kline table has a `close_time` column that writes must fill.
    pub kline_close_time: bool,
    /// Number of secondary (non primary-key) indexes on the kline table, as found when the
    /// database was opened.
    pub kline_indexes: usize,
}

impl Tables {
    pub(crate) const V19: Tables = Tables {
        era: Era::V19,
        kline: "market_data",
        funding: "funding_rate",
        open_interest: "open_interest",
        long_short_ratio: "long_short_ratio",
        kline_close_time: false,
        kline_indexes: 0,
    };
    /// The `ratio_type` this file's era writes: the Python v1.9 spelling (`account`,
    /// `position`, `global`, `taker`) in v1.9 tables, which are also marketdb's own, so that
    /// cryptoservice 1.9's calls (default `ratio_type="account"`) find the rows; the Binance
    /// Vision spelling (`toptrader_account`...) in the tables of Python 1.10 and later,
    /// whose readers use it. Reads accept both.
    pub fn ratio_type_name(&self, r: marketdb_model::RatioType) -> &'static str {
        match self.era {
            Era::V19 => r.legacy(),
            Era::V110 => r.as_str(),
        }
    }

    /// The spelling [`Tables::ratio_type_name`] does not write (accepted on reads).
    pub fn other_ratio_type_name(&self, r: marketdb_model::RatioType) -> &'static str {
        match self.era {
            Era::V19 => r.as_str(),
            Era::V110 => r.legacy(),
        }
    }

    /// The four table names, kline table first.
    pub fn names(&self) -> [&'static str; 4] {
        [
            self.kline,
            self.funding,
            self.open_interest,
            self.long_short_ratio,
        ]
    }

    const V110: Tables = Tables {
        era: Era::V110,
        kline: "klines",
        funding: "funding_rates",
        open_interest: "open_interests",
        long_short_ratio: "long_short_ratios",
        kline_close_time: true,
        kline_indexes: 0,
    };
}

/// One forward-only migration: brings a file from `version - 1` to `version`.
struct Migration {
    version: i64,
    name: &'static str,
    apply: fn(&Connection, Era) -> rusqlite::Result<()>,
}

/// The record of files the exchange does not publish (or publishes broken), kept by
/// `marketdb download`. An extra table: the Python original never reads it, and creating
/// it needs no schema version (every writable open creates it when missing, and adds
/// `answer` to a file made before that column, see [`add_gap_answer`]).
pub(crate) const SOURCE_GAPS_DDL: &str = "CREATE TABLE IF NOT EXISTS source_gaps (
    market TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    period TEXT NOT NULL, status TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_checked INTEGER NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (market, kind, symbol, interval, period)
) WITHOUT ROWID;";

/// Adds `source_gaps.answer` to a file whose table predates it (its rows answer `""`).
/// `CREATE TABLE IF NOT EXISTS` leaves an existing table as it was, hence the check.
fn add_gap_answer(conn: &Connection) -> rusqlite::Result<()> {
    if !has_column(conn, "source_gaps", "answer")? {
        tracing::info!("adding column answer to table source_gaps");
        conn.execute_batch("ALTER TABLE source_gaps ADD COLUMN answer TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// Every migration, in version order. A Python-created file has `user_version` 0.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "create the missing v1.9 tables",
    apply: create_missing_tables,
}];

fn create_missing_tables(conn: &Connection, era: Era) -> rusqlite::Result<()> {
    // A Python 1.10+ file keeps its own tables; creating empty v1.9 tables beside them
    // would hide its data from the next open.
    if era == Era::V19 {
        conn.execute_batch(&DEFAULT_LAYOUT.ddl())?;
    }
    Ok(())
}

pub(crate) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    names.collect()
}

/// Whether `table` (one of this crate's fixed names) has `column`; false without the table.
pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    Ok(columns(conn, table)?
        .iter()
        .any(|c| c.eq_ignore_ascii_case(column)))
}

fn check_columns(conn: &Connection, path: &str, table: &str, required: &[&str]) -> Result<()> {
    if !table_exists(conn, table)? {
        return Ok(());
    }
    let have = columns(conn, table)?;
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !have.iter().any(|h| h.eq_ignore_ascii_case(c)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Schema {
            path: path.to_owned(),
            reason: format!("table {table} lacks column(s) {}", missing.join(", ")),
        })
    }
}

fn check_version(conn: &Connection, path: &str) -> Result<i64> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Schema {
            path: path.to_owned(),
            reason: format!(
                "schema version {version} is newer than this build understands \
                 ({SCHEMA_VERSION}); upgrade marketdb"
            ),
        });
    }
    Ok(version)
}

fn detect_era(conn: &Connection) -> rusqlite::Result<Era> {
    Ok(
        if !table_exists(conn, "market_data")? && table_exists(conn, "klines")? {
            Era::V110
        } else {
            Era::V19
        },
    )
}

/// Brings the database to [`SCHEMA_VERSION`] and describes its tables. Runs inside the
/// writer's transaction at open.
pub(crate) fn prepare(conn: &Connection, path: &str) -> Result<Tables> {
    let version = check_version(conn, path)?;
    let era = detect_era(conn)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > version) {
        tracing::info!(version = m.version, "migrating {path}: {}", m.name);
        (m.apply)(conn, era)?;
    }
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    conn.execute_batch(SOURCE_GAPS_DDL)?;
    add_gap_answer(conn)?;
    conn.execute_batch(crate::source_files::SOURCE_FILES_DDL)?;
    conn.execute_batch(crate::imports::REPLICA_PARTITIONS_DDL)?;
    conn.execute_batch(crate::meta::META_DDL)?;
    conn.execute_batch(crate::catalog::CATALOG_DDL)?;
    let tables = describe(conn, path, era)?;
    crate::changes::install(conn, &tables, path)?;
    Ok(tables)
}

/// Describes the tables of a database without changing anything (a read-only open): no
/// table is created, no version written. A file that lacks one of the four tables of its
/// era is refused, naming them, since a read-only open cannot create them.
pub(crate) fn detect(conn: &Connection, path: &str) -> Result<Tables> {
    check_version(conn, path)?;
    let era = detect_era(conn)?;
    let tables = describe(conn, path, era)?;
    let mut missing = Vec::new();
    for name in tables.names() {
        if !table_exists(conn, name)? {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(Error::Schema {
            path: path.to_owned(),
            reason: format!(
                "no table {} (a read-only open creates nothing; open the file for writing \
                 once, e.g. with 'marketdb ingest', to create the tables)",
                missing.join(", ")
            ),
        });
    }
    Ok(tables)
}

/// Checks the columns of the tables of `era` and counts the kline table's secondary
/// indexes. Reads only.
fn describe(conn: &Connection, path: &str, era: Era) -> Result<Tables> {
    let mut tables = match era {
        Era::V19 => Tables::V19,
        Era::V110 => Tables::V110,
    };
    let kline_cols: &[&str] = &[
        "symbol",
        "timestamp",
        "freq",
        "open_price",
        "high_price",
        "low_price",
        "close_price",
        "volume",
        "quote_volume",
        "trades_count",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "taker_sell_volume",
        "taker_sell_quote_volume",
    ];
    check_columns(conn, path, tables.kline, kline_cols)?;
    check_columns(
        conn,
        path,
        tables.funding,
        &[
            "symbol",
            "timestamp",
            "funding_rate",
            "funding_time",
            "mark_price",
            "index_price",
        ],
    )?;
    check_columns(
        conn,
        path,
        tables.open_interest,
        &[
            "symbol",
            "timestamp",
            "interval",
            "open_interest",
            "open_interest_value",
        ],
    )?;
    check_columns(
        conn,
        path,
        tables.long_short_ratio,
        &[
            "symbol",
            "timestamp",
            "period",
            "ratio_type",
            "long_short_ratio",
            "long_account",
            "short_account",
        ],
    )?;
    if era == Era::V110 {
        tables.kline_close_time = columns(conn, tables.kline)?
            .iter()
            .any(|c| c.eq_ignore_ascii_case("close_time"));
    }
    tables.kline_indexes = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
         AND sql IS NOT NULL",
        [tables.kline],
        |r| r.get::<_, i64>(0),
    )? as usize;
    if tables.kline_indexes > 0 {
        tracing::info!(
            indexes = tables.kline_indexes,
            "{path}: table {} has {} secondary index(es) (Python layout); kept, but bulk \
             writes are slower",
            tables.kline,
            tables.kline_indexes
        );
    }
    Ok(tables)
}

/// Drops every secondary index (not primary keys) on the four tables; returns their
/// names. Python v1.9 re-creates its indexes each time it opens the file.
pub(crate) fn drop_secondary_indexes(conn: &Connection, t: &Tables) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN (?1, ?2, ?3, ?4) ORDER BY name",
    )?;
    let names = stmt
        .query_map(
            [t.kline, t.funding, t.open_interest, t.long_short_ratio],
            |r| r.get::<_, String>(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for name in &names {
        // An identifier read from sqlite_master, quoted so no name can break out.
        conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_end_at_the_current_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn every_layout_creates_the_same_columns_and_key_sets() {
        let mut keys = Vec::new();
        for layout in [Layout::Python, Layout::PkOnly, Layout::WithoutRowid] {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(&layout.ddl()).unwrap();
            let mut per_table = Vec::new();
            for t in [
                "market_data",
                "funding_rate",
                "open_interest",
                "long_short_ratio",
            ] {
                let mut stmt = conn.prepare(&format!("PRAGMA table_info({t})")).unwrap();
                let mut cols: Vec<(String, i64)> = stmt
                    .query_map([], |r| Ok((r.get(1)?, r.get::<_, i64>(5)?)))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
                cols.retain(|c| c.1 > 0);
                let mut pk: Vec<String> = cols.into_iter().map(|c| c.0).collect();
                pk.sort();
                per_table.push((names, pk));
            }
            keys.push(per_table);
        }
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[0], keys[2]);
        assert_eq!(keys[0][0].1, vec!["freq", "symbol", "timestamp"]);
    }

    #[test]
    fn prepare_creates_sets_version_and_refuses_newer_files() {
        let conn = Connection::open_in_memory().unwrap();
        let t = prepare(&conn, "mem").unwrap();
        assert_eq!(t, Tables::V19);
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert!(table_exists(&conn, "source_gaps").unwrap());
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = prepare(&conn, "mem").unwrap_err().to_string();
        assert!(err.contains("newer") && err.contains("mem"), "{err}");
    }

    #[test]
    fn python_indexes_are_counted_and_can_be_dropped() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&Layout::Python.ddl()).unwrap();
        let t = prepare(&conn, "py.db").unwrap();
        assert_eq!(t.kline_indexes, 4);
        let dropped = drop_secondary_indexes(&conn, &t).unwrap();
        assert_eq!(dropped.len(), 10);
        assert_eq!(prepare(&conn, "py.db").unwrap().kline_indexes, 0);
    }

    #[test]
    fn detect_changes_nothing_and_names_missing_tables() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE market_data (symbol TEXT, timestamp INTEGER, freq TEXT)")
            .unwrap();
        let err = detect(&conn, "ro.db").unwrap_err().to_string();
        assert!(err.contains("market_data lacks column(s)"), "{err}");
        let conn = Connection::open_in_memory().unwrap();
        let err = detect(&conn, "empty.db").unwrap_err().to_string();
        assert!(
            err.contains("no table market_data, funding_rate, open_interest, long_short_ratio"),
            "{err}"
        );
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0, "detect never writes the version");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "detect never creates a table");
        conn.execute_batch(&Layout::Python.ddl()).unwrap();
        let t = detect(&conn, "py.db").unwrap();
        assert_eq!(t.kline_indexes, 4);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0);
    }

    #[test]
    fn the_record_tables_join_a_python_file_and_leave_its_tables_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&Layout::Python.ddl()).unwrap();
        let before: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        let t = prepare(&conn, "py.db").unwrap();
        assert_eq!(t.kline_indexes, 4, "the python indexes are kept");
        let after: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        // The six record tables (WITHOUT ROWID: the key is the table, no separate
        // index), the change record with its index of stale days, and three triggers on
        // each of the four data tables.
        assert_eq!(after, before + 6 + 2 + 12);
        assert!(table_exists(&conn, "marketdb_changes").unwrap());
        assert!(table_exists(&conn, "source_gaps").unwrap());
        assert!(table_exists(&conn, "source_files").unwrap());
        assert!(table_exists(&conn, "replica_partitions").unwrap());
        assert!(table_exists(&conn, "marketdb_meta").unwrap());
        assert!(table_exists(&conn, "archive_catalog").unwrap());
        assert!(table_exists(&conn, "archive_aliases").unwrap());
        prepare(&conn, "py.db").unwrap();
    }

    #[test]
    fn a_table_missing_columns_is_refused_by_name() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE market_data (symbol TEXT, timestamp INTEGER)")
            .unwrap();
        let err = prepare(&conn, "x.db").unwrap_err().to_string();
        assert!(err.contains("market_data lacks column(s) freq"), "{err}");
    }
}
