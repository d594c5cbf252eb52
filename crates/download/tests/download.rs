//! The download policy against a loopback Vision and REST server started by each test:
//! what the source record says after transient failures, early 404s, REST fills and
//! windows that start mid-day; a failed REST range followed by a good one; bodies larger
//! than their rows allow; re-published files; and the run's counts against the server's
//! own log. No outside network.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "download/server.rs"]
mod server;

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use marketdb_download::{DownloadReport, DownloadRequest, GapKind, Source, download, ignore};
use marketdb_fetch::{Market, Period, VisionFile};
use marketdb_ingest::FileKind;
use marketdb_model::time::{DAY_MS, now_ms, parse_ymd};
use marketdb_model::{Freq, TimeRange};
use marketdb_store::{AsyncMarketDB, GapFilter};
use server::{Answer, Handler, serve};

const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;

fn day(y: i64, m: u32, d: u32) -> i64 {
    parse_ymd(y, m, d).unwrap()
}

fn today() -> i64 {
    now_ms().div_euclid(DAY_MS) * DAY_MS
}

/// The close of the bar opening at `t` in file version `version`.
fn close(t: i64, version: u32) -> f64 {
    100.0 + (t / MIN % 10_000) as f64 * 0.25 + f64::from(version)
}

/// One kline as a Vision CSV line.
fn csv_line(t: i64, step: i64, close: f64) -> String {
    let open = close - 0.5;
    format!(
        "{t},{open},{},{},{close},12.5,{},1250.25,42,6.25,625.125,0\n",
        close + 1.0,
        open - 1.0,
        t + step - 1
    )
}

/// A zip holding one CSV entry.
fn zip_of(name: &str, csv: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(csv.as_bytes()).unwrap();
    z.finish().unwrap().into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// BTCUSDT 1h on spot, for `day_ms`.
fn file(day_ms: i64) -> VisionFile {
    VisionFile::klines(Market::Spot, "BTCUSDT", Freq::H1, Period::Day(day_ms))
}

fn path(f: &VisionFile) -> String {
    format!("/{}", f.path())
}

/// The zip of a 1h daily file with the bars `hours` of the day, in `version`.
fn day_zip(f: &VisionFile, hours: impl Iterator<Item = i64>, version: u32) -> Vec<u8> {
    let start = f.period.start_ms();
    let mut csv = String::new();
    for h in hours {
        let t = start + h * HOUR;
        csv.push_str(&csv_line(t, HOUR, close(t, version)));
    }
    zip_of(&f.file_name().replace(".zip", ".csv"), &csv)
}

/// The `.CHECKSUM` of `body`.
fn checksum(f: &VisionFile, body: &[u8]) -> Answer {
    Answer::ok(format!("{}  {}\n", sha256(body), f.file_name()).into_bytes())
}

/// A REST `/api/v3/klines` answer for `query`: the bars of `step` that `has` allows,
/// closed by now, in the asked range, at most `limit`.
fn rest_klines(query: &str, step: i64, has: &dyn Fn(i64) -> bool) -> Answer {
    let q: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (start, end) = (
        num("startTime").unwrap_or(0),
        num("endTime").unwrap_or(i64::MAX),
    );
    let limit = num("limit").unwrap_or(500) as usize;
    let now = now_ms();
    let first = start.div_euclid(step) * step + if start % step == 0 { 0 } else { step };
    let rows: Vec<String> = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= end && *t + step <= now)
        .filter(|t| has(*t))
        .take(limit)
        .map(|t| {
            let c = close(t, 0);
            format!(
                "[{t},\"{}\",\"{}\",\"{}\",\"{c}\",\"12.5\",{},\"1250.25\",42,\"6.25\",\"625.125\",\"0\"]",
                c - 0.5,
                c + 1.0,
                c - 1.5,
                t + step - 1
            )
        })
        .collect();
    Answer::json(format!("[{}]", rows.join(",")))
}

fn request(base: &str, source: Source, range: TimeRange) -> DownloadRequest {
    let mut r = DownloadRequest::new(
        Market::Spot,
        FileKind::Klines,
        vec!["BTCUSDT".to_owned()],
        range,
    );
    r.freq = Some(Freq::H1);
    r.source = source;
    r.base_url = base.to_owned();
    r.rest_url = Some(base.to_owned());
    r.retries = 2;
    r.jobs = 2;
    r.backoff = Duration::from_millis(1);
    r.read_timeout = Duration::from_secs(2);
    r.timeout = Duration::from_secs(10);
    r
}

/// The source record as `(period, status, answer)`, ordered.
async fn record(db: &AsyncMarketDB) -> Vec<(String, String, String)> {
    db.source_gaps(GapFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.period, g.status, g.answer))
        .collect()
}

/// Stored open times and closes of BTCUSDT bars of `freq`.
async fn bars(db: &AsyncMarketDB, freq: Freq) -> Vec<(i64, f64)> {
    let c = rusqlite::Connection::open(db.path()).unwrap();
    let mut q = c
        .prepare(
            "SELECT timestamp, close_price FROM market_data WHERE symbol = 'BTCUSDT' \
             AND freq = ?1 ORDER BY timestamp",
        )
        .unwrap();
    q.query_map([freq.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn open() -> (tempfile::TempDir, AsyncMarketDB) {
    let dir = tempfile::tempdir().unwrap();
    let db = AsyncMarketDB::open(dir.path().join("market.db"))
        .await
        .unwrap();
    (dir, db)
}

async fn run(db: &AsyncMarketDB, req: &DownloadRequest) -> DownloadReport {
    download(db, req, &ignore).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_answers_are_recorded_failed_never_not_published_and_asked_again() {
    let days: Vec<VisionFile> = (1..=4).map(|d| file(day(2024, 1, d))).collect();
    let healed = Arc::new(AtomicBool::new(false));
    let handler: Handler = {
        let (days, healed) = (days.clone(), Arc::clone(&healed));
        Arc::new(move |p: &str, _| {
            let i = days.iter().position(|f| p.starts_with(&path(f)));
            let Some(i) = i else {
                return Answer::status(404);
            };
            let f = &days[i];
            let body = day_zip(f, 0..24, 0);
            let fine = i == 0 || healed.load(Ordering::SeqCst);
            if p.ends_with(".CHECKSUM") {
                return if fine || i != 2 {
                    checksum(f, &body)
                } else {
                    Answer::status(404)
                };
            }
            match (fine, i) {
                (true, _) => Answer::ok(body),
                (false, 1) => Answer::status(500),
                (false, 2) => Answer::html(),
                _ => Answer::Cut {
                    send: body.len() / 2,
                    body,
                },
            }
        })
    };
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let req = request(
        &base,
        Source::Vision,
        TimeRange::new(day(2024, 1, 1), day(2024, 1, 5)).unwrap(),
    );
    let report = run(&db, &req).await;
    assert_eq!((report.fetched, report.failed), (1, 3), "{report:#?}");
    assert!(report.has_failures());
    let rec = record(&db).await;
    let kinds: Vec<(&str, &str)> = rec
        .iter()
        .map(|(p, s, _)| (p.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("2024-01-02", "failed"),
            ("2024-01-03", "failed"),
            ("2024-01-04", "failed")
        ],
        "{rec:?}"
    );
    assert!(rec[0].2.contains("500 after 3 attempt"), "{rec:?}");
    assert!(rec[1].2.contains("not a zip"), "{rec:?}");
    assert!(rec[2].2.contains("body cut"), "{rec:?}");
    // Each failure is named by its URL.
    for (entry, f) in report.files.iter().filter(|e| !e.ok).zip(&days[1..]) {
        let url = f.url(&base);
        assert!(
            entry.error.as_deref().unwrap_or("").contains(&url),
            "{entry:?}"
        );
    }

    // The next run asks for the three again (and not for the stored day)...
    let before = log.lock().unwrap().clone();
    let report = run(&db, &req).await;
    assert_eq!(report.failed, 3);
    let after = log.lock().unwrap().clone();
    assert_eq!(after.count(&path(&days[0])), before.count(&path(&days[0])));
    for f in &days[1..] {
        assert!(
            after.count(&path(f)) > before.count(&path(f)),
            "{}",
            path(f)
        );
    }
    // ... and once the server is well, stores them and forgets the record.
    healed.store(true, Ordering::SeqCst);
    let report = run(&db, &req).await;
    assert_eq!((report.fetched, report.failed), (3, 0), "{report:#?}");
    assert!(record(&db).await.is_empty());
    assert_eq!(bars(&db, Freq::H1).await.len(), 4 * 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_for_yesterday_is_not_yet_published_and_asked_again() {
    let yesterday = file(today() - DAY_MS);
    let old = file(today() - 10 * DAY_MS);
    let handler: Handler = Arc::new(|_: &str, _| Answer::status(404));
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let mut req = request(
        &base,
        Source::Vision,
        TimeRange::new(today() - 10 * DAY_MS, today()).unwrap(),
    );
    req.recheck_days = 3;
    let report = run(&db, &req).await;
    assert_eq!(report.failed, 0, "a 404 is an answer, not a failure");
    let rec = record(&db).await;
    let status = |f: &VisionFile| {
        rec.iter()
            .find(|(p, _, _)| *p == f.period.to_string())
            .map(|(_, s, _)| s.clone())
    };
    assert_eq!(
        status(&yesterday).as_deref(),
        Some("not_yet_published"),
        "{rec:?}"
    );
    assert_eq!(status(&old).as_deref(), Some("not_published"), "{rec:?}");
    // Yesterday, and the day before until its file is due (36 h after it ends).
    let young = (1..=10)
        .filter(|k| marketdb_download::rule::due(Period::Day(today() - k * DAY_MS)) > now_ms())
        .count() as u64;
    assert!((1..=2).contains(&young));
    assert_eq!(
        report.gap_kinds[&GapKind::NotYetPublished],
        young,
        "{report:#?}"
    );
    assert_eq!(
        report.gap_kinds[&GapKind::NotPublished],
        10 - young,
        "{report:#?}"
    );

    // The next run asks for yesterday again, not for the old day.
    let before = log.lock().unwrap().clone();
    run(&db, &req).await;
    let after = log.lock().unwrap().clone();
    assert_eq!(
        after.count(&path(&yesterday)),
        before.count(&path(&yesterday)) + 1
    );
    assert_eq!(after.count(&path(&old)), before.count(&path(&old)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vision_404_that_rest_fills_leaves_no_record() {
    // A day old enough for its 404 to mean "not published", inside the REST window of
    // `auto` (the last three days).
    let d = today() - 3 * DAY_MS;
    let handler: Handler = Arc::new(|p: &str, _| match p.split_once('?') {
        Some(("/api/v3/klines", q)) => rest_klines(q, HOUR, &|_| true),
        _ => Answer::status(404),
    });
    let (base, _log) = serve(handler).await;
    let (_dir, db) = open().await;
    let req = request(&base, Source::Auto, TimeRange::new(d, d + DAY_MS).unwrap());
    let report = run(&db, &req).await;
    assert_eq!(
        report.gap_kinds.get(&GapKind::NotPublished),
        Some(&1),
        "{report:#?}"
    );
    assert_eq!(bars(&db, Freq::H1).await.len(), 24, "REST filled the day");
    assert_eq!(
        record(&db).await,
        [],
        "the day is complete: no record is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_window_starting_and_ending_mid_day_judges_only_its_whole_days() {
    // 1 Jan 12:00 to 3 Jan 12:00; the REST API lacks 2 Jan 05:00.
    let hole = day(2024, 1, 2) + 5 * HOUR;
    let handler: Handler = Arc::new(move |p: &str, _| match p.split_once('?') {
        Some(("/api/v3/klines", q)) => rest_klines(q, HOUR, &|t| t != hole),
        _ => Answer::status(404),
    });
    let (base, _log) = serve(handler).await;
    let (_dir, db) = open().await;
    let req = request(
        &base,
        Source::Rest,
        TimeRange::new(day(2024, 1, 1) + 12 * HOUR, day(2024, 1, 3) + 12 * HOUR).unwrap(),
    );
    let report = run(&db, &req).await;
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(bars(&db, Freq::H1).await.len(), 12 + 23 + 12);
    let rec = record(&db).await;
    assert_eq!(rec.len(), 1, "only 2 Jan, the one whole day: {rec:?}");
    assert_eq!(
        (rec[0].0.as_str(), rec[0].1.as_str()),
        ("2024-01-02", "partial")
    );
    assert_eq!(rec[0].2, "rest api: 23 of 24 row(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rest_range_does_not_stop_the_next() {
    // 1m bars over three days, the middle one stored: two ranges, more than a page
    // apart. The REST API answers 500 for every request into the first day.
    let (d1, d2, d3) = (day(2024, 1, 1), day(2024, 1, 2), day(2024, 1, 3));
    let handler: Handler = Arc::new(move |p: &str, _| match p.split_once('?') {
        Some(("/api/v3/klines", q)) if q.contains(&format!("startTime={d1}")) => {
            Answer::status(500)
        }
        Some(("/api/v3/klines", q)) => rest_klines(q, MIN, &|_| true),
        _ => Answer::status(404),
    });
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let stored: Vec<marketdb_model::Kline> = (0..1440)
        .map(|m| {
            let t = d2 + m * MIN;
            let c = close(t, 0);
            marketdb_model::Kline {
                symbol: "BTCUSDT".to_owned(),
                open_time: t,
                open: c - 0.5,
                high: c + 1.0,
                low: c - 1.5,
                close: c,
                volume: 12.5,
                close_time: t + MIN - 1,
                quote_volume: 1250.25,
                trades_count: 42,
                taker_buy_volume: 6.25,
                taker_buy_quote_volume: 625.125,
            }
        })
        .collect();
    db.store_data(stored, Freq::M1).await.unwrap();
    let mut req = request(
        &base,
        Source::Rest,
        TimeRange::new(d1, d3 + DAY_MS).unwrap(),
    );
    req.freq = Some(Freq::M1);
    let report = run(&db, &req).await;
    assert_eq!(report.failed, 1, "{report:#?}");
    let n = bars(&db, Freq::M1).await;
    assert_eq!(
        n.len(),
        2 * 1440,
        "the third day is stored after the first failed"
    );
    assert!(n.iter().all(|(t, _)| *t >= d2));
    let rec = record(&db).await;
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(
        (rec[0].0.as_str(), rec[0].1.as_str()),
        ("2024-01-01", "failed")
    );
    assert!(rec[0].2.contains("500"), "{rec:?}");
    assert_eq!(report.rest_requests as usize, log.lock().unwrap().total());
}

/// The largest file below the system temporary folder's `marketdb-fetch-*` folders,
/// polled until `stop`.
fn watch_scratch(stop: Arc<AtomicBool>, largest: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    fn walk(dir: &std::path::Path, largest: &AtomicU64) {
        let Ok(list) = std::fs::read_dir(dir) else {
            return;
        };
        for e in list.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, largest);
            } else if let Ok(m) = std::fs::metadata(&p) {
                largest.fetch_max(m.len(), Ordering::Relaxed);
            }
        }
    }
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(list) = std::fs::read_dir(std::env::temp_dir()) {
                for e in list.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with("marketdb-fetch-")
                    {
                        walk(&e.path(), &largest);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_terabyte_body_is_refused_and_no_temp_file_passes_the_plausible_size() {
    let announced = file(day(2024, 1, 1));
    let endless = file(day(2024, 1, 2));
    let limit = announced.max_bytes().unwrap();
    let handler: Handler = {
        let (a, e) = (path(&announced), path(&endless));
        Arc::new(move |p: &str, _| {
            if p == a {
                Answer::Announce {
                    length: 10_000_000_000_000,
                    body: b"PK\x03\x04".to_vec(),
                }
            } else if p == e {
                Answer::Endless
            } else {
                Answer::status(404)
            }
        })
    };
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let (stop, largest) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let watcher = watch_scratch(Arc::clone(&stop), Arc::clone(&largest));
    let req = request(
        &base,
        Source::Vision,
        TimeRange::new(day(2024, 1, 1), day(2024, 1, 3)).unwrap(),
    );
    let report = run(&db, &req).await;
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(report.failed, 2, "{report:#?}");
    assert_eq!(
        log.lock().unwrap().count(&path(&announced)),
        1,
        "refused, not retried"
    );
    assert!(
        largest.load(Ordering::Relaxed) <= limit,
        "a temporary file of {} bytes, above the {limit} allowed",
        largest.load(Ordering::Relaxed)
    );
    assert!(
        report.bytes_received <= limit + 2 * 64 * 1024,
        "{report:#?}"
    );
    let rec = record(&db).await;
    assert_eq!(rec.len(), 2);
    assert!(rec.iter().all(|(_, s, _)| s == "failed"), "{rec:?}");
    assert!(
        rec[0].2.contains("10000000000000 byte(s) announced"),
        "{rec:?}"
    );
    assert!(
        rec[1].2.contains(&format!("above the {limit} allowed")),
        "{rec:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverify_replaces_a_republished_file_and_says_what_changed() {
    let d1 = file(day(2024, 1, 1));
    let d2 = file(day(2024, 1, 2));
    // Version 1 of 1 Jan lacks 05:00; version 2 lacks 07:00 instead and corrects 10:00.
    let v1 = day_zip(&d1, (0..24).filter(|h| *h != 5), 0);
    let v2 = {
        let start = d1.period.start_ms();
        let mut csv = String::new();
        for h in (0..24).filter(|h| *h != 7) {
            let t = start + h * HOUR;
            csv.push_str(&csv_line(t, HOUR, close(t, if h == 10 { 1 } else { 0 })));
        }
        zip_of(&d1.file_name().replace(".zip", ".csv"), &csv)
    };
    let other = day_zip(&d2, 0..24, 0);
    let republished = Arc::new(AtomicBool::new(false));
    let handler: Handler = {
        let (d1, d2, v1, v2, other) = (
            d1.clone(),
            d2.clone(),
            v1.clone(),
            v2.clone(),
            other.clone(),
        );
        let republished = Arc::clone(&republished);
        Arc::new(move |p: &str, _| {
            let now = if republished.load(Ordering::SeqCst) {
                &v2
            } else {
                &v1
            };
            let (f, body) = if p.starts_with(&path(&d1)) {
                (&d1, now)
            } else if p.starts_with(&path(&d2)) {
                (&d2, &other)
            } else {
                return Answer::status(404);
            };
            if p.ends_with(".CHECKSUM") {
                checksum(f, body)
            } else {
                Answer::ok(body.clone())
            }
        })
    };
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let mut req = request(
        &base,
        Source::Vision,
        TimeRange::new(day(2024, 1, 1), day(2024, 1, 3)).unwrap(),
    );
    let report = run(&db, &req).await;
    assert_eq!(report.fetched, 2);
    let files = db.source_files(Default::default()).await.unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].sha256, sha256(&v1));
    assert_eq!(files[0].rows, 23);

    republished.store(true, Ordering::SeqCst);
    req.reverify = true;
    let before = log.lock().unwrap().clone();
    let report = run(&db, &req).await;
    let v = report.reverified.clone().unwrap();
    assert_eq!((v.checked, v.unchanged), (2, 1), "{v:#?}");
    assert_eq!(v.replaced.len(), 1, "{v:#?}");
    let r = &v.replaced[0];
    assert_eq!(r.url, d1.url(&base));
    assert_eq!(
        (r.was.as_str(), r.now.as_str()),
        (sha256(&v1).as_str(), sha256(&v2).as_str())
    );
    assert_eq!(
        (
            r.changes.added,
            r.changes.removed,
            r.changes.changed,
            r.changes.unchanged
        ),
        (1, 1, 1, 21)
    );
    // Cheap: the unchanged file was asked for its checksum only.
    let after = log.lock().unwrap().clone();
    assert_eq!(after.count(&path(&d2)), before.count(&path(&d2)));
    // The stored day is version 2 exactly.
    let want: Vec<(i64, f64)> = (0..24)
        .filter(|h| *h != 7)
        .map(|h| {
            let t = d1.period.start_ms() + h * HOUR;
            (t, close(t, if h == 10 { 1 } else { 0 }))
        })
        .chain((0..24).map(|h| {
            let t = d2.period.start_ms() + h * HOUR;
            (t, close(t, 0))
        }))
        .collect();
    assert_eq!(bars(&db, Freq::H1).await, want);
    let files = db.source_files(Default::default()).await.unwrap();
    assert_eq!(files[0].sha256, sha256(&v2));
    // Asked again: nothing changed.
    let report = run(&db, &req).await;
    let v = report.reverified.unwrap();
    assert_eq!((v.checked, v.unchanged, v.replaced.len()), (2, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_requests_and_bytes_equal_the_servers_log() {
    let days: Vec<VisionFile> = (1..=3).map(|d| file(day(2024, 1, d))).collect();
    let handler: Handler = {
        let days = days.clone();
        Arc::new(move |p: &str, n| {
            let Some(i) = days.iter().position(|f| p.starts_with(&path(f))) else {
                return Answer::status(404);
            };
            let f = &days[i];
            let body = day_zip(f, 0..24, 0);
            if p.ends_with(".CHECKSUM") {
                return if i == 2 && n == 1 {
                    Answer::status(503)
                } else {
                    checksum(f, &body)
                };
            }
            match (i, n) {
                (0, 1 | 2) => Answer::status(500),
                (1, 1) => Answer::Cut {
                    send: body.len() / 3,
                    body,
                },
                _ => Answer::ok(body),
            }
        })
    };
    let (base, log) = serve(handler).await;
    let (_dir, db) = open().await;
    let req = request(
        &base,
        Source::Vision,
        TimeRange::new(day(2024, 1, 1), day(2024, 1, 4)).unwrap(),
    );
    let report = run(&db, &req).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(report.fetched, 3);
    assert_eq!(report.retries, 4, "{report:#?}");
    assert_eq!(report.retries as usize, log.repeated());
    assert_eq!(report.requests as usize, log.total());
    assert_eq!(report.bytes_received, log.bytes);
    let sizes: u64 = days.iter().map(|f| day_zip(f, 0..24, 0).len() as u64).sum();
    assert_eq!(report.bytes, sizes, "bytes of the stored files");
    let seen: HashSet<&String> = log.requests.keys().collect();
    assert_eq!(seen.len(), 6, "three files and their checksums");
}
