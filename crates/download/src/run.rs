//! A whole run: re-verification (when asked), the Vision files in up to two rounds (a
//! monthly file Vision lacks is asked again day by day), then the REST API for what is
//! still missing, and the totals from the clients' own counters.

use std::sync::Arc;

use marketdb_fetch::{FetchConfig, Fetcher, RestClient, RestConfig};
use marketdb_ingest::FileKind;
use marketdb_model::TimeRange;
use marketdb_model::time::now_ms;
use marketdb_store::AsyncMarketDB;

use crate::plan::{self, funding_months, rest_page, rest_spans, rest_window, vision_files};
use crate::report::{DownloadReport, Events};
use crate::request::{DownloadRequest, Source};
use crate::{Error, Result, rest, reverify, vision};

/// The REST client of a request, when it uses the REST API.
fn rest_client(req: &DownloadRequest) -> Result<Option<RestClient>> {
    if !req.uses_rest() {
        return Ok(None);
    }
    let mut config = RestConfig::for_market(req.market);
    if let Some(url) = &req.rest_url {
        config.base_url.clone_from(url);
    }
    config.retries = req.retries;
    config.backoff = req.backoff;
    config.read_timeout = req.read_timeout.max(std::time::Duration::from_secs(1));
    config.timeout = req.timeout.max(std::time::Duration::from_secs(1));
    Ok(Some(RestClient::new(req.market, config)?))
}

/// The Vision fetcher of a request; its keep folder is checked by `gate` first.
async fn fetcher(req: &DownloadRequest, gate: marketdb_output::OutputGate) -> Result<Fetcher> {
    if let Some(keep) = &req.keep {
        gate.check_folder(keep, "--keep")?;
    }
    let config = FetchConfig {
        base_url: req.base_url.clone(),
        retries: req.retries,
        backoff: req.backoff,
        read_timeout: req.read_timeout.max(std::time::Duration::from_secs(1)),
        timeout: req.timeout.max(std::time::Duration::from_secs(1)),
        keep_dir: req.keep.clone(),
        output: gate,
        ..FetchConfig::default()
    };
    // Creating the scratch folder (and sweeping dead ones) touches the disk.
    tokio::task::spawn_blocking(move || Fetcher::new(config).map_err(Error::from))
        .await
        .map_err(|source| Error::Task {
            task: "fetcher",
            source,
        })?
}

/// Downloads what `req` asks for into `db`, telling `events` as it goes. A server's
/// answer for a file never ends the run: it is in the report and the source record. The
/// run ends early only for this machine's errors (the database, the disk) and bad
/// requests.
pub async fn download(
    db: &AsyncMarketDB,
    req: &DownloadRequest,
    events: Events<'_>,
) -> Result<DownloadReport> {
    req.check()?;
    let gate = marketdb_output::OutputGate::protecting(db.path());
    let client = rest_client(req)?;
    let fetcher = Arc::new(fetcher(req, gate).await?);
    let now = now_ms();
    let mut report = DownloadReport {
        skipped: plan::skipped(db, req, now).await?,
        not_listed_days: req.not_listed_days(),
        ..DownloadReport::default()
    };
    if req.reverify {
        report.reverified = Some(reverify::reverify(db, req, &fetcher, events).await?);
    }
    if req.source != Source::Rest {
        let mut round = Vec::new();
        for s in &req.symbols {
            let Some(req) = req.for_symbol(s) else {
                continue;
            };
            round.extend(vision_files(Some(db), &req, s, req.range, now).await?);
        }
        // A monthly file Vision lacks is asked again day by day, in a second round.
        for _ in 0..2 {
            if round.is_empty() {
                break;
            }
            let months =
                vision::fetch_and_store(db, &fetcher, req.jobs, round, &mut report, events).await?;
            round = Vec::new();
            for (symbol, month) in months {
                let Some(req) = req.for_symbol(&symbol) else {
                    continue;
                };
                let (lo, hi) = (
                    month.start_ms().max(req.range.start),
                    month.end_ms().min(req.range.end_exclusive),
                );
                if lo >= hi {
                    continue;
                }
                let range = TimeRange::new(lo, hi)?;
                round.extend(vision_files(Some(db), &req, &symbol, range, now).await?);
            }
        }
    }
    // What Vision does not have yet comes from the REST API; planned after the Vision
    // files are stored, so it asks only for what they left missing.
    if let Some(client) = &client {
        for s in &req.symbols {
            let Some(req) = &req.for_symbol(s) else {
                continue;
            };
            if req.kind == FileKind::Funding {
                let months = funding_months(Some(db), req, s, now).await?;
                rest::fill_funding(db, req, client, s, &months, &mut report, events).await?;
            } else if let Some(window) = rest_window(req, now) {
                let spans = rest_spans(Some(db), req, s, window, rest_page(req), now).await?;
                rest::fill_klines(db, req, client, s, window, &spans, &mut report, events).await?;
            }
        }
        let stats = client.stats();
        report.rest_requests = stats.requests;
        report.retries += stats.retries;
    }
    let stats = fetcher.stats();
    report.requests = stats.requests;
    report.retries += stats.retries;
    report.bytes_received = stats.bytes_received;
    Ok(report)
}
