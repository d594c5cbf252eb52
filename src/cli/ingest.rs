//! `ingest`: loads Binance Vision files. Each file is checked against its `.CHECKSUM` when
//! one is beside it, parsed on a blocking thread and streamed, in bounded chunks through a
//! short channel, into one transaction on the writer. The next few files are parsed while
//! the writer stores the current one, so parsing and storing overlap across files as well
//! as within one; the writer takes files in order, so the report keeps the file order, and
//! memory is bounded by the lookahead times the channel depth, not by the input. A bad file is reported (file:line, field, reason) and
//! stores nothing, the other files still load, and the exit code is 1 if any file failed
//! (with `--skip-bad-rows`, also a file whose every line was rejected).

use std::{collections::VecDeque, path::PathBuf, process::ExitCode, sync::mpsc};

use anyhow::{Context, Result};
use clap::Args;
use marketdb_ingest::{BadRows, FileKind, FileReport, Limits, Overrides, Parsed};
use marketdb_model::Freq;
use marketdb_store::AsyncMarketDB;
use serde_json::json;

/// Chunks queued between the parser and the writer (each up to `Limits::chunk_rows`).
const PIPELINE_DEPTH: usize = 2;

/// What the writer sees when the parser of a file failed: the file's own error is
/// reported instead.
#[derive(Debug)]
struct ParserFailed;

impl std::fmt::Display for ParserFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the parser of the file failed")
    }
}

impl std::error::Error for ParserFailed {}

use super::{Global, args, output, progress};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders (searched recursively for .csv and .zip)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Override the kind read from file names
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Override the symbol read from file names
    #[arg(long)]
    pub symbol: Option<String>,
    /// Override the kline interval read from file names
    #[arg(long, value_parser = args::freq)]
    pub freq: Option<Freq>,
    /// Load the good rows of a file with bad rows and report the rejected ones
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// `--kind` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Klines,
    Funding,
    Metrics,
}

impl From<Kind> for FileKind {
    fn from(k: Kind) -> FileKind {
        match k {
            Kind::Klines => FileKind::Klines,
            Kind::Funding => FileKind::Funding,
            Kind::Metrics => FileKind::Metrics,
        }
    }
}

pub async fn run(g: &Global, a: &IngestArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        kind: a.kind.map(FileKind::from),
        symbol: a.symbol.clone(),
        freq: a.freq,
    };
    let mode = if a.skip_bad_rows {
        BadRows::Skip
    } else {
        BadRows::Fail
    };
    // Walking folders blocks: off the runtime's workers.
    let paths = a.paths.clone();
    let files = tokio::task::spawn_blocking(move || marketdb_ingest::discover(&paths))
        .await
        .context("file discovery stopped unexpectedly")??;
    if files.is_empty() {
        anyhow::bail!("no .csv or .zip files found in the given paths");
    }
    let db = args::open_db(g, args::Access::Create).await?;
    let pb = progress::bar(g, files.len() as u64, "ingest");
    let mut results = Vec::new();
    let (mut failed, mut rows_total, mut rejected_total) = (0usize, 0u64, 0u64);
    // The next files are parsed while the writer stores the current one; reports keep
    // the file order because the writer takes the files in order.
    let lookahead = lookahead();
    let mut files = files.into_iter();
    let mut pending: VecDeque<Pending> = files
        .by_ref()
        .take(lookahead)
        .map(|f| Pending::start(f, &overrides, mode))
        .collect();
    while let Some(next) = pending.pop_front() {
        if let Some(f) = files.next() {
            pending.push_back(Pending::start(f, &overrides, mode));
        }
        let file = next.file.clone();
        let outcome = next.store(&db).await;
        pb.inc(1);
        let shown = output::path(&file);
        match outcome {
            Ok((rows, report)) if report.rejected_count > 0 && rows == 0 => {
                failed += 1;
                rejected_total += report.rejected_count;
                let msg = format!(
                    "{shown}: all {} line(s) were rejected; nothing stored (first: {})",
                    report.rejected_count,
                    report
                        .rejected
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                pb.suspend(|| eprintln!("error: {msg}"));
                results.push(json!({
                    "file": file.display().to_string(), "ok": false, "error": msg,
                    "rows": 0, "rejected_count": report.rejected_count,
                }));
            }
            Ok((rows, report)) => {
                rows_total += rows as u64;
                rejected_total += report.rejected_count;
                // Refused lines are errors of their own: printed even with -q.
                for r in &report.rejected {
                    pb.suspend(|| eprintln!("rejected: {}", output::escaped(&r.to_string())));
                }
                let more = report.rejected_count - report.rejected.len() as u64;
                if more > 0 {
                    pb.suspend(|| eprintln!("rejected: ... and {more} more line(s)"));
                }
                if !g.json && !g.quiet {
                    pb.suspend(|| {
                        outln!(
                            "loaded {shown}: {rows} row(s){}{}",
                            if report.rejected_count == 0 {
                                String::new()
                            } else {
                                format!(", {} rejected", report.rejected_count)
                            },
                            if report.checksum_verified {
                                ", checksum ok"
                            } else {
                                ""
                            }
                        )
                    });
                }
                results.push(json!({
                    "file": file.display().to_string(), "ok": true, "rows": rows,
                    "rejected_count": report.rejected_count,
                    "rejected": report.rejected.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "checksum_verified": report.checksum_verified,
                }));
            }
            Err(err) => {
                failed += 1;
                let msg = output::escaped(&super::one_line(&err));
                pb.suspend(|| eprintln!("error: {msg}"));
                results.push(json!({
                    "file": file.display().to_string(), "ok": false, "error": msg,
                }));
            }
        }
    }
    pb.finish_and_clear();
    args::checkpoint_or_warn(&db).await;
    db.close().await;
    let files_total = results.len();
    if g.json {
        output::json(&json!({
            "files": results, "failed": failed, "rows": rows_total,
            "rejected_count": rejected_total,
        }))?;
    } else {
        outln!(
            "ingested {} of {files_total} file(s): {rows_total} row(s) stored{}{}",
            files_total - failed,
            if rejected_total > 0 {
                format!(", {rejected_total} line(s) rejected")
            } else {
                String::new()
            },
            if failed > 0 {
                format!(", {failed} file(s) failed")
            } else {
                String::new()
            }
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many files are parsed ahead of the writer: enough to keep the other cores busy
/// while the single writer stores, few enough that memory stays a small multiple of one
/// file's chunks.
fn lookahead() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 4)
}

/// A file whose parser runs on a blocking thread, its records waiting in a bounded channel
/// until the writer takes them.
pub(super) struct Pending {
    file: PathBuf,
    rx: mpsc::Receiver<Result<Parsed, ParserFailed>>,
    parser: tokio::task::JoinHandle<marketdb_ingest::Result<FileReport>>,
}

impl Pending {
    /// Starts parsing `file`; the parser blocks once [`PIPELINE_DEPTH`] chunks wait.
    pub(super) fn start(file: PathBuf, overrides: &Overrides, mode: BadRows) -> Pending {
        let (tx, rx) = mpsc::sync_channel::<Result<Parsed, ParserFailed>>(PIPELINE_DEPTH);
        let path = file.clone();
        let overrides = overrides.clone();
        let parser = tokio::task::spawn_blocking(move || {
            let res = marketdb_ingest::parse_file_streaming(
                &path,
                &overrides,
                mode,
                &Limits::default(),
                &mut |chunk| {
                    tx.send(Ok(chunk))
                        .map_err(|_| marketdb_ingest::Error::Stopped { file: path.clone() })
                },
                &mut |_| {},
            );
            if res.is_err() {
                // Makes the writer roll back whatever it took from this file.
                let _ = tx.send(Err(ParserFailed));
            }
            res
        });
        Pending { file, rx, parser }
    }

    /// Streams the file's records into one transaction; returns rows stored and what the
    /// parser read.
    pub(super) async fn store(self, db: &AsyncMarketDB) -> Result<(usize, FileReport)> {
        let Pending { file, rx, parser } = self;
        let stored = db.store_records(rx).await;
        let parsed = parser.await.context("the parser stopped unexpectedly")?;
        match (parsed, stored) {
            // The store's own error explains why the parser was stopped.
            (Err(marketdb_ingest::Error::Stopped { .. }), Err(e)) | (Ok(_), Err(e)) => {
                Err(anyhow::Error::new(e).context(format!("{}: nothing stored", file.display())))
            }
            (Err(e), _) => {
                Err(anyhow::Error::new(e).context(format!("{}: nothing stored", file.display())))
            }
            (Ok(report), Ok(rows)) => Ok((rows, report)),
        }
    }
}
