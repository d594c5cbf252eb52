//! Bounded memory and strict inputs: ingest of a month of 1s bars, a zip bomb and a giant
//! line, and a 2.6M-row JSON query, each measured by the anonymous memory of the child
//! process (`RssAnon` in `/proc/{pid}/status`, sampled while it runs; the file-backed pages
//! of SQLite's mmap are not counted); and the implausible rows a careful user wants
//! refused.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::{JAN1, bin, count, dump_all, fails_cleanly, json, kline_line, marketdb, ok, stderr};

/// Anonymous memory limit of every measured command.
const LIMIT_KIB: u64 = 200 * 1024;

/// Runs `marketdb args` in `dir`, sampling its `RssAnon` every 2 ms; returns the output's
/// exit code, stderr and the peak in KiB.
fn peak_anon(dir: &Path, args: &[&str]) -> (Option<i32>, String, u64) {
    let mut child = Command::new(bin())
        .current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env_remove("RUST_LOG")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("RssAnon:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak,
    )
}

fn has_proc() -> bool {
    if Path::new("/proc/self/status").exists() {
        return true;
    }
    eprintln!("!!!!!!!! no /proc here: memory test SKIPPED !!!!!!!!");
    false
}

/// One valid 1s kline line for second `i` after `start`.
fn second_line(start: i64, i: i64) -> String {
    let t = start + i * 1000;
    let p = 100.0 + (i % 997) as f64 * 0.01;
    format!(
        "{t},{p},{},{},{p},1.5,{},150.25,3,0.5,50.5,0\n",
        p + 0.5,
        p - 0.5,
        t + 999
    )
}

#[test]
fn a_month_of_1s_bars_ingests_and_queries_in_bounded_memory() {
    if !has_proc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let april = 1_711_929_600_000; // 2024-04-01
    let rows = 30 * 86_400; // 2,592,000
    let path = dir.path().join("BTCUSDT-1s-2024-04.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..rows {
        f.write_all(second_line(april, i).as_bytes()).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let (code, err, peak) = peak_anon(dir.path(), &["ingest", "BTCUSDT-1s-2024-04.csv", "-q"]);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("ingest of {rows} 1s bars: peak RssAnon {peak} KiB");
    assert!(
        peak < LIMIT_KIB,
        "ingest took {peak} KiB of anonymous memory"
    );
    assert_eq!(
        count(
            &dir.path().join("data/market.db"),
            "SELECT COUNT(*) FROM market_data"
        ),
        rows
    );
    let query = [
        "query",
        "--symbols",
        "BTCUSDT",
        "--timerange",
        "20240401-20240430",
        "--freq",
        "1s",
        "--format",
        "json",
    ];
    let (code, err, peak) = peak_anon(dir.path(), &query);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("query --format json of {rows} rows: peak RssAnon {peak} KiB");
    assert!(
        peak < LIMIT_KIB,
        "query took {peak} KiB of anonymous memory"
    );
    // The JSON is one valid array with every row (checked on a small limit here; the big
    // one went to /dev/null).
    let o = marketdb(dir.path(), &[&query[..], &["--limit", "3"]].concat());
    ok(&o);
    let v = json(&o);
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2]["timestamp"], april + 2000);
}

/// Writes a zip at `path` holding `inner` with `total` bytes made of `unit` repeated.
fn write_repeated_zip(path: &Path, inner: &str, unit: &[u8], total: u64) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(std::io::BufWriter::new(f));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(total >= u64::from(u32::MAX));
    z.start_file(inner, opts).unwrap();
    let block: Vec<u8> = unit.iter().copied().cycle().take(1 << 20).collect();
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        z.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    z.finish().unwrap();
}

#[test]
fn a_zip_bomb_and_a_giant_line_are_refused_in_bounded_memory() {
    if !has_proc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Something stored first: it must stay as it is.
    let good: String = (0..10)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    std::fs::write(dir.path().join("ETHUSDT-1m-2024-01-01.csv"), good).unwrap();
    ok(&marketdb(
        dir.path(),
        &["ingest", "ETHUSDT-1m-2024-01-01.csv", "-q"],
    ));
    let db = dir.path().join("data/market.db");
    let before = dump_all(&db);
    const GIB2: u64 = 2 << 30;

    // 2 GiB of one repeated kline row, named as one day of 1m klines.
    let row = format!("{}\n", kline_line(JAN1, 60_000, 0, false));
    write_repeated_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-02.zip"),
        "b.csv",
        row.as_bytes(),
        GIB2,
    );
    // The same without a date in the name (so no size bound from the name): the repeated
    // open time stops it at line 2.
    std::fs::rename(
        dir.path().join("BTCUSDT-1m-2024-01-02.zip"),
        dir.path().join("bomb.zip"),
    )
    .unwrap();
    std::fs::hard_link(
        dir.path().join("bomb.zip"),
        dir.path().join("BTCUSDT-1m-2024-01-02.zip"),
    )
    .unwrap();
    // One 2 GiB line.
    write_repeated_zip(
        &dir.path().join("line.zip"),
        "l.csv",
        b"1704067200000",
        GIB2,
    );

    let cases: [(&[&str], &str); 3] = [
        (
            &["ingest", "BTCUSDT-1m-2024-01-02.zip", "-q"],
            "implausible for the rows its name allows",
        ),
        (
            &[
                "ingest", "bomb.zip", "--kind", "klines", "--symbol", "BTCUSDT", "--freq", "1m",
                "-q",
            ],
            "repeats line 1",
        ),
        (
            &[
                "ingest", "line.zip", "--kind", "klines", "--symbol", "BTCUSDT", "--freq", "1m",
                "-q",
            ],
            "line is longer than 4096 bytes",
        ),
    ];
    for (args, message) in cases {
        let (code, err, peak) = peak_anon(dir.path(), args);
        eprintln!("{args:?}: peak RssAnon {peak} KiB");
        assert_eq!(code, Some(1), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(message), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{err}"
        );
        assert!(
            peak < LIMIT_KIB,
            "{args:?} took {peak} KiB of anonymous memory"
        );
        assert_eq!(dump_all(&db), before, "the database is unchanged");
    }
}

/// Ingests one file named `name` with `content`; returns the output.
fn ingest_text(dir: &Path, name: &str, content: &str, extra: &[&str]) -> std::process::Output {
    std::fs::write(dir.join(name), content).unwrap();
    let mut args = vec!["ingest", name];
    args.extend_from_slice(extra);
    marketdb(dir, &args)
}

fn kline_at(t: i64, fields: [&str; 5]) -> String {
    // open_time,open,high,low,close,volume,close_time,quote_volume,count,tbv,tbq,ignore
    format!(
        "{t},{},{},{},{},{},{},0,0,0,0,0\n",
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        fields[4],
        t + 59_999
    )
}

#[test]
fn implausible_rows_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zero = kline_at(JAN1, ["0", "0", "0", "0", "0"]);
    fails_cleanly(
        &ingest_text(d, "Z1USDT-1m-2024-01-01.csv", &zero, &[]),
        1,
        &["Z1USDT-1m-2024-01-01.csv:1", "all-zero bar"],
    );
    // Years 0, 1969, 3000, 5000 and epoch seconds (names without dates, so only the
    // plausibility window speaks).
    for (t, says) in [
        (-62_167_219_200_000_i64, "before 2009-01-03"),
        (-60_000, "before 2009-01-03"),
        (32_503_680_000_000, "after"),
        (95_617_584_000_000, "after"),
        (1_704_067_200, "looks like epoch seconds"),
    ] {
        let line = kline_at(t, ["1", "2", "0.5", "1.5", "10"]);
        let o = ingest_text(
            d,
            "t.csv",
            &line,
            &["--kind", "klines", "--symbol", "T1USDT", "--freq", "1m"],
        );
        fails_cleanly(&o, 1, &["t.csv:1", "open_time", says]);
    }
    // A repeated open time in one file: refused, naming both lines (no "6 rows for 5");
    // a time further back is an order error naming the line before it.
    let lines: Vec<String> = [0, 1, 2, 2, 3, 4]
        .iter()
        .map(|i| kline_line(JAN1 + *i as i64 * 60_000, 60_000, *i, false) + "\n")
        .collect();
    fails_cleanly(
        &ingest_text(d, "R1USDT-1m-2024-01-01.csv", &lines.concat(), &[]),
        1,
        &["R1USDT-1m-2024-01-01.csv:4", "repeats line 3"],
    );
    let lines: Vec<String> = [0, 1, 2, 3, 4, 2]
        .iter()
        .map(|i| kline_line(JAN1 + *i as i64 * 60_000, 60_000, *i, false) + "\n")
        .collect();
    fails_cleanly(
        &ingest_text(d, "R2USDT-1m-2024-01-01.csv", &lines.concat(), &[]),
        1,
        &[
            "R2USDT-1m-2024-01-01.csv:6",
            "is before line 5",
            "time order",
        ],
    );
    // Rows of another day than the one in the name.
    let rows: String = (0..3)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    fails_cleanly(
        &ingest_text(d, "D1USDT-1m-2024-01-05.csv", &rows, &[]),
        1,
        &["D1USDT-1m-2024-01-05.csv:1", "the date in the file name"],
    );
    // Metrics off their 5-minute grid.
    let metrics = "create_time,symbol,sum_open_interest,sum_open_interest_value,\
        count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,\
        sum_taker_long_short_vol_ratio\n\
        2024-01-01 00:05:00,M1USDT,1,2,1,1,1,1\n\
        2024-01-01 00:07:00,M1USDT,1,2,1,1,1,1\n";
    fails_cleanly(
        &ingest_text(d, "M1USDT-metrics-2024-01-01.csv", metrics, &[]),
        1,
        &["M1USDT-metrics-2024-01-01.csv:3", "not on the 5m grid"],
    );
    // --skip-bad-rows with every row rejected is a failure, with the counts.
    let bad: String = (0..4)
        .map(|i| kline_at(JAN1 + i * 60_000, ["1", "0.5", "0.9", "1", "1"]))
        .collect();
    let o = ingest_text(d, "S1USDT-1m-2024-01-01.csv", &bad, &["--skip-bad-rows"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("all 4 line(s) were rejected"),
        "{}",
        stderr(&o)
    );
    // A good row among them is kept and counted.
    let mixed = format!(
        "{}{}",
        kline_line(JAN1, 60_000, 0, false) + "\n",
        &bad[bad.find('\n').unwrap() + 1..]
    );
    let o = ingest_text(
        d,
        "S2USDT-1m-2024-01-01.csv",
        &mixed,
        &["--skip-bad-rows", "--json"],
    );
    ok(&o);
    let report = json(&o);
    assert_eq!(report["rows"], 1);
    assert_eq!(report["rejected_count"], 3);
    // Nothing of the refused files was stored.
    let db = d.join("data/market.db");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM market_data"), 1);
}

#[test]
fn demo_generates_in_bounded_memory_whatever_the_range() {
    if !has_proc() {
        return;
    }
    // 20 days of 1s bars for one symbol: 1,728,000 bars, about 250 MiB as one vector.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "demo",
        "--symbols",
        "1",
        "--days",
        "20",
        "--freq",
        "1s",
        "--out",
        "exp",
        "-q",
    ];
    let (code, err, peak) = peak_anon(dir.path(), &args);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("demo of 1,728,000 1s bars: peak RssAnon {peak} KiB");
    assert!(peak < LIMIT_KIB, "demo took {peak} KiB of anonymous memory");
    assert_eq!(
        count(
            &dir.path().join("data/market.db"),
            "SELECT COUNT(*) FROM market_data"
        ),
        20 * 86_400
    );
}
