//! `ingest`: loads Binance Vision files. Each file is parsed on a blocking thread, checked
//! against its `.CHECKSUM` when one is beside it, and stored in one call; a bad file is
//! reported (file:line, field, reason) and stores nothing, the other files still load, and
//! the exit code is 1 if any file failed.

use std::{path::PathBuf, process::ExitCode, str::FromStr};

use anyhow::{Context, Result};
use clap::Args;
use marketdb_ingest::{BadRows, FileKind, Overrides, Parsed, ParsedFile};
use marketdb_model::Freq;
use marketdb_store::AsyncMarketDB;
use serde_json::json;

use super::{Global, args, output, progress};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders (searched recursively for .csv and .zip)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Override the kind read from file names: klines, funding or metrics
    #[arg(long)]
    pub kind: Option<String>,
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

pub async fn run(g: &Global, a: &IngestArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        kind: a.kind.as_deref().map(FileKind::from_str).transpose()?,
        symbol: a.symbol.clone(),
        freq: a.freq,
    };
    let mode = if a.skip_bad_rows {
        BadRows::Skip
    } else {
        BadRows::Fail
    };
    let files = marketdb_ingest::discover(&a.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .csv or .zip files found in the given paths");
    }
    let db = args::open_db(g, args::Access::Create).await?;
    let pb = progress::bar(g, files.len() as u64, "ingest");
    let mut results = Vec::new();
    let mut failed = 0usize;
    for file in files {
        let outcome = ingest_one(&db, file.clone(), overrides.clone(), mode).await;
        pb.inc(1);
        match outcome {
            Ok((rows, rejected, checksum)) => {
                for r in &rejected {
                    pb.suspend(|| eprintln!("rejected: {r}"));
                }
                if !g.json {
                    pb.suspend(|| {
                        println!(
                            "loaded {}: {rows} row(s){}{}",
                            file.display(),
                            if rejected.is_empty() {
                                String::new()
                            } else {
                                format!(", {} rejected", rejected.len())
                            },
                            if checksum { ", checksum ok" } else { "" }
                        )
                    });
                }
                results.push(json!({
                    "file": file.display().to_string(), "ok": true, "rows": rows,
                    "rejected": rejected.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "checksum_verified": checksum,
                }));
            }
            Err(err) => {
                failed += 1;
                let msg = super::one_line(&err);
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
    if g.json {
        output::json(&json!({ "files": results, "failed": failed }))?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Parses and stores one file; returns rows stored, rejected rows and whether a checksum
/// was verified.
async fn ingest_one(
    db: &AsyncMarketDB,
    file: PathBuf,
    overrides: Overrides,
    mode: BadRows,
) -> Result<(usize, Vec<marketdb_ingest::RowError>, bool)> {
    let path = file.clone();
    let parsed: ParsedFile =
        tokio::task::spawn_blocking(move || marketdb_ingest::parse_file(&path, &overrides, mode))
            .await
            .context("the parser stopped unexpectedly")??;
    let rows = match parsed.data {
        Parsed::Klines { freq, rows } => db.store_data(rows, freq).await,
        Parsed::Funding(rows) => db.store_funding_rate(rows).await,
        Parsed::Metrics {
            open_interest,
            long_short_ratio,
        } => db.store_metrics(open_interest, long_short_ratio).await,
    }
    .with_context(|| format!("{}: nothing stored", file.display()))?;
    Ok((rows, parsed.rejected, parsed.checksum_verified))
}
