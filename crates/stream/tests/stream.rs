//! The streamer against a loopback WebSocket server (the crate's replay server) and a
//! loopback REST endpoint written here: closed bars stored once with exact values, open
//! updates never, malformed frames skipped, holes after a drop, a rotation or a restart
//! filled from REST, streams sharded at the per-connection limit, pings answered.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketdb_fetch::{Market, RestClient, RestConfig};
use marketdb_model::{Freq, Kline};
use marketdb_store::AsyncMarketDB;
use marketdb_stream::replay::{ReplayServer, Step};
use marketdb_stream::{StreamConfig, StreamReport, Streamer, Subscription};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MIN: i64 = 60_000;
/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];

/// Bar `i` of `symbol`, with values no two bars share.
fn bar(symbol: &str, i: i64) -> Kline {
    let s = SYMBOLS.iter().position(|x| *x == symbol).unwrap_or(7) as f64;
    let base = 100.0 * (s + 1.0) + i as f64 * 0.25;
    Kline {
        symbol: symbol.to_owned(),
        open_time: T0 + i * MIN,
        open: base,
        high: base + 1.5,
        low: base - 0.75,
        close: base + 0.125,
        volume: 10.0 + i as f64,
        close_time: T0 + (i + 1) * MIN - 1,
        quote_volume: (10.0 + i as f64) * base,
        trades_count: 100 + i,
        taker_buy_volume: 4.0 + i as f64 / 8.0,
        taker_buy_quote_volume: (4.0 + i as f64 / 8.0) * base,
    }
}

/// Closed bars `range` of every symbol, interleaved by time as the exchange sends them.
fn closed(range: std::ops::Range<i64>) -> Step {
    let mut v = Vec::new();
    for i in range {
        for s in SYMBOLS {
            v.push((bar(s, i), Freq::M1, true));
        }
    }
    Step::Klines(v)
}

/// An open-bar update of bar `i`: other values, never to be stored.
fn update(i: i64) -> Step {
    Step::Klines(
        SYMBOLS
            .iter()
            .map(|s| {
                let mut k = bar(s, i);
                k.close += 1000.0;
                k.high += 1000.0;
                (k, Freq::M1, false)
            })
            .collect(),
    )
}

fn subs() -> Vec<Subscription> {
    SYMBOLS
        .iter()
        .map(|s| Subscription {
            symbol: (*s).to_owned(),
            freq: Freq::M1,
        })
        .collect()
}

/// Klines requests seen by the REST endpoint: symbol, start, end and arrival (ms since
/// the epoch).
type RestLog = Arc<Mutex<Vec<(String, i64, i64, i64)>>>;

/// The `(symbol, start, end)` of every request seen, in arrival order.
fn rest_asked(log: &RestLog) -> Vec<(String, i64, i64)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(s, a, b, _)| (s.clone(), *a, *b))
        .collect()
}

/// A loopback `/api/v3/klines` that serves the bars `serve` of every symbol in the asked
/// range, as Binance rows.
async fn rest_server(serve: std::ops::Range<i64>) -> (String, RestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = RestLog::default();
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            let serve = serve.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let query: HashMap<&str, &str> = target
                    .split_once('?')
                    .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
                    .unwrap_or_default();
                let symbol = query.get("symbol").copied().unwrap_or("").to_owned();
                let start: i64 = query
                    .get("startTime")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let end: i64 = query
                    .get("endTime")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let limit: usize = query
                    .get("limit")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(500);
                seen.lock().unwrap().push((
                    symbol.clone(),
                    start,
                    end,
                    marketdb_model::time::now_ms(),
                ));
                let rows: Vec<serde_json::Value> = serve
                    .map(|i| bar(&symbol, i))
                    .filter(|k| k.open_time >= start && k.open_time <= end)
                    .take(limit)
                    .map(|k| {
                        serde_json::json!([
                            k.open_time,
                            k.open.to_string(),
                            k.high.to_string(),
                            k.low.to_string(),
                            k.close.to_string(),
                            k.volume.to_string(),
                            k.close_time,
                            k.quote_volume.to_string(),
                            k.trades_count,
                            k.taker_buy_volume.to_string(),
                            k.taker_buy_quote_volume.to_string(),
                            "0"
                        ])
                    })
                    .collect();
                let body = serde_json::to_string(&rows).unwrap();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, log)
}

fn config(ws: &str) -> StreamConfig {
    let mut c = StreamConfig::new(Market::Spot, subs());
    c.ws_base = ws.to_owned();
    c.flush_interval = Duration::from_millis(40);
    c.backoff = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(200);
    c.report_interval = Duration::from_millis(200);
    c
}

fn rest(url: &str) -> RestClient {
    let mut c = RestConfig::for_market(Market::Spot);
    c.base_url = url.to_owned();
    c.backoff = Duration::from_millis(20);
    RestClient::new(Market::Spot, c).unwrap()
}

/// Every stored 1m bar, ordered, as klines.
fn stored(path: &std::path::Path) -> Vec<Kline> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut q = c
        .prepare(
            "SELECT symbol, timestamp, open_price, high_price, low_price, close_price, volume, \
             quote_volume, trades_count, taker_buy_volume, taker_buy_quote_volume \
             FROM market_data WHERE freq = '1m' ORDER BY symbol, timestamp",
        )
        .unwrap();
    q.query_map([], |r| {
        let t: i64 = r.get(1)?;
        Ok(Kline {
            symbol: r.get(0)?,
            open_time: t,
            open: r.get(2)?,
            high: r.get(3)?,
            low: r.get(4)?,
            close: r.get(5)?,
            volume: r.get(6)?,
            close_time: t + MIN - 1,
            quote_volume: r.get(7)?,
            trades_count: r.get(8)?,
            taker_buy_volume: r.get(9)?,
            taker_buy_quote_volume: r.get(10)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Bars `range` of every symbol, in stored order.
fn expected(range: std::ops::Range<i64>) -> Vec<Kline> {
    SYMBOLS
        .iter()
        .flat_map(|s| range.clone().map(move |i| bar(s, i)))
        .collect()
}

/// Runs `streamer` until `server` has played `scripts` scripts and `want` bars are
/// readable through a second handle on the file (readers see commits at once), then
/// stops it.
async fn run_until(
    streamer: Streamer,
    server: &ReplayServer,
    scripts: usize,
    path: &std::path::Path,
    want: u64,
) -> StreamReport {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(streamer.run(
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    assert!(
        server.wait_finished(scripts, Duration::from_secs(20)).await,
        "the server played its scripts: {:?}",
        server.log()
    );
    let reader = AsyncMarketDB::open_read_only(path).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut n = 0;
        for s in SYMBOLS {
            n += reader.count(s, Freq::M1, None).await.unwrap();
        }
        if n >= want || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the shutdown ends")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_bars_stored_once_and_a_dropped_connection_backfilled_from_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let server = ReplayServer::start(vec![
        vec![
            Step::Text(r#"{"result":null,"id":1}"#.to_owned()),
            update(0),
            closed(0..4),
            update(4),
            Step::Text("{not a stream message".to_owned()),
            Step::Binary(vec![1, 2, 3]),
            closed(4..8),
            update(8),
            Step::PingForPong,
            Step::Drop,
        ],
        // The server comes back five bars later.
        vec![closed(13..20), update(20), Step::PingForPong],
    ])
    .await
    .unwrap();
    let (rest_url, rest_log) = rest_server(8..13).await;
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 2, &path, 60).await;
    db.close().await;

    assert_eq!(
        stored(&path),
        expected(0..20),
        "every bar, closed values, no hole"
    );
    assert_eq!(report.bars_streamed, 45);
    assert_eq!(report.bars_backfilled, 15);
    assert_eq!(report.bars_stored, 60, "each bar committed once");
    assert_eq!(report.updates, 12, "open-bar updates counted, not stored");
    assert_eq!(report.malformed, 2, "the broken text and the binary frame");
    assert_eq!(report.holes, 3);
    assert_eq!((report.holes_filled, report.holes_unfilled), (3, 0));
    assert!(report.holes_left.is_empty(), "{:?}", report.holes_left);
    assert_eq!(report.reconnects, 1);
    assert_eq!(report.invalid, 0);
    assert!(report.lag_p50_ms.is_some() && report.lag_p99_ms >= report.lag_p50_ms);
    let log = server.log();
    assert_eq!(
        log.paths[0], "/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m/solusdt@kline_1m",
        "one combined-stream connection"
    );
    assert_eq!(log.pongs, 2, "pings answered");
    let mut asked = rest_asked(&rest_log);
    asked.sort();
    assert_eq!(
        asked,
        SYMBOLS
            .iter()
            .map(|s| ((*s).to_owned(), T0 + 8 * MIN, T0 + 13 * MIN - 1))
            .collect::<Vec<_>>(),
        "exactly the hole, once per symbol"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_backfills_from_the_last_stored_bar_and_bad_bars_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let db = AsyncMarketDB::open(&path).await.unwrap();
    for s in SYMBOLS {
        db.store_data((0..6).map(|i| bar(s, i)).collect::<Vec<_>>(), Freq::M1)
            .await
            .unwrap();
    }
    let mut broken = bar("ETHUSDT", 12);
    broken.high = broken.low - 1.0;
    let server = ReplayServer::start(vec![vec![
        closed(10..12),
        Step::Klines(vec![(broken, Freq::M1, true)]),
        Step::Klines(vec![(bar("DOGEUSDT", 11), Freq::M1, true)]),
        closed(12..13),
        Step::PingForPong,
    ]])
    .await
    .unwrap();
    let (rest_url, rest_log) = rest_server(6..10).await;
    let streamer = Streamer::new(db.clone(), config(&server.url()), Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 1, &path, 39).await;
    db.close().await;
    assert_eq!(stored(&path), expected(0..13));
    assert_eq!(
        report.invalid, 2,
        "the bar with high < low and the unasked stream"
    );
    assert_eq!(report.bars_backfilled, 12);
    assert_eq!(rest_log.lock().unwrap().len(), 3, "one request per symbol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_rotation_before_the_age_limit_leaves_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let server = ReplayServer::start(vec![
        // Silent after bar 3, until the client replaces the connection.
        vec![closed(0..4)],
        vec![closed(6..9), Step::PingForPong],
    ])
    .await
    .unwrap();
    let (rest_url, _) = rest_server(4..6).await;
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let mut c = config(&server.url());
    c.max_connection_age = Duration::from_millis(600);
    let streamer = Streamer::new(db.clone(), c, Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 2, &path, 27).await;
    db.close().await;
    assert_eq!(stored(&path), expected(0..9));
    assert!(report.rotations >= 1, "{report:?}");
    assert_eq!(report.reconnects, 0, "a rotation is not a lost connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_per_connection_limit_get_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let one = |s: &str| Step::Klines((0..3).map(|i| (bar(s, i), Freq::M1, true)).collect());
    let server = ReplayServer::start(vec![
        vec![one("BTCUSDT"), one("ETHUSDT"), Step::PingForPong],
        vec![one("SOLUSDT"), Step::PingForPong],
    ])
    .await
    .unwrap();
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let mut c = config(&server.url());
    c.streams_per_connection = 2;
    let streamer = Streamer::new(db.clone(), c, None);
    let report = run_until(streamer, &server, 2, &path, 9).await;
    db.close().await;
    assert_eq!(stored(&path), expected(0..3));
    assert_eq!(report.connections, 2);
    let mut paths = server.log().paths;
    paths.sort();
    assert_eq!(
        paths,
        [
            "/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m",
            "/stream?streams=solusdt@kline_1m"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_backfill_a_hole_is_reported_and_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let server = ReplayServer::start(vec![vec![closed(0..2), closed(5..6), Step::PingForPong]])
        .await
        .unwrap();
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), None);
    let report = run_until(streamer, &server, 1, &path, 9).await;
    db.close().await;
    let mut want = expected(0..2);
    want.extend(expected(5..6));
    want.sort_by(|a, b| (&a.symbol, a.open_time).cmp(&(&b.symbol, b.open_time)));
    assert_eq!(stored(&path), want);
    assert_eq!(report.holes, 3);
    assert_eq!(report.holes_unfilled, 3, "{report:?}");
    assert_eq!(report.holes_left.len(), 3);
    assert!(
        report.holes_left.iter().all(|h| h.missing == 3),
        "{:?}",
        report.holes_left
    );
    assert_eq!(report.bars_backfilled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_the_handshake_is_retried_with_backoff_until_shutdown() {
    // Accepts TCP and hangs up at once: every handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let attempts = Arc::new(Mutex::new(0usize));
    let seen = Arc::clone(&attempts);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            *seen.lock().unwrap() += 1;
            drop(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let started = std::time::Instant::now();
    let streamer = Streamer::new(db.clone(), config(&url), None);
    let report = streamer
        .run(tokio::time::sleep(Duration::from_millis(1500)), |_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    db.close().await;
    let n = *attempts.lock().unwrap();
    // Backoff 50 ms doubling to at most 200 ms (each a random point in its upper half):
    // a handful of attempts in 1.5 s, neither one nor a busy loop.
    assert!((3..=40).contains(&n), "{n} attempts");
    assert!(
        elapsed < Duration::from_secs(5),
        "the shutdown does not wait for a connection"
    );
    assert_eq!(report.bars_stored, 0);
    assert_eq!(
        report.reconnects, 0,
        "never connected, so never reconnected"
    );
    assert!(stored(&path).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bar_received_twice_before_its_commit_is_stored_once_with_its_last_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let again: Vec<(Kline, Freq, bool)> = (0..3)
        .flat_map(|i| {
            SYMBOLS.iter().map(move |s| {
                let mut k = bar(s, i);
                k.volume += 0.5;
                (k, Freq::M1, true)
            })
        })
        .collect();
    let server = ReplayServer::start(vec![vec![
        closed(0..3),
        Step::Klines(again),
        Step::PingForPong,
    ]])
    .await
    .unwrap();
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let mut c = config(&server.url());
    // One batch for all: only the shutdown commits.
    c.commit_when_idle = false;
    c.flush_interval = Duration::from_secs(600);
    let streamer = Streamer::new(db.clone(), c, None);
    let report = run_until(streamer, &server, 1, &path, 0).await;
    db.close().await;
    let want: Vec<Kline> = expected(0..3)
        .into_iter()
        .map(|mut k| {
            k.volume += 0.5;
            k
        })
        .collect();
    assert_eq!(stored(&path), want, "the second copy wins");
    assert_eq!(report.bars_streamed, 18);
    assert_eq!(report.bars_stored, 9);
    assert_eq!(report.commits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_and_a_silent_server_drop_the_connection_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let server = ReplayServer::start(vec![
        // A 1 MiB frame: refused, connection dropped.
        vec![closed(0..2), Step::Text("x".repeat(1 << 20))],
        // Silent past the idle timeout.
        vec![closed(2..4), Step::Sleep(Duration::from_secs(30))],
        // Then alive: a frame every 100 ms keeps the idle timeout away.
        [closed(4..6), Step::PingForPong]
            .into_iter()
            .chain((0..300).flat_map(|_| {
                [
                    Step::Sleep(Duration::from_millis(100)),
                    Step::Klines(vec![(bar("BTCUSDT", 6), Freq::M1, false)]),
                ]
            }))
            .collect(),
    ])
    .await
    .unwrap();
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let mut c = config(&server.url());
    c.idle_timeout = Duration::from_millis(500);
    let streamer = Streamer::new(db.clone(), c, None);
    // The first script may or may not finish (its big send can fail) and the last one
    // outlasts the test: the rows decide.
    let report = run_until(streamer, &server, 0, &path, 18).await;
    db.close().await;
    assert_eq!(stored(&path), expected(0..6));
    assert_eq!(report.reconnects, 2, "{report:?}");
    assert_eq!(server.log().paths.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_the_store_refuses_are_kept_and_reported_never_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    AsyncMarketDB::open(&path).await.unwrap().close().await;
    // A read-only store: every commit fails.
    let db = AsyncMarketDB::open_read_only(&path).await.unwrap();
    let server = ReplayServer::start(vec![vec![closed(0..5), Step::PingForPong]])
        .await
        .unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(streamer.run(
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    assert!(server.wait_finished(1, Duration::from_secs(20)).await);
    // A few failed timed commits happen meanwhile; the bars stay pending.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    let err = run.await.unwrap().unwrap_err();
    match &err {
        marketdb_stream::Error::Unstored { bars, .. } => assert_eq!(*bars, 15, "{err}"),
        other => panic!("expected Unstored, got {other}"),
    }
    assert!(err.to_string().contains("15 received bar(s)"), "{err}");
    db.close().await;
    assert!(stored(&path).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_the_store_is_locked_and_the_queue_full_ends_with_every_received_bar() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let db = AsyncMarketDB::open(&path).await.unwrap();
    // Another program holds the write lock for 3 s (under the 5 s busy timeout): the
    // first commit waits, the queue fills, the connection waits on it, and the shutdown
    // comes at 1.5 s, in the middle of it.
    let locker = {
        let path = path.clone();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(3000));
            c.execute_batch("COMMIT").unwrap();
        });
        locked_rx.recv().unwrap();
        t
    };
    let server = ReplayServer::start(vec![vec![closed(0..1700), Step::PingForPong]])
        .await
        .unwrap();
    let mut c = config(&server.url());
    c.flush_bars = 1024;
    let streamer = Streamer::new(db.clone(), c, None);
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        streamer.run(tokio::time::sleep(Duration::from_millis(1500)), |_| {}),
    )
    .await
    .expect("the shutdown does not hang on a full queue")
    .unwrap();
    locker.join().unwrap();
    db.close().await;
    assert!(
        report.bars_streamed > 1024,
        "the queue was full: {}",
        report.bars_streamed
    );
    assert_eq!(
        report.bars_stored, report.bars_streamed,
        "every received bar stored"
    );
    assert_eq!(stored(&path).len() as u64, report.bars_streamed);
}

/// The index of the last 1m bar closed by now (its `bar` index from `T0`).
fn last_closed_index() -> i64 {
    let now = marketdb_model::time::now_ms();
    (now - T0) / MIN - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_flagged_closed_before_their_close_time_are_counted_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let last = last_closed_index();
    // Two bars that have closed, then bars "closed" 30 minutes and 20 hours ahead.
    let mut future = Vec::new();
    for ahead in [30, 20 * 60] {
        for s in SYMBOLS {
            future.push((bar(s, last + ahead), Freq::M1, true));
        }
    }
    let server = ReplayServer::start(vec![vec![
        closed(last - 1..last + 1),
        Step::Klines(future),
        Step::PingForPong,
    ]])
    .await
    .unwrap();
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), None);
    let report = run_until(streamer, &server, 1, &path, 6).await;
    db.close().await;
    assert_eq!(
        stored(&path),
        expected(last - 1..last + 1),
        "only the closed bars"
    );
    assert_eq!(report.future_bars, 6, "{report:?}");
    assert_eq!(report.holes, 0, "a bar from the future opens no hole");
    assert_eq!(report.invalid, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_the_exchange_answers_with_nothing_is_reported_unfilled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    // Bars 2..4 are missing; REST has bar 2 only (a part), then nothing.
    let server = ReplayServer::start(vec![vec![closed(0..2), closed(5..6), Step::PingForPong]])
        .await
        .unwrap();
    let (rest_url, _) = rest_server(2..3).await;
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 1, &path, 12).await;
    db.close().await;
    assert_eq!(report.holes, 3);
    assert_eq!(
        (
            report.holes_filled,
            report.holes_partly_filled,
            report.holes_unfilled
        ),
        (0, 3, 0),
        "{report:?}"
    );
    assert_eq!(report.holes_left.len(), 3);
    for h in &report.holes_left {
        assert_eq!(h.missing, 2, "{h:?}");
        assert_eq!(h.from, marketdb_model::time::format_rfc3339(T0 + 2 * MIN));
        assert_eq!(h.to, marketdb_model::time::format_rfc3339(T0 + 5 * MIN));
    }
    // And with nothing at all from REST: unfilled.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let server = ReplayServer::start(vec![vec![closed(0..2), closed(5..6), Step::PingForPong]])
        .await
        .unwrap();
    let (rest_url, _) = rest_server(0..0).await;
    let db = AsyncMarketDB::open(&path).await.unwrap();
    let streamer = Streamer::new(db.clone(), config(&server.url()), Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 1, &path, 9).await;
    db.close().await;
    assert_eq!(
        (
            report.holes_filled,
            report.holes_partly_filled,
            report.holes_unfilled
        ),
        (0, 0, 3),
        "{report:?}"
    );
    assert!(report.holes_left.iter().all(|h| h.missing == 3));
}

/// Log lines written while `f` runs on this thread (a current-thread runtime).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(Arc::clone(&buf));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_store_months_behind_backfills_a_bounded_span_and_names_the_rest() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let last = last_closed_index();
    let behind = last - 90 * 1440;
    let db = AsyncMarketDB::open(&path).await.unwrap();
    for s in SYMBOLS {
        db.store_data(vec![bar(s, behind)], Freq::M1).await.unwrap();
    }
    let server = ReplayServer::start(vec![vec![closed(last..last + 1), Step::PingForPong]])
        .await
        .unwrap();
    let (rest_url, rest_log) = rest_server(last - 60..last).await;
    let mut c = config(&server.url());
    c.max_backfill = Duration::from_secs(3600);
    let streamer = Streamer::new(db.clone(), c, Some(rest(&rest_url)));
    let report = run_until(streamer, &server, 1, &path, 3 + 3 + 3 * 60).await;
    db.close().await;
    // Asked: the last hour before the streamed bar, not the three months.
    let asked = rest_asked(&rest_log);
    assert_eq!(asked.len(), 3, "one page of an hour per symbol: {asked:?}");
    for (_, start, _) in &asked {
        assert!(*start >= T0 + (last - 60) * MIN, "asked from {start}");
    }
    assert_eq!(
        (report.holes_filled, report.holes_partly_filled),
        (0, 3),
        "the recent part filled, the rest left: {report:?}"
    );
    let beyond: Vec<_> = report.holes_left.iter().collect();
    assert_eq!(beyond.len(), 3, "{report:?}");
    for h in beyond {
        assert_eq!(
            h.from,
            marketdb_model::time::format_rfc3339(T0 + (behind + 1) * MIN)
        );
        assert_eq!(
            h.to,
            marketdb_model::time::format_rfc3339(T0 + (last - 60) * MIN)
        );
        assert_eq!(h.missing as i64, last - 60 - behind - 1);
    }
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("beyond the backfill bound")
            && text.contains("marketdb download --market spot --symbols BTCUSDT --freq 1m"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_locked_past_the_busy_timeout_keeps_the_connections_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let mut sc = marketdb_store::StoreConfig::new(&path);
    sc.pool.busy_timeout = Duration::from_millis(200);
    let db = AsyncMarketDB::open_with(sc).await.unwrap();
    // Another program holds the write lock for 1.5 s, past the 0.2 s busy timeout: every
    // commit tried meanwhile fails.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let locker = {
        let path = path.clone();
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            c.execute_batch("COMMIT").unwrap();
            std::time::Instant::now()
        })
    };
    locked_rx.recv().unwrap();
    // More bars than the channel holds, then pings: they are answered while the store is
    // still locked only if the writer keeps draining the channel.
    let server = ReplayServer::start(vec![vec![
        closed(0..1500),
        Step::PingForPong,
        Step::PingForPong,
        Step::PingForPong,
    ]])
    .await
    .unwrap();
    let mut c = config(&server.url());
    c.flush_bars = 1024;
    let streamer = Streamer::new(db.clone(), c, None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(streamer.run(
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    let answered = server.wait_finished(1, Duration::from_secs(4)).await;
    let answered_at = std::time::Instant::now();
    let pongs = server.log().pongs;
    let released_at = locker.join().unwrap();
    assert!(
        answered && answered_at < released_at,
        "the pings were not answered while the store was locked ({pongs} pongs)"
    );
    assert_eq!(pongs, 3);
    // Once the lock is gone, every bar is stored.
    let reader = AsyncMarketDB::open_read_only(&path).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut n = 0;
        for s in SYMBOLS {
            n += reader.count(s, Freq::M1, None).await.unwrap();
        }
        if n >= 4500 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    db.close().await;
    assert_eq!(stored(&path), expected(0..1500));
    assert!(report.commit_failures >= 1, "{report:?}");
    assert_eq!(report.bars_stored, 4500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_backfills_stay_inside_the_weight_budget_together() {
    const FOUR: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let db = AsyncMarketDB::open(&path).await.unwrap();
    for s in FOUR {
        db.store_data(vec![bar(s, 0)], Freq::M1).await.unwrap();
    }
    // Holes of 2,500 bars in four streams: three pages of 1,000 each, 12 requests of
    // weight 2, against a server that allows 4 per 1 s window. (The backfill bound is
    // raised so the whole hole is asked for.)
    let streamed: Vec<_> = FOUR
        .iter()
        .map(|s| (bar(s, 2501), Freq::M1, true))
        .collect();
    let server = ReplayServer::start(vec![vec![Step::Klines(streamed), Step::PingForPong]])
        .await
        .unwrap();
    let (rest_url, rest_log) = rest_server(1..2501).await;
    let mut rc = RestConfig::for_market(Market::Spot);
    rc.base_url = rest_url;
    rc.weight_budget = 4;
    rc.weight_window = Duration::from_millis(1000);
    let client = RestClient::new(Market::Spot, rc).unwrap();
    // Start just after a window opens, so a request reserved at a window's end does not
    // arrive in the next one.
    let now = marketdb_model::time::now_ms();
    tokio::time::sleep(Duration::from_millis((1000 - now % 1000 + 20) as u64)).await;
    let mut c = config(&server.url());
    c.subscriptions = FOUR
        .iter()
        .map(|s| Subscription {
            symbol: (*s).to_owned(),
            freq: Freq::M1,
        })
        .collect();
    c.max_backfill = Duration::from_secs(7 * 24 * 3600);
    let streamer = Streamer::new(db.clone(), c, Some(client));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(streamer.run(
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut n = 0;
        for s in FOUR {
            n += db.count(s, Freq::M1, None).await.unwrap();
        }
        if n >= 4 * 2502 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    db.close().await;
    assert_eq!(report.holes_filled, 4, "{report:?}");
    let times: Vec<i64> = rest_log.lock().unwrap().iter().map(|r| r.3).collect();
    assert_eq!(times.len(), 12, "{:?}", rest_asked(&rest_log));
    let mut per_window: HashMap<i64, u64> = HashMap::new();
    for t in &times {
        *per_window.entry(t / 1000).or_default() += 2;
    }
    assert!(
        per_window.values().all(|w| *w <= 4),
        "the budget of 4 per window was passed: {per_window:?}"
    );
}
