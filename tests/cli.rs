//! End-to-end tests of the `marketdb` binary: the demo quick start, summary, query, check,
//! delete, export, ingest of Binance Vision files, download, stream, and every error class of the CLI
//! contract. They run the built binary in temp dirs and check the database with rusqlite
//! directly, so the CLI is judged by what it stored, not by what it says.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods
)]

#[path = "cli/bounds.rs"]
mod bounds;
#[path = "cli/catalog.rs"]
mod catalog;
#[path = "cli/contract.rs"]
mod contract;
#[path = "cli/dataset.rs"]
mod dataset;
#[path = "cli/download.rs"]
mod download;
#[path = "cli/outputs.rs"]
mod outputs;
#[path = "cli/pipeline.rs"]
mod pipeline;
#[path = "cli/safety.rs"]
mod safety;
#[path = "cli/stream.rs"]
mod stream;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use rusqlite::Connection;
use serde_json::Value;

const JAN1: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

/// The binary under test: this build's, or the one `MARKETDB_TEST_BIN` names (to run the
/// suite against another build, e.g. to see a regression test fail on an older one).
fn bin() -> PathBuf {
    std::env::var_os("MARKETDB_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_marketdb")))
}

fn marketdb(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        // An explicit database for every command, demo included (demo's own default is
        // tested in `safety`).
        .env("MARKETDB_DB", "data/market.db")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run marketdb")
}

/// Sends SIGTERM to `child` and waits for it to end by itself (a hang guard of
/// `within`, not a timing assertion); returns its output and how long it took.
fn terminate_and_wait(
    mut child: std::process::Child,
    within: std::time::Duration,
) -> (Output, std::time::Duration) {
    let signalled = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), signalled.elapsed());
        }
        assert!(
            signalled.elapsed() < within,
            "the command did not stop after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Asserts an error exit with one clear line on stderr, no panic and no backtrace.
fn fails_cleanly(o: &Output, code: i32, must_contain: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stderr: {err}\nstdout: {}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for part in must_contain {
        assert!(err.contains(part), "{err:?} should mention {part:?}");
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "Error {", "Os {"] {
        assert!(!err.contains(bad), "{err:?} contains {bad:?}");
    }
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn demo(dir: &Path) {
    ok(&marketdb(
        dir,
        &["demo", "--symbols", "3", "--days", "2", "--seed", "7", "-q"],
    ));
}

fn python() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("MARKETDB_REQUIRE_PYTHON").is_none(),
            "python3 is required here (MARKETDB_REQUIRE_PYTHON is set) but absent"
        );
        eprintln!("!!!!!!!! python3 is absent: SKIPPING the NumPy load check !!!!!!!!");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyenv.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run pyenv.sh");
    assert!(out.status.success(), "pyenv.sh failed: {}", stderr(&out));
    Some(PathBuf::from(stdout(&out).trim()))
}

#[test]
fn demo_then_summary_reports_the_generated_rows() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let o = marketdb(dir.path(), &["summary", "--json"]);
    ok(&o);
    let s = json(&o);
    let md = &s["market_data"][0];
    assert_eq!(md["freq"], "1m");
    assert_eq!(md["record_count"], 3 * 2 * 1440);
    assert_eq!(md["unique_symbols"], 3);
    assert_eq!(md["earliest_timestamp"], JAN1);
    assert_eq!(md["latest_timestamp"], JAN1 + 2 * 86_400_000 - 60_000);
    assert_eq!(s["funding_rate"]["record_count"], 3 * 2 * 3);
    assert_eq!(s["open_interest"][0]["record_count"], 3 * 2 * 288);
    let lsr = s["long_short_ratio"].as_array().unwrap();
    assert_eq!(lsr.len(), 4);
    assert!(lsr.iter().all(|e| e["record_count"] == 3 * 2 * 288));
    // The text form prints a table naming the table and the series.
    let text = stdout(&marketdb(dir.path(), &["summary"]));
    assert!(
        text.contains("market_data") && text.contains("8640"),
        "{text}"
    );
}

#[test]
fn demo_is_deterministic_in_database_and_export_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    demo(a.path());
    demo(b.path());
    let dump = |dir: &Path| {
        let c = Connection::open(dir.join("data/market.db")).unwrap();
        let mut st = c
            .prepare("SELECT symbol, timestamp, open_price, close_price, volume, trades_count FROM market_data ORDER BY 1, 2")
            .unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {} {} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, i64>(5)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    assert_eq!(dump(a.path()), dump(b.path()));
    let files = |dir: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![dir.join("data/demo/export")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((
                        p.strip_prefix(dir).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    };
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() > 10, "{} files", fa.len());
    assert_eq!(fa, fb);
}

#[test]
fn export_numpy_loads_in_numpy() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let o = marketdb(
        dir.path(),
        &[
            "export",
            "numpy",
            "--symbols",
            "all",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--freq",
            "1m",
            "--target-freq",
            "1h",
            "--out",
            "out/np",
            "-q",
        ],
    );
    ok(&o);
    let Some(py) = python() else { return };
    let script = r#"
import json, sys, numpy as np
root = sys.argv[1]
cls = np.load(f"{root}/1h/cls/20240101.npy", allow_pickle=False)
syms = np.load(f"{root}/1h/symbols/20240101.npy", allow_pickle=False)
ts = np.load(f"{root}/1h/timestamp/20240101.npy", allow_pickle=False)
assert cls.shape == (3, 24), cls.shape
assert cls.dtype == np.float64
assert list(syms) == json.load(open(f"{root}/1h/symbols/20240101.json"))
assert ts[0] == 1704067200000 and ts[-1] == 1704067200000 + 23 * 3600000
assert not np.isnan(cls).any()
print("ok")
"#;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("out/np"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The hourly close equals the last 1m close of each hour, as stored.
    let c = Connection::open(dir.path().join("data/market.db")).unwrap();
    let last_close: f64 = c
        .query_row(
            "SELECT close_price FROM market_data WHERE symbol = 'SYN000USDT' AND freq = '1m' AND timestamp = ?",
            [JAN1 + 3_600_000 - 60_000],
            |r| r.get(0),
        )
        .unwrap();
    let o = marketdb(
        dir.path(),
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01 00:59",
            "--end",
            "2024-01-01 00:59",
            "--freq",
            "1m",
            "--features",
            "cls",
            "--json",
        ],
    );
    ok(&o);
    assert_eq!(json(&o)[0]["cls"].as_f64().unwrap(), last_close);
}

#[test]
fn check_is_complete_on_demo_and_reports_exact_gaps_after_delete() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--symbols",
            "SYN000USDT,SYN001USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--freq",
            "1m",
            "--json",
        ];
        args.extend_from_slice(extra);
        marketdb(dir.path(), &args)
    };
    let o = check(&["--fail-under", "100"]);
    ok(&o);
    let r = json(&o);
    for s in r["symbols"].as_array().unwrap() {
        assert_eq!(s["expected"], 2880);
        assert_eq!(s["present"], 2880);
        assert_eq!(s["coverage"], 100.0);
        assert_eq!(s["missing"].as_array().unwrap().len(), 0);
    }
    // Refuses without --yes and changes nothing.
    let o = marketdb(
        dir.path(),
        &[
            "delete",
            "--symbols",
            "SYN001USDT",
            "--start",
            "2024-01-01 10:00",
            "--end",
            "2024-01-01 10:04",
            "--freq",
            "1m",
        ],
    );
    fails_cleanly(&o, 2, &["--yes"]);
    let o = marketdb(
        dir.path(),
        &[
            "delete",
            "--symbols",
            "SYN001USDT",
            "--start",
            "2024-01-01 10:00",
            "--end",
            "2024-01-01 10:04",
            "--freq",
            "1m",
            "--yes",
            "--json",
        ],
    );
    ok(&o);
    assert_eq!(json(&o)["deleted"], 5);
    let o = check(&["--fail-under", "100"]);
    assert_eq!(o.status.code(), Some(1), "coverage below 100 exits 1");
    let r = json(&o);
    let eth = &r["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "SYN001USDT")
        .unwrap();
    assert_eq!(eth["present"], 2875);
    let runs = eth["missing"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["start"], JAN1 + 10 * 3_600_000);
    assert_eq!(runs[0]["end"], JAN1 + 10 * 3_600_000 + 4 * 60_000);
    assert_eq!(runs[0]["count"], 5);
    let btc = &r["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "SYN000USDT")
        .unwrap();
    assert_eq!(btc["coverage"], 100.0);
}

#[test]
fn query_csv_is_parseable() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let o = marketdb(
        dir.path(),
        &[
            "query",
            "--symbols",
            "SYN000USDT SYN001USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01 00:09",
            "--freq",
            "1m",
            "--format",
            "csv",
        ],
    );
    ok(&o);
    let text = stdout(&o);
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[..4], ["symbol", "timestamp", "datetime", "opn"]);
    assert_eq!(header.len(), 3 + 11);
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 20);
    assert_eq!(&rows[0][0], "SYN000USDT");
    assert_eq!(&rows[0][2], "2024-01-01T00:00:00Z");
    assert_eq!(&rows[10][0], "SYN001USDT");
    for r in &rows {
        for cell in r.iter().skip(3) {
            cell.parse::<f64>().unwrap();
        }
    }
    let limited = marketdb(
        dir.path(),
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--freq",
            "1m",
            "--format",
            "csv",
            "--limit",
            "3",
        ],
    );
    assert_eq!(stdout(&limited).lines().count(), 4);
}

// ---------------------------------------------------------------- ingest

fn kline_line(open_time: i64, step_ms: i64, i: usize, micro: bool) -> String {
    let p = 100.0 + i as f64 * 0.5;
    let scale = if micro { 1000 } else { 1 };
    format!(
        "{},{p},{},{},{},{},{},{},{},{},{},0",
        open_time * scale,
        p + 1.25,
        p - 0.75,
        p + 0.5,
        10.0 + i as f64,
        (open_time + step_ms - 1) * scale,
        1000.5 + i as f64,
        7 + i,
        4.5,
        400.25,
    )
}

const FUT_HEADER: &str = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore";

fn write_zip(path: &Path, inner: &str, content: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    z.start_file(inner, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(content.as_bytes()).unwrap();
    z.finish().unwrap();
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every row of the four tables, in primary-key order, as text.
fn dump_all(db: &Path) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM market_data ORDER BY symbol, freq, timestamp",
        "SELECT * FROM funding_rate ORDER BY symbol, timestamp",
        "SELECT * FROM open_interest ORDER BY symbol, interval, timestamp",
        "SELECT * FROM long_short_ratio ORDER BY symbol, period, ratio_type, timestamp",
    ] {
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(cells.join("|"))
            })
            .unwrap()
            .map(Result::unwrap);
        out.extend(rows);
    }
    out
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn ingest_binance_vision_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("vision");
    std::fs::create_dir_all(d.join("nested")).unwrap();
    // Futures daily 1m, zipped, with header, with a good CHECKSUM.
    let mut fut = String::from(FUT_HEADER);
    fut.push('\n');
    for i in 0..60 {
        fut.push_str(&kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false));
        fut.push('\n');
    }
    let zip_path = d.join("BTCUSDT-1m-2024-01-01.zip");
    write_zip(&zip_path, "BTCUSDT-1m-2024-01-01.csv", &fut);
    std::fs::write(
        d.join("BTCUSDT-1m-2024-01-01.zip.CHECKSUM"),
        format!("{}  BTCUSDT-1m-2024-01-01.zip\n", sha256_hex(&zip_path)),
    )
    .unwrap();
    // Spot daily 1h, plain CSV, no header, microsecond timestamps (2025+ spot files).
    let jan2025 = 1_735_689_600_000i64;
    let spot: String = (0..24)
        .map(|i| kline_line(jan2025 + i as i64 * 3_600_000, 3_600_000, i, true) + "\n")
        .collect();
    std::fs::write(d.join("nested/ETHUSDT-1h-2025-01-01.csv"), &spot).unwrap();
    // Monthly 1d file, no header.
    let monthly: String = (0..31)
        .map(|i| kline_line(JAN1 + i as i64 * 86_400_000, 86_400_000, i, false) + "\n")
        .collect();
    write_zip(
        &d.join("SOLUSDT-1d-2024-01.zip"),
        "SOLUSDT-1d-2024-01.csv",
        &monthly,
    );
    // Funding file.
    let funding = format!(
        "calc_time,funding_interval_hours,last_funding_rate\n{},8,0.00010000\n{},8,-0.00002500\n",
        JAN1,
        JAN1 + 8 * 3_600_000
    );
    write_zip(
        &d.join("BTCUSDT-fundingRate-2024-01.zip"),
        "BTCUSDT-fundingRate-2024-01.csv",
        &funding,
    );
    // Metrics file.
    let metrics = "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n\
        2024-01-01 00:05:00,BTCUSDT,2310973.79,3669133.086383,4.24734982,2.26803000,2.72141015,0.69236000\n\
        2024-01-01 00:10:00,BTCUSDT,2310999.5,3669200.5,4.2,2.2,2.7,0.7\n";
    std::fs::write(d.join("BTCUSDT-metrics-2024-01-01.csv"), metrics).unwrap();

    let o = marketdb(dir.path(), &["ingest", "vision", "-q"]);
    ok(&o);
    let db = dir.path().join("data/market.db");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='BTCUSDT' AND freq='1m'"
        ),
        60
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='ETHUSDT' AND freq='1h'"
        ),
        24
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='SOLUSDT' AND freq='1d'"
        ),
        31
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM funding_rate"), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM open_interest"), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM long_short_ratio"), 8);
    // Every value lands exactly.
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare(
            "SELECT timestamp, open_price, high_price, low_price, close_price, volume, quote_volume, \
             trades_count, taker_buy_volume, taker_buy_quote_volume, taker_sell_volume \
             FROM market_data WHERE symbol='ETHUSDT' ORDER BY timestamp",
        )
        .unwrap();
    let rows: Vec<(i64, [f64; 6], i64, f64, f64, f64)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                [
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ],
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (i, (t, v, n, tb, tbq, ts)) in rows.iter().enumerate() {
        let p = 100.0 + i as f64 * 0.5;
        assert_eq!(*t, jan2025 + i as i64 * 3_600_000, "microseconds became ms");
        assert_eq!(
            *v,
            [
                p,
                p + 1.25,
                p - 0.75,
                p + 0.5,
                10.0 + i as f64,
                1000.5 + i as f64
            ]
        );
        assert_eq!(*n, 7 + i as i64);
        assert_eq!((*tb, *tbq), (4.5, 400.25));
        assert_eq!(*ts, 10.0 + i as f64 - 4.5);
    }
    let (fr_t, fr): (i64, f64) = c
        .query_row(
            "SELECT funding_time, funding_rate FROM funding_rate ORDER BY timestamp DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((fr_t, fr), (JAN1 + 8 * 3_600_000, -0.000025));
    let (oi_t, oi, oiv): (i64, f64, f64) = c
        .query_row("SELECT timestamp, open_interest, open_interest_value FROM open_interest ORDER BY timestamp LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (oi_t, oi, oiv),
        (JAN1 + 300_000, 2310973.79, 3669133.086383),
        "create_time is UTC"
    );
    let ta: f64 = c
        .query_row("SELECT long_short_ratio FROM long_short_ratio WHERE ratio_type='account' ORDER BY timestamp LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ta, 4.24734982);

    // Re-ingesting changes nothing: every table dumped in key order is identical.
    let before = dump_all(&db);
    ok(&marketdb(dir.path(), &["ingest", "vision", "-q"]));
    assert_eq!(dump_all(&db), before);

    // A bad CHECKSUM fails that file only; a file with one bad line stores nothing and names
    // file:line; the other files still load; the exit code is 1.
    let d2 = dir.path().join("vision2");
    std::fs::create_dir_all(&d2).unwrap();
    let xrp: String = (0..10)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    let xrp_zip = d2.join("XRPUSDT-1m-2024-01-01.zip");
    write_zip(&xrp_zip, "XRPUSDT-1m-2024-01-01.csv", &xrp);
    std::fs::write(
        d2.join("XRPUSDT-1m-2024-01-01.zip.CHECKSUM"),
        format!("{}  XRPUSDT-1m-2024-01-01.zip\n", "0".repeat(64)),
    )
    .unwrap();
    let mut bad = String::new();
    for i in 0..10 {
        let mut line = kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false);
        if i == 6 {
            line = line.replacen(&format!(",{},", 100.0 + 6.0 * 0.5 + 1.25), ",abc,", 1);
        }
        bad.push_str(&line);
        bad.push('\n');
    }
    std::fs::write(d2.join("ADAUSDT-1m-2024-01-01.csv"), &bad).unwrap();
    let good: String = (0..5)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    std::fs::write(d2.join("DOGEUSDT-1m-2024-01-01.csv"), &good).unwrap();
    let o = marketdb(dir.path(), &["ingest", "vision2", "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ADAUSDT-1m-2024-01-01.csv:7"), "{err}");
    assert!(err.contains("high") && err.contains("abc"), "{err}");
    assert!(
        err.contains("XRPUSDT-1m-2024-01-01.zip") && err.to_lowercase().contains("checksum"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='ADAUSDT'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='XRPUSDT'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='DOGEUSDT'"
        ),
        5
    );
    // --skip-bad-rows loads the good rows of the bad file and reports the rejected line.
    std::fs::remove_file(d2.join("XRPUSDT-1m-2024-01-01.zip.CHECKSUM")).unwrap();
    let o = marketdb(dir.path(), &["ingest", "vision2", "--skip-bad-rows", "-q"]);
    ok(&o);
    assert!(
        stderr(&o).contains("ADAUSDT-1m-2024-01-01.csv:7"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='ADAUSDT'"
        ),
        9
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM market_data WHERE symbol='XRPUSDT'"
        ),
        10
    );
}

// ---------------------------------------------------------------- error classes

/// A temp dir holding a small demo database, for the error-class tests.
fn small_db() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &["demo", "--symbols", "1", "--days", "1", "-q"],
    ));
    dir
}

fn query(dir: &Path, start: &str, freq: &str, symbols: &str) -> Output {
    marketdb(
        dir,
        &[
            "query",
            "--symbols",
            symbols,
            "--start",
            start,
            "--end",
            "2024-01-02",
            "--freq",
            freq,
        ],
    )
}

#[test]
fn error_unknown_command_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    fails_cleanly(&marketdb(dir.path(), &["frobnicate"]), 2, &["frobnicate"]);
    fails_cleanly(
        &marketdb(dir.path(), &["summary", "--bogus"]),
        2,
        &["--bogus"],
    );
    // Help and version are not errors.
    ok(&marketdb(dir.path(), &["--help"]));
    ok(&marketdb(dir.path(), &["--version"]));
    ok(&marketdb(dir.path(), &["export", "--help"]));
}

#[test]
fn error_bad_time() {
    let dir = small_db();
    fails_cleanly(
        &query(dir.path(), "2024-13-01", "1m", "SYN000USDT"),
        2,
        &["2024-13-01"],
    );
    fails_cleanly(
        &query(dir.path(), "170406720000000", "1m", "SYN000USDT"),
        2,
        &["15-digit"],
    );
    fails_cleanly(
        &query(dir.path(), "2024-01-03", "1m", "SYN000USDT"),
        2,
        &["after"],
    );
}

#[test]
fn error_bad_freq() {
    let dir = small_db();
    fails_cleanly(
        &query(dir.path(), "2024-01-01", "7m", "SYN000USDT"),
        2,
        &["7m"],
    );
}

#[test]
fn error_bad_symbol() {
    let dir = small_db();
    fails_cleanly(
        &query(dir.path(), "2024-01-01", "1m", "BTC/USDT"),
        2,
        &["BTC/USDT"],
    );
    fails_cleanly(
        &query(
            dir.path(),
            "2024-01-01",
            "1m",
            "BTC';DROP TABLE market_data;--",
        ),
        2,
        &["invalid symbol"],
    );
    assert_eq!(
        count(
            &dir.path().join("data/market.db"),
            "SELECT COUNT(*) FROM market_data"
        ),
        1440
    );
}

#[test]
fn error_bad_feature() {
    let dir = small_db();
    fails_cleanly(
        &marketdb(
            dir.path(),
            &[
                "query",
                "--symbols",
                "SYN000USDT",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--freq",
                "1m",
                "--features",
                "close_price;DROP",
            ],
        ),
        2,
        &["close_price;DROP"],
    );
}

#[test]
fn error_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    fails_cleanly(
        &marketdb(dir.path(), &["ingest", "no/such/file.csv"]),
        1,
        &["no/such/file.csv"],
    );
    fails_cleanly(
        &marketdb(dir.path(), &["summary", "--db", "missing.db"]),
        1,
        &["missing.db"],
    );
}

#[test]
fn error_unwritable_output() {
    let dir = small_db();
    // A path under a regular file fails even as root.
    std::fs::write(dir.path().join("afile"), b"x").unwrap();
    fails_cleanly(
        &marketdb(
            dir.path(),
            &[
                "export",
                "csv",
                "--symbols",
                "SYN000USDT",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--freq",
                "1m",
                "--out",
                "afile/out.csv",
            ],
        ),
        1,
        &["afile/out.csv"],
    );
}

#[test]
fn error_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"this is not a database, just some text padding it out";
    std::fs::write(dir.path().join("not.db"), text).unwrap();
    fails_cleanly(
        &marketdb(dir.path(), &["summary", "--db", "not.db"]),
        1,
        &["not.db"],
    );
    assert_eq!(
        std::fs::read(dir.path().join("not.db")).unwrap(),
        text,
        "left alone"
    );
}

// ---------------------------------------------------------------- killed midway

/// Parses a `.npy` v1 header and checks the file holds exactly the data its shape needs.
fn npy_is_whole(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("bad magic".into());
    }
    let hlen = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).map_err(|e| e.to_string())?;
    let descr = header.split("'descr': '").nth(1).ok_or("no descr")?;
    let descr = &descr[..descr.find('\'').ok_or("bad descr")?];
    let item: usize = match descr {
        "<f8" | "<i8" => 8,
        d if d.starts_with("<U") => 4 * d[2..].parse::<usize>().map_err(|e| e.to_string())?,
        d => return Err(format!("dtype {d}")),
    };
    let shape = header.split("'shape': (").nth(1).ok_or("no shape")?;
    let shape = &shape[..shape.find(')').ok_or("bad shape")?];
    let n: usize = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().unwrap())
        .product();
    let want = 10 + hlen + n * item;
    if bytes.len() != want {
        return Err(format!("{} bytes, shape needs {want}", bytes.len()));
    }
    Ok(())
}

/// Every final-named file under `root` is whole; a manifest, if any, matches the files.
fn export_tree_is_consistent(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with('.') {
                // A temporary left by the kill: never under a final name.
                assert!(
                    name.contains(".tmp-"),
                    "unexpected hidden file {}",
                    p.display()
                );
            } else if name.ends_with(".npy") {
                npy_is_whole(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            } else if name.ends_with(".json") {
                let text = std::fs::read_to_string(&p).unwrap();
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{} is not whole JSON: {e}", p.display()));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(root.join("manifest.json")) {
        let m: Value = serde_json::from_str(&text).unwrap();
        for f in m["files"].as_array().unwrap() {
            let path = root.join(f["path"].as_str().unwrap());
            assert_eq!(
                sha256_hex(&path),
                f["sha256"].as_str().unwrap(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn killed_export_leaves_no_partial_file_under_a_final_name() {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &[
            "demo",
            "--symbols",
            "20",
            "--days",
            "2",
            "-q",
            "--out",
            "first",
        ],
    ));
    let spawn_export = |out: &str| {
        Command::new(bin())
            .current_dir(dir.path())
            .args([
                "export",
                "numpy",
                "--symbols",
                "all",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-02",
                "--freq",
                "1m",
                "--features",
                "opn,hgh,low,cls,vol,amt,tnum,vwap,ret,fr,oi",
                "--out",
                out,
                "-q",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kills at fixed delays: whatever the point, the tree is consistent.
    for (i, delay_ms) in [5u64, 15, 30, 60, 120, 250].into_iter().enumerate() {
        let out = format!("np{i}");
        let mut child = spawn_export(&out);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        export_tree_is_consistent(&dir.path().join(&out));
    }
    // Kills right after the first file (under its temporary name) appears: the export is
    // caught midway, and nothing of it is under a final name.
    let mut caught_midway = 0;
    for i in 0..10 {
        let out = format!("mid{i}");
        let first = dir.path().join(&out).join("1m/opn");
        let mut child = spawn_export(&out);
        loop {
            let started = std::fs::read_dir(&first).is_ok_and(|mut d| d.next().is_some());
            if started {
                let _ = child.kill();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let status = child.wait().unwrap();
        let root = dir.path().join(&out);
        export_tree_is_consistent(&root);
        if !status.success() && !root.join("manifest.json").exists() {
            caught_midway += 1;
        }
    }
    assert!(
        caught_midway > 0,
        "no kill landed between the first file and the manifest"
    );
    // The database is untouched by a killed export and a re-run completes.
    let o = marketdb(dir.path(), &["doctor", "--json"]);
    ok(&o);
    assert_eq!(json(&o)["integrity_check"], "ok");
    ok(&marketdb(
        dir.path(),
        &[
            "export",
            "numpy",
            "--symbols",
            "all",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--freq",
            "1m",
            "--out",
            "np0",
            "-q",
        ],
    ));
    export_tree_is_consistent(&dir.path().join("np0"));
    assert!(dir.path().join("np0/manifest.json").exists());
}

#[test]
fn killed_ingest_keeps_whole_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("vision");
    std::fs::create_dir_all(&d).unwrap();
    let n_files = 30;
    for f in 0..n_files {
        let sym = format!("K{f:02}USDT");
        let rows: String = (0..1440)
            .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
            .collect();
        std::fs::write(d.join(format!("{sym}-1m-2024-01-01.csv")), rows).unwrap();
    }
    let db = dir.path().join("data/market.db");
    for delay_ms in [20u64, 60, 150, 300] {
        let mut child = Command::new(bin())
            .current_dir(dir.path())
            .args(["ingest", "vision", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if !db.exists() {
            continue;
        }
        let c = Connection::open(&db).unwrap();
        let integrity: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        let has_table: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'market_data'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if has_table == 0 {
            continue; // killed before the schema was created
        }
        // One transaction per file: each symbol has all of its 1440 bars or none.
        let mut st = c
            .prepare("SELECT symbol, COUNT(*) FROM market_data GROUP BY symbol")
            .unwrap();
        let counts: Vec<(String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (sym, n) in counts {
            assert_eq!(n, 1440, "{sym} has a partial file");
        }
    }
    // A re-run completes the data.
    ok(&marketdb(dir.path(), &["ingest", "vision", "-q"]));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM market_data"),
        1440 * n_files
    );
}

#[test]
fn resample_stats_symbols_and_doctor() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path()); // 3 symbols x 2 days of 1m
    let db = dir.path().join("data/market.db");
    ok(&marketdb(
        dir.path(),
        &[
            "delete",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01 05:10",
            "--end",
            "2024-01-01 05:19",
            "--freq",
            "1m",
            "--yes",
            "-q",
        ],
    ));
    let o = marketdb(
        dir.path(),
        &[
            "resample",
            "--symbols",
            "all",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--from",
            "1m",
            "--to",
            "1h",
            "--json",
        ],
    );
    ok(&o);
    let r = json(&o);
    assert_eq!(r["stored"], 3 * 48);
    assert_eq!(r["incomplete"], 1, "the hour with the deleted bars");
    // The hourly bar equals the aggregation of its stored minutes.
    let c = Connection::open(&db).unwrap();
    let (hi, vol, n): (f64, f64, i64) = c
        .query_row(
            "SELECT MAX(high_price), SUM(volume), SUM(trades_count) FROM market_data \
             WHERE symbol = 'SYN001USDT' AND freq = '1m' AND timestamp >= ?1 AND timestamp < ?1 + 3600000",
            [JAN1 + 7 * 3_600_000],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let (h_hi, h_vol, h_n): (f64, f64, i64) = c
        .query_row(
            "SELECT high_price, volume, trades_count FROM market_data \
             WHERE symbol = 'SYN001USDT' AND freq = '1h' AND timestamp = ?",
            [JAN1 + 7 * 3_600_000],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((h_hi, h_n), (hi, n));
    assert!((h_vol - vol).abs() <= 1e-9 * vol, "{h_vol} vs {vol}");
    // --drop-incomplete refuses the hour with holes.
    let o = marketdb(
        dir.path(),
        &[
            "resample",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--from",
            "1m",
            "--to",
            "4h",
            "--drop-incomplete",
            "--json",
        ],
    );
    ok(&o);
    assert_eq!(json(&o)["stored"], 5);
    assert_eq!(json(&o)["dropped"], 1);
    // A coarser target that is not a whole multiple is refused.
    fails_cleanly(
        &marketdb(
            dir.path(),
            &[
                "resample",
                "--symbols",
                "all",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--from",
                "3m",
                "--to",
                "5m",
            ],
        ),
        1,
        &["3m", "5m"],
    );

    let o = marketdb(dir.path(), &["symbols", "--freq", "1h", "--json"]);
    ok(&o);
    assert_eq!(
        json(&o),
        serde_json::json!(["SYN000USDT", "SYN001USDT", "SYN002USDT"])
    );

    let o = marketdb(
        dir.path(),
        &[
            "stats",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--freq",
            "1h",
            "--features",
            "cls,tnum",
            "--out",
            "stats.csv",
        ],
    );
    ok(&o);
    let text = std::fs::read_to_string(dir.path().join("stats.csv")).unwrap();
    let labels: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        labels,
        ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
    );
    assert!(text.starts_with("symbol,statistic,cls,tnum"), "{text}");

    for (pool, kind) in [("auto", "bb8"), ("bb8", "bb8"), ("builtin", "builtin")] {
        let o = marketdb(
            dir.path(),
            &["doctor", "--json", "--checkpoint", "--pool", pool],
        );
        ok(&o);
        let d = json(&o);
        assert_eq!(d["integrity_check"], "ok");
        assert_eq!(d["pool"], kind);
        assert_eq!(d["schema_version"], 1);
        assert_eq!(d["wal_bytes"], 0, "a checkpoint truncates the WAL");
    }
}
