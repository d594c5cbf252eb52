//! The REST half of a run: bars Vision does not publish yet, asked page by page from the
//! exchange's klines endpoint, and funding rates month by month. Each page is stored in
//! one transaction, so an interrupted run keeps whole pages and a re-run asks only for
//! what is still missing. Only closed bars are stored.
//!
//! A failed range is recorded and counted, and the next range is asked all the same. Once
//! a symbol's ranges are done, the periods wholly inside the REST window are judged
//! through the rule: complete ones lose their record (a day Vision answered 404 for and
//! REST filled is no gap), short ones become `partial`. Days at a window's edges that it
//! covers only in part are not judged.

use marketdb_fetch::{Period, RestClient, VisionFile};
use marketdb_ingest::FileKind;
use marketdb_model::TimeRange;
use marketdb_model::time::DAY_MS;
use marketdb_model::time::now_ms;
use marketdb_store::AsyncMarketDB;

use crate::Result;
use crate::plan::{Span, other_file};
use crate::record::{self, Judged};
use crate::report::{DownloadReport, Entry, Event, Events};
use crate::request::DownloadRequest;
use crate::rule::{self, GapKind};

/// Asks for and stores `spans` of `symbol` (klines), then judges the days wholly inside
/// `window`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fill_klines(
    db: &AsyncMarketDB,
    req: &DownloadRequest,
    client: &RestClient,
    symbol: &str,
    window: TimeRange,
    spans: &[Span],
    report: &mut DownloadReport,
    events: Events<'_>,
) -> Result<()> {
    let freq = req.kline_freq();
    let mut failed_days = Vec::new();
    for span in spans {
        let mut entry = Entry {
            rest: Some(symbol.to_owned()),
            first: Some(span.first),
            last: Some(span.last),
            ok: true,
            ..Entry::default()
        };
        let mut next = span.first;
        let mut rows = 0u64;
        while next <= span.last {
            let page = match client
                .klines_page(symbol, freq, next, span.last + 1, now_ms())
                .await
            {
                Ok(p) => p,
                Err(e) if e.is_local() => return Err(e.into()),
                Err(e) => {
                    report.failed += 1;
                    entry.ok = false;
                    entry.gap = Some(GapKind::Failed);
                    entry.answer = Some(e.answer());
                    entry.error = Some(e.to_string());
                    failed_days.push((span.first, span.last, e.answer()));
                    break;
                }
            };
            let Some(last) = page.last().map(|k| k.open_time) else {
                break;
            };
            rows += db.store_data(page, freq).await? as u64;
            next = last + 1;
        }
        report.rows += rows;
        entry.rows = Some(rows);
        events(Event::Done(&entry));
        report.files.push(entry);
    }
    if freq.nominal_ms() >= DAY_MS {
        return Ok(());
    }
    let now = now_ms();
    for period in rule::days_inside(window, now) {
        let file = VisionFile::klines(req.market, symbol, freq, period);
        let failure = failed_days
            .iter()
            .find(|(first, last, _)| *first < period.end_ms() && *last >= period.start_ms());
        if let Some((_, _, answer)) = failure {
            // The source failed for part of the day: judged by the next run.
            record::write(
                db,
                &file,
                GapKind::Failed,
                &format!("rest api: {answer}"),
                now,
            )
            .await?;
            report.recorded(GapKind::Failed);
            continue;
        }
        if let Judged::Recorded(kind) = record::judge(db, &file, "rest api", true, now).await? {
            report.recorded(kind);
        }
    }
    Ok(())
}

/// Asks for and stores the funding rates of `months` (`[lo, hi)` each), page by page;
/// a month wholly asked for and ended is judged.
pub(crate) async fn fill_funding(
    db: &AsyncMarketDB,
    req: &DownloadRequest,
    client: &RestClient,
    symbol: &str,
    months: &[(Period, i64, i64)],
    report: &mut DownloadReport,
    events: Events<'_>,
) -> Result<()> {
    for &(p, lo, hi) in months {
        let mut entry = Entry {
            rest: Some(symbol.to_owned()),
            period: Some(p.to_string()),
            ok: true,
            ..Entry::default()
        };
        let mut next = lo;
        let mut rows = 0u64;
        let mut failure = None;
        while next < hi {
            let page = match client.funding_page(symbol, next, hi).await {
                Ok(page) => page,
                Err(e) if e.is_local() => return Err(e.into()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let Some(last) = page.last().map(|r| r.funding_time) else {
                break;
            };
            let full = page.len() >= 1000;
            rows += db.store_funding_rate(page).await? as u64;
            next = last + 1;
            if !full {
                break;
            }
        }
        report.rows += rows;
        entry.rows = Some(rows);
        let file = other_file(req.market, FileKind::Funding, symbol, p);
        let window = TimeRange::new(lo, hi)?;
        let now = now_ms();
        if let Some(e) = failure {
            report.failed += 1;
            entry.ok = false;
            entry.gap = Some(GapKind::Failed);
            entry.answer = Some(e.answer());
            entry.error = Some(e.to_string());
            if rule::judged_inside(p, window, now) {
                record::write(
                    db,
                    &file,
                    GapKind::Failed,
                    &format!("rest api: {}", e.answer()),
                    now,
                )
                .await?;
                report.recorded(GapKind::Failed);
            }
        } else if rule::judged_inside(p, window, now)
            && let Judged::Recorded(kind) = record::judge(db, &file, "rest api", true, now).await?
        {
            report.recorded(kind);
            entry.gap = Some(kind);
        }
        events(Event::Done(&entry));
        report.files.push(entry);
    }
    Ok(())
}
