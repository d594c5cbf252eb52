//! `resample`, `delete` and `doctor`: commands that change or maintain the database.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use marketdb_model::Freq;
use marketdb_store::IncompletePolicy;
use serde_json::json;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Args)]
pub struct ResampleArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Source interval
    #[arg(long, value_parser = args::freq)]
    pub from: Freq,
    /// Target interval (a whole multiple of the source)
    #[arg(long, value_parser = args::freq)]
    pub to: Freq,
    /// Drop buckets with missing source bars instead of keeping them
    #[arg(long)]
    pub drop_incomplete: bool,
}

pub async fn resample(g: &Global, a: &ResampleArgs) -> Result<ExitCode> {
    if !a.from.divides(a.to) {
        bail!(
            "cannot resample {} into {}: the target must be a coarser whole multiple of the source",
            a.from,
            a.to
        );
    }
    let range = a.range.range()?;
    let db = args::open_db(g, false).await?;
    let symbols = a.symbols.resolve(&db, a.from).await?;
    let policy = if a.drop_incomplete {
        IncompletePolicy::Drop
    } else {
        IncompletePolicy::Keep
    };
    let pb = progress::bar(g, 0, "resample");
    let result = db
        .resample_and_store(range, a.from, a.to, &symbols, policy)
        .await?;
    pb.finish_and_clear();
    db.close().await;
    if g.json {
        output::json(&json!({
            "from": a.from, "to": a.to, "buckets": result.buckets,
            "incomplete": result.incomplete, "dropped": result.dropped, "stored": result.stored,
        }))?;
    } else {
        println!(
            "stored {} {} bar(s) from {} ({} incomplete, {} dropped)",
            result.stored, a.to, a.from, result.incomplete, result.dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Interval
    #[arg(long, value_parser = args::freq)]
    pub freq: Freq,
    /// Really delete
    #[arg(long)]
    pub yes: bool,
}

pub async fn delete(g: &Global, a: &DeleteArgs) -> Result<ExitCode> {
    let range = a.range.range()?;
    if !a.yes {
        bail!("delete changes the database: add --yes to confirm");
    }
    let db = args::open_db(g, false).await?;
    let symbols = a.symbols.resolve(&db, a.freq).await?;
    let n = db.delete_range(&symbols, range, a.freq).await?;
    db.close().await;
    if g.json {
        output::json(&json!({ "deleted": n }))?;
    } else {
        println!("deleted {n} bar(s)");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Rebuild the file to reclaim space
    #[arg(long)]
    pub vacuum: bool,
    /// Fold the WAL into the database file
    #[arg(long)]
    pub checkpoint: bool,
}

pub async fn doctor(g: &Global, a: &DoctorArgs) -> Result<ExitCode> {
    let db = args::open_db(g, false).await?;
    if a.checkpoint {
        db.checkpoint().await?;
    }
    if a.vacuum {
        db.vacuum().await?;
    }
    let integrity = db.integrity_check().await?;
    let version = db.schema_version().await?;
    let backend = db.pool_kind().to_string();
    db.close().await;
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = {
        let mut p = g.db.clone().into_os_string();
        p.push("-wal");
        size(p.into())
    };
    let report = json!({
        "database": g.db.display().to_string(),
        "integrity_check": integrity,
        "file_bytes": size(g.db.clone()),
        "wal_bytes": wal,
        "schema_version": version,
        "pool": backend,
    });
    if g.json {
        output::json(&report)?;
    } else {
        println!("database        {}", g.db.display());
        println!("integrity_check {integrity}");
        println!("file size       {} bytes", size(g.db.clone()));
        println!("wal size        {wal} bytes");
        println!("schema version  {version}");
        println!("pool backend    {backend}");
    }
    Ok(if integrity == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
