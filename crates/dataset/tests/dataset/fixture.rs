//! Shared helpers: databases with known rows, file-tree snapshots, Python and moto.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use marketdb_model::TimeRange;
use marketdb_model::time::{DAY_MS, parse_ymd};
use marketdb_model::{Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType};
use marketdb_store::AsyncMarketDB;
use serde_json::Value;

pub const H: i64 = 3_600_000;
pub const M5: i64 = 300_000;

pub fn day(d: u32) -> i64 {
    parse_ymd(2024, 1, d).unwrap()
}

pub fn days(first: u32, last: u32) -> TimeRange {
    TimeRange::new(day(first), day(last) + DAY_MS).unwrap()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub fn symbol_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}USDT")).collect()
}

pub async fn open_db(dir: &Path) -> AsyncMarketDB {
    AsyncMarketDB::open(dir.join("market.db")).await.unwrap()
}

/// A valid kline with awkward decimals, deterministic in (symbol index, bar index).
pub fn kline(symbol: &str, freq: Freq, open_time: i64, s: u64, i: u64) -> Kline {
    let base = 100.0 + (s * 7 + i * 31 % 97) as f64 * 0.37 + 1.0 / 3.0;
    let open = base;
    let close = base * (1.0 + ((i % 11) as f64 - 5.0) * 0.0013);
    let volume = 10.0 + ((s + i) % 13) as f64 * 0.1;
    let quote_volume = volume * (open + close) / 2.0;
    Kline {
        symbol: symbol.to_owned(),
        open_time,
        open,
        high: open.max(close) + 0.25,
        low: open.min(close) - 0.125,
        close,
        volume,
        close_time: freq.close_time(open_time),
        quote_volume,
        trades_count: 100 + ((s * 3 + i) % 50) as i64,
        taker_buy_volume: volume * 0.4,
        taker_buy_quote_volume: quote_volume * 0.4,
    }
}

/// Stores `n` bars of `freq` from `start` for each symbol, skipping where `skip(s, i)`.
pub async fn store_bars(
    db: &AsyncMarketDB,
    symbols: &[&str],
    freq: Freq,
    start: i64,
    n: i64,
    skip: impl Fn(usize, i64) -> bool,
) {
    let mut rows = Vec::new();
    for (s, sym) in symbols.iter().enumerate() {
        let mut t = start;
        for i in 0..n {
            if !skip(s, i) {
                rows.push(kline(sym, freq, t, s as u64, i as u64));
            }
            t = freq.next(t);
        }
    }
    db.store_data(rows, freq).await.unwrap();
}

/// Twelve symbols of 1m and three of 1h over 1-2 Jan, two monthly bars, funding, open
/// interest and two long/short ratio types: every table of the dataset.
pub async fn dataset_fixture(db: &AsyncMarketDB) {
    let names = symbol_names("S", 12);
    let syms: Vec<&str> = names.iter().map(String::as_str).collect();
    store_bars(db, &syms, Freq::M1, day(1), 2 * 1440, |s, i| {
        s == 4 && i == 700
    })
    .await;
    store_bars(db, &syms[..3], Freq::H1, day(1), 48, |_, _| false).await;
    store_bars(db, &syms[..2], Freq::Mo1, day(1), 1, |_, _| false).await;
    let funding: Vec<FundingRate> = (0..3)
        .flat_map(|s| {
            (0..6).map(move |n| FundingRate {
                symbol: format!("S{s:03}USDT"),
                funding_time: day(1) + n * 8 * H,
                funding_rate: 0.0001 * (n + 1) as f64 - s as f64 * 1e-5,
                mark_price: (n % 2 == 0).then_some(42_000.5 + n as f64),
                index_price: None,
            })
        })
        .collect();
    db.store_funding_rate(funding).await.unwrap();
    let oi: Vec<OpenInterest> = (0..2)
        .flat_map(|s| {
            (0..2 * 288).map(move |k| OpenInterest {
                symbol: format!("S{s:03}USDT"),
                time: day(1) + k * M5,
                interval: Freq::M5,
                open_interest: 1000.0 + k as f64 * 0.25 + s as f64,
                open_interest_value: (k % 7 != 0).then_some(2e6 + k as f64),
            })
        })
        .collect();
    db.store_open_interest(oi).await.unwrap();
    let lsr: Vec<LongShortRatio> = [RatioType::TopTraderAccount, RatioType::TakerVol]
        .into_iter()
        .flat_map(|r| {
            (0..2 * 288).map(move |k| LongShortRatio {
                symbol: "S001USDT".into(),
                timestamp: day(1) + k * M5,
                period: Freq::M5,
                ratio_type: r,
                long_short_ratio: 1.0 + k as f64 / 512.0,
                long_account: Some(0.5 + k as f64 / 4096.0),
                short_account: None,
            })
        })
        .collect();
    db.store_long_short_ratio(lsr).await.unwrap();
}

/// The partitions of [`dataset_fixture`].
pub const DATASET_KEYS: [&str; 10] = [
    "funding_rate/month=2024-01",
    "klines/freq=1h/date=2024-01-01",
    "klines/freq=1h/date=2024-01-02",
    "klines/freq=1m/date=2024-01-01",
    "klines/freq=1m/date=2024-01-02",
    "klines/freq=1mo/date=2024-01-01",
    "long_short_ratio/date=2024-01-01",
    "long_short_ratio/date=2024-01-02",
    "open_interest/date=2024-01-01",
    "open_interest/date=2024-01-02",
];

/// Rows of [`dataset_fixture`] in its klines table.
pub const FIXTURE_KLINES: u64 = 12 * 2880 - 1 + 3 * 48 + 2;

/// Every row of the four tables as text, in key order (the database's content).
pub fn dump(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM market_data ORDER BY symbol, freq, timestamp",
        "SELECT * FROM funding_rate ORDER BY symbol, timestamp",
        "SELECT * FROM open_interest ORDER BY symbol, timestamp, interval",
        "SELECT * FROM long_short_ratio ORDER BY symbol, timestamp, period, ratio_type",
    ] {
        let mut stmt = c.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push_str(&format!("{v:?}|"));
                }
                Ok(line)
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

/// The rows of [`dump`] of one symbol.
pub fn dump_of(db: &Path, symbol: &str) -> Vec<String> {
    let tag = format!("Text(\"{symbol}\")|");
    dump(db)
        .into_iter()
        .filter(|l| l.starts_with(&tag))
        .collect()
}

/// Content hash and mtime of every file below `root`, by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<String, (String, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let m = fs::metadata(&p).unwrap().modified().unwrap();
                let digest = {
                    use sha2::Digest;
                    format!("{:x}", sha2::Sha256::digest(fs::read(&p).unwrap()))
                };
                out.insert(rel, (digest, m));
            }
        }
    }
    out
}

pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

// ---------------------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn python_works(py: &Path) -> bool {
    Command::new(py)
        .args(["-c", "import pyarrow, duckdb, pyspark, moto.server"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The test virtualenv's interpreter (`scripts/pyenv.sh`, shared with the other crates'
/// tests under its flock); `None` without python3, unless `MARKETDB_REQUIRE_PYTHON` is set.
fn setup_python() -> Option<PathBuf> {
    let root = workspace_root();
    let py = root.join("target").join("pyenv").join("bin").join("python");
    if python_works(&py) {
        return Some(py);
    }
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("MARKETDB_REQUIRE_PYTHON").is_none(),
            "python3 is required here (MARKETDB_REQUIRE_PYTHON is set) but absent"
        );
        eprintln!("\n## SKIPPING PYTHON CHECKS: python3 is not installed ##\n");
        return None;
    }
    let script = root.join("scripts").join("pyenv.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(python_works(&path), "{} lacks a package", path.display());
    Some(path)
}

pub fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(setup_python).as_deref()
}

/// Runs `script` with `INPUT` (the JSON `input`) defined; returns the JSON printed on the
/// last stdout line. Fails the test when Python exits non-zero.
pub fn run_python(script: &str, input: &Value) -> Option<Value> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    let script_path = dir.path().join("check.py");
    fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
    fs::write(
        &script_path,
        format!("import json, sys\nINPUT = json.load(open(sys.argv[1]))\n{script}"),
    )
    .unwrap();
    let out = Command::new(py)
        .arg(&script_path)
        .arg(&input_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python check failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or("null");
    Some(serde_json::from_str(last).unwrap())
}

/// A moto S3 server on loopback, stopped on drop.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `moto_server` from the test virtualenv with a bucket `bucket`; `None` without
/// Python (the same rule as the other Python checks).
pub fn s3_server(bucket: &str) -> Option<S3Server> {
    use std::io::{Read, Write};
    let py = python()?;
    let moto = py.with_file_name("moto_server");
    assert!(
        moto.exists(),
        "{} is missing: run scripts/pyenv.sh",
        moto.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let started = std::time::Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let req = format!(
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "create bucket: {answer}"
            );
            return Some(server);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The options of an S3 location on `server`.
pub fn s3_options(server: &S3Server) -> Vec<(String, String)> {
    [
        ("aws_endpoint", server.endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}
