//! `ingest`: loads Binance Vision files. Each file is checked against its `.CHECKSUM` when
//! one is beside it, parsed on a blocking thread and streamed, in bounded chunks through a
//! short channel, into one transaction on the writer. The next few files are parsed while
//! the writer stores the current one, so parsing and storing overlap across files as well
//! as within one; the writer takes files in order, so the report keeps the file order, and
//! memory is bounded by the lookahead times the channel depth, not by the input. A bad file is reported (file:line, field, reason) and
//! stores nothing, the other files still load, and the exit code is 1 if any file failed
//! (with `--skip-bad-rows`, also a file whose every line was rejected).

use std::{collections::VecDeque, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Args;
use marketdb_download::FileLoad;
use marketdb_ingest::{BadRows, FileKind, Overrides};
use marketdb_model::Freq;
use serde_json::json;

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
    let mut pending: VecDeque<FileLoad> = files
        .by_ref()
        .take(lookahead)
        .map(|f| FileLoad::start(f, &overrides, mode))
        .collect();
    while let Some(next) = pending.pop_front() {
        if let Some(f) = files.next() {
            pending.push_back(FileLoad::start(f, &overrides, mode));
        }
        let file: PathBuf = next.path().to_path_buf();
        let outcome = next
            .store(&db, &file.display().to_string(), None)
            .await
            .map_err(anyhow::Error::new);
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
