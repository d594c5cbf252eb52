//! `download` against a Binance Vision tree served by a loopback HTTP server this test
//! starts: monthly and daily files of two symbols, a day and a month Vision lacks (404), a
//! file whose `.CHECKSUM` never matches, a file that answers 500 twice, and one whose body
//! is cut midway once. The server counts requests, so the second run can be shown to ask
//! for nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{JAN1, json, kline_line, ok, stdout};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// How the server answers one path.
#[derive(Clone, Default)]
pub(super) struct Route {
    body: Vec<u8>,
    /// Answer 500 this many times first.
    fail_first: usize,
    /// Send half the body and close this many times first (after the 500s).
    cut_first: usize,
    /// Trickle the body a byte at a time, slower than any timeout, this many times first
    /// (after the cut bodies).
    slow_first: usize,
}

#[derive(Default)]
pub(super) struct Tree {
    routes: HashMap<String, Route>,
    /// REST klines by symbol: open time and the JSON row, ascending.
    rest: HashMap<String, Vec<(i64, String)>>,
    /// REST requests answered `429` with `Retry-After: 1` before any data.
    rest_limited: usize,
    /// REST funding rates of BTCUSDT: time and rate.
    funding: Vec<(i64, f64)>,
    /// Wait before every answer (so a run lasts long enough to be killed midway).
    delay_ms: u64,
    /// The bucket listing (`/listing/?...`, see [`answer_listing`]).
    pub(super) listing: ListingScript,
    requests: Mutex<HashMap<String, usize>>,
}

/// How the loopback bucket listing answers.
#[derive(Default)]
pub(super) struct ListingScript {
    /// Entries per page (0: 1000, as S3).
    pub(super) page_size: usize,
    /// Continue with `NextContinuationToken` (version 2) instead of `NextMarker`.
    pub(super) tokens: bool,
    /// The listing request (1-based, in arrival order) answered 500 once.
    pub(super) fail_at: usize,
    /// The listing request answered after a second's wait.
    pub(super) slow_at: usize,
    /// From this listing request (1-based) on, answer nothing for a minute.
    pub(super) hang_from: usize,
    pub(super) seen: std::sync::atomic::AtomicUsize,
}

impl Tree {
    fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Serves `body` at `path`.
    pub(super) fn add_route(&mut self, path: &str, body: &[u8]) {
        self.routes.insert(
            path.to_owned(),
            Route {
                body: body.to_vec(),
                ..Route::default()
            },
        );
    }

    /// Every request path (query included), with how often it came.
    pub(super) fn log(&self) -> HashMap<String, usize> {
        self.requests.lock().unwrap().clone()
    }

    /// The routes' paths (without the leading `/`).
    pub(super) fn keys(&self) -> Vec<String> {
        self.routes.keys().map(|k| k[1..].to_owned()).collect()
    }

    fn total(&self) -> usize {
        self.requests.lock().unwrap().values().sum()
    }

    /// Requests that repeated an earlier request for the same path.
    fn repeated(&self) -> usize {
        self.requests.lock().unwrap().values().map(|n| n - 1).sum()
    }
}

pub(super) fn serve(tree: Arc<Tree>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let tree = Arc::clone(&tree);
            std::thread::spawn(move || answer(&tree, stream));
        }
    });
    format!("http://{addr}")
}

fn answer(tree: &Tree, mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = first.split(' ').nth(1).unwrap_or("").to_owned();
    let n = {
        let mut counts = tree.requests.lock().unwrap();
        let c = counts.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    std::thread::sleep(std::time::Duration::from_millis(tree.delay_ms));
    let empty = |status: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    };
    if let Some(query) = path.strip_prefix("/listing/?") {
        let _ = stream.write_all(&answer_listing(tree, query));
        return;
    }
    if let Some(query) = path.strip_prefix("/fapi/v1/fundingRate?") {
        let body = rest_funding(tree, query);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        return;
    }
    if let Some(query) = path.strip_prefix("/api/v3/klines?") {
        let limited = {
            let counts = tree.requests.lock().unwrap();
            counts
                .iter()
                .filter(|(p, _)| p.starts_with("/api/v3/klines?"))
                .map(|(_, n)| n)
                .sum::<usize>()
                <= tree.rest_limited
        };
        if limited {
            let _ = stream.write_all(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let body = rest_klines(tree, query);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 12\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        return;
    }
    let Some(route) = tree.routes.get(&path) else {
        let _ = stream.write_all(&empty("404 Not Found"));
        return;
    };
    if n <= route.fail_first {
        let _ = stream.write_all(&empty("500 Internal Server Error"));
        return;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        route.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if n <= route.fail_first + route.cut_first {
        let _ = stream.write_all(&route.body[..route.body.len() / 2]);
        let _ = stream.flush();
        return;
    }
    if n <= route.fail_first + route.cut_first + route.slow_first {
        // Never silent for long (a read timeout would not fire), never done in time.
        for b in &route.body {
            if stream.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        return;
    }
    let _ = stream.write_all(&route.body);
}

/// `%XX` decoded.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn xml_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A ListObjects answer over the routes, as S3 gives it: keys (and, with a delimiter,
/// common prefixes) under `prefix` sorting after `marker` (or after a continuation token,
/// here the hex of the last entry), `page_size` at a time.
fn answer_listing(tree: &Tree, query: &str) -> Vec<u8> {
    use std::sync::atomic::Ordering;
    let script = &tree.listing;
    let nth = script.seen.fetch_add(1, Ordering::SeqCst) + 1;
    if script.hang_from > 0 && nth >= script.hang_from {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    if nth == script.slow_at {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    if nth == script.fail_at {
        return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decoded)
    };
    let prefix = param("prefix").unwrap_or_default();
    let delimiter = param("delimiter").is_some();
    let after = match param("continuation-token") {
        Some(token) => {
            let bytes: Vec<u8> = (0..token.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&token[i..i + 2], 16).unwrap())
                .collect();
            String::from_utf8(bytes).unwrap()
        }
        None => param("marker").unwrap_or_default(),
    };
    let mut keys = tree.keys();
    keys.sort();
    // Entries in key order: a key, or the common prefix of the keys below a sub-folder.
    let mut entries: Vec<(String, bool)> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(&prefix)) {
        let rest = &k[prefix.len()..];
        let entry = match rest.find('/') {
            Some(i) if delimiter => (format!("{prefix}{}", &rest[..=i]), true),
            _ => (k.clone(), false),
        };
        if entries.last() != Some(&entry) {
            entries.push(entry);
        }
    }
    let mut after_marker = entries.into_iter().filter(|(e, _)| *e > after).peekable();
    let size = if script.page_size == 0 {
        1000
    } else {
        script.page_size
    };
    let page: Vec<(String, bool)> = after_marker.by_ref().take(size).collect();
    let truncated = after_marker.peek().is_some();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    xml.push_str(&format!(
        "<Name>data.binance.vision</Name><Prefix>{}</Prefix><IsTruncated>{truncated}</IsTruncated>",
        xml_escaped(&prefix)
    ));
    if truncated {
        let last = &page.last().unwrap().0;
        if script.tokens {
            let hex: String = last.bytes().map(|b| format!("{b:02x}")).collect();
            xml.push_str(&format!(
                "<NextContinuationToken>{hex}</NextContinuationToken>"
            ));
        } else if delimiter {
            xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escaped(last)));
        }
    }
    for (e, is_prefix) in &page {
        if *is_prefix {
            xml.push_str(&format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                xml_escaped(e)
            ));
        } else {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><Size>1</Size></Contents>",
                xml_escaped(e)
            ));
        }
    }
    xml.push_str("</ListBucketResult>");
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        xml.len()
    )
    .into_bytes();
    out.extend_from_slice(xml.as_bytes());
    out
}

/// A REST funding answer: the funding rows of `FUNDING` in `[startTime, endTime]`, at most
/// `limit`.
fn rest_funding(tree: &Tree, query: &str) -> String {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_owned()
    };
    let start: i64 = param("startTime").parse().unwrap();
    let end: i64 = param("endTime").parse().unwrap();
    let limit: usize = param("limit").parse().unwrap();
    let rows: Vec<String> = tree
        .funding
        .iter()
        .filter(|(t, _)| (start..=end).contains(t))
        .take(limit)
        .map(|(t, rate)| {
            format!(r#"{{"symbol":"BTCUSDT","fundingTime":{t},"fundingRate":"{rate}","markPrice":"42000.5"}}"#)
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// A REST klines answer: the stored rows of the query's symbol in `[startTime, endTime]`,
/// at most `limit`, as Binance pages them.
fn rest_klines(tree: &Tree, query: &str) -> String {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_owned()
    };
    let start: i64 = param("startTime").parse().unwrap();
    let end: i64 = param("endTime").parse().unwrap();
    let limit: usize = param("limit").parse().unwrap();
    let rows: Vec<&str> = tree
        .rest
        .get(&param("symbol"))
        .map(|rows| {
            rows.iter()
                .filter(|(t, _)| (start..=end).contains(t))
                .take(limit)
                .map(|(_, r)| r.as_str())
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", rows.join(","))
}

fn zip_bytes(inner: &str, content: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    z.start_file(inner, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(content.as_bytes()).unwrap();
    z.finish().unwrap().into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds a 1h klines file (and its `.CHECKSUM`) covering `[start, start + hours)`; returns
/// the rows as `(symbol, open time, close)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_file(
    tree: &mut Tree,
    symbol: &str,
    period: &str,
    folder: &str,
    start: i64,
    hours: i64,
    route: Route,
    good_checksum: bool,
) -> Vec<(String, i64, f64)> {
    let name = format!("{symbol}-1h-{period}.zip");
    let mut csv = String::new();
    let mut rows = Vec::new();
    for h in 0..hours {
        let t = start + h * HOUR;
        let i = usize::try_from((t - JAN1) / HOUR).unwrap();
        csv.push_str(&kline_line(t, HOUR, i, false));
        csv.push('\n');
        rows.push((symbol.to_owned(), t, 100.0 + i as f64 * 0.5 + 0.5));
    }
    let body = zip_bytes(&format!("{symbol}-1h-{period}.csv"), &csv);
    let digest = if good_checksum {
        sha256(&body)
    } else {
        "0".repeat(64)
    };
    let path = format!("/data/spot/{folder}/klines/{symbol}/1h/{name}");
    tree.routes.insert(
        format!("{path}.CHECKSUM"),
        Route {
            body: format!("{digest}  {name}\n").into_bytes(),
            ..Route::default()
        },
    );
    tree.routes.insert(path, Route { body, ..route });
    rows
}

fn ymd(day_index: i64) -> String {
    // Days after 2024-01-01 within January and February 2024.
    let (m, d) = if day_index < 31 {
        (1, day_index + 1)
    } else {
        (2, day_index - 30)
    };
    format!("2024-{m:02}-{d:02}")
}

fn download(dir: &Path, base: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "download",
        "--market",
        "spot",
        "--kind",
        "klines",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--freq",
        "1h",
        "--start",
        "2024-01-01",
        "--end",
        "2024-02-03",
        "--base-url",
        base,
        "--jobs",
        "3",
        "--retries",
        "3",
        "--backoff-ms",
        "5",
        "--timeout-secs",
        "2",
        "--source",
        "vision",
        "-q",
    ];
    args.extend_from_slice(extra);
    Command::new(super::bin())
        .current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env("TMPDIR", dir.join("tmp"))
        .env_remove("RUST_LOG")
        .args(&args)
        .output()
        .unwrap()
}

/// The Vision tree of the tests: BTCUSDT and ETHUSDT 1h from 1 Jan to 3 Feb 2024, with
/// the failures described below; returns it and the rows its good files hold.
fn vision_tree() -> (Tree, Vec<(String, i64, f64)>) {
    let mut tree = Tree::default();
    let mut expected = Vec::new();
    // BTCUSDT: January as a monthly file that fails twice, 2 Feb missing (404),
    // 3 Feb cut midway once.
    expected.extend(add_file(
        &mut tree,
        "BTCUSDT",
        "2024-01",
        "monthly",
        JAN1,
        31 * 24,
        Route {
            fail_first: 2,
            ..Route::default()
        },
        true,
    ));
    // 1 Feb lacks its last hour (a partial day, recorded); 3 Feb is cut midway once.
    for (day, hours, route) in [
        (31, 23, Route::default()),
        (
            33,
            24,
            Route {
                cut_first: 1,
                ..Route::default()
            },
        ),
    ] {
        expected.extend(add_file(
            &mut tree,
            "BTCUSDT",
            &ymd(day),
            "daily",
            JAN1 + day * DAY,
            hours,
            route,
            true,
        ));
    }
    // ETHUSDT: no monthly file, so every day; 15 Jan never matches its checksum, and
    // 5 Jan trickles past the request timeout once.
    for day in 0..34 {
        let good = day != 14;
        let rows = add_file(
            &mut tree,
            "ETHUSDT",
            &ymd(day),
            "daily",
            JAN1 + day * DAY,
            24,
            Route {
                slow_first: usize::from(day == 4),
                ..Route::default()
            },
            good,
        );
        if good {
            expected.extend(rows);
        }
    }
    (tree, expected)
}

#[test]
fn download_fetches_verifies_records_gaps_and_resumes() {
    let (tree, mut expected) = vision_tree();
    let tree = Arc::new(tree);
    let base = serve(Arc::clone(&tree));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();

    // The plan: one monthly file per symbol for January, 3 daily files each in February.
    let o = download(dir.path(), &base, &["--dry-run", "--json"]);
    ok(&o);
    assert_eq!(json(&o)["count"], 8, "{}", stdout(&o));
    assert_eq!(tree.total(), 0, "a dry run asks nothing");

    let o = download(dir.path(), &base, &["--json"]);
    // A file that never matches its checksum is a failure: run again.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = json(&o);
    assert_eq!(report["fetched"], 3 + 33, "{report}");
    assert_eq!(report["gaps_recorded"], 4, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    // Two 500s, one cut body, one request past its timeout, one checksum mismatch (the
    // file and its checksum asked again): as many as the server saw repeated.
    assert_eq!(report["retries"], 6, "{report}");
    assert_eq!(report["retries"], tree.repeated(), "{report}");
    assert_eq!(report["requests"], tree.total(), "{report}");
    assert_eq!(report["rows"], expected.len(), "{report}");

    let btc_month = "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip";
    assert_eq!(tree.count(btc_month), 3);
    assert_eq!(tree.count(&format!("{btc_month}.CHECKSUM")), 1);
    let bad = "/data/spot/daily/klines/ETHUSDT/1h/ETHUSDT-1h-2024-01-15.zip";
    assert_eq!(
        tree.count(bad),
        2,
        "a mismatch is fetched once more, then recorded"
    );
    let cut = "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02-03.zip";
    assert_eq!(tree.count(cut), 2);
    let slow = "/data/spot/daily/klines/ETHUSDT/1h/ETHUSDT-1h-2024-01-05.zip";
    assert_eq!(
        tree.count(slow),
        2,
        "a trickling answer is cut by the timeout and retried"
    );

    // Stored rows are exactly the generated rows of the good files.
    let db = dir.path().join("data/market.db");
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare(
            "SELECT symbol, timestamp, close_price FROM market_data WHERE freq = '1h' \
             ORDER BY symbol, timestamp",
        )
        .unwrap();
    let stored: Vec<(String, i64, f64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(stored, expected);

    let mut gaps: Vec<(String, String, String)> = c
        .prepare("SELECT symbol, period, status FROM source_gaps ORDER BY symbol, period")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    gaps.sort();
    let want = [
        ("BTCUSDT", "2024-02-01", "partial"),
        ("BTCUSDT", "2024-02-02", "not_published"),
        ("ETHUSDT", "2024-01", "not_published"),
        ("ETHUSDT", "2024-01-15", "failed"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(gaps, want);
    drop(st);
    drop(c);

    let listed = Command::new(super::bin())
        .current_dir(dir.path())
        .env("MARKETDB_DB", "data/market.db")
        .args(["gaps", "--json"])
        .output()
        .unwrap();
    ok(&listed);
    assert_eq!(json(&listed)["gaps"].as_array().unwrap().len(), 4);

    // Nothing is left in the temporary folder.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // A second run asks only for the failed file (and its checksum, twice: it still
    // does not match): every other day is stored or recorded for good.
    let before = tree.total();
    let o = download(dir.path(), &base, &["--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["fetched"], 0, "{}", stdout(&o));
    assert_eq!(json(&o)["skipped"], 3, "{}", stdout(&o));
    assert_eq!(tree.count(bad), 4);
    assert_eq!(
        tree.total(),
        before + 4,
        "no request for stored or recorded days"
    );
}

/// `(symbol, open time, close)` of every 1h kline of `symbol` in the database at `db`, and
/// the gap record as `(symbol, period, status)`.
#[allow(clippy::type_complexity)]
fn dump(db: &Path) -> (Vec<(String, i64, f64)>, Vec<(String, String, String)>) {
    let c = Connection::open(db).unwrap();
    let bars = c
        .prepare(
            "SELECT symbol, timestamp, close_price FROM market_data ORDER BY symbol, freq, timestamp",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let gaps = c
        .prepare("SELECT symbol, period, status FROM source_gaps ORDER BY symbol, period")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (bars, gaps)
}

#[test]
fn download_from_rest_pages_waits_out_a_429_and_records_what_the_exchange_lacks() {
    const MIN: i64 = 60_000;
    // SOLUSDT 1m: 1 Jan whole, 2 Jan with a ten-minute outage, 3 Jan nothing (delisted).
    let mut tree = Tree {
        rest_limited: 1,
        ..Tree::default()
    };
    let mut expected = Vec::new();
    let mut rows = Vec::new();
    for m in 0..2 * 1440 {
        let t = JAN1 + m * MIN;
        if (1440 + 300..1440 + 310).contains(&m) {
            continue;
        }
        let i = usize::try_from(m).unwrap();
        rows.push((t, format!("[{}]", kline_line(t, MIN, i, false))));
        expected.push(("SOLUSDT".to_owned(), t, 100.0 + i as f64 * 0.5 + 0.5));
    }
    tree.rest.insert("SOLUSDT".to_owned(), rows);
    let tree = Arc::new(tree);
    let base = serve(Arc::clone(&tree));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let run = || {
        Command::new(super::bin())
            .current_dir(dir.path())
            .env("MARKETDB_DB", "data/market.db")
            .env("TMPDIR", dir.path().join("tmp"))
            .env_remove("RUST_LOG")
            .args([
                "download",
                "--market",
                "spot",
                "--symbols",
                "SOLUSDT",
                "--freq",
                "1m",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-03",
                "--source",
                "rest",
                "--rest-url",
                &base,
                "--base-url",
                "http://127.0.0.1:9",
                "--backoff-ms",
                "5",
                "--json",
                "-q",
            ])
            .output()
            .unwrap()
    };

    let o = run();
    ok(&o);
    let report = json(&o);
    assert_eq!(report["rows"], expected.len(), "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // One span a day (1440 bars, pages of 1000): 2 + 2 + 1 requests, and the 429.
    assert_eq!(report["rest_requests"], 6, "{report}");
    assert_eq!(report["retries"], 1, "{report}");
    let (bars, gaps) = dump(&dir.path().join("data/market.db"));
    assert_eq!(bars, expected, "stored bars are the served bars exactly");
    // The REST API had nothing for 3 Jan: the exchange published none of its bars.
    let want = [
        ("SOLUSDT", "2024-01-02", "partial"),
        ("SOLUSDT", "2024-01-03", "partial"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(gaps, want);

    // `check` tells the exchange's gaps from real holes.
    let checked = Command::new(super::bin())
        .current_dir(dir.path())
        .env("MARKETDB_DB", "data/market.db")
        .args([
            "check",
            "--symbols",
            "SOLUSDT",
            "--freq",
            "1m",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-03",
            "--json",
        ])
        .output()
        .unwrap();
    ok(&checked);
    let sol = &json(&checked)["symbols"][0];
    assert_eq!(sol["partial_bars"], 10 + 1440, "{sol}");
    assert_eq!(sol["unpublished_bars"], 0, "no 404 was answered: {sol}");
    let runs: Vec<(u64, u64)> = sol["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["count"].as_u64().unwrap(), r["partial"].as_u64().unwrap()))
        .collect();
    assert_eq!(runs, [(10, 10), (1440, 1440)]);

    // The second run asks for nothing: 1 Jan is stored, the others are recorded.
    let before = tree.total();
    let o = run();
    ok(&o);
    assert_eq!(json(&o)["rest_requests"], 0, "{}", stdout(&o));
    assert_eq!(tree.total(), before);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn download_killed_or_interrupted_at_random_points_then_rerun_equals_an_uninterrupted_run() {
    let (mut tree, _) = vision_tree();
    // Slow answers, so a run lasts long enough to be stopped midway.
    // (72 requests, 3 at a time: at least 0.7 s a run, longer than any delay below).
    tree.delay_ms = 30;
    let tree = Arc::new(tree);
    let base = serve(Arc::clone(&tree));
    let reference = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(reference.path().join("tmp")).unwrap();
    // The tree's file whose checksum never matches fails every run (exit 1).
    let finished = |o: &Output| assert_eq!(o.status.code(), Some(1), "{o:?}");
    finished(&download(reference.path(), &base, &[]));
    let want = dump(&reference.path().join("data/market.db"));
    assert!(!want.0.is_empty() && !want.1.is_empty());

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut state = seed | 1;
    let mut next_delay = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        20 + state % 480
    };
    for round in 0..6 {
        let signal = if round % 3 == 2 { "INT" } else { "KILL" };
        let delay = next_delay();
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = Command::new(super::bin())
            .current_dir(dir.path())
            .env("MARKETDB_DB", "data/market.db")
            .env("TMPDIR", &tmp)
            .env_remove("RUST_LOG")
            .args([
                "download",
                "--market",
                "spot",
                "--kind",
                "klines",
                "--symbols",
                "BTCUSDT,ETHUSDT",
                "--freq",
                "1h",
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-03",
                "--base-url",
                &base,
                "--jobs",
                "3",
                "--source",
                "vision",
                "-q",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        let context = format!("seed {seed}, round {round}: SIG{signal} after {delay} ms");
        if signal == "KILL" {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "{context}: not stopped midway");
        } else {
            assert_eq!(status.code(), Some(130), "{context}: {status:?}");
            let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
            assert!(
                left.is_empty(),
                "{context}: an interrupted run leaves {left:?}"
            );
        }
        let o = download(dir.path(), &base, &[]);
        finished(&o);
        assert_eq!(dump(&dir.path().join("data/market.db")), want, "{context}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{context}: the re-run leaves {left:?}");
    }
}

/// Adds a Vision file at `path` (below `/data/futures/um/`) holding `csv`, with its
/// `.CHECKSUM`.
fn add_raw(tree: &mut Tree, path: &str, csv: &str) {
    let name = path.rsplit('/').next().unwrap();
    let body = zip_bytes(&name.replace(".zip", ".csv"), csv);
    let full = format!("/data/futures/um/{path}");
    tree.routes.insert(
        format!("{full}.CHECKSUM"),
        Route {
            body: format!("{}  {name}\n", sha256(&body)).into_bytes(),
            ..Route::default()
        },
    );
    tree.routes.insert(
        full,
        Route {
            body,
            ..Route::default()
        },
    );
}

fn pairs(db: &Path, sql: &str) -> Vec<(i64, f64)> {
    let c = Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn download_funding_and_metrics_from_vision_and_funding_from_rest() {
    let mut tree = Tree::default();
    // Funding: January as a Vision file, February 404; both months on the REST API.
    let mut jan = String::from("calc_time,funding_interval_hours,last_funding_rate\n");
    let mut want_jan = Vec::new();
    for k in 0..31 * 3 {
        let (t, rate) = (JAN1 + k * 8 * HOUR, (k as f64 - 40.0) * 1e-6);
        jan.push_str(&format!("{t},8,{rate}\n"));
        want_jan.push((t, rate));
    }
    add_raw(
        &mut tree,
        "monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip",
        &jan,
    );
    tree.funding = (0..(31 + 29) * 3)
        .map(|k| (JAN1 + k * 8 * HOUR, (k as f64 + 1.0) * 1e-6))
        .collect();
    // Metrics: 1 Jan whole, 2 Jan its first 100 samples only, 3 Jan 404.
    for (day, samples) in [(0, 288), (1, 100)] {
        let mut csv = String::from(
            "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n",
        );
        for k in 0..samples {
            let (h, m) = (k * 5 / 60, k * 5 % 60);
            csv.push_str(&format!(
                "2024-01-0{} {h:02}:{m:02}:00,BTCUSDT,{}.5,{}.25,1.5,1.25,2.5,0.75\n",
                day + 1,
                1000 + k,
                2000 + k
            ));
        }
        add_raw(
            &mut tree,
            &format!(
                "daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-0{}.zip",
                day + 1
            ),
            &csv,
        );
    }
    let tree = Arc::new(tree);
    let base = serve(Arc::clone(&tree));
    let run = |dir: &Path, args: &[&str]| {
        let mut all = vec![
            "download",
            "--market",
            "um",
            "--symbols",
            "BTCUSDT",
            "--base-url",
            &base,
            "--rest-url",
            &base,
            "--backoff-ms",
            "5",
            "--json",
            "-q",
        ];
        all.extend_from_slice(args);
        let o = Command::new(super::bin())
            .current_dir(dir)
            .env("MARKETDB_DB", "data/market.db")
            .env("TMPDIR", dir.join("tmp"))
            .env_remove("RUST_LOG")
            .args(&all)
            .output()
            .unwrap();
        ok(&o);
        json(&o)
    };
    let funding = [
        "--kind",
        "funding",
        "--start",
        "2024-01-01",
        "--end",
        "2024-02-29",
    ];

    // Vision: January stored exactly, February recorded as not published.
    let vision = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(vision.path().join("tmp")).unwrap();
    let mut args = funding.to_vec();
    args.extend(["--source", "vision"]);
    let report = run(vision.path(), &args);
    assert_eq!(
        (report["fetched"].clone(), report["rows"].clone()),
        (1.into(), 93.into()),
        "{report}"
    );
    let db = vision.path().join("data/market.db");
    assert_eq!(
        pairs(
            &db,
            "SELECT timestamp, funding_rate FROM funding_rate ORDER BY timestamp"
        ),
        want_jan
    );
    let (_, gaps) = dump(&db);
    assert_eq!(
        gaps,
        [(
            "BTCUSDT".to_owned(),
            "2024-02".to_owned(),
            "not_published".to_owned()
        )]
    );
    let before = tree.total();
    let report = run(vision.path(), &args);
    assert_eq!(report["fetched"], 0, "{report}");
    assert_eq!(tree.total(), before, "a second run asks for nothing");

    // REST: both months, exactly, in pages; a second run asks for nothing.
    let rest = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rest.path().join("tmp")).unwrap();
    let mut args = funding.to_vec();
    args.extend(["--source", "rest"]);
    let report = run(rest.path(), &args);
    assert_eq!(report["rows"], 180, "{report}");
    let db = rest.path().join("data/market.db");
    assert_eq!(
        pairs(
            &db,
            "SELECT timestamp, funding_rate FROM funding_rate ORDER BY timestamp"
        ),
        tree.funding
    );
    let report = run(rest.path(), &args);
    assert_eq!(report["rest_requests"], 0, "{report}");

    // Metrics: 288 + 100 samples, the short day and the missing day recorded.
    let metrics = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(metrics.path().join("tmp")).unwrap();
    let args = [
        "--kind",
        "metrics",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-03",
    ];
    let report = run(metrics.path(), &args);
    assert_eq!(report["fetched"], 2, "{report}");
    let db = metrics.path().join("data/market.db");
    let oi = pairs(
        &db,
        "SELECT timestamp, open_interest FROM open_interest ORDER BY timestamp",
    );
    assert_eq!(oi.len(), 388);
    assert_eq!(oi[0], (JAN1, 1000.5));
    assert_eq!(oi[300], (JAN1 + DAY + 12 * 300_000, 1012.5));
    let (_, gaps) = dump(&db);
    let want = [
        ("BTCUSDT", "2024-01-02", "partial"),
        ("BTCUSDT", "2024-01-03", "not_published"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(gaps, want);
    let before = tree.total();
    let report = run(metrics.path(), &args);
    assert_eq!(report["fetched"], 0, "{report}");
    assert_eq!(tree.total(), before, "a second run asks for nothing");

    // What cannot be asked is refused up front.
    for (bad, needle) in [
        (
            &["--kind", "metrics", "--source", "rest"][..],
            "no metrics history",
        ),
        (&["--kind", "funding", "--freq", "1h"][..], "klines only"),
        (&["--kind", "klines"][..], "needs --freq"),
    ] {
        let mut all = vec![
            "download",
            "--market",
            "um",
            "--symbols",
            "BTCUSDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
        ];
        all.extend_from_slice(bad);
        let o = Command::new(super::bin())
            .current_dir(metrics.path())
            .args(&all)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{bad:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn download_auto_takes_closed_days_from_vision_and_the_last_days_from_rest() {
    let now = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    };
    let started = now();
    let today = started / DAY * DAY;
    let first = today - 5 * DAY;
    let day_name = |d: i64| {
        let days = d / DAY;
        // Civil date from days since 1970 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let dd = doy - (153 * mp + 2) / 5 + 1;
        let mm = if mp < 10 { mp + 3 } else { mp - 9 };
        let yy = yoe + era * 400 + i64::from(mm <= 2);
        format!("{yy:04}-{mm:02}-{dd:02}")
    };
    // Every hour from five days ago to the hour after the current one, on the REST API;
    // Vision has the three oldest days, the last two are not published yet.
    let mut tree = Tree::default();
    let mut bars = Vec::new();
    let mut t = first;
    while t < started + 2 * HOUR {
        let i = usize::try_from((t - first) / HOUR).unwrap();
        bars.push((t, format!("[{}]", kline_line(t, HOUR, i, false))));
        t += HOUR;
    }
    for d in 0..3 {
        let day = first + d * DAY;
        let csv: String = bars
            .iter()
            .filter(|(t, _)| (day..day + DAY).contains(t))
            .map(|(_, row)| format!("{}\n", &row[1..row.len() - 1]))
            .collect();
        let name = format!("XUSDT-1h-{}.zip", day_name(day));
        let body = zip_bytes(&name.replace(".zip", ".csv"), &csv);
        let path = format!("/data/spot/daily/klines/XUSDT/1h/{name}");
        tree.routes.insert(
            format!("{path}.CHECKSUM"),
            Route {
                body: format!("{}  {name}\n", sha256(&body)).into_bytes(),
                ..Route::default()
            },
        );
        tree.routes.insert(
            path,
            Route {
                body,
                ..Route::default()
            },
        );
    }
    tree.rest.insert("XUSDT".to_owned(), bars.clone());
    let tree = Arc::new(tree);
    let base = serve(Arc::clone(&tree));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let range = format!("{}-", day_name(first).replace('-', ""));
    let o = Command::new(super::bin())
        .current_dir(dir.path())
        .env("MARKETDB_DB", "data/market.db")
        .env("TMPDIR", dir.path().join("tmp"))
        .env_remove("RUST_LOG")
        .args([
            "download",
            "--market",
            "spot",
            "--symbols",
            "XUSDT",
            "--freq",
            "1h",
            "--timerange",
            &range,
            "--base-url",
            &base,
            "--rest-url",
            &base,
            "--backoff-ms",
            "5",
            "--json",
            "-q",
        ])
        .output()
        .unwrap();
    ok(&o);
    let ended = now();
    let report = json(&o);
    assert_eq!(report["fetched"], 3, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let (stored, _) = dump(&dir.path().join("data/market.db"));
    let stored: Vec<i64> = stored.iter().map(|(_, t, _)| *t).collect();
    // Every bar closed before the run is stored, none still open after it.
    let closed_before: Vec<i64> = bars
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| t + HOUR <= started)
        .collect();
    assert!(
        stored.starts_with(&closed_before),
        "{} stored, {} expected",
        stored.len(),
        closed_before.len()
    );
    assert!(
        stored.iter().all(|t| t + HOUR <= ended),
        "an open bar was stored"
    );
    assert!(stored.len() <= closed_before.len() + 1);
    // The two unpublished days were asked of Vision and recorded as young gaps.
    for d in [3, 4] {
        let name = format!("XUSDT-1h-{}.zip", day_name(first + d * DAY));
        assert_eq!(
            tree.count(&format!("/data/spot/daily/klines/XUSDT/1h/{name}")),
            1
        );
    }
    // REST was asked only from the day after the last Vision file on.
    let rest_from: Vec<i64> = tree
        .requests
        .lock()
        .unwrap()
        .keys()
        .filter_map(|p| p.strip_prefix("/api/v3/klines?"))
        .map(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("startTime="))
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .collect();
    assert!(!rest_from.is_empty());
    assert!(
        rest_from.iter().all(|&t| t >= first + 3 * DAY),
        "{rest_from:?}"
    );
}
