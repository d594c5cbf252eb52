//! Integration tests of marketdb-export: a real store in a temporary folder, exports to
//! NumPy, CSV, Parquet and statistics, and REAL Python (numpy, pandas, pyarrow, from a
//! virtualenv at `<workspace>/target/pyenv` created on first use) loading the files and
//! comparing them with what the store holds (the virtualenv comes from the workspace's
//! `scripts/pyenv.sh`). Python checks are batched: one Python run per
//! test. Without `python3` on the machine the Python halves are skipped with a loud
//! message; the Rust halves still run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods
)]
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use marketdb_export::{
    AsyncDataExporter, Error, ExportProgress, ExportRequest, FillPolicy, NumpyExport,
    ParquetCompression,
};
use marketdb_model::time::{DAY_MS, parse_ymd};
use marketdb_model::{
    Feature, Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType, TimeRange,
};
use marketdb_store::{AsyncMarketDB, Column, IncompletePolicy, KlineFrame};
use serde_json::{Value, json};

const H: i64 = 3_600_000;
const M5: i64 = 300_000;

fn day(d: u32) -> i64 {
    parse_ymd(2024, 1, d).unwrap()
}

fn days(first: u32, last: u32) -> TimeRange {
    TimeRange::new(day(first), day(last) + DAY_MS).unwrap()
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
        .args([
            "-c",
            "import numpy, pandas, pyarrow, duckdb, h5py, moto.server",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Prepares the shared virtualenv `<workspace>/target/pyenv` with numpy, pandas and
/// pyarrow through `scripts/pyenv.sh` (which holds an flock on `target/pyenv.lock`, shared
/// with the CLI tests) and returns its interpreter; `None` without python3, unless
/// `MARKETDB_REQUIRE_PYTHON` is set (as CI does), where a missing python3 fails the test.
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
        eprintln!(
            "\n\n################################################################\n\
             ## SKIPPING PYTHON CHECKS: python3 is not installed.          ##\n\
             ## The numpy/pandas/pyarrow halves of these tests did NOT run. ##\n\
             ################################################################\n"
        );
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
    assert!(
        python_works(&path),
        "{} does not import numpy",
        path.display()
    );
    Some(path)
}

fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(setup_python).as_deref()
}

/// Runs `script` with the JSON `input` file path as argv[1]; returns the JSON printed on
/// the last stdout line. Fails the test when Python exits non-zero.
fn run_python(script: &str, input: &Value) -> Option<Value> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    let script_path = dir.path().join("check.py");
    fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
    fs::write(&script_path, format!("{PY_COMMON}\n{script}")).unwrap();
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

const PY_COMMON: &str = r#"
import glob, hashlib, json, math, os, sys
from bisect import bisect_right
import numpy as np
INPUT = json.load(open(sys.argv[1]))

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()

def load(path):
    return np.load(path, allow_pickle=False)

def nan(v):
    return float("nan") if v is None else v
"#;

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// A valid kline with awkward decimals, deterministic in (symbol index, bar index).
fn kline(symbol: &str, freq: Freq, open_time: i64, s: u64, i: u64) -> Kline {
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
async fn store_bars(
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

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn symbol_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}USDT")).collect()
}

async fn open_db(dir: &Path) -> AsyncMarketDB {
    AsyncMarketDB::open(dir.join("market.db")).await.unwrap()
}

fn f64_at(frame: &KlineFrame, f: Feature, row: usize) -> f64 {
    frame.column(f).unwrap().get_f64(row).unwrap()
}

/// The value of feature `f` of a row by the documented definitions (NaN as JSON null).
fn expected_value(frame: &KlineFrame, f: Feature, row: usize) -> Value {
    let v = match f {
        Feature::Vwap => {
            let vol = f64_at(frame, Feature::Volume, row);
            if vol == 0.0 {
                f64::NAN
            } else {
                f64_at(frame, Feature::QuoteVolume, row) / vol
            }
        }
        Feature::Ret => {
            let o = f64_at(frame, Feature::Open, row);
            (f64_at(frame, Feature::Close, row) - o) / o
        }
        Feature::TradesCount => match frame.column(f).unwrap() {
            Column::I64(v) => return json!(v[row]),
            Column::F64(v) => v[row],
        },
        other => f64_at(frame, other, row),
    };
    json!(v)
}

/// `[[symbol, open, [values in feature order]], ...]` of a frame holding the kline columns.
fn bars_json(frame: &KlineFrame, features: &[Feature]) -> Vec<Value> {
    let mut out = Vec::new();
    for (sym, rows) in frame.symbols() {
        for row in rows.clone() {
            let vals: Vec<Value> = features
                .iter()
                .map(|f| expected_value(frame, *f, row))
                .collect();
            out.push(json!([sym, frame.timestamp()[row], vals]));
        }
    }
    out
}

/// The stored bars of a request, read back through the store's own reader.
async fn stored(db: &AsyncMarketDB, req: &ExportRequest) -> KlineFrame {
    db.read_data(req.range, req.freq, &req.symbols, &Feature::KLINE, false)
        .await
        .unwrap()
}

fn short_names(f: &[Feature]) -> Vec<&'static str> {
    f.iter().map(|f| f.short()).collect()
}

fn features_of(req: &ExportRequest) -> Vec<Feature> {
    if req.features.is_empty() {
        Feature::DEFAULT_EXPORT.to_vec()
    } else {
        req.features.clone()
    }
}

// ---------------------------------------------------------------------------------------
// NumPy layout, values and shapes
// ---------------------------------------------------------------------------------------

const PY_NUMPY: &str = r#"
def check_manifest(case):
    d = case["dir"]
    man = json.load(open(os.path.join(d, "manifest.json")))
    assert man["contract_version"] == "1.1", man["contract_version"]
    assert man["freq"] == case["freq"], (man["freq"], case["freq"])
    assert man["features"] == case["features"], man["features"]
    assert man["fill"] == case["fill"]
    listed = set()
    for f in man["files"]:
        p = os.path.join(d, f["path"])
        assert sha256(p) == f["sha256"], p
        assert os.path.getsize(p) == f["bytes"], p
        listed.add(f["path"])
    on_disk = set()
    for root, _, files in os.walk(d):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), d).replace(os.sep, "/")
            if rel != "manifest.json":
                on_disk.add(rel)
    assert on_disk == listed, sorted(on_disk ^ listed)[:5]
    return man

def ffill_rows(m):
    out = m.copy()
    for r in range(out.shape[0]):
        last = float("nan")
        for c in range(out.shape[1]):
            if math.isnan(out[r, c]):
                out[r, c] = last
            else:
                last = out[r, c]
    return out

def check_numpy(case):
    d, freq = case["dir"], case["freq"]
    man = check_manifest(case)
    got_days = {x["date"]: [x["k"], x["t"]] for x in man["days"]}
    assert got_days == case["days"], (got_days, case["days"])
    if not case["days"]:
        assert man["status"] == "no_data" and man["days"] == [] and man["files"] == []
        assert glob.glob(os.path.join(d, "**", "*.npy"), recursive=True) == []
        return {"status": man["status"]}
    assert man["status"] == "ok"
    by_day = {}
    for sym, ts, vals in case["bars"]:
        day0 = ts // 86400000 * 86400000
        by_day.setdefault(day0, []).append((sym, ts, vals))
    result = {"status": man["status"], "days": {}}
    for x in man["days"]:
        date, day0, K, T = x["date"], x["start"], x["k"], x["t"]
        bars = by_day.pop(day0)
        syms_json = json.load(open(os.path.join(d, freq, "symbols", date + ".json")))
        syms_npy = load(os.path.join(d, freq, "symbols", date + ".npy"))
        assert syms_npy.dtype.kind == "U", syms_npy.dtype
        assert list(syms_npy) == syms_json == sorted({b[0] for b in bars}), (syms_json, date)
        ts = load(os.path.join(d, freq, "timestamp", date + ".npy"))
        assert ts.dtype == np.int64 and ts.shape == (T,), (ts.dtype, ts.shape)
        step = case["step"]
        grid = [day0 + i * step for i in range(86400000 // step)] if step else [day0]
        assert ts.tolist() == grid, date
        shapes, nan_rows = {}, {}
        for fi, feat in enumerate(case["features"]):
            m = load(os.path.join(d, freq, feat, date + ".npy"))
            assert m.dtype == np.float64 and m.flags.c_contiguous, (feat, m.dtype)
            assert m.shape == (K, T), (feat, m.shape, K, T)
            exp = np.full((K, T), np.nan)
            for sym, t, vals in bars:
                exp[syms_json.index(sym), grid.index(t)] = nan(vals[fi])
            if case["fill"] == "ffill":
                exp = ffill_rows(exp)
            if case["exact"]:
                assert np.array_equal(m, exp, equal_nan=True), (feat, date, m, exp)
            else:
                assert np.allclose(m, exp, rtol=1e-12, atol=0, equal_nan=True), (feat, date)
            shapes[feat] = list(m.shape)
            nan_rows[feat] = np.isnan(m).sum(axis=1).tolist()
        result["days"][date] = {"shapes": shapes, "nan_rows": nan_rows, "symbols": syms_json}
    assert not by_day, "bars on days without files: %r" % sorted(by_day)
    return result

print(json.dumps({c["name"]: check_numpy(c) for c in INPUT["cases"]}))
"#;

struct Case {
    name: &'static str,
    req: ExportRequest,
    dir: PathBuf,
    /// Expected bars (None: read them back from the store at the request's freq).
    bars: Option<Vec<Value>>,
    exact: bool,
}

fn case_json(c: &Case, bars: Vec<Value>, report_days: &[marketdb_export::DayReport]) -> Value {
    let freq = c.req.target_freq.unwrap_or(c.req.freq);
    let days: BTreeMap<String, Value> = report_days
        .iter()
        .map(|d| (d.date.clone(), json!([d.k, d.t])))
        .collect();
    json!({
        "name": c.name,
        "dir": c.dir,
        "freq": freq.as_str(),
        "step": freq.fixed_ms().filter(|ms| *ms < DAY_MS),
        "features": short_names(&features_of(&c.req)),
        "fill": c.req.fill.as_str(),
        "bars": bars,
        "days": days,
        "exact": c.exact,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numpy_exports_match_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let three = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];
    // 1h, 3 days; BBB has only 12 of the 24 hours of Jan 1 (00:00..11:00), and on Jan 2
    // misses 00:00..05:00 (the start of the day) and 10:00..11:00 (a gap within the day).
    store_bars(&db, &three, Freq::H1, day(1), 72, |s, i| {
        s == 1 && (12..30).chain(34..36).any(|h| h == i)
    })
    .await;
    // CCC's 05:00 bar on Jan 1 has no volume at all (vwap NaN).
    let mut k = kline("CCCUSDT", Freq::H1, day(1) + 5 * H, 2, 5);
    (
        k.volume,
        k.quote_volume,
        k.taker_buy_volume,
        k.taker_buy_quote_volume,
    ) = (0.0, 0.0, 0.0, 0.0);
    db.store_data(vec![k], Freq::H1).await.unwrap();
    // 5m, 2 symbols, 1 day; 4h, 50 symbols, 1 day; 1d, 1 symbol, 3 weeks.
    store_bars(
        &db,
        &["XXXUSDT", "YYYUSDT"],
        Freq::M5,
        day(1),
        288,
        |_, _| false,
    )
    .await;
    let fifty = symbol_names("S", 50);
    let fifty_refs: Vec<&str> = fifty.iter().map(String::as_str).collect();
    store_bars(&db, &fifty_refs, Freq::H4, day(1), 6, |_, _| false).await;
    store_bars(&db, &["WWWUSDT"], Freq::D1, day(1), 21, |_, _| false).await;

    let ex = AsyncDataExporter::new(&db);
    let out = tmp.path().join("out");
    let req = |syms: &[&str], range: TimeRange, freq: Freq| {
        ExportRequest::new(strings(syms), range, freq)
    };
    let mut cases = vec![
        Case {
            name: "one_day",
            req: req(&three, days(1, 1), Freq::H1),
            dir: out.join("a"),
            bars: None,
            exact: true,
        },
        Case {
            name: "three_days",
            req: req(&three, days(1, 3), Freq::H1),
            dir: out.join("b"),
            bars: None,
            exact: true,
        },
        Case {
            name: "five_minutes",
            req: req(&["XXXUSDT", "YYYUSDT"], days(1, 1), Freq::M5),
            dir: out.join("c"),
            bars: None,
            exact: true,
        },
        Case {
            name: "one_symbol",
            req: req(&["BBBUSDT"], days(1, 1), Freq::H1),
            dir: out.join("e"),
            bars: None,
            exact: true,
        },
        Case {
            name: "fifty",
            req: ExportRequest::new(fifty.clone(), days(1, 1), Freq::H4),
            dir: out.join("f"),
            bars: None,
            exact: true,
        },
        Case {
            name: "empty",
            req: req(
                &three,
                TimeRange::parse("2023-06-01", "2023-06-02").unwrap(),
                Freq::H1,
            ),
            dir: out.join("g"),
            bars: None,
            exact: true,
        },
    ];
    let mut daily = req(&three, days(1, 1), Freq::H1);
    daily.target_freq = Some(Freq::D1);
    cases.push(Case {
        name: "target_1d",
        req: daily,
        dir: out.join("d"),
        bars: None,
        exact: false,
    });
    let mut weekly = req(&["WWWUSDT"], days(1, 21), Freq::D1);
    weekly.target_freq = Some(Freq::W1);
    cases.push(Case {
        name: "target_1w",
        req: weekly,
        dir: out.join("w"),
        bars: None,
        exact: false,
    });
    let mut ffill = req(&three, days(1, 2), Freq::H1);
    ffill.fill = FillPolicy::Ffill;
    ffill.features = vec![Feature::Close, Feature::Vwap, Feature::TradesCount];
    cases.push(Case {
        name: "ffill",
        req: ffill,
        dir: out.join("h"),
        bars: None,
        exact: true,
    });
    let mut empty_symbols = req(&[], days(1, 1), Freq::M5);
    empty_symbols.features = vec![Feature::Close];
    cases.push(Case {
        name: "all_symbols",
        req: empty_symbols,
        dir: out.join("i"),
        bars: None,
        exact: true,
    });

    let mut inputs = Vec::new();
    for c in &mut cases {
        let report = ex.export_to_numpy(&c.req, &c.dir).await.unwrap();
        assert!(c.dir.join("manifest.json").is_file(), "{}", c.name);
        let features = features_of(&c.req);
        let bars = match (c.bars.take(), c.req.target_freq) {
            (Some(b), _) => b,
            (None, Some(to)) => {
                // Expected values from the store's resample: the same rules (one
                // implementation, `BucketAggregator`), but fed straight from SQLite rather
                // than from the exporter's scans, drains and per-day splits.
                let r = db
                    .resample(
                        c.req.range,
                        c.req.freq,
                        to,
                        &c.req.symbols,
                        IncompletePolicy::Keep,
                    )
                    .await
                    .unwrap();
                bars_json(&r.frame, &features)
            }
            (None, None) => bars_json(&stored(&db, &c.req).await, &features),
        };
        assert_eq!(
            report.status,
            if bars.is_empty() { "no_data" } else { "ok" },
            "{}",
            c.name
        );
        assert_eq!(report.bars as usize, bars.len(), "{}", c.name);
        // The reader accepts every case and agrees with the report on K and T.
        let back = NumpyExport::open(&c.dir).unwrap();
        let out_freq = c.req.target_freq.unwrap_or(c.req.freq);
        assert_eq!(
            back.verify_checksums().unwrap(),
            report.days.len() * (features.len() + 3),
            "{}",
            c.name
        );
        for d in &report.days {
            assert_eq!(back.symbols(out_freq, &d.date).unwrap().len(), d.k);
            assert_eq!(back.timestamps(out_freq, &d.date).unwrap().len(), d.t);
        }
        inputs.push(case_json(c, bars, &report.days));
    }

    // Rust-side shape checks from the reports (the same numbers Python re-checks).
    let manifest = |dir: &Path| -> Value {
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let kt = |name: &str| -> Vec<(String, u64, u64)> {
        let c = cases.iter().find(|c| c.name == name).unwrap();
        manifest(&c.dir)["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["date"].as_str().unwrap().to_owned(),
                    d["k"].as_u64().unwrap(),
                    d["t"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(kt("one_day"), vec![("20240101".into(), 3, 24)]);
    assert_eq!(kt("three_days").len(), 3);
    assert_eq!(kt("five_minutes"), vec![("20240101".into(), 2, 288)]);
    assert_eq!(kt("target_1d"), vec![("20240101".into(), 3, 1)]);
    assert_eq!(kt("one_symbol"), vec![("20240101".into(), 1, 24)]);
    assert_eq!(kt("fifty"), vec![("20240101".into(), 50, 6)]);
    assert_eq!(kt("all_symbols"), vec![("20240101".into(), 2, 288)]);
    assert_eq!(
        kt("target_1w"),
        vec![
            ("20240101".into(), 1, 1),
            ("20240108".into(), 1, 1),
            ("20240115".into(), 1, 1)
        ]
    );
    assert!(kt("empty").is_empty());
    let empty = manifest(&out.join("g"));
    assert_eq!(empty["status"], "no_data");
    assert!(
        !out.join("g").join("1h").exists(),
        "an empty export creates no folders"
    );

    check_ffill_does_not_cross_days(&out.join("h"));

    let Some(res) = run_python(PY_NUMPY, &json!({ "cases": inputs })) else {
        return;
    };
    let day1 = |name: &str| res[name]["days"]["20240101"].clone();
    for f in short_names(&Feature::DEFAULT_EXPORT) {
        assert_eq!(day1("one_day")["shapes"][f], json!([3, 24]), "{f}");
        assert_eq!(day1("five_minutes")["shapes"][f], json!([2, 288]), "{f}");
        assert_eq!(day1("target_1d")["shapes"][f], json!([3, 1]), "{f}");
        assert_eq!(day1("fifty")["shapes"][f], json!([50, 6]), "{f}");
    }
    assert_eq!(res["three_days"]["days"].as_object().unwrap().len(), 3);
    // BBB has 12 of 24 hours: 12 NaN in its own row, none in the others.
    assert_eq!(day1("one_day")["nan_rows"]["cls"], json!([0, 12, 0]));
    assert_eq!(
        day1("one_day")["nan_rows"]["vwap"],
        json!([0, 12, 1]),
        "vol = 0 gives NaN"
    );
    assert_eq!(day1("one_symbol")["symbols"], json!(["BBBUSDT"]));
    assert_eq!(day1("fifty")["symbols"].as_array().unwrap().len(), 50);
    // ffill: BBB's hours 12..23 of Jan 1 are filled from 11:00, CCC's vwap hole too; Jan 2
    // starts fresh: BBB's 00:00..05:00 stay NaN, its 10:00..11:00 come from Jan 2 09:00
    // (checked cell by cell in Python against a day-local fill).
    assert_eq!(day1("ffill")["nan_rows"]["cls"], json!([0, 0, 0]));
    let day2 = |name: &str| res[name]["days"]["20240102"].clone();
    for f in ["cls", "vwap", "tnum"] {
        assert_eq!(day2("ffill")["nan_rows"][f], json!([0, 6, 0]), "{f}");
        assert_eq!(day2("three_days")["nan_rows"][f], json!([0, 8, 0]), "{f}");
    }
    assert_eq!(res["empty"]["status"], "no_data");
}

/// The Rust half of the ffill check (runs without Python), read back through
/// `NumpyExport`: in the `ffill` case (hourly close, vwap and trade counts of AAA, BBB, CCC
/// over Jan 1..2), BBB's Jan 2 row starts with six NaN (its bars before 06:00 are missing
/// and Jan 1's 11:00 value must not leak into the next day), and its missing 10:00 and
/// 11:00 take Jan 2 09:00's stored value.
fn check_ffill_does_not_cross_days(dir: &Path) {
    let ex = NumpyExport::open(dir).unwrap();
    assert_eq!(
        ex.symbols(Freq::H1, "20240102").unwrap(),
        strings(&["AAAUSDT", "BBBUSDT", "CCCUSDT"])
    );
    let at_nine = kline("BBBUSDT", Freq::H1, day(2) + 9 * H, 1, 33);
    let expected = [
        (Feature::Close, at_nine.close),
        (Feature::Vwap, at_nine.quote_volume / at_nine.volume),
        (Feature::TradesCount, at_nine.trades_count as f64),
    ];
    for (feature, nine) in expected {
        let m = ex.matrix(Freq::H1, feature, "20240102").unwrap();
        assert_eq!((m.rows(), m.cols()), (3, 24), "{feature:?}");
        let bbb = m.row_f64(1).unwrap();
        for (h, v) in bbb.iter().enumerate().take(6) {
            assert!(
                v.is_nan(),
                "{feature:?}: BBB Jan 2 {h:02}:00 is {v}, not NaN"
            );
        }
        assert!(bbb[6..].iter().all(|v| !v.is_nan()), "{feature:?}: {bbb:?}");
        assert_eq!(bbb[9], nine, "{feature:?}: the stored 09:00 value");
        assert_eq!(
            &bbb[10..12],
            &[nine, nine],
            "{feature:?}: filled from 09:00"
        );
        assert_ne!(bbb[12], nine, "{feature:?}: 12:00 is its own bar");
        // Jan 1: hours 12..23 are filled from 11:00 of the same day.
        let m1 = ex.matrix(Freq::H1, feature, "20240101").unwrap();
        let bbb1 = m1.row_f64(1).unwrap();
        assert!(
            bbb1[12..].iter().all(|v| *v == bbb1[11]),
            "{feature:?}: {bbb1:?}"
        );
    }
}

/// A bar with every stored field given.
#[allow(clippy::too_many_arguments)]
fn bar(
    symbol: &str,
    open_time: i64,
    [open, high, low, close]: [f64; 4],
    volume: f64,
    quote_volume: f64,
    trades_count: i64,
    taker_buy_volume: f64,
    taker_buy_quote_volume: f64,
) -> Kline {
    Kline {
        symbol: symbol.to_owned(),
        open_time,
        open,
        high,
        low,
        close,
        volume,
        close_time: Freq::H1.close_time(open_time),
        quote_volume,
        trades_count,
        taker_buy_volume,
        taker_buy_quote_volume,
    }
}

/// Four hourly bars and four funding rates chosen by hand, exported to NumPy and read back
/// through `NumpyExport`: every cell of every feature and of `fr_ts` against values worked
/// out by hand from the inserted data (NaN and 0 everywhere else), then a damaged export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numpy_export_reads_back_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let (d1, d2, min) = (day(1), day(2), 60_000);
    let bars = vec![
        bar(
            "AAAUSDT",
            d1,
            [100.0, 110.0, 95.0, 105.0],
            2.0,
            205.0,
            7,
            0.5,
            51.25,
        ),
        bar(
            "AAAUSDT",
            d1 + 2 * H,
            [104.0, 105.0, 90.0, 91.0],
            4.0,
            400.0,
            9,
            1.0,
            98.0,
        ),
        bar(
            "BBBUSDT",
            d1 + H,
            [10.0, 12.0, 9.0, 11.0],
            0.0,
            0.0,
            0,
            0.0,
            0.0,
        ),
        bar("AAAUSDT", d2 + 23 * H, [50.0; 4], 1.0, 50.0, 1, 1.0, 50.0),
    ];
    db.store_data(bars, Freq::H1).await.unwrap();
    let rate = |symbol: &str, funding_time: i64, funding_rate: f64| FundingRate {
        symbol: symbol.into(),
        funding_time,
        funding_rate,
        mark_price: None,
        index_price: None,
    };
    db.store_funding_rate(vec![
        rate("AAAUSDT", d1 + 30 * min, 0.0001),
        rate("AAAUSDT", d1 + H, 0.0002),
        rate("BBBUSDT", d1 + 90 * min, -0.0003),
        // After BBB's only bar closes: must never show up.
        rate("BBBUSDT", d1 + 2 * H, 0.0009),
    ])
    .await
    .unwrap();

    let mut features = Feature::DEFAULT_EXPORT.to_vec();
    features.push(Feature::FundingRate);
    let mut req = ExportRequest::new(strings(&["AAAUSDT", "BBBUSDT"]), days(1, 2), Freq::H1);
    req.features = features.clone();
    let dir = tmp.path().join("out");
    AsyncDataExporter::new(&db)
        .export_to_numpy(&req, &dir)
        .await
        .unwrap();

    // (day, row, hour) -> opn hgh low cls vol amt tnum tbvol tbamt tsvol tsamt vwap ret fr,
    // and fr_ts. tsvol = vol - tbvol, tsamt = amt - tbamt, vwap = amt / vol (NaN for
    // vol = 0), ret = (cls - opn) / opn; fr is the latest rate of the same symbol at or
    // before the bar's close (AAA's 01:00 rate still holds 47 h later, inside 48 h).
    let nan = f64::NAN;
    #[rustfmt::skip]
    let cells: [(&str, usize, usize, [f64; 14], i64); 4] = [
        ("20240101", 0, 0, [100.0, 110.0, 95.0, 105.0, 2.0, 205.0, 7.0, 0.5, 51.25, 1.5, 153.75, 102.5, 0.05, 0.0001], d1 + 30 * min),
        ("20240101", 0, 2, [104.0, 105.0, 90.0, 91.0, 4.0, 400.0, 9.0, 1.0, 98.0, 3.0, 302.0, 100.0, -0.125, 0.0002], d1 + H),
        ("20240101", 1, 1, [10.0, 12.0, 9.0, 11.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, nan, 0.1, -0.0003], d1 + 90 * min),
        ("20240102", 0, 23, [50.0, 50.0, 50.0, 50.0, 1.0, 50.0, 1.0, 1.0, 50.0, 0.0, 0.0, 50.0, 0.0, 0.0002], d1 + H),
    ];

    let ex = NumpyExport::open(&dir).unwrap();
    assert_eq!(ex.manifest().unwrap().status, "ok");
    assert_eq!(ex.freqs(), vec![Freq::H1]);
    assert_eq!(ex.days(Freq::H1).unwrap(), vec!["20240101", "20240102"]);
    assert_eq!(ex.features(Freq::H1).unwrap(), features.as_slice());
    assert_eq!(ex.metrics(Freq::H1).unwrap(), &[Feature::FundingRate]);
    // 14 features, fr_ts, timestamp, symbols .json and .npy, on each of two days.
    assert_eq!(ex.verify_checksums().unwrap(), 2 * 18);
    for (date, start, symbols) in [
        ("20240101", d1, &["AAAUSDT", "BBBUSDT"][..]),
        ("20240102", d2, &["AAAUSDT"][..]),
    ] {
        assert_eq!(ex.symbols(Freq::H1, date).unwrap(), strings(symbols));
        let hours: Vec<i64> = (0..24).map(|h| start + h * H).collect();
        assert_eq!(ex.timestamps(Freq::H1, date).unwrap(), hours);
        let expected = |row: usize, hour: usize| {
            cells
                .iter()
                .find(|c| (c.0, c.1, c.2) == (date, row, hour))
                .map(|c| (c.3, c.4))
        };
        for (fi, f) in features.iter().enumerate() {
            let m = ex.matrix(Freq::H1, *f, date).unwrap();
            assert_eq!((m.rows(), m.cols()), (symbols.len(), 24));
            for row in 0..symbols.len() {
                for hour in 0..24 {
                    let got = m.get_f64(row, hour).unwrap();
                    match expected(row, hour) {
                        Some((vals, _)) if !vals[fi].is_nan() => {
                            assert_eq!(got, vals[fi], "{} {date} row {row} {hour:02}:00", f.short())
                        }
                        _ => assert!(got.is_nan(), "{} {date} row {row} {hour:02}:00", f.short()),
                    }
                }
            }
        }
        let fr_ts = ex
            .metric_times(Freq::H1, Feature::FundingRate, date)
            .unwrap();
        for row in 0..symbols.len() {
            for hour in 0..24 {
                let want = expected(row, hour).map_or(0, |(_, ts)| ts);
                assert_eq!(
                    fr_ts.get_i64(row, hour),
                    Some(want),
                    "fr_ts {date} {row} {hour}"
                );
            }
        }
    }

    // Damage: a flipped data byte keeps the file readable but fails its checksum; a
    // truncated file no longer matches the size the manifest lists.
    let cls = dir.join("1h/cls/20240102.npy");
    let mut bytes = fs::read(&cls).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&cls, &bytes).unwrap();
    let e = NumpyExport::open(&dir)
        .unwrap()
        .verify_checksums()
        .unwrap_err();
    assert!(
        e.to_string().contains("cls/20240102.npy") && e.to_string().contains("sha-256"),
        "{e}"
    );
    fs::write(&cls, &bytes[..last]).unwrap();
    let e = NumpyExport::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("cls/20240102.npy") && e.contains("manifest.json says"),
        "{e}"
    );
    // Without the manifest the folder still opens, and the damage shows when read.
    fs::remove_file(dir.join("manifest.json")).unwrap();
    let ex = NumpyExport::open(&dir).unwrap();
    assert!(ex.manifest().is_none());
    let e = ex
        .matrix(Freq::H1, Feature::Close, "20240102")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cls/20240102.npy") && e.contains("truncated"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Metrics: alignment without look-ahead, per symbol
// ---------------------------------------------------------------------------------------

/// The oracle of `read_combined`: pandas `merge_asof` by symbol, backward, on each bar's
/// close time. Its tolerance is inclusive, marketdb's exclusive (a point exactly
/// `tolerance` old is too old), hence `tolerance - 1 ms`.
const PY_MERGE_ASOF: &str = r#"
import pandas as pd
step = INPUT["step"]
bars = pd.DataFrame([r[:2] for r in INPUT["rows"]], columns=["symbol", "open"])
bars["close"] = bars["open"] + step - 1
bars["row"] = range(len(bars))
matched = {}
for k, (name, tol, points) in enumerate(INPUT["metrics"]):
    pts = pd.DataFrame(
        [(s, t, v) for s, lst in points.items() for t, v in lst], columns=["symbol", "t", "v"]
    ).sort_values("t")
    m = pd.merge_asof(
        bars.sort_values("close"), pts, left_on="close", right_on="t", by="symbol",
        direction="backward", tolerance=tol - 1, allow_exact_matches=True,
    ).sort_values("row")
    got = [nan(r[2 + k]) for r in INPUT["rows"]]
    want = m["v"].tolist()
    for row, (a, b) in enumerate(zip(got, want)):
        assert (math.isnan(a) and math.isnan(b)) or a == b, (name, INPUT["rows"][row], a, b)
    matched[name] = int(m["v"].notna().sum())
print(json.dumps({"matched": matched}))
"#;

const PY_METRICS: &str = r#"
def check_metrics(case):
    d, freq, step = case["dir"], case["freq"], case["step"]
    man = json.load(open(os.path.join(d, "manifest.json")))
    for f in man["files"]:
        assert sha256(os.path.join(d, f["path"])) == f["sha256"], f["path"]
    bars = {(s, t) for s, t in case["bars"]}
    matched = {}
    for x in man["days"]:
        date, day0 = x["date"], x["start"]
        syms = json.load(open(os.path.join(d, freq, "symbols", date + ".json")))
        grid = load(os.path.join(d, freq, "timestamp", date + ".npy")).tolist()
        for m, spec in case["metrics"].items():
            vals = load(os.path.join(d, freq, m, date + ".npy"))
            tss = load(os.path.join(d, freq, m + "_ts", date + ".npy"))
            assert tss.dtype == np.int64 and tss.shape == vals.shape == (len(syms), len(grid))
            tol = spec["tolerance_ms"]
            for k, sym in enumerate(syms):
                pts = spec["points"].get(sym, [])
                times = [p[0] for p in pts]
                for t, open_ in enumerate(grid):
                    close = open_ + step - 1
                    v, ts = vals[k, t], int(tss[k, t])
                    # Invariants on every cell: no look-ahead, within tolerance, 0 = NaN.
                    if ts != 0:
                        assert close - tol < ts <= close, (m, sym, open_, ts)
                    if (sym, open_) not in bars:
                        assert ts == 0 and math.isnan(v), (m, sym, open_)
                        continue
                    # Exact expectation: the latest point of THIS symbol <= close.
                    j = bisect_right(times, close)
                    if j > 0 and pts[j - 1][0] > close - tol:
                        assert ts == pts[j - 1][0], (m, sym, open_, ts, pts[j - 1])
                        assert v == pts[j - 1][1], (m, sym, open_, v, pts[j - 1])
                        matched.setdefault(m, {}).setdefault(sym, 0)
                        matched[m][sym] += 1
                    else:
                        assert ts == 0 and math.isnan(v), (m, sym, open_, ts, v)
    return matched

print(json.dumps({c["name"]: check_metrics(c) for c in INPUT["cases"]}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_aligned_without_lookahead() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let syms = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];
    store_bars(&db, &syms, Freq::H1, day(1), 48, |s, i| s == 2 && i == 30).await;

    // Funding every 8 h for AAA and CCC (none for BBB), from two days before, with a few
    // ms of jitter as Binance has; CCC's are exactly on the hour.
    let mut funding = Vec::new();
    for (s, sym) in [(0, "AAAUSDT"), (2, "CCCUSDT")] {
        for n in -6..6i64 {
            let t = day(1) + n * 8 * H + if s == 0 { 5 } else { 0 };
            funding.push(FundingRate {
                symbol: sym.into(),
                funding_time: t,
                funding_rate: 0.0001 * (n + 7) as f64 + s as f64 * 1e-5,
                mark_price: None,
                index_price: None,
            });
        }
    }
    db.store_funding_rate(funding.clone()).await.unwrap();
    // OI every 5 min for AAA only, with a gap from 06:00 to 14:00 on Jan 1 (longer than
    // the 6 h tolerance) and one sample without a value.
    let mut oi = Vec::new();
    let mut t = day(1) - 2 * H;
    while t < day(3) {
        let gap = (day(1) + 6 * H..day(1) + 14 * H).contains(&t);
        if !gap {
            oi.push(OpenInterest {
                symbol: "AAAUSDT".into(),
                time: t,
                interval: Freq::M5,
                open_interest: 1000.0 + (t - day(1)) as f64 / M5 as f64 * 0.5,
                open_interest_value: (t != day(1) + 23 * H + 55 * 60_000)
                    .then_some(2e6 + (t % 7) as f64),
            });
        }
        t += M5;
    }
    db.store_open_interest(oi.clone()).await.unwrap();
    // Long/short ratio for BBB only, hourly at :30.
    let lsr: Vec<LongShortRatio> = (0..48)
        .map(|i| LongShortRatio {
            symbol: "BBBUSDT".into(),
            timestamp: day(1) + i * H + 30 * 60_000,
            period: Freq::M5,
            ratio_type: RatioType::TopTraderAccount,
            long_short_ratio: 1.0 + i as f64 / 64.0,
            long_account: Some(0.5),
            short_account: Some(0.5),
        })
        .collect();
    db.store_long_short_ratio(lsr.clone()).await.unwrap();

    let ex = AsyncDataExporter::new(&db);
    let mut req = ExportRequest::new(strings(&syms), days(1, 2), Freq::H1);
    req.features = vec![
        Feature::Close,
        Feature::FundingRate,
        Feature::OpenInterest,
        Feature::OpenInterestValue,
        Feature::LsrTopTraderAccount,
    ];
    let dir = tmp.path().join("np");
    ex.export_to_numpy(&req, &dir).await.unwrap();
    // Metrics only, resampled to 4h: bars still define K and T.
    let mut req4 = req.clone();
    req4.features = vec![Feature::FundingRate, Feature::OpenInterest];
    req4.target_freq = Some(Freq::H4);
    let dir4 = tmp.path().join("np4");
    ex.export_to_numpy(&req4, &dir4).await.unwrap();

    // The same alignment reaches CSV rows (metric values and their `_ts` columns).
    let csv_path = tmp.path().join("m.csv");
    ex.export_to_csv(&req, &csv_path).await.unwrap();
    let text = fs::read_to_string(&csv_path).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "symbol,timestamp,datetime,cls,fr,oi,oiv,lsr_ta,fr_ts,oi_ts,oiv_ts,lsr_ta_ts"
    );
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let close = Freq::H1.close_time(f[1].parse().unwrap());
        for (ts, tol) in [
            (f[8], 48 * H),
            (f[9], 6 * H),
            (f[10], 6 * H),
            (f[11], 6 * H),
        ] {
            let ts: i64 = ts.parse().unwrap();
            assert!(ts == 0 || (close - tol < ts && ts <= close), "{line}");
        }
        if f[0] == "BBBUSDT" {
            assert_eq!((f[4], f[8]), ("", "0"), "BBB has no funding: {line}");
        }
    }

    let points = |pts: Vec<(&str, i64, Option<f64>)>| -> Value {
        let mut m: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (s, t, v) in pts {
            if let Some(v) = v {
                m.entry(s).or_default().push(json!([t, v]));
            }
        }
        json!(m)
    };
    let fr = points(
        funding
            .iter()
            .map(|f| (f.symbol.as_str(), f.funding_time, Some(f.funding_rate)))
            .collect(),
    );
    let oi_pts = points(
        oi.iter()
            .map(|o| (o.symbol.as_str(), o.time, Some(o.open_interest)))
            .collect(),
    );
    let oiv_pts = points(
        oi.iter()
            .map(|o| (o.symbol.as_str(), o.time, o.open_interest_value))
            .collect(),
    );
    let lsr_pts = points(
        lsr.iter()
            .map(|l| (l.symbol.as_str(), l.timestamp, Some(l.long_short_ratio)))
            .collect(),
    );
    let bars = |frame: &KlineFrame| -> Vec<Value> {
        frame
            .symbols()
            .iter()
            .flat_map(|(s, r)| r.clone().map(move |i| (s.clone(), i)))
            .map(|(s, i)| json!([s, frame.timestamp()[i]]))
            .collect()
    };
    let h1 = stored(&db, &req).await;
    let h4 = db
        .resample(
            req.range,
            Freq::H1,
            Freq::H4,
            &req.symbols,
            IncompletePolicy::Keep,
        )
        .await
        .unwrap()
        .frame;
    let input = json!({"cases": [
        {"name": "h1", "dir": dir, "freq": "1h", "step": H, "bars": bars(&h1), "metrics": {
            "fr": {"tolerance_ms": 48 * H, "points": fr},
            "oi": {"tolerance_ms": 6 * H, "points": oi_pts},
            "oiv": {"tolerance_ms": 6 * H, "points": oiv_pts},
            "lsr_ta": {"tolerance_ms": 6 * H, "points": lsr_pts},
        }},
        {"name": "h4", "dir": dir4, "freq": "4h", "step": 4 * H, "bars": bars(&h4), "metrics": {
            "fr": {"tolerance_ms": 48 * H, "points": fr},
            "oi": {"tolerance_ms": 6 * H, "points": oi_pts},
        }},
    ]});
    // read_combined: the same rule in memory. Its values equal the CSV export's (one
    // implementation), and pandas' merge_asof (by symbol, backward, on the close time) is
    // the independent oracle below.
    let wanted = [
        Feature::OpenInterestValue,
        Feature::Close,
        Feature::FundingRate,
        Feature::LsrTopTraderAccount,
        Feature::OpenInterest,
    ];
    let combined = db
        .read_combined(req.range, Freq::H1, &req.symbols, &wanted, Freq::M5, true)
        .await
        .unwrap();
    let cf = combined.frame();
    assert_eq!(cf.features(), &wanted, "columns in request order");
    assert_eq!(cf.len(), h1.len());
    let csv_rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(csv_rows.len(), cf.len());
    for (row, f) in csv_rows.iter().enumerate() {
        assert_eq!(cf.symbol_of(row), Some(f[0]));
        assert_eq!(cf.timestamp()[row].to_string(), f[1]);
        for (feature, col, ts_col) in [
            (Feature::FundingRate, 4, 8),
            (Feature::OpenInterest, 5, 9),
            (Feature::OpenInterestValue, 6, 10),
            (Feature::LsrTopTraderAccount, 7, 11),
        ] {
            let v = f64_at(cf, feature, row);
            let csv_v = if f[col].is_empty() {
                f64::NAN
            } else {
                f[col].parse().unwrap()
            };
            assert!(
                v.to_bits() == csv_v.to_bits() || (v.is_nan() && csv_v.is_nan()),
                "{f:?}"
            );
            assert_eq!(combined.as_of(feature).unwrap()[row].to_string(), f[ts_col]);
        }
    }
    let metrics_only = db
        .read_combined(
            req.range,
            Freq::H1,
            &req.symbols,
            &[Feature::FundingRate],
            Freq::M5,
            false,
        )
        .await
        .unwrap();
    assert_eq!(metrics_only.frame().features(), &[Feature::FundingRate]);
    let bits = |c: Option<&Column>| match c {
        Some(Column::F64(v)) => v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bits(metrics_only.frame().column(Feature::FundingRate)),
        bits(cf.column(Feature::FundingRate))
    );
    let combined_rows: Vec<Value> = (0..cf.len())
        .map(|row| {
            let mut r = vec![json!(cf.symbol_of(row)), json!(cf.timestamp()[row])];
            for f in [
                Feature::FundingRate,
                Feature::OpenInterest,
                Feature::OpenInterestValue,
                Feature::LsrTopTraderAccount,
            ] {
                let v = f64_at(cf, f, row);
                r.push(if v.is_nan() { Value::Null } else { json!(v) });
            }
            json!(r)
        })
        .collect();
    let merge_input = json!({
        "step": H,
        "rows": combined_rows,
        "metrics": [["fr", 48 * H, fr], ["oi", 6 * H, oi_pts], ["oiv", 6 * H, oiv_pts], ["lsr_ta", 6 * H, lsr_pts]],
    });

    let Some(res) = run_python(PY_METRICS, &input) else {
        return;
    };
    let merged = run_python(PY_MERGE_ASOF, &merge_input).unwrap();
    // Counts of bars that received a value, per metric, as pandas found them; every value
    // matched bit for bit (the script asserts).
    assert_eq!(merged["matched"]["fr"], 48 + 47);
    assert_eq!(merged["matched"]["lsr_ta"], 48);
    assert_eq!(merged["matched"]["oi"], res["h1"]["oi"]["AAAUSDT"]);
    let h1 = &res["h1"];
    // Every bar of AAA and CCC has funding; BBB none (NaN and 0 in its own row).
    assert_eq!(h1["fr"]["AAAUSDT"], 48);
    assert_eq!(h1["fr"]["CCCUSDT"], 47, "CCC misses one bar");
    assert!(h1["fr"].get("BBBUSDT").is_none());
    // OI: the 8 h gap leaves bars past the 6 h tolerance without a value.
    let oi_aaa = h1["oi"]["AAAUSDT"].as_u64().unwrap();
    assert!(oi_aaa < 48 && oi_aaa > 40, "{oi_aaa}");
    assert!(h1["oi"].get("BBBUSDT").is_none() && h1["oi"].get("CCCUSDT").is_none());
    assert_eq!(h1["lsr_ta"]["BBBUSDT"], 48);
    assert_eq!(res["h4"]["fr"]["AAAUSDT"], 12);
}

// ---------------------------------------------------------------------------------------
// CSV, Parquet, statistics
// ---------------------------------------------------------------------------------------

const PY_TABLES: &str = r#"
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

features = INPUT["features"]
rows = INPUT["rows"]
exp_sym = [r[0] for r in rows]
exp_ts = [r[1] for r in rows]
exp_cols = {f: [nan(r[2][i]) for r in rows] for i, f in enumerate(features)}
out = {}

def same_float(a, b):
    return [repr(float(x)) for x in a] == [repr(float(x)) for x in b]

# CSV: exact round trip.
df = pd.read_csv(INPUT["csv"], float_precision="round_trip")
assert list(df.columns) == ["symbol", "timestamp", "datetime"] + features, list(df.columns)
assert df["symbol"].tolist() == exp_sym
assert df["timestamp"].tolist() == exp_ts
dt = pd.to_datetime(df["datetime"], utc=True)
epoch = pd.Timestamp("1970-01-01", tz="UTC")
assert ((dt - epoch) // pd.Timedelta(milliseconds=1)).tolist() == exp_ts
assert df["datetime"].iloc[0].endswith("Z") and "T" in df["datetime"].iloc[0]
for f in features:
    if f == "tnum":
        assert str(df[f].dtype) == "int64", df[f].dtype
        assert df[f].tolist() == exp_cols[f]
    else:
        assert str(df[f].dtype) == "float64", (f, df[f].dtype)
        assert same_float(df[f], exp_cols[f]), f
# pandas' default float parser: count the values that do not round-trip.
df2 = pd.read_csv(INPUT["csv"])
out["default_parser_mismatches"] = sum(
    0 if same_float(df2[f], exp_cols[f]) else 1 for f in features if f != "tnum")

# CSV parts: same rows in order, header in each.
parts = sorted(glob.glob(INPUT["parts_glob"]), key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
out["parts"] = [len(pd.read_csv(p)) for p in parts]
whole = pd.concat([pd.read_csv(p, float_precision="round_trip") for p in parts], ignore_index=True)
assert whole.equals(df), "parts differ from the single file"

# Parquet: schema, codec, metadata, values.
codecs = {}
for name, path in INPUT["parquet"].items():
    md = pq.read_metadata(path)
    codecs[name] = sorted({md.row_group(g).column(c).compression
                           for g in range(md.num_row_groups) for c in range(md.num_columns)})
    schema = pq.read_schema(path)
    assert str(schema.field("symbol").type) == "dictionary<values=string, indices=int32, ordered=0>", schema.field("symbol").type
    assert str(schema.field("timestamp").type) == "timestamp[ms, tz=UTC]", schema.field("timestamp").type
    for f in features:
        want = "int64" if f == "tnum" else "double"
        assert str(schema.field(f).type) == want, (f, schema.field(f).type)
    kv = md.metadata
    assert kv[b"marketdb.freq"] == b"1h", kv
    assert kv[b"marketdb.start"] == INPUT["start"].encode(), kv[b"marketdb.start"]
    assert kv[b"marketdb.end"] == INPUT["end"].encode()
    assert kv[b"marketdb.version"] == INPUT["version"].encode()
    t = pq.read_table(path)
    assert t.num_rows == len(rows)
    assert t.column("symbol").to_pylist() == exp_sym
    assert t.column("timestamp").cast(pa.int64()).to_pylist() == exp_ts
    pdf = pd.read_parquet(path)
    assert str(pdf["timestamp"].dt.tz) == "UTC"
    for f in features:
        if f == "tnum":
            assert t.column(f).to_pylist() == exp_cols[f]
        else:
            assert same_float(pdf[f], exp_cols[f]), (name, f)
out["codecs"] = codecs

big = pq.read_metadata(INPUT["big_parquet"])
out["big_row_groups"] = [big.row_group(g).num_rows for g in range(big.num_row_groups)]

# Statistics: labelled, equal to pandas describe() per symbol.
st = pd.read_csv(INPUT["stats"])
assert list(st.columns) == ["symbol", "statistic"] + features, list(st.columns)
labels = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
full = pd.DataFrame({"symbol": exp_sym, **exp_cols})
for sym, grp in full.groupby("symbol"):
    mine = st[st["symbol"] == sym]
    assert mine["statistic"].tolist() == labels, mine["statistic"].tolist()
    desc = grp[features].astype("float64").describe()
    for f in features:
        a = mine[f].to_numpy(dtype="float64")
        b = desc[f].loc[labels].to_numpy(dtype="float64")
        assert np.allclose(a, b, rtol=1e-12, atol=1e-15, equal_nan=True), (sym, f, a, b)
out["stats_rows"] = len(st)
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_parquet_and_statistics_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let syms = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];
    store_bars(&db, &syms, Freq::H1, day(1), 48, |s, i| {
        s == 1 && i % 7 == 3
    })
    .await;
    // Awkward values: 0.1 + 0.2, tiny and huge magnitudes, a zero-volume bar.
    let mut k = kline("AAAUSDT", Freq::H1, day(1) + 2 * H, 0, 2);
    (k.open, k.close, k.high, k.low) = (0.1 + 0.2, 1e-7, 0.30000000000000004, 1e-8);
    (
        k.volume,
        k.quote_volume,
        k.taker_buy_volume,
        k.taker_buy_quote_volume,
    ) = (1e22, 123_456_789.123_456_79, 5e21, 1.0 / 3.0);
    db.store_data(vec![k], Freq::H1).await.unwrap();
    let mut k = kline("CCCUSDT", Freq::H1, day(2), 2, 24);
    (
        k.volume,
        k.quote_volume,
        k.taker_buy_volume,
        k.taker_buy_quote_volume,
    ) = (0.0, 0.0, 0.0, 0.0);
    db.store_data(vec![k], Freq::H1).await.unwrap();
    // 100 symbols x 1 day of 1m for row groups (144,000 rows).
    let hundred = symbol_names("R", 100);
    let refs: Vec<&str> = hundred.iter().map(String::as_str).collect();
    store_bars(&db, &refs, Freq::M1, day(1), 1440, |_, _| false).await;

    let ex = AsyncDataExporter::new(&db);
    let req = ExportRequest::new(strings(&syms), days(1, 2), Freq::H1);
    let features = features_of(&req);
    let csv_path = tmp.path().join("csv/klines.csv");
    let rep = ex.export_to_csv(&req, &csv_path).await.unwrap();
    assert_eq!(rep.files, vec![csv_path.clone()]);
    let mut parts_req = req.clone();
    parts_req.csv_part_rows = Some(50);
    let parts_path = tmp.path().join("parts/k.csv");
    let parts = ex.export_to_csv(&parts_req, &parts_path).await.unwrap();
    assert_eq!(parts.files.len(), 3);
    assert!(
        !parts_path.exists(),
        "with parts, only part files are written"
    );
    assert_eq!(parts.rows, rep.rows);

    let mut parquet = BTreeMap::new();
    for c in ["zstd", "snappy", "gzip", "lz4", "none"] {
        let mut r = req.clone();
        r.compression = c.parse().unwrap();
        let path = tmp.path().join(format!("pq/k_{c}.parquet"));
        let p = ex.export_to_parquet(&r, &path).await.unwrap();
        assert_eq!(p.rows, rep.rows);
        assert_eq!(p.compression, r.compression);
        parquet.insert(c, path);
    }
    let big_path = tmp.path().join("pq/big.parquet");
    let big = ExportRequest::new(hundred.clone(), days(1, 1), Freq::M1);
    let big_rep = ex.export_to_parquet(&big, &big_path).await.unwrap();
    assert_eq!(big_rep.rows, 144_000);
    assert_eq!(big_rep.row_groups, 2);

    let stats_path = tmp.path().join("stats.csv");
    let stats = ex
        .export_summary_statistics(&req, &stats_path)
        .await
        .unwrap();
    assert_eq!(stats.symbols.len(), 3);
    assert_eq!(stats.symbols[1].symbol, "BBBUSDT");
    let bbb_bars = 48 - (0..48).filter(|i| i % 7 == 3).count() as u64;
    assert_eq!(stats.symbols[1].bars, bbb_bars);
    assert_eq!(stats.symbols[1].features[0].1.count, bbb_bars);
    assert_eq!(stats.symbols[2].features[11].0, Feature::Vwap);
    assert_eq!(
        stats.symbols[2].features[11].1.count, 47,
        "vol = 0 bar has no vwap"
    );
    // In memory: the same numbers (checked against pandas below through the CSV), and no
    // file anywhere.
    let before = all_files(tmp.path());
    let in_memory = ex.summary_statistics(&req).await.unwrap();
    assert_eq!(all_files(tmp.path()), before);
    assert_eq!(in_memory.len(), 3);
    for (a, b) in in_memory.iter().zip(&stats.symbols) {
        assert_eq!((&a.symbol, a.bars), (&b.symbol, b.bars));
        for ((fa, da), (fb, db)) in a.features.iter().zip(&b.features) {
            assert_eq!(fa, fb);
            let bits = |d: &marketdb_export::Describe| {
                [d.mean, d.std, d.min, d.q25, d.q50, d.q75, d.max].map(f64::to_bits)
            };
            assert_eq!(
                (da.count, bits(da)),
                (db.count, bits(db)),
                "{} {fa:?}",
                a.symbol
            );
        }
    }
    // A hand-checked figure: BBB's first close is the kline() formula's.
    let bbb_min_tnum = in_memory[1]
        .features
        .iter()
        .find(|(f, _)| *f == Feature::TradesCount)
        .map(|(_, d)| d.min)
        .unwrap();
    assert_eq!(bbb_min_tnum, 100.0, "tnum = 100 + (s*3+i) % 50 reaches 100");

    let frame = stored(&db, &req).await;
    let rows: Vec<Value> = bars_json(&frame, &features);
    assert_eq!(rows.len() as u64, rep.rows);
    let input = json!({
        "features": short_names(&features),
        "rows": rows,
        "csv": csv_path,
        "parts_glob": tmp.path().join("parts").join("k_part_*.csv"),
        "parquet": parquet,
        "big_parquet": big_path,
        "stats": stats_path,
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-03T00:00:00Z",
        "version": env!("CARGO_PKG_VERSION"),
    });
    let Some(res) = run_python(PY_TABLES, &input) else {
        return;
    };
    assert_eq!(res["parts"], json!([50, 50, rep.rows - 100]));
    // pyarrow names the LZ4_RAW codec "LZ4" (the deprecated Hadoop framing is "LZ4_HADOOP");
    // the unit test in parquet.rs checks LZ4_RAW in the Parquet metadata itself.
    assert_eq!(
        res["codecs"],
        json!({"gzip": ["GZIP"], "lz4": ["LZ4"], "none": ["UNCOMPRESSED"], "snappy": ["SNAPPY"], "zstd": ["ZSTD"]})
    );
    assert_eq!(res["big_row_groups"], json!([131_072, 144_000 - 131_072]));
    assert_eq!(res["stats_rows"], 3 * 8);
    // Plain `pd.read_csv` (no float_precision option) reads every float back exactly too.
    assert_eq!(res["default_parser_mismatches"], 0);
}

// ---------------------------------------------------------------------------------------
// Failures midway leave no partial file under a final name
// ---------------------------------------------------------------------------------------

/// Panics when progress reaches `panic_at`, like a process killed in the middle.
struct Crash {
    panic_at: u64,
    seen: AtomicU64,
}

impl ExportProgress for Crash {
    fn on_day(&self, done: u64) {
        self.seen.store(done, Ordering::SeqCst);
        if done >= self.panic_at {
            panic!("simulated crash after {done} days");
        }
    }
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

const PY_LOAD_ALL: &str = r#"
loaded = 0
for d in INPUT["dirs"]:
    for path in glob.glob(os.path.join(d, "**", "*.npy"), recursive=True):
        if not os.path.isfile(path):
            continue  # the obstacle folder
        a = load(path)
        size = os.path.getsize(path)
        assert a.nbytes <= size, path
        loaded += 1
for d in INPUT["no_manifest"]:
    man = os.path.join(d, "manifest.json")
    assert not os.path.exists(man), "a failed export left a manifest: " + man
print(json.dumps({"loaded": loaded}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_leave_no_partial_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let syms = ["AAAUSDT", "BBBUSDT"];
    store_bars(&db, &syms, Freq::H1, day(1), 96, |_, _| false).await;
    let req = ExportRequest::new(strings(&syms), days(1, 4), Freq::H1);

    // 1. An obstacle under a final name of day 3 (a non-empty folder): the export fails
    //    with an error naming it, before any file is renamed.
    let blocked = tmp.path().join("blocked");
    let ok = AsyncDataExporter::new(&db)
        .export_to_numpy(&req, &blocked)
        .await
        .unwrap();
    assert_eq!(ok.days.len(), 4);
    let obstacle = blocked.join("1h/vwap/20240103.npy");
    let manifest_before = fs::read(blocked.join("manifest.json")).unwrap();
    fs::remove_file(&obstacle).unwrap();
    fs::create_dir_all(obstacle.join("x")).unwrap();
    let err = AsyncDataExporter::new(&db)
        .export_to_numpy(&req, &blocked)
        .await
        .unwrap_err();
    // The gate refuses a folder where a file goes, naming it.
    assert!(matches!(err, Error::Output(_)), "{err:?}");
    assert!(err.to_string().contains("20240103.npy"), "{err}");
    assert_eq!(
        fs::read(blocked.join("manifest.json")).unwrap(),
        manifest_before,
        "the obstacle is refused before anything is renamed: the earlier manifest stays"
    );
    for p in all_files(&blocked) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "temporary file left behind: {}",
            p.display()
        );
    }

    // 2. A crash (panic) in the middle of the export, after day 2 was written.
    let crashed = tmp.path().join("crashed");
    let crash = Arc::new(Crash {
        panic_at: 2,
        seen: AtomicU64::new(0),
    });
    let ex = AsyncDataExporter::new(&db).with_progress(crash.clone());
    let r2 = req.clone();
    let dir2 = crashed.clone();
    let joined = tokio::spawn(async move { ex.export_to_numpy(&r2, &dir2).await }).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(crash.seen.load(Ordering::SeqCst), 2);
    assert!(!crashed.join("manifest.json").exists());
    let written = all_files(&crashed);
    assert!(
        written.is_empty(),
        "days written before the crash stay under temporary names: {written:?}"
    );
    for p in &written {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with('.'),
            "temporary file left behind: {}",
            p.display()
        );
    }

    // 3. CSV and Parquet crashing midway: nothing under the final names.
    let csv = tmp.path().join("c/k.csv");
    let pq = tmp.path().join("c/k.parquet");
    for (i, target) in [csv.clone(), pq.clone()].into_iter().enumerate() {
        let crash = Arc::new(Crash {
            panic_at: 3,
            seen: AtomicU64::new(0),
        });
        let ex = AsyncDataExporter::new(&db).with_progress(crash);
        let r = req.clone();
        let joined = tokio::spawn(async move {
            if i == 0 {
                ex.export_to_csv(&r, &target).await.map(|_| ())
            } else {
                ex.export_to_parquet(&r, &target).await.map(|_| ())
            }
        })
        .await;
        assert!(joined.unwrap_err().is_panic());
    }
    assert!(
        all_files(&tmp.path().join("c")).is_empty(),
        "{:?}",
        all_files(&tmp.path().join("c"))
    );

    let Some(res) = run_python(
        PY_LOAD_ALL,
        &json!({"dirs": [&blocked, &crashed], "no_manifest": [&crashed]}),
    ) else {
        return;
    };
    assert!(res["loaded"].as_u64().unwrap() > 10, "{res}");
}

// ---------------------------------------------------------------------------------------
// Rust-only behaviour: progress, bad requests
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, u64)>>,
}

impl ExportProgress for Recorder {
    fn on_start(&self, total_days: u64) {
        self.calls
            .lock()
            .unwrap()
            .push(("start".into(), total_days));
    }
    fn on_day(&self, done: u64) {
        self.calls.lock().unwrap().push(("day".into(), done));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    // Jan 2 has no bar at all; on Jan 3 only AAA trades (the two day scans disagree).
    store_bars(
        &db,
        &["AAAUSDT", "BBBUSDT"],
        Freq::H1,
        day(1),
        72,
        |s, i| (24..48).contains(&i) || (s == 1 && i >= 48),
    )
    .await;
    let rec = Arc::new(Recorder::default());
    let ex = AsyncDataExporter::new(&db)
        .with_progress(rec.clone())
        .with_fsync(false);
    let req = ExportRequest::new(strings(&["AAAUSDT", "BBBUSDT"]), days(1, 3), Freq::H1);
    let rep = ex
        .export_to_numpy(&req, tmp.path().join("np"))
        .await
        .unwrap();
    assert_eq!(rep.days.len(), 2, "Jan 2 has no data, so no file set");
    assert_eq!((rep.days[0].k, rep.days[1].k), (2, 1));
    assert_eq!(rep.days[1].date, "20240103");
    let calls = rec.calls.lock().unwrap().clone();
    assert_eq!(calls.first().unwrap(), &("start".to_owned(), 3));
    assert_eq!(calls.last().unwrap(), &("day".to_owned(), 3));
    let days: Vec<u64> = calls.iter().skip(1).map(|c| c.1).collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{days:?}");

    rec.calls.lock().unwrap().clear();
    ex.export_to_csv(&req, tmp.path().join("k.csv"))
        .await
        .unwrap();
    let calls = rec.calls.lock().unwrap().clone();
    assert_eq!(
        calls.first().unwrap(),
        &("start".to_owned(), 6),
        "days x symbols"
    );
    assert_eq!(calls.last().unwrap(), &("day".to_owned(), 6));

    // Bad requests fail before anything is written.
    let mut bad = req.clone();
    bad.target_freq = Some(Freq::M1);
    let e = ex
        .export_to_numpy(&bad, tmp.path().join("bad"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("target freq"), "{e}");
    let mut bad = req.clone();
    bad.symbols = vec!["BTC/USDT".into()];
    let e = ex
        .export_to_csv(&bad, tmp.path().join("bad.csv"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BTC/USDT"), "{e}");
    let e = ex.export_to_parquet(&req, tmp.path()).await.unwrap_err();
    assert!(e.to_string().contains("is a folder"), "{e}");
    assert!(!tmp.path().join("bad").exists() && !tmp.path().join("bad.csv").exists());

    // A symbol without data is simply absent; an unknown symbol list gives no data.
    let mut none = req.clone();
    none.symbols = vec!["ZZZUSDT".into()];
    let rep = ex
        .export_to_numpy(&none, tmp.path().join("none"))
        .await
        .unwrap();
    assert_eq!(rep.status, "no_data");
    let rep = ex
        .export_to_csv(&none, tmp.path().join("none.csv"))
        .await
        .unwrap();
    assert_eq!(rep.rows, 0);
    assert_eq!(
        fs::read_to_string(tmp.path().join("none.csv"))
            .unwrap()
            .lines()
            .count(),
        1,
        "header only"
    );
    let _ = ParquetCompression::default();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resample_and_target_freq_exports_select_the_same_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    store_bars(&db, &["AAAUSDT"], Freq::H1, day(1), 96, |_, _| false).await;
    // Starts mid-day 1 and ends mid-day 3: only days 2 and 3 open inside it.
    let range = TimeRange::new(day(1) + 5 * 3_600_000, day(3) + 7 * 3_600_000).unwrap();
    let stored = db
        .resample(
            range,
            Freq::H1,
            Freq::D1,
            &strings(&["AAAUSDT"]),
            IncompletePolicy::Keep,
        )
        .await
        .unwrap();
    let mut req = ExportRequest::new(strings(&["AAAUSDT"]), range, Freq::H1);
    req.target_freq = Some(Freq::D1);
    req.features = vec![Feature::Close, Feature::Volume];
    let out = tmp.path().join("d.csv");
    AsyncDataExporter::new(&db)
        .export_to_csv(&req, &out)
        .await
        .unwrap();
    let exported: Vec<i64> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(stored.frame.timestamp(), exported.as_slice());
    assert_eq!(exported, vec![day(2), day(3)]);
    // Each selected day is built from all its bars, past the range's end too: the same
    // bars as a resample of the whole days.
    let whole = db
        .resample(
            days(2, 3),
            Freq::H1,
            Freq::D1,
            &strings(&["AAAUSDT"]),
            IncompletePolicy::Keep,
        )
        .await
        .unwrap();
    assert_eq!(stored.frame, whole.frame);
    assert_eq!(stored.incomplete, 0);
}

#[cfg(feature = "hdf5")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdf5_export_holds_the_numpy_layout_as_h5py_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    let syms = symbol_names("S", 4);
    let names: Vec<&str> = syms.iter().map(String::as_str).collect();
    store_bars(&db, &names, Freq::M1, day(1), 2 * 1440, |_, _| false).await;
    let funding: Vec<FundingRate> = (0..3)
        .flat_map(|s| {
            (0..6).map(move |n| FundingRate {
                symbol: format!("S{s:03}USDT"),
                funding_time: day(1) + n * 8 * H,
                funding_rate: 0.0001 * (n + 1) as f64,
                mark_price: None,
                index_price: None,
            })
        })
        .collect();
    db.store_funding_rate(funding).await.unwrap();
    let mut req = ExportRequest::new(syms.clone(), days(1, 2), Freq::M1);
    req.features = vec![
        Feature::Close,
        Feature::Volume,
        Feature::TradesCount,
        Feature::FundingRate,
    ];
    let ex = AsyncDataExporter::new(&db);
    let h5 = tmp.path().join("bars.h5");
    let report = ex.export_to_hdf5(&req, &h5).await.unwrap();
    assert_eq!(report.days.len(), 2);
    assert_eq!(report.bars, 4 * 2880);
    let npy = tmp.path().join("npy");
    ex.export_to_numpy(&req, &npy).await.unwrap();
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let script = r#"
import h5py
out = {}
f = h5py.File(INPUT["h5"], "r")
root = INPUT["npy"] + "/1m"
out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
out["groups"] = sorted(f.keys())
same = True
for group in f.keys():
    for day in f[group].keys():
        a = f[group][day][()]
        if group == "symbols":
            b = json.load(open(f"{root}/symbols/{day}.json"))
            a = [x.decode() if isinstance(x, bytes) else x for x in a]
            ok = list(a) == b
        else:
            b = np.load(f"{root}/{group}/{day}.npy", allow_pickle=False)
            ok = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        if not ok:
            same = False
            out.setdefault("diff", []).append(f"{group}/{day}")
out["same"] = same
out["cls_shape"] = list(f["cls"]["20240101"].shape)
out["nan_cls"] = int(np.isnan(f["cls"]["20240102"][()]).sum())
print(json.dumps(out))
"#;
    let Some(v) = run_python(script, &json!({"h5": h5, "npy": npy})) else {
        return;
    };
    assert_eq!(v["same"], true, "{v}");
    assert_eq!(v["attrs"]["freq"], "1m", "{v}");
    assert_eq!(v["attrs"]["features"], "cls,vol,tnum,fr");
    assert_eq!(
        v["groups"],
        json!(["cls", "fr", "fr_ts", "symbols", "timestamp", "tnum", "vol"])
    );
    assert_eq!(v["cls_shape"], json!([4, 1440]));
    assert_eq!(v["nan_cls"], 0);
}
