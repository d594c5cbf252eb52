//! `marketdb stream` end to end against the replay server of `marketdb-stream`: SIGINT and
//! SIGTERM commit every bar received and exit 0, `--for` ends a run by itself with its
//! reports, and bad options are usage errors that touch no database.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use marketdb_model::{Freq, Kline};
use marketdb_stream::replay::{ReplayServer, Step};

use super::{bin, fails_cleanly, marketdb, stdout};

const MIN: i64 = 60_000;
const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];

fn bar(s: usize, i: i64) -> Kline {
    let base = 50.0 * (s as f64 + 1.0) + i as f64 * 0.5;
    Kline {
        symbol: SYMBOLS[s].to_owned(),
        open_time: super::JAN1 + i * MIN,
        open: base,
        high: base + 2.0,
        low: base - 1.0,
        close: base + 0.5,
        volume: 3.0 + i as f64,
        close_time: super::JAN1 + (i + 1) * MIN - 1,
        quote_volume: (3.0 + i as f64) * base,
        trades_count: 10 + i,
        taker_buy_volume: 1.5,
        taker_buy_quote_volume: 1.5 * base,
    }
}

fn closed(n: i64) -> Step {
    Step::Klines(
        (0..n)
            .flat_map(|i| (0..SYMBOLS.len()).map(move |s| (bar(s, i), Freq::M1, true)))
            .collect(),
    )
}

/// Stored 1m bars as (symbol, time, close, volume), ordered.
fn rows(db: &Path) -> Vec<(String, i64, f64, f64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut q = c
        .prepare(
            "SELECT symbol, timestamp, close_price, volume FROM market_data \
             WHERE freq = '1m' ORDER BY symbol, timestamp",
        )
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn want(n: i64) -> Vec<(String, i64, f64, f64)> {
    (0..SYMBOLS.len())
        .flat_map(|s| {
            (0..n).map(move |i| {
                let k = bar(s, i);
                (k.symbol, k.open_time, k.close, k.volume)
            })
        })
        .collect()
}

fn stream_args(url: &str) -> Vec<String> {
    [
        "stream",
        "--market",
        "spot",
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--freq",
        "1m",
        "--ws-url",
        url,
        "--no-backfill",
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sigint_and_sigterm_commit_every_received_bar_and_exit_0() {
    for signal in ["-INT", "-TERM"] {
        signalled_run(signal);
    }
}

fn signalled_run(signal: &str) {
    let rt = runtime();
    let server = rt
        .block_on(ReplayServer::start(vec![vec![
            closed(10),
            Step::PingForPong,
        ]]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("data/market.db");
    let mut args = stream_args(&server.url());
    // No timed commit during the test: only the shutdown can store the bars.
    args.extend(["--flush-ms", "600000", "--no-idle-commit"].map(str::to_owned));
    let child = Command::new(bin())
        .current_dir(d)
        .env("MARKETDB_DB", "data/market.db")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The pong arrives after the client has read every bar before the ping.
    assert!(
        rt.block_on(server.wait_finished(1, Duration::from_secs(30))),
        "the client read the script"
    );
    assert!(rows(&db).is_empty(), "nothing committed before the signal");
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{signal}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&db), want(10), "{signal}: every received bar, exact");
    let text = stdout(&out);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["bars_stored"], 30);
}

#[test]
fn for_ends_the_run_by_itself_and_commits_as_it_goes() {
    let rt = runtime();
    let server = rt
        .block_on(ReplayServer::start(vec![vec![
            closed(4),
            Step::PingForPong,
        ]]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = stream_args(&server.url());
    args.extend(["--for", "3s", "--report-secs", "1"].map(str::to_owned));
    let started = Instant::now();
    // The server runs on the runtime's threads while this one waits for the command.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = marketdb(d, &args);
    super::ok(&out);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(rows(&d.join("data/market.db")), want(4));
    assert_eq!(server.log().pongs, 1);
    // One JSON object a second, then the last one.
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reports = events.iter().filter(|e| e["event"] == "report").count();
    assert!(reports >= 2, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["streams"], 3);
    assert_eq!(last["bars_stored"], 12);
    assert_eq!(last["malformed"], 0);
}

#[test]
fn bad_stream_options_are_usage_errors_and_create_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "stream",
                "--market",
                "um",
                "--symbols",
                "BTCUSDT",
                "--freq",
                "1s",
            ],
            "1s",
        ),
        (
            &[
                "stream",
                "--symbols",
                "BTCUSDT",
                "--ws-url",
                "http://127.0.0.1:1",
            ],
            "http://127.0.0.1:1",
        ),
        (&["stream", "--symbols", "BTC/USDT"], "BTC/USDT"),
        (&["stream", "--symbols", "BTCUSDT", "--for", "5w"], "5w"),
    ];
    for (args, names) in cases {
        let out = marketdb(d, args);
        fails_cleanly(&out, 2, &[names]);
        assert!(
            !d.join("data/market.db").exists(),
            "{args:?} created no database"
        );
    }
}
