//! The Vision half of a run: up to `jobs` files download at once, each to a private
//! temporary file verified against its `.CHECKSUM`; the writer stores each file in one
//! transaction as it arrives (with the record of where it came from) and deletes it. Each
//! answer goes into the source record through the rule: a 404 is `not_published` or
//! `not_yet_published` by the publication lag, a transient failure `failed`, a file short
//! of rows `partial`, a complete one clears its record.

use std::sync::Arc;

use marketdb_fetch::{Fetch, Fetcher, Outcome, Period, VisionFile};
use marketdb_ingest::{BadRows, FileKind, Overrides};
use marketdb_model::time::now_ms;
use marketdb_store::{AsyncMarketDB, SourceFile};

use crate::load::FileLoad;
use crate::record::{self, Judged};
use crate::report::{DownloadReport, Entry, Event, Events};
use crate::rule::{self, GapKind};
use crate::{Error, Result};

/// Files parsed ahead of the writer (each holds up to a few chunks of rows in memory,
/// whatever `jobs` is).
const PARSE_AHEAD: usize = 2;

/// One download's result, with its parser already started when it was fetched (the
/// writer stores one file while the next ones are parsed) and the parse slot it holds,
/// and the download slot it holds (released once the file is stored, so at most `jobs`
/// files wait on disk).
type Done = (
    VisionFile,
    marketdb_fetch::Result<Fetch>,
    Option<(FileLoad, tokio::sync::OwnedSemaphorePermit)>,
    tokio::sync::OwnedSemaphorePermit,
);

/// The record of a stored file.
pub(crate) fn source_file(file: &VisionFile, done: &marketdb_fetch::Downloaded) -> SourceFile {
    SourceFile {
        market: file.market.as_str().to_owned(),
        kind: file.kind.as_str().to_owned(),
        symbol: file.symbol.clone(),
        interval: file.interval_label().to_owned(),
        period: file.period.to_string(),
        url: done.url().to_owned(),
        etag: done.etag().map(str::to_owned),
        last_modified: done.last_modified().map(str::to_owned),
        sha256: done.sha256().to_owned(),
        bytes: done.bytes(),
        rows: 0,
        fetched_at: now_ms(),
    }
}

/// How a downloaded file is parsed: its kind, symbol and interval from the plan, not
/// from its name alone.
pub(crate) fn overrides(file: &VisionFile) -> Overrides {
    Overrides {
        kind: Some(file.kind),
        symbol: Some(file.symbol.clone()),
        freq: file.freq,
    }
}

/// Downloads `files` (up to `jobs` at once) and stores each as it arrives. Returns the
/// monthly kline files Vision answered 404 for, by symbol (their days are asked next).
pub(crate) async fn fetch_and_store(
    db: &AsyncMarketDB,
    fetcher: &Arc<Fetcher>,
    jobs: u32,
    files: Vec<VisionFile>,
    report: &mut DownloadReport,
    events: Events<'_>,
) -> Result<Vec<(String, Period)>> {
    events(Event::Planned { files: files.len() });
    let listed_before = report.files.len();
    let slots = Arc::new(tokio::sync::Semaphore::new(jobs.max(1) as usize));
    let parsers = Arc::new(tokio::sync::Semaphore::new(PARSE_AHEAD));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let total = files.len();
    let feeder = {
        let (fetcher, slots, parsers) = (
            Arc::clone(fetcher),
            Arc::clone(&slots),
            Arc::clone(&parsers),
        );
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for file in files {
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let (fetcher, tx, parsers) =
                    (Arc::clone(&fetcher), tx.clone(), Arc::clone(&parsers));
                tasks.spawn(async move {
                    let res = fetcher.fetch(&file).await;
                    let load = match &res {
                        Ok(Fetch {
                            outcome: Outcome::Fetched(done),
                            ..
                        }) => match parsers.acquire_owned().await {
                            // A file sent holds its parse slot until the writer stored
                            // it, so the writer always has every parsed file it waits for.
                            Ok(parse) => Some((
                                FileLoad::start(
                                    done.path().to_path_buf(),
                                    &overrides(&file),
                                    BadRows::Fail,
                                ),
                                parse,
                            )),
                            Err(_) => None,
                        },
                        _ => None,
                    };
                    let _ = tx.send((file, res, load, permit));
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut months_by_day = Vec::new();
    for _ in 0..total {
        let Some((file, res, load, permit)) = rx.recv().await else {
            break;
        };
        let url = file.url(&fetcher.config().base_url);
        let mut entry = Entry {
            url: Some(url.clone()),
            ..Entry::default()
        };
        match res.map(|f| f.outcome) {
            Err(e) if e.is_local() => return Err(e.into()),
            Err(e) => {
                failed(db, &file, &e.answer(), &e.to_string(), &mut entry, report).await?;
            }
            Ok(Outcome::NotFound) => {
                let kind = rule::after_not_found(file.period, now_ms());
                record::write(db, &file, kind, "404", now_ms()).await?;
                report.recorded(kind);
                entry.ok = true;
                entry.gap = Some(kind);
                entry.answer = Some("404".to_owned());
                if let (FileKind::Klines, Period::Month(..)) = (file.kind, file.period) {
                    months_by_day.push((file.symbol.clone(), file.period));
                }
            }
            Ok(Outcome::ChecksumMismatch { expected, actual }) => {
                let answer = format!("checksum mismatch twice (expected {expected}, got {actual})");
                let error = format!("{url}: {answer}");
                failed(db, &file, &answer, &error, &mut entry, report).await?;
            }
            Ok(Outcome::Fetched(done)) => {
                let source = source_file(&file, &done);
                let bytes = done.bytes();
                let (load, parse) = match load {
                    Some((load, parse)) => (load, Some(parse)),
                    None => (
                        FileLoad::start(
                            done.path().to_path_buf(),
                            &overrides(&file),
                            BadRows::Fail,
                        ),
                        None,
                    ),
                };
                let stored = load.store(db, &url, Some(source)).await;
                drop(parse);
                done.discard().await;
                match stored {
                    Ok((rows, _)) => {
                        report.fetched += 1;
                        report.rows += rows as u64;
                        report.bytes += bytes;
                        events(Event::Bytes(report.bytes));
                        entry.ok = true;
                        entry.rows = Some(rows as u64);
                        if let Judged::Recorded(kind) =
                            record::judge(db, &file, "vision", false, now_ms()).await?
                        {
                            report.recorded(kind);
                            entry.gap = Some(kind);
                        }
                    }
                    Err(e) => {
                        let answer = format!("unreadable: {}", chain(&e));
                        failed(db, &file, &answer, &chain(&e), &mut entry, report).await?;
                    }
                }
            }
        }
        drop(permit);
        events(Event::Done(&entry));
        report.files.push(entry);
    }
    feeder.await.map_err(|source| Error::Task {
        task: "download",
        source,
    })?;
    // Files finish in any order; the report lists them in URL order (symbol, then date),
    // the same for every run.
    report.files[listed_before..].sort_by(|a, b| a.url.cmp(&b.url));
    Ok(months_by_day)
}

/// Records a failed answer for `file` and counts it.
async fn failed(
    db: &AsyncMarketDB,
    file: &VisionFile,
    answer: &str,
    error: &str,
    entry: &mut Entry,
    report: &mut DownloadReport,
) -> Result<()> {
    record::write(db, file, GapKind::Failed, answer, now_ms()).await?;
    report.recorded(GapKind::Failed);
    report.failed += 1;
    entry.ok = false;
    entry.gap = Some(GapKind::Failed);
    entry.answer = Some(answer.to_owned());
    entry.error = Some(error.to_owned());
    Ok(())
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
