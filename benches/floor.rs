//! The raw rusqlite floor of the quality spec: the least a program can do for the same job
//! on the same file and schema. One prepared statement, WAL, `synchronous=NORMAL`,
//! transactions of 10,000 rows ([`store`]); one `SELECT` of the eleven kline columns in
//! (symbol, timestamp) order read straight into `Vec<f64>` / `Vec<i64>` ([`read`]); and a
//! hand-written NumPy export ([`numpy`]: per day, one range query per symbol into `(K, T)`
//! matrices, `.npy` bytes written with `fs::write`, no temp files, hashing or fsync).
//!
//! The schema is never written here: the file is created by marketdb itself (see
//! `ops::create_schema`), so the floor and the API run on identical tables. No validation.

use std::{fs, ops::Range, path::Path, time::Instant};

use anyhow::{Context, Result, bail};
use marketdb::{
    Feature, TimeRange,
    model::time::{DAY_MS, yyyymmdd},
    synth::SynthSpec,
};
use rusqlite::{Connection, params, types::ValueRef};

use crate::{Timed, workload::bars};

/// Rows per transaction.
pub const TX_ROWS: usize = 10_000;

/// The single-row upsert (the interval is a literal, as in marketdb's own statement).
const INSERT: &str = "INSERT OR REPLACE INTO market_data (symbol, timestamp, freq, \
    open_price, high_price, low_price, close_price, volume, quote_volume, trades_count, \
    taker_buy_volume, taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume) \
    VALUES (?1, ?2, '1m', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// The eleven stored kline columns, in `Feature::KLINE` order.
const COLUMNS: &str = "open_price, high_price, low_price, close_price, volume, quote_volume, \
    trades_count, taker_buy_volume, taker_buy_quote_volume, taker_sell_volume, \
    taker_sell_quote_volume";

/// Position of `trades_count` (the one integer column) among [`COLUMNS`].
const TRADES: usize = 6;

/// The whole-workload read, in (symbol, timestamp) order. `freq = '1m'` on a full scan
/// makes SQLite drop `freq` from the ORDER BY as a constant and then sort the rest
/// ("USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"); the unary `+` keeps the term out of the
/// planner, and ordering by the whole key `(symbol, freq, timestamp)` (the same order with
/// `freq` fixed) then walks the clustered key with no sort.
fn select_all() -> String {
    format!(
        "SELECT symbol, timestamp, {COLUMNS} FROM market_data WHERE +freq = '1m' \
         ORDER BY symbol, freq, timestamp"
    )
}

/// Opens `path` with the floor's pragmas (WAL, synchronous NORMAL, nothing else).
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("{}: journal_mode is {mode}, not wal", path.display());
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Inserts the whole workload (generated one symbol at a time, untimed).
pub fn store(path: &Path, spec: &SynthSpec) -> Result<Timed> {
    let conn = open(path)?;
    let mut secs = 0.0;
    let mut rows = 0u64;
    let mut in_tx = 0usize;
    let start = Instant::now();
    let mut stmt = conn.prepare_cached(INSERT)?;
    conn.execute_batch("BEGIN")?;
    secs += start.elapsed().as_secs_f64();
    for symbol in &spec.symbols {
        let bars = bars(spec, symbol);
        let t = Instant::now();
        for k in &bars {
            stmt.execute(params![
                k.symbol,
                k.open_time,
                k.open,
                k.high,
                k.low,
                k.close,
                k.volume,
                k.quote_volume,
                k.trades_count,
                k.taker_buy_volume,
                k.taker_buy_quote_volume,
                k.taker_sell_volume(),
                k.taker_sell_quote_volume(),
            ])?;
            in_tx += 1;
            if in_tx == TX_ROWS {
                conn.execute_batch("COMMIT; BEGIN")?;
                in_tx = 0;
            }
        }
        secs += t.elapsed().as_secs_f64();
        rows += bars.len() as u64;
    }
    let t = Instant::now();
    conn.execute_batch("COMMIT")?;
    secs += t.elapsed().as_secs_f64();
    drop(stmt);
    Ok(Timed::new(rows, secs))
}

/// Rows per statement of the fastest floor ([`store_fast`]): 13 bound values each, well
/// under SQLite's 32,766 variables.
pub const FAST_ROWS: usize = 100;

/// The fastest way this harness found to put the workload's rows into marketdb's schema
/// with plain SQLite, as a comparison for tools that do not write SQLite at all (DuckDB):
/// one transaction for everything, multi-row `INSERT OR REPLACE` statements of
/// [`FAST_ROWS`] rows, a 256 MiB page cache, no validation, no bookkeeping; timed until
/// the connection is closed (the WAL folded into the file).
pub fn store_fast(path: &Path, spec: &SynthSpec) -> Result<Timed> {
    let conn = open(path)?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let one = "(?, ?, '1m', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let sql = |n: usize| {
        format!(
            "INSERT OR REPLACE INTO market_data (symbol, timestamp, freq, open_price, \
             high_price, low_price, close_price, volume, quote_volume, trades_count, \
             taker_buy_volume, taker_buy_quote_volume, taker_sell_volume, \
             taker_sell_quote_volume) VALUES {}",
            vec![one; n].join(", ")
        )
    };
    let mut secs = 0.0;
    let mut rows = 0u64;
    let start = Instant::now();
    conn.execute_batch("BEGIN")?;
    let mut full = conn.prepare(&sql(FAST_ROWS))?;
    secs += start.elapsed().as_secs_f64();
    for symbol in &spec.symbols {
        let bars = bars(spec, symbol);
        let t = Instant::now();
        for chunk in bars.chunks(FAST_ROWS) {
            let mut part;
            let stmt = if chunk.len() == FAST_ROWS {
                &mut full
            } else {
                part = conn.prepare(&sql(chunk.len()))?;
                &mut part
            };
            let mut i = 1;
            for k in chunk {
                stmt.raw_bind_parameter(i, &k.symbol)?;
                stmt.raw_bind_parameter(i + 1, k.open_time)?;
                for (j, v) in [k.open, k.high, k.low, k.close, k.volume, k.quote_volume]
                    .into_iter()
                    .enumerate()
                {
                    stmt.raw_bind_parameter(i + 2 + j, v)?;
                }
                stmt.raw_bind_parameter(i + 8, k.trades_count)?;
                for (j, v) in [
                    k.taker_buy_volume,
                    k.taker_buy_quote_volume,
                    k.taker_sell_volume(),
                    k.taker_sell_quote_volume(),
                ]
                .into_iter()
                .enumerate()
                {
                    stmt.raw_bind_parameter(i + 9 + j, v)?;
                }
                i += 13;
            }
            stmt.raw_execute()?;
        }
        secs += t.elapsed().as_secs_f64();
        rows += bars.len() as u64;
    }
    let t = Instant::now();
    drop(full);
    conn.execute_batch("COMMIT")?;
    // Closing folds the WAL into the file, as `marketdb ingest` does before it exits and
    // DuckDB's CHECKPOINT does in the same table: the three are timed to the same point.
    conn.close().map_err(|(_, e)| e)?;
    secs += t.elapsed().as_secs_f64();
    Ok(Timed::new(rows, secs))
}

/// The floor's columnar result: symbol runs, open times, ten f64 columns and the counts.
#[derive(Debug, Default)]
struct Frame {
    symbols: Vec<(String, Range<usize>)>,
    timestamp: Vec<i64>,
    reals: Vec<Vec<f64>>,
    trades: Vec<i64>,
}

/// Reads every 1m bar of the file, ordered by (symbol, timestamp).
pub fn read(path: &Path) -> Result<Timed> {
    let conn = open(path)?;
    let t = Instant::now();
    let mut stmt = conn.prepare(&select_all())?;
    let mut f = Frame {
        reals: vec![Vec::new(); 10],
        ..Frame::default()
    };
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let n = f.timestamp.len();
        let ValueRef::Text(sym) = r.get_ref(0)? else {
            bail!("row {n}: symbol is not text");
        };
        match f.symbols.last_mut() {
            Some((s, range)) if s.as_bytes() == sym => range.end = n + 1,
            _ => f
                .symbols
                .push((String::from_utf8_lossy(sym).into_owned(), n..n + 1)),
        }
        f.timestamp.push(r.get(1)?);
        let mut real = 0;
        for c in 0..11 {
            if c == TRADES {
                f.trades.push(r.get(2 + c)?);
            } else {
                f.reals[real].push(r.get(2 + c)?);
                real += 1;
            }
        }
    }
    drop(rows);
    let secs = t.elapsed().as_secs_f64();
    let n = f.timestamp.len() as u64;
    let detail = format!("{} symbols", f.symbols.len());
    drop(f);
    Ok(Timed::new(n, secs).with_detail(detail))
}

/// Bars stored at 1m (untimed: to check what a subprocess wrote).
pub fn count_rows(path: &Path) -> Result<u64> {
    let conn = open(path)?;
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM market_data WHERE freq = '1m'",
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// SQLite's plan of the floor's read (to show it needs no sort).
pub fn read_plan(path: &Path) -> Result<String> {
    let conn = open(path)?;
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", select_all()))?;
    let steps = stmt
        .query_map([], |r| r.get::<_, String>(3))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(steps.join("; "))
}

/// A `.npy` v1.0 header for a little-endian `descr` array of `shape`, padded to 64 bytes.
fn npy_header(descr: &str, shape: &str, payload: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len() + payload);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes, per UTC day of `range`, one float64 `(K, 1440)` matrix per default export
/// feature (the eleven columns, `vwap`, `ret`) and the `(1440,)` timestamp grid under
/// `out/1m/{feature}/{YYYYMMDD}.npy`. Returns bars exported and files written.
pub fn numpy(path: &Path, symbols: &[String], range: TimeRange, out: &Path) -> Result<Timed> {
    const T: usize = 1440;
    let conn = open(path)?;
    let t0 = Instant::now();
    let mut stmt = conn.prepare(&format!(
        "SELECT timestamp, {COLUMNS} FROM market_data WHERE symbol = ?1 AND freq = '1m' \
         AND timestamp >= ?2 AND timestamp < ?3 ORDER BY timestamp"
    ))?;
    let features = Feature::DEFAULT_EXPORT;
    let root = out.join("1m");
    let mut dirs = Vec::new();
    for name in features.iter().map(|f| f.short()).chain(["timestamp"]) {
        let d = root.join(name);
        fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        dirs.push(d);
    }
    let k = symbols.len();
    let mut mats = vec![vec![f64::NAN; k * T]; features.len()];
    let (mut bars, mut files, mut bytes) = (0u64, 0usize, 0u64);
    for day in range.days() {
        for m in &mut mats {
            m.fill(f64::NAN);
        }
        for (row, symbol) in symbols.iter().enumerate() {
            let mut rows = stmt.query(params![symbol, day, day + DAY_MS])?;
            while let Some(r) = rows.next()? {
                let ts: i64 = r.get(0)?;
                let slot = ((ts - day) / 60_000) as usize;
                if slot >= T {
                    continue;
                }
                let cell = row * T + slot;
                for (c, m) in mats.iter_mut().take(11).enumerate() {
                    m[cell] = r.get(1 + c)?;
                }
                let (open, close) = (mats[0][cell], mats[3][cell]);
                let (volume, quote) = (mats[4][cell], mats[5][cell]);
                mats[11][cell] = if volume == 0.0 {
                    f64::NAN
                } else {
                    quote / volume
                };
                mats[12][cell] = (close - open) / open;
                bars += 1;
            }
        }
        let stem = yyyymmdd(day);
        for (m, dir) in mats.iter().zip(&dirs) {
            let mut buf = npy_header("<f8", &format!("({k}, {T})"), m.len() * 8);
            for v in m {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            let p = dir.join(format!("{stem}.npy"));
            fs::write(&p, &buf).with_context(|| format!("cannot write {}", p.display()))?;
            files += 1;
            bytes += buf.len() as u64;
        }
        let mut buf = npy_header("<i8", &format!("({T},)"), T * 8);
        for i in 0..T as i64 {
            buf.extend_from_slice(&(day + i * 60_000).to_le_bytes());
        }
        let p = root.join("timestamp").join(format!("{stem}.npy"));
        fs::write(&p, &buf).with_context(|| format!("cannot write {}", p.display()))?;
        files += 1;
        bytes += buf.len() as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Timed::new(bars, secs).with_detail(format!("{files} files, {:.1} MB", bytes as f64 / 1e6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_64_byte_aligned() {
        for shape in ["(1440,)", "(100, 1440)"] {
            let h = npy_header("<f8", shape, 0);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(h.last(), Some(&b'\n'));
        }
    }
}
