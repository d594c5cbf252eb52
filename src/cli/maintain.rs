//! `resample`, `delete` and `doctor`: commands that change or maintain the database.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use marketdb_model::Freq;
use marketdb_store::{Checkpoint, IncompletePolicy};
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
    a.range.spec()?;
    let db = args::open_db(g, args::Access::Write).await?;
    let symbols = a.symbols.resolve(g, &db, a.from).await?;
    let range = a.range.resolve(&db, a.from, &symbols).await?;
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
        outln!(
            "stored {} {} bar(s) from {} ({} incomplete, {} dropped)",
            result.stored,
            a.to,
            a.from,
            result.incomplete,
            result.dropped
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
    a.range.spec()?;
    if !a.yes {
        return Err(super::usage(
            "delete changes the database: add --yes to confirm",
        ));
    }
    let db = args::open_db(g, args::Access::Write).await?;
    let symbols = a.symbols.resolve(g, &db, a.freq).await?;
    let range = a.range.resolve(&db, a.freq, &symbols).await?;
    let n = db.delete_range(&symbols, range, a.freq).await?;
    db.close().await;
    if g.json {
        output::json(&json!({ "deleted": n }))?;
    } else {
        outln!("deleted {n} bar(s)");
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
    /// Convert a rollback-journal database (the layout the Python original creates) to
    /// WAL, so readers never wait for a writer; cryptoservice 1.9 still reads and writes
    /// it (the file then keeps -wal and -shm files beside it)
    #[arg(long)]
    pub wal: bool,
}

pub async fn doctor(g: &Global, a: &DoctorArgs) -> Result<ExitCode> {
    let path = g.db_path();
    let maintain = a.vacuum || a.checkpoint || a.wal;
    let journal_before = marketdb_store::file_journal(&path);
    let access = match maintain {
        true => args::Access::Write,
        false => args::Access::ReadOnly,
    };
    let before = FileSizes::of(&path);
    let db = args::open_db(g, access).await?;
    let mut done = Vec::new();
    if a.vacuum {
        // VACUUM rewrites the file through the WAL; vacuum() folds it back.
        let outcome = db.vacuum().await?;
        done.push(("vacuum", outcome));
    } else if a.checkpoint {
        done.push(("checkpoint", db.checkpoint().await?));
    }
    let integrity = db.integrity_check().await?;
    let version = db.schema_version().await?;
    let backend = db.pool_kind().to_string();
    db.close().await;
    let after = FileSizes::of(&path);
    let journal = marketdb_store::file_journal(&path);
    let journal_text = |j: Option<marketdb_store::FileJournal>| j.map_or("unknown", |j| j.as_str());
    if a.wal {
        // A writable open puts the file in WAL mode; say what changed.
        done_wal(journal_before, journal);
    }
    let incomplete: Vec<&str> = done
        .iter()
        .filter(|(_, c)| !c.is_complete())
        .map(|(what, _)| *what)
        .collect();
    let actions: Vec<serde_json::Value> = done
        .iter()
        .map(|(what, c)| json!({ "action": what, "wal": checkpoint_text(*c) }))
        .collect();
    let report = json!({
        "database": path.display().to_string(),
        "integrity_check": integrity,
        "file_bytes": after.file,
        "wal_bytes": after.wal,
        "schema_version": version,
        "pool": backend,
        "journal": journal_text(journal),
        "read_only": !maintain,
        "actions": actions,
        "before": {
            "file_bytes": before.file,
            "wal_bytes": before.wal,
            "journal": journal_text(journal_before),
        },
    });
    if g.json {
        output::json(&report)?;
    } else {
        outln!("database        {}", output::path(&path));
        outln!("integrity_check {integrity}");
        outln!("file size       {} bytes", after.file);
        outln!("wal size        {} bytes", after.wal);
        outln!("schema version  {version}");
        outln!("journal         {}", journal_text(journal));
        if a.wal {
            outln!(
                "wal             {}",
                if journal_before == journal {
                    format!("already {}", journal_text(journal))
                } else {
                    format!(
                        "converted: {} -> {}",
                        journal_text(journal_before),
                        journal_text(journal)
                    )
                }
            );
        }
        outln!("pool backend    {backend}");
        for (what, c) in &done {
            outln!(
                "{what:<15} done: file {} -> {} bytes, wal {} -> {} bytes ({})",
                before.file,
                after.file,
                before.wal,
                after.wal,
                checkpoint_text(*c)
            );
        }
    }
    if !incomplete.is_empty() {
        eprintln!(
            "warning: another connection kept the wal from being truncated after {}; run \
             'marketdb doctor --checkpoint' again when it is idle",
            incomplete.join(" and ")
        );
    }
    let converted = !a.wal || journal == Some(marketdb_store::FileJournal::Wal);
    if !converted {
        eprintln!(
            "error: {} still uses a {} after --wal",
            output::path(&path),
            journal_text(journal)
        );
    }
    Ok(if integrity == "ok" && incomplete.is_empty() && converted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Logs the journal conversion `doctor --wal` made.
fn done_wal(
    before: Option<marketdb_store::FileJournal>,
    after: Option<marketdb_store::FileJournal>,
) {
    if before != after {
        tracing::info!(?before, ?after, "converted the database to wal");
    }
}

fn checkpoint_text(c: Checkpoint) -> String {
    match c {
        Checkpoint::Truncated => "wal folded and truncated".to_owned(),
        Checkpoint::Busy {
            frames,
            checkpointed,
        } => format!("busy: {checkpointed} of {frames} wal frame(s) folded, wal kept"),
        Checkpoint::NotWal => "not in wal mode".to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// Sizes of a database file and its WAL (0 when absent).
struct FileSizes {
    file: u64,
    wal: u64,
}

impl FileSizes {
    fn of(db: &std::path::Path) -> FileSizes {
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        FileSizes {
            file: size(db),
            wal: size(std::path::Path::new(&wal)),
        }
    }
}
