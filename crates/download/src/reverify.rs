//! `--reverify`: Binance re-uploads corrected archive files from time to time. For every
//! stored file of the request's series and range, Vision is asked for the file's current
//! `.CHECKSUM` (a ~100-byte request; a `HEAD` for the `ETag` when it has none) and it is
//! compared with what was recorded when the file was stored. A file that changed is
//! downloaded again and replaces its period in one transaction; the report says what
//! changed (rows added, removed, values changed). A file Vision no longer has is reported;
//! its rows are kept.

use std::sync::Arc;

use marketdb_fetch::{Fetcher, Identity, Outcome, Period, VisionFile};
use marketdb_ingest::{BadRows, FileKind};
use marketdb_model::TimeRange;
use marketdb_store::{AsyncMarketDB, ImportTable, PeriodScope, SourceFile, SourceFileFilter};

use crate::Result;
use crate::load::FileLoad;
use crate::report::{Event, Events, Republished, ReverifyReport};
use crate::request::DownloadRequest;
use crate::vision::{chain, overrides, source_file};

/// Whether the server's identity of a file differs from the recorded one, and how each
/// reads (`None` when nothing can be compared).
fn changed(stored: &SourceFile, now: &Identity) -> Option<(String, String)> {
    if let Some(sha) = &now.sha256 {
        return (sha != &stored.sha256).then(|| (stored.sha256.clone(), sha.clone()));
    }
    let pair = |etag: &Option<String>, modified: &Option<String>| {
        format!(
            "{} {}",
            etag.as_deref().unwrap_or("-"),
            modified.as_deref().unwrap_or("-")
        )
    };
    if now.etag.is_none() && now.last_modified.is_none() {
        return None;
    }
    let (was, is) = (
        pair(&stored.etag, &stored.last_modified),
        pair(&now.etag, &now.last_modified),
    );
    (was != is).then_some((was, is))
}

/// The tables a file of `kind` fills.
fn tables(req: &DownloadRequest) -> Vec<ImportTable> {
    match req.kind {
        FileKind::Klines => vec![ImportTable::Klines(req.kline_freq())],
        FileKind::Funding => vec![ImportTable::FundingRate],
        FileKind::Metrics => vec![ImportTable::OpenInterest, ImportTable::LongShortRatio],
    }
}

/// Checks the stored files of `req`'s series in its range and replaces those Vision
/// re-published.
pub(crate) async fn reverify(
    db: &AsyncMarketDB,
    req: &DownloadRequest,
    fetcher: &Arc<Fetcher>,
    events: Events<'_>,
) -> Result<ReverifyReport> {
    let mut out = ReverifyReport::default();
    for symbol in &req.symbols {
        let stored = db
            .source_files(SourceFileFilter {
                market: Some(req.market.as_str().to_owned()),
                kind: Some(req.kind.as_str().to_owned()),
                symbol: Some(symbol.clone()),
                interval: Some(req.file_freq().map_or("", |f| f.as_str()).to_owned()),
            })
            .await?;
        for s in stored {
            let Some(period) = Period::parse(&s.period) else {
                continue;
            };
            if period.end_ms() <= req.range.start || period.start_ms() >= req.range.end_exclusive {
                continue;
            }
            out.checked += 1;
            let file = VisionFile {
                market: req.market,
                kind: req.kind,
                symbol: symbol.clone(),
                freq: req.file_freq(),
                period,
            };
            let url = file.url(&fetcher.config().base_url);
            let identity = match fetcher.identity(&file).await {
                Ok(Some(id)) => id,
                Ok(None) => {
                    out.gone.push(url);
                    continue;
                }
                Err(e) if e.is_local() => return Err(e.into()),
                Err(e) => {
                    out.failed.push(e.to_string());
                    continue;
                }
            };
            let Some((was, now)) = changed(&s, &identity) else {
                out.unchanged += 1;
                continue;
            };
            tracing::info!(url, was, now, "re-published: replacing its period");
            match replace(db, req, fetcher, &file, &url).await {
                Ok(changes) => {
                    let r = Republished {
                        url,
                        period: s.period.clone(),
                        was,
                        now,
                        changes,
                    };
                    events(Event::Replaced(&r));
                    out.replaced.push(r);
                }
                Err(reason) => out.failed.push(format!("{url}: {reason}")),
            }
        }
    }
    Ok(out)
}

/// Downloads `file` again and replaces its period; an `Err` is the reason it was not.
async fn replace(
    db: &AsyncMarketDB,
    req: &DownloadRequest,
    fetcher: &Arc<Fetcher>,
    file: &VisionFile,
    url: &str,
) -> std::result::Result<marketdb_store::PeriodChanges, String> {
    let fetched = fetcher.fetch(file).await.map_err(|e| e.to_string())?;
    let done = match fetched.outcome {
        Outcome::Fetched(done) => done,
        Outcome::NotFound => return Err("404 on the download".to_owned()),
        Outcome::ChecksumMismatch { expected, actual } => {
            return Err(format!(
                "checksum mismatch twice (expected {expected}, got {actual})"
            ));
        }
    };
    let source = source_file(file, &done);
    let scope = PeriodScope {
        tables: tables(req),
        symbol: file.symbol.clone(),
        range: TimeRange::new(file.period.start_ms(), file.period.end_ms())
            .map_err(|e| e.to_string())?,
    };
    let load = FileLoad::start(done.path().to_path_buf(), &overrides(file), BadRows::Fail);
    let res = load.replace(db, url, scope, Some(source)).await;
    done.discard().await;
    res.map(|(changes, _)| changes).map_err(|e| chain(&e))
}
