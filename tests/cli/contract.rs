//! The command-line contract: usage errors exit 2 and name what is wrong (or allowed),
//! flags that do not apply to a format are refused, open `--timerange` forms, gzip CSV,
//! warnings for symbols without bars and empty results, `-q`, coverage in percent, and
//! escaped paths.

use std::path::Path;

use rusqlite::Connection;

use super::{JAN1, count, fails_cleanly, json, kline_line, marketdb, ok, stderr, stdout};

/// A demo database (2 symbols x 2 days) at `data/market.db`.
fn demo_db() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &["demo", "--symbols", "2", "--days", "2", "-q", "--out", "np"],
    ));
    dir
}

fn export<'a>(format: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "export",
        format,
        "--symbols",
        "all",
        "--timerange",
        "20240101-20240101",
        "--freq",
        "1m",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn bad_values_are_usage_errors_listing_what_is_allowed() {
    let dir = demo_db();
    let d = dir.path();
    fails_cleanly(
        &marketdb(d, &["--pool", "x", "summary"]),
        2,
        &["auto, bb8, builtin"],
    );
    fails_cleanly(
        &marketdb(d, &export("numpy", "o", &["--fill", "bfill"])),
        2,
        &["'bfill'", "none, ffill"],
    );
    fails_cleanly(
        &marketdb(
            d,
            &export("parquet", "o.parquet", &["--compression", "brotli"]),
        ),
        2,
        &["'brotli'", "zstd, snappy, gzip, lz4, none"],
    );
    fails_cleanly(
        &marketdb(d, &["ingest", "x.csv", "--kind", "x"]),
        2,
        &["'x'", "klines, funding, metrics"],
    );
    fails_cleanly(
        &marketdb(d, &["demo", "--symbols", "0"]),
        2,
        &["between 1 and 1000"],
    );
    fails_cleanly(
        &marketdb(
            d,
            &[
                "delete",
                "--symbols",
                "SYN000USDT",
                "--timerange",
                "20240101-20240101",
                "--freq",
                "1m",
            ],
        ),
        2,
        &["--yes"],
    );
    fails_cleanly(
        &marketdb(
            d,
            &[
                "check",
                "--symbols",
                "all",
                "--timerange",
                "20240101-",
                "--freq",
                "1m",
                "--fail-under",
                "150",
            ],
        ),
        2,
        &["percentage"],
    );
    // A missing range names the flags that give one.
    fails_cleanly(
        &marketdb(d, &["query", "--symbols", "SYN000USDT", "--freq", "1m"]),
        2,
        &["--start and --end", "--timerange"],
    );
    // A missing required flag is named.
    fails_cleanly(
        &marketdb(
            d,
            &["query", "--timerange", "20240101-20240101", "--freq", "1m"],
        ),
        2,
        &["--symbols"],
    );
    assert_eq!(
        count(
            &d.join("data/market.db"),
            "SELECT COUNT(*) FROM market_data"
        ),
        2 * 2 * 1440
    );
}

#[test]
fn flags_of_another_format_are_refused() {
    let dir = demo_db();
    let d = dir.path();
    for (args, says) in [
        (
            export("csv", "k.csv", &["--fill", "ffill"]),
            "--fill applies to numpy",
        ),
        (
            export("parquet", "k.parquet", &["--fill", "ffill"]),
            "--fill applies to numpy",
        ),
        (
            export("numpy", "np2", &["--compression", "zstd"]),
            "--compression applies to csv and parquet",
        ),
        (
            export("parquet", "k.parquet", &["--part-rows", "5"]),
            "--part-rows applies to csv",
        ),
        (
            export("csv", "k.csv", &["--compression", "zstd"]),
            "gzip or none",
        ),
    ] {
        fails_cleanly(&marketdb(d, &args), 2, &[says]);
    }
    assert!(!d.join("k.csv").exists() && !d.join("k.parquet").exists() && !d.join("np2").exists());
}

fn gunzip(path: &Path) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn csv_is_gzipped_when_asked_or_named_so() {
    let dir = demo_db();
    let d = dir.path();
    ok(&marketdb(d, &export("csv", "a.csv.gz", &[])));
    ok(&marketdb(
        d,
        &export("csv", "b.csv", &["--compression", "gzip"]),
    ));
    ok(&marketdb(d, &export("csv", "c.csv", &[])));
    let plain = std::fs::read_to_string(d.join("c.csv")).unwrap();
    assert_eq!(plain.lines().count(), 1 + 2 * 1440);
    assert_eq!(gunzip(&d.join("a.csv.gz")), plain);
    assert_eq!(gunzip(&d.join("b.csv")), plain);
    // --compression none keeps a .gz name plain (the user asked).
    ok(&marketdb(
        d,
        &export("csv", "d.csv.gz", &["--compression", "none"]),
    ));
    assert_eq!(std::fs::read_to_string(d.join("d.csv.gz")).unwrap(), plain);
}

#[test]
fn open_timeranges_warnings_and_percent_coverage() {
    let dir = demo_db();
    let d = dir.path();
    // From the first stored bar to the end of Jan 1; from Jan 2 until now.
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--freq",
            "1h",
            "--timerange=-20240101",
            "--format",
            "csv",
        ],
    );
    ok(&o);
    assert!(
        stderr(&o).contains("no 1h bars stored for SYN000USDT"),
        "{}",
        stderr(&o)
    );
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--freq",
            "1m",
            "--timerange",
            "-20240101",
            "--format",
            "jsonl",
        ],
    );
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1440);
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--freq",
            "1m",
            "--timerange",
            "20240102-",
            "--format",
            "csv",
        ],
    );
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1 + 1440);
    // A typo'd symbol is named; the empty result is said.
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT,SYN00OUSDT",
            "--freq",
            "1m",
            "--timerange",
            "20240101-20240101",
            "--limit",
            "2",
        ],
    );
    ok(&o);
    assert!(
        stderr(&o).contains("no 1m bars stored for SYN00OUSDT"),
        "{}",
        stderr(&o)
    );
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--freq",
            "1m",
            "--timerange",
            "20240301-20240301",
        ],
    );
    ok(&o);
    assert!(
        stderr(&o).contains("warning: no 1m bars of SYN000USDT in the range"),
        "{}",
        stderr(&o)
    );
    // -q silences warnings.
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN000USDT",
            "--freq",
            "1m",
            "--timerange",
            "20240301-20240301",
            "-q",
        ],
    );
    ok(&o);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // Coverage in percent in JSON too, with the unknown symbols listed.
    ok(&marketdb(
        d,
        &[
            "delete",
            "--symbols",
            "SYN001USDT",
            "--start",
            "2024-01-01 00:00",
            "--end",
            "2024-01-01 00:14",
            "--freq",
            "1m",
            "--yes",
        ],
    ));
    let o = marketdb(
        d,
        &[
            "check",
            "--symbols",
            "SYN000USDT,SYN001USDT,NOPEUSDT",
            "--timerange",
            "20240101-20240101",
            "--freq",
            "1m",
            "--json",
        ],
    );
    ok(&o);
    let j = json(&o);
    assert_eq!(j["coverage_unit"], "percent");
    assert_eq!(j["unknown_symbols"], serde_json::json!(["NOPEUSDT"]));
    let cov = |sym: &str| {
        j["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["symbol"] == sym)
            .unwrap()["coverage"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(cov("SYN000USDT"), 100.0);
    assert!((cov("SYN001USDT") - 100.0 * 1425.0 / 1440.0).abs() < 1e-9);
    assert_eq!(cov("NOPEUSDT"), 0.0);
    // --fail-under takes the same number.
    let o = marketdb(
        d,
        &[
            "check",
            "--symbols",
            "SYN001USDT",
            "--timerange",
            "20240101-20240101",
            "--freq",
            "1m",
            "--fail-under",
            "99",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn quiet_ingest_prints_the_summary_and_errors_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v = d.join("vision");
    std::fs::create_dir(&v).unwrap();
    let rows: String = (0..5)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    std::fs::write(v.join("AAAUSDT-1m-2024-01-01.csv"), &rows).unwrap();
    std::fs::write(v.join("BBBUSDT-1m-2024-01-01.csv"), &rows).unwrap();
    std::fs::write(v.join("CCCUSDT-1m-2024-01-01.csv"), "x,y\n1,2\n").unwrap();
    let o = marketdb(d, &["ingest", "vision", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).trim(),
        "ingested 2 of 3 file(s): 10 row(s) stored, 1 file(s) failed"
    );
    let text = stderr(&o);
    let err: Vec<&str> = text.lines().collect();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("error: ") && err[0].contains("CCCUSDT"),
        "{err:?}"
    );
    // Without -q, one line per file as well.
    let o = marketdb(d, &["ingest", "vision/AAAUSDT-1m-2024-01-01.csv"]);
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
}

#[test]
fn hostile_names_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = "BTCUSDT-1m-2024-01-01\n\u{1b}[31mEVIL.csv";
    std::fs::write(d.join(name), "1,2\n").unwrap();
    let o = marketdb(d, &["ingest", name]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("\\n") && err.contains("\\u{1b}"), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
}

#[test]
fn symbols_listing_ends_on_a_symbol_that_is_not_utf8() {
    let dir = demo_db();
    let d = dir.path();
    let c = Connection::open(d.join("data/market.db")).unwrap();
    c.execute(
        "INSERT INTO market_data (symbol, timestamp, freq, open_price, high_price, low_price, \
         close_price, volume, quote_volume, trades_count, taker_buy_volume, \
         taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume) \
         VALUES (CAST(X'53594EFF' AS TEXT), ?1, '1m', 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)",
        [JAN1],
    )
    .unwrap();
    drop(c);
    let o = marketdb(d, &["symbols", "--json"]);
    ok(&o);
    let j = json(&o);
    assert_eq!(j, serde_json::json!(["SYN000USDT", "SYN001USDT"]), "{j}");
}

/// Runs `marketdb args` with at most `limit` open file descriptors (`ulimit -n`).
fn with_fd_limit(dir: &Path, limit: u32, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} || exit 97; exec \"$0\" \"$@\""))
        .arg(super::bin())
        .args(args)
        .current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn too_few_file_descriptors_fall_back_to_fewer_readers() {
    let dir = demo_db();
    let d = dir.path();
    let (mut fallback, mut refused, mut bb8) = (None, None, None);
    for limit in 6..=64 {
        let o = with_fd_limit(d, limit, &["--pool", "auto", "-v", "summary", "--json"]);
        if o.status.code() == Some(97) {
            eprintln!("!!!!!!!! ulimit -n is not available: fd-limit test SKIPPED !!!!!!!!");
            return;
        }
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{limit}: {err}"
        );
        if !o.status.success() {
            // Too few for even one connection: a clean error naming the database or the
            // descriptors.
            assert!(
                err.contains("error: ")
                    && (err.contains("market.db") || err.contains("file descriptors")),
                "{limit}: {err}"
            );
            refused.get_or_insert(limit);
        } else if err.contains("falling back to built-in pool") {
            assert!(err.contains("bb8 pool failed"), "{limit}: {err}");
            assert!(err.contains("too many open files?"), "{limit}: {err}");
            assert!(err.contains("reader connection(s)"), "{limit}: {err}");
            assert_eq!(json(&o)["market_data"][0]["record_count"], 2 * 2 * 1440);
            fallback.get_or_insert(limit);
        } else {
            assert!(err.contains("using bb8 pool"), "{limit}: {err}");
            bb8.get_or_insert(limit);
            break;
        }
    }
    eprintln!("fd limits: refused from 6, fallback at {fallback:?}, bb8 from {bb8:?}");
    assert!(refused.is_some(), "no limit was too low to open anything");
    assert!(
        fallback.is_some(),
        "no limit made bb8 fail and the fallback serve"
    );
    assert!(bb8.is_some(), "bb8 never opened up to 64 descriptors");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = demo_db();
    for cmd in [
        "summary",
        "query --symbols all --timerange 20240101-20240102 --freq 1m",
        "metrics open-interest --symbols all --timerange 20240101-20240102",
        "check --symbols all --timerange 20240101-20240102 --freq 1m",
    ] {
        let script =
            format!("\"$0\" {cmd} | head -c 10 >/dev/null; echo \"exit ${{PIPESTATUS[0]}}\"");
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(super::bin())
            .current_dir(dir.path())
            .env("MARKETDB_DB", "data/market.db")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(stdout(&o).trim(), "exit 0", "{cmd}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{cmd}: {}", stderr(&o));
    }
}

#[test]
fn metrics_prints_the_stored_records() {
    let dir = demo_db();
    let d = dir.path();
    let c = Connection::open(d.join("data/market.db")).unwrap();
    let stored: Vec<(i64, f64)> = c
        .prepare(
            "SELECT timestamp, long_short_ratio FROM long_short_ratio WHERE symbol = 'SYN001USDT' \
             AND ratio_type = 'position' ORDER BY timestamp",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 2 * 288);
    drop(c);
    let o = marketdb(
        d,
        &[
            "metrics",
            "long-short-ratio",
            "--symbols",
            "SYN001USDT",
            "--timerange",
            "20240101-20240102",
            "--ratio-type",
            "toptrader_position",
            "--format",
            "jsonl",
        ],
    );
    ok(&o);
    let got: Vec<(i64, f64)> = stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["timestamp"].as_i64().unwrap(),
                v["long_short_ratio"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, stored);
    fails_cleanly(
        &marketdb(
            d,
            &[
                "metrics",
                "long-short-ratio",
                "--symbols",
                "all",
                "--timerange",
                "20240101-",
                "--ratio-type",
                "x",
            ],
        ),
        2,
        &["invalid ratio type"],
    );
    let o = marketdb(
        d,
        &[
            "metrics",
            "funding",
            "--symbols",
            "all",
            "--timerange",
            "-20240101",
            "--format",
            "csv",
        ],
    );
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1 + 2 * 3, "{}", stdout(&o));
}

#[test]
fn query_aligns_metric_features_as_of_each_close() {
    let dir = demo_db();
    let d = dir.path();
    // The oracle: for each 1m bar, the latest stored point with close - tolerance < t <=
    // close, computed here from the raw tables.
    let c = Connection::open(d.join("data/market.db")).unwrap();
    let points = |sql: &str| -> Vec<(i64, f64)> {
        c.prepare(sql)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let funding = points(
        "SELECT timestamp, funding_rate FROM funding_rate WHERE symbol = 'SYN001USDT' \
         ORDER BY timestamp",
    );
    let oi = points(
        "SELECT timestamp, open_interest FROM open_interest WHERE symbol = 'SYN001USDT' \
         AND interval = '5m' ORDER BY timestamp",
    );
    assert!(!funding.is_empty() && !oi.is_empty());
    drop(c);
    let as_of = |pts: &[(i64, f64)], close: i64, tol: i64| {
        pts.iter()
            .rev()
            .find(|(t, _)| *t <= close)
            .filter(|(t, _)| *t > close - tol)
            .map(|(_, v)| *v)
    };
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN001USDT",
            "--freq",
            "1m",
            "--timerange",
            "20240101-20240101",
            "--features",
            "fr,cls,oi",
            "--format",
            "jsonl",
        ],
    );
    ok(&o);
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1440);
    let mut with_funding = 0;
    for r in &rows {
        let close = r["timestamp"].as_i64().unwrap() + 60_000 - 1;
        let fr = as_of(&funding, close, 48 * 3_600_000);
        assert_eq!(r["fr"].as_f64(), fr, "{r}");
        assert_eq!(r["oi"].as_f64(), as_of(&oi, close, 6 * 3_600_000), "{r}");
        assert!(r["cls"].as_f64().is_some());
        with_funding += usize::from(fr.is_some());
    }
    assert!(with_funding > 0);
    let o = marketdb(
        d,
        &[
            "query",
            "--symbols",
            "SYN001USDT",
            "--freq",
            "1m",
            "--timerange",
            "20240101-20240101",
            "--features",
            "fr,cls,oi",
            "--format",
            "csv",
            "--limit",
            "1",
        ],
    );
    ok(&o);
    assert_eq!(
        stdout(&o).lines().next(),
        Some("symbol,timestamp,datetime,fr,cls,oi"),
        "columns in request order"
    );
}
