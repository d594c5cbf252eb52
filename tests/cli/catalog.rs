//! `catalog refresh`, `catalog`, `download --symbols` sets and `check`'s life-span rule
//! against a loopback archive whose bucket listing answers as S3 does (XML pages of two
//! entries, markers or continuation tokens, one page answering 500, one slow page). The
//! tree, dated back from today: BTCUSDT, ETHBTC and NEWUSDT listed; OLDUSDT and RENUSDT
//! (renamed to NEWUSDT) delisted; a stray file that is not an archive name.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use marketdb_model::time::{DAY_MS, civil_from_days, now_ms};
use serde_json::Value;

use super::download::{ListingScript, Route, Tree, add_file, serve};
use super::{json, ok};

/// Today's start (UTC, ms) minus `k` days.
fn t(k: i64) -> i64 {
    (now_ms().div_euclid(DAY_MS) - k) * DAY_MS
}

fn ymd(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Daily 1h files of `symbol` for the days `t(from)` down to `t(to)`.
fn add_days(tree: &mut Tree, symbol: &str, from: i64, to: i64) {
    for k in (to..=from).rev() {
        add_file(
            tree,
            symbol,
            &ymd(t(k)),
            "daily",
            t(k),
            24,
            Route::default(),
            true,
        );
    }
}

/// First day of the downloads and checks, in days back from today: OLDUSDT's life holds
/// a whole calendar month, which the archive has no monthly file for.
const START: i64 = 75;

/// The archive: series as `(symbol, first, last)` in days back from today.
const SERIES: [(&str, i64, i64); 5] = [
    ("BTCUSDT", 6, 2),
    ("ETHBTC", 4, 2),
    ("NEWUSDT", 20, 2),
    ("OLDUSDT", 70, 31),
    ("RENUSDT", 40, 21),
];

fn tree(listing: ListingScript, extra: &[(&str, i64, i64)]) -> Tree {
    let mut tree = Tree::default();
    tree.listing = listing;
    for (symbol, from, to) in SERIES.iter().chain(extra) {
        add_days(&mut tree, symbol, *from, *to);
    }
    // Another interval of BTCUSDT (a refresh without --freq finds it), and a stray file
    // that sorts after every archive name of its folder.
    let day = ymd(t(3));
    let one_minute = format!("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-{day}.zip");
    tree.add_route(&one_minute, b"PK");
    tree.add_route(&format!("{one_minute}.CHECKSUM"), b"0");
    tree.add_route(
        "/data/spot/daily/klines/BTCUSDT/1h/readme.txt",
        b"not a zip",
    );
    tree
}

/// `marketdb` in `dir`, its database `data/market.db`, its temporary files in `tmp/`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(super::bin());
    c.current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env("TMPDIR", dir.join("tmp"))
        .env_remove("RUST_LOG")
        .args(args);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn refresh(dir: &Path, base: &str, extra: &[&str]) -> Value {
    let listing = format!("{base}/listing");
    let mut args = vec![
        "--json",
        "catalog",
        "refresh",
        "--market",
        "spot",
        "--kind",
        "klines",
        "--listing-url",
        &listing,
        "--backoff-ms",
        "5",
        "--jobs",
        "3",
    ];
    args.extend_from_slice(extra);
    let o = run(dir, &args);
    ok(&o);
    json(&o)
}

/// The catalog as `(symbol, interval, first day, last day, files, delisted)`.
fn catalog(dir: &Path) -> Vec<(String, String, String, String, u64, bool)> {
    let o = run(dir, &["--json", "catalog"]);
    ok(&o);
    json(&o)["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().unwrap().to_owned(),
                r["interval"].as_str().unwrap().to_owned(),
                r["first_day"].as_str().unwrap().to_owned(),
                r["last_day"].as_str().unwrap().to_owned(),
                r["files"].as_u64().unwrap(),
                r["delisted"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn row(
    symbol: &str,
    interval: &str,
    first: i64,
    last: i64,
    files: u64,
    delisted: bool,
) -> (String, String, String, String, u64, bool) {
    (
        symbol.to_owned(),
        interval.to_owned(),
        ymd(t(first)),
        ymd(t(last)),
        files,
        delisted,
    )
}

/// `s` as the client encodes a query value.
fn enc(s: &str) -> String {
    s.replace('/', "%2F")
}

#[test]
fn the_catalog_lists_the_archive_exactly_and_a_refresh_asks_only_what_can_have_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();

    // First listing: pages of two, the third listing request answers 500 once, the
    // fifth waits a second.
    let first = Arc::new(tree(
        ListingScript {
            page_size: 2,
            fail_at: 3,
            slow_at: 5,
            ..ListingScript::default()
        },
        &[],
    ));
    let base = serve(Arc::clone(&first));
    let report = refresh(d, &base, &[]);
    assert_eq!(report["symbols"], 5, "{report}");
    let listed = vec![
        row("BTCUSDT", "1h", 6, 2, 5, false),
        row("BTCUSDT", "1m", 3, 3, 1, false),
        row("ETHBTC", "1h", 4, 2, 3, false),
        row("NEWUSDT", "1h", 20, 2, 19, false),
        row("OLDUSDT", "1h", 70, 31, 40, true),
        row("RENUSDT", "1h", 40, 21, 20, true),
    ];
    assert_eq!(catalog(d), listed);
    // The failed page was asked again, and nothing else twice.
    let again: Vec<_> = first.log().into_iter().filter(|(_, n)| *n > 1).collect();
    assert_eq!(again.len(), 1, "{again:?}");

    // Patterns and the delisted filter.
    let o = run(
        d,
        &["--json", "catalog", "--symbols", "*USDT", "--delisted"],
    );
    ok(&o);
    let names: Vec<String> = json(&o)["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["OLDUSDT", "RENUSDT"]);
    // A user-given alias links the renamed symbol.
    ok(&run(
        d,
        &["catalog", "alias", "--market", "spot", "RENUSDT", "NEWUSDT"],
    ));
    let o = run(d, &["--json", "catalog", "--symbols", "re:^REN"]);
    ok(&o);
    assert_eq!(json(&o)["catalog"][0]["renamed_to"], "NEWUSDT");

    // A day later: BTCUSDT has one more file and XRPUSDT is new. The refresh (1h only)
    // asks for the symbol folders, the live series after their last key and the new
    // series whole: nothing of the delisted ones.
    let second = Arc::new(tree(
        ListingScript::default(),
        &[("BTCUSDT", 1, 1), ("XRPUSDT", 3, 2)],
    ));
    let base2 = serve(Arc::clone(&second));
    refresh(d, &base2, &["--freq", "1h"]);
    let series = "data/spot/daily/klines";
    let mut expected: BTreeSet<String> = [
        format!(
            "/listing/?delimiter=%2F&prefix={}",
            enc(&format!("{series}/"))
        ),
        format!(
            "/listing/?delimiter=%2F&prefix={}",
            enc("data/spot/monthly/klines/")
        ),
        format!("/listing/?prefix={}", enc(&format!("{series}/XRPUSDT/1h/"))),
    ]
    .into_iter()
    .collect();
    for (symbol, last) in [("BTCUSDT", 2), ("ETHBTC", 2), ("NEWUSDT", 2)] {
        let last_key = format!("{series}/{symbol}/1h/{symbol}-1h-{}.zip", ymd(t(last)));
        expected.insert(format!(
            "/listing/?prefix={}&marker={}",
            enc(&format!("{series}/{symbol}/1h/")),
            enc(&last_key)
        ));
    }
    let log = second.log();
    let asked: BTreeSet<String> = log.keys().cloned().collect();
    assert_eq!(asked, expected);
    assert!(log.values().all(|&n| n == 1), "{log:?}");
    let mut now_listed = listed.clone();
    now_listed[0] = row("BTCUSDT", "1h", 6, 1, 6, false);
    now_listed.push(row("XRPUSDT", "1h", 3, 2, 2, false));
    assert_eq!(catalog(d), now_listed);

    // A full listing of the same archive through continuation tokens gives the same
    // catalog in a new database.
    let third = Arc::new(tree(
        ListingScript {
            page_size: 2,
            tokens: true,
            ..ListingScript::default()
        },
        &[("BTCUSDT", 1, 1), ("XRPUSDT", 3, 2)],
    ));
    let base3 = serve(Arc::clone(&third));
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("tmp")).unwrap();
    refresh(other.path(), &base3, &["--full"]);
    assert_eq!(catalog(other.path()), now_listed);
    assert!(
        third
            .log()
            .keys()
            .any(|k| k.contains("list-type=2&") && k.contains("continuation-token="))
    );

    // Download of a set: every USDT symbol, delisted ones included, over 75 days: exactly
    // the files that exist (no monthly file the archive lacks, no day before a symbol's
    // first file or after its last).
    let o = run(
        d,
        &[
            "download",
            "--market",
            "spot",
            "--kind",
            "klines",
            "--symbols",
            "*USDT",
            "--include-delisted",
            "--freq",
            "1h",
            "--start",
            &ymd(t(START)),
            "--end",
            &ymd(t(2)),
            "--base-url",
            &base2,
            "--source",
            "vision",
            "--backoff-ms",
            "5",
            "-q",
            "--json",
        ],
    );
    ok(&o);
    // Every day of the range outside each symbol's life, over the five USDT symbols.
    let lives: i64 = [(6, 2), (20, 2), (70, 31), (40, 21), (3, 2)]
        .iter()
        .map(|(from, to)| from - to + 1)
        .sum();
    assert_eq!(json(&o)["not_listed_days"], 5 * (START - 1) - lives);
    let fetched: BTreeSet<String> = second
        .log()
        .keys()
        .filter(|k| k.starts_with("/data/") && k.ends_with(".zip"))
        .cloned()
        .collect();
    let mut exist = BTreeSet::new();
    for (symbol, from, to) in SERIES.iter().chain(&[("XRPUSDT", 3, 2)]) {
        if !symbol.ends_with("USDT") {
            continue;
        }
        for k in *to..=*from {
            exist.insert(format!(
                "/{series}/{symbol}/1h/{symbol}-1h-{}.zip",
                ymd(t(k))
            ));
        }
    }
    assert_eq!(fetched, exist);

    // Without --include-delisted, the set leaves the delisted symbols out.
    let o = run(
        d,
        &[
            "--json",
            "download",
            "--market",
            "spot",
            "--kind",
            "klines",
            "--symbols",
            "*USDT",
            "--freq",
            "1h",
            "--start",
            &ymd(t(START)),
            "--end",
            &ymd(t(2)),
            "--base-url",
            &base2,
            "--source",
            "vision",
            "--dry-run",
        ],
    );
    ok(&o);
    assert_eq!(
        json(&o)["symbols"],
        serde_json::json!(["BTCUSDT", "NEWUSDT", "XRPUSDT"])
    );

    // check: nothing is missing before a symbol's first file or after a delisted one's
    // last; those bars are counted as not listed.
    let o = run(
        d,
        &[
            "--json",
            "check",
            "--symbols",
            "all",
            "--freq",
            "1h",
            "--start",
            &ymd(t(START)),
            "--end",
            &ymd(t(2)),
        ],
    );
    ok(&o);
    let report = json(&o);
    let by_symbol: HashMap<String, &Value> = report["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["symbol"].as_str().unwrap().to_owned(), s))
        .collect();
    for (symbol, from, to) in [
        ("BTCUSDT", 6, 2),
        ("NEWUSDT", 20, 2),
        ("OLDUSDT", 70, 31),
        ("RENUSDT", 40, 21),
        ("XRPUSDT", 3, 2),
    ] {
        let s = by_symbol[symbol];
        assert_eq!(s["missing"], serde_json::json!([]), "{symbol}: {s}");
        let not_listed = (START - 2 + 1 - (from - to + 1)) * 24;
        assert_eq!(s["not_listed_bars"], not_listed, "{symbol}: {s}");
        assert_eq!(s["expected"], (from - to + 1) * 24, "{symbol}: {s}");
    }
}

/// SIGTERM while the listing does not answer, after two of the folder's five series were
/// listed: the refresh ends at once with 143 and stores nothing (a folder is stored once
/// it is listed whole, never a part of it).
#[test]
fn a_refresh_waiting_on_the_listing_ends_on_sigterm_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let tree = Arc::new(tree(
        ListingScript {
            // 1: the folder's symbols, 2 and 3: two series, then silence.
            hang_from: 4,
            ..ListingScript::default()
        },
        &[],
    ));
    let base = serve(Arc::clone(&tree));
    let listing = format!("{base}/listing");
    let child = command(
        d,
        &[
            "catalog",
            "refresh",
            "--market",
            "spot",
            "--kind",
            "klines",
            "--listing-url",
            &listing,
            "--freq",
            "1h",
            "--jobs",
            "1",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (out, _) = super::terminate_and_wait(child, std::time::Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two series were listed before the silence: storing them alone would show here.
    let asked = tree
        .log()
        .keys()
        .filter(|k| k.starts_with("/listing/"))
        .count();
    assert!(asked >= 3, "{:?}", tree.log());
    assert_eq!(catalog(d), vec![]);
}

/// Funding (monthly files) and metrics (daily files) of USD-M futures: their folders,
/// names and periods.
#[test]
fn funding_and_metrics_series_are_catalogued_from_their_folders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let mut tree = Tree::default();
    tree.listing = ListingScript {
        page_size: 3,
        ..ListingScript::default()
    };
    let um = "/data/futures/um";
    for (symbol, months) in [
        ("BTCUSDT", ["2024-01", "2024-02", "2024-03"]),
        ("ETHUSDT", ["2023-11", "2023-12", "2024-01"]),
    ] {
        for m in months {
            let name = format!("{um}/monthly/fundingRate/{symbol}/{symbol}-fundingRate-{m}.zip");
            tree.add_route(&name, b"PK");
            tree.add_route(&format!("{name}.CHECKSUM"), b"0");
        }
    }
    for day in ["2024-03-30", "2024-03-31"] {
        let name = format!("{um}/daily/metrics/BTCUSDT/BTCUSDT-metrics-{day}.zip");
        tree.add_route(&name, b"PK");
    }
    let base = serve(Arc::new(tree));
    let listing = format!("{base}/listing");
    let o = run(
        d,
        &[
            "catalog",
            "refresh",
            "--market",
            "um",
            "--kind",
            "funding,metrics",
            "--listing-url",
            &listing,
            "--backoff-ms",
            "5",
            "-q",
        ],
    );
    ok(&o);
    let o = run(d, &["--json", "catalog", "--market", "um"]);
    ok(&o);
    let rows: Vec<(String, String, String, String, String, u64)> = json(&o)["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["symbol"].as_str().unwrap().to_owned(),
                r["interval"].as_str().unwrap().to_owned(),
                r["first_day"].as_str().unwrap().to_owned(),
                r["last_day"].as_str().unwrap().to_owned(),
                r["files"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |k: &str, s: &str, a: &str, b: &str, n: u64| {
        (
            k.to_owned(),
            s.to_owned(),
            String::new(),
            a.to_owned(),
            b.to_owned(),
            n,
        )
    };
    assert_eq!(
        rows,
        vec![
            row("funding", "BTCUSDT", "2024-01-01", "2024-03-31", 3),
            row("funding", "ETHUSDT", "2023-11-01", "2024-01-31", 3),
            row("metrics", "BTCUSDT", "2024-03-30", "2024-03-31", 2),
        ]
    );
}
