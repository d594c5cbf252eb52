//! Injected faults of the torture harness. A file-size limit (`ulimit -f 8` under `sh`,
//! SIGXFSZ ignored, so a write past 8 KiB fails with EFBIG) on an export, every round; and,
//! when running as root where `mount -t tmpfs` works, a tiny tmpfs that fills up under an
//! export (ENOSPC) and a small one that fills up under an ingest (SQLITE_FULL). A failed
//! export must exit 1 naming the cause and leave no temporary file and nothing under a
//! final name; a failed ingest must exit 1 naming the cause, keep the database intact and
//! keep every file it reported as loaded. Each mount is undone when its guard drops, also
//! on failure. It injects no fault into the database outside `target/torture/`.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};

use anyhow::{Context, Result, bail};

use super::{
    BARS, Ctx, Format, Rng, SYMBOLS, brief, json::Json, judge_integrity, partial_symbols,
    report::Tally, s, symbol, text, verify,
};

/// A mounted tmpfs, unmounted on drop.
#[derive(Debug)]
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `kib` KiB at `dir` (created); `None` where this is not allowed.
    fn tmpfs(dir: &Path, kib: u64) -> Option<Mount> {
        fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Unmounts whatever an earlier, aborted run left mounted under `work`.
pub fn unmount_leftovers(work: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = s(work);
    for line in mounts.lines() {
        if let Some(point) = line.split_whitespace().nth(1)
            && point.starts_with(&prefix)
        {
            let _ = Command::new("umount").arg(point).status();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

/// The faults of one round.
pub fn run(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng, r: u64) -> Result<()> {
    file_limit_export(ctx, tally, Format::ALL[(r % 3) as usize])?;
    if !is_root() {
        tally.note(TMPFS_EXPORT, "skipped: not root".to_owned());
        return Ok(());
    }
    tmpfs_export(ctx, tally, Format::ALL[(r % 2) as usize])?;
    tmpfs_ingest(ctx, tally, rng)
}

/// The export must fail with `cause`, exit 1, and leave nothing at `target` or in `dir`.
fn failed_cleanly(
    o: &std::process::Output,
    cause: &str,
    dir: &Path,
    target: &Path,
    tally: &mut Tally,
) -> Vec<String> {
    let mut problems = Vec::new();
    let err = text(&o.stderr);
    // It failed writing the output (not opening the database) for the expected reason.
    if o.status.code() != Some(1) || !err.contains(cause) || !err.contains("cannot export to") {
        problems.push(format!(
            "expected exit 1 with \"cannot export to ...: {cause}\", got {}",
            brief(o)
        ));
    }
    if err.contains("panicked") {
        problems.push(format!("a panic: {err}"));
    }
    let temps = verify::temp_files(dir);
    tally.temps_left += temps.len() as u64;
    problems.extend(temps.iter().map(|p| format!("left: {}", p.display())));
    let finals: Vec<PathBuf> = if target.is_dir() {
        verify::files_under(target)
    } else {
        target
            .exists()
            .then(|| target.to_path_buf())
            .into_iter()
            .collect()
    };
    tally.partial_files += finals.len() as u64;
    problems.extend(
        finals
            .iter()
            .map(|p| format!("under a final name: {}", p.display())),
    );
    problems
}

const LIMIT_EXPORT: &str = "fault: file-size limit export fails cleanly";
const TMPFS_EXPORT: &str = "fault: full tmpfs export fails cleanly";
const TMPFS_INGEST: &str = "fault: full tmpfs ingest fails cleanly, keeps whole files";

/// A reader that keeps the database open: `export csv --out -` into a pipe nobody reads
/// blocks once the pipe is full, its connection open. While it lives, the WAL index
/// (`-shm`, 32 KiB) exists, so a process under a file-size limit can open the database
/// read-only and fails where it should, on its own output. Killed on drop.
#[derive(Debug)]
struct Holder {
    child: Child,
    /// Kept open: a closed pipe would end the reader.
    _out: ChildStdout,
}

impl Holder {
    fn start(ctx: &Ctx) -> Result<Holder> {
        let args = ctx.export_args(Format::Csv, Path::new("-"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = ctx
            .command(&ctx.db, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot spawn marketdb")?;
        // Its first byte means the database is open (and it stays open: the pipe fills).
        let mut first = [0u8; 1];
        let mut out = child.stdout.take();
        let read = out.as_mut().map(|o| o.read(&mut first));
        match (out, read) {
            (Some(out), Some(Ok(1))) => Ok(Holder { child, _out: out }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the reader holding {} open did not start", ctx.db.display())
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `marketdb export` under `ulimit -f 8`: every output file is larger.
fn file_limit_export(ctx: &Ctx, tally: &mut Tally, f: Format) -> Result<()> {
    let dir = ctx.round.join("limit");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let target = f.target(&dir);
    let args = ctx.export_args(f, &target);
    let holder = Holder::start(ctx)?;
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 8; trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(&ctx.bin)
        .args(["--db", &s(&ctx.db), "-q"])
        .args(&args)
        .current_dir(&ctx.work)
        .env_remove("MARKETDB_DB")
        .env_remove("RUST_LOG")
        .output()
        .context("cannot run sh")?;
    drop(holder);
    tally.faults += 1;
    let problems = failed_cleanly(&o, "File too large", &dir, &target, tally);
    tally.check(LIMIT_EXPORT, problems);
    Ok(())
}

/// An export into a 96 KiB tmpfs: the first file does not fit.
fn tmpfs_export(ctx: &Ctx, tally: &mut Tally, f: Format) -> Result<()> {
    let dir = ctx.round.join("small");
    let Some(mount) = Mount::tmpfs(&dir, 96) else {
        tally.note(TMPFS_EXPORT, "skipped: cannot mount a tmpfs".to_owned());
        return Ok(());
    };
    let target = f.target(&dir);
    let args = ctx.export_args(f, &target);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ctx.run(&ctx.db, &args)?;
    tally.faults += 1;
    let problems = failed_cleanly(&o, "No space left on device", &dir, &target, tally);
    drop(mount);
    tally.check(TMPFS_EXPORT, problems);
    Ok(())
}

/// An ingest into a database on a small tmpfs that fills up part way through the files.
fn tmpfs_ingest(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng) -> Result<()> {
    let dir = ctx.round.join("smalldb");
    let kib = rng.range(KIB_MIN, KIB_MAX);
    let Some(mount) = Mount::tmpfs(&dir, kib) else {
        tally.note(TMPFS_INGEST, "skipped: cannot mount a tmpfs".to_owned());
        return Ok(());
    };
    let db = dir.join("market.db");
    let o = ctx.run(&db, &["--json", "ingest", &s(&ctx.vision)])?;
    tally.faults += 1;
    let mut problems = Vec::new();
    let err = text(&o.stderr);
    let full = ["database or disk is full", "No space left on device"];
    if o.status.code() != Some(1) || !full.iter().any(|c| err.contains(c)) {
        problems.push(format!(
            "expected exit 1 with a full-disk error ({kib} KiB), got {}",
            brief(&o)
        ));
    }
    if err.contains("panicked") {
        problems.push(format!("a panic: {err}"));
    }
    // The files it reported as stored.
    let loaded: Vec<usize> = match Json::parse(&text(&o.stdout)) {
        Ok(j) => j
            .get("files")
            .items()
            .iter()
            .filter(|f| f.get("ok") == &Json::Bool(true))
            .filter_map(|f| {
                let file = f.get("file").as_str()?;
                (0..SYMBOLS).find(|&i| file.contains(&format!("/{}-1m-", symbol(i))))
            })
            .collect(),
        Err(e) => {
            problems.push(format!("ingest --json: {e}"));
            Vec::new()
        }
    };
    judge_integrity(tally, ctx.integrity(&db)?, false, &mut problems);
    match ctx.present(&db, "1m") {
        Ok(Some(counts)) => {
            let partial = partial_symbols(&counts);
            tally.partial_files += partial.len() as u64;
            problems.extend(partial);
            for &i in &loaded {
                if counts[i] != BARS {
                    tally.lost_rows += BARS.saturating_sub(counts[i]);
                    problems.push(format!(
                        "{} was reported loaded but has {} bars",
                        symbol(i),
                        counts[i]
                    ));
                }
            }
        }
        Ok(None) => problems.push("no database file on the tmpfs".to_owned()),
        Err(e) => problems.push(format!("{e:#}")),
    }
    drop(mount);
    tally.loaded_before_full += loaded.len() as u64;
    tally.check(TMPFS_INGEST, problems);
    Ok(())
}

/// tmpfs sizes for the ingest fault: room for a few of the files, never all.
const KIB_MIN: u64 = 512;
const KIB_MAX: u64 = 3072;
