//! The rounds of the torture harness (steps a to d of `docs/reliability.md`; e is in
//! `faults.rs`): SIGKILL during an ingest, an export and a resample at a random point,
//! SIGTERM during an export, each followed by the checks of what must hold, and the
//! end-of-round checks. Kill delays come from the round's seeded [`Rng`], scaled by how
//! long the whole command took when measured; two kills instead wait for a state that
//! lasts too briefly to hit by chance. Nothing here asserts a duration.

use std::{
    fs,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{
    BARS, Ctx, DAY, Format, Rng, SYMBOLS, all_symbols, brief, faults, judge_integrity,
    partial_symbols, report::Tally, s, symbol, text, verify,
};

pub(crate) fn resample_args() -> [&'static str; 9] {
    [
        "resample",
        "--symbols",
        "all",
        "--timerange",
        DAY,
        "--from",
        "1m",
        "--to",
        "1h",
    ]
}

/// Spawns `cmd` (output discarded), SIGKILLs it after `delay`; returns whether it was
/// still running when the signal came.
fn kill_after(cmd: &mut Command, delay: Duration, tally: &mut Tally) -> Result<bool> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot spawn marketdb")?;
    thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait()?;
    tally.kills += 1;
    let landed = status.signal() == Some(9);
    if landed {
        tally.kills_landed += 1;
    }
    Ok(landed)
}

/// Sends SIGTERM through `kill(1)` (std cannot).
fn sigterm(child: &Child) -> Result<()> {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .context("cannot run kill")?;
    if !st.success() {
        bail!("kill -TERM {} failed", child.id());
    }
    Ok(())
}

/// Removes the database and its side files.
fn remove_db(db: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rows missing from symbols that must be complete.
fn missing(counts: &[u64], must: impl Fn(usize) -> bool, per: u64) -> (u64, Vec<String>) {
    let mut lost = 0;
    let mut problems = Vec::new();
    for (i, &n) in counts.iter().enumerate().filter(|(i, _)| must(*i)) {
        if n < per {
            lost += per - n;
            problems.push(format!("{} has {n} of {per} bars", symbol(i)));
        }
    }
    (lost, problems)
}

/// One round: steps a to e, then the end-of-round checks.
pub fn round(ctx: &Ctx, tally: &mut Tally, r: u64) -> Result<()> {
    let mut rng = Rng::new(r);
    kill_ingest(ctx, tally, &mut rng, r)?;
    kill_at_journal(ctx, tally)?;
    kill_export(ctx, tally, &mut rng)?;
    kill_at_manifest(ctx, tally)?;
    kill_resample(ctx, tally, &mut rng)?;
    term_export(ctx, tally, &mut rng)?;
    faults::run(ctx, tally, &mut rng, r)?;
    end_of_round(ctx, tally)
}

/// a. SIGKILL during ingest, into a new database (even rounds) or one missing a few
/// symbols (odd rounds); then the ingest is run to completion.
fn kill_ingest(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng, r: u64) -> Result<()> {
    const NAME: &str = "SIGKILL ingest: whole files only, no row lost";
    const PREPARE: &str = "prepare: a new database, or a few symbols deleted";
    let deleted = if r.is_multiple_of(2) {
        remove_db(&ctx.db)?;
        tally.check(PREPARE, Vec::new());
        (0..SYMBOLS).collect()
    } else {
        let k = rng.range(1, 10) as usize;
        let picked = rng.pick(k);
        let list: Vec<String> = picked.iter().map(|&i| symbol(i)).collect();
        let list = list.join(",");
        let args = [
            "delete",
            "--symbols",
            &list,
            "--timerange",
            DAY,
            "--freq",
            "1m",
            "--yes",
        ];
        let o = ctx.run(&ctx.db, &args)?;
        let mut problems = Vec::new();
        if !o.status.success() {
            problems.push(format!("delete {list}: {}", brief(&o)));
        }
        if let Some(counts) = ctx.counts(&ctx.db, "1m", &mut problems)
            && let Some(&i) = picked.iter().find(|&&i| counts[i] != 0)
        {
            problems.push(format!(
                "{} has {} bars after its delete",
                symbol(i),
                counts[i]
            ));
        }
        tally.check(PREPARE, problems);
        picked
    };
    let delay = rng.delay(ctx.timing.ingest);
    let landed = kill_after(
        &mut ctx.command(&ctx.db, &["ingest", &s(&ctx.vision)]),
        delay,
        tally,
    )?;
    ctx.check_integrity(tally, "SIGKILL ingest: integrity ok", &ctx.db)?;
    let mut problems = Vec::new();
    match ctx.present(&ctx.db, "1m") {
        // Killed before the database file or its tables were committed.
        Ok(None) => tally.saw(NAME, "no tables yet"),
        Ok(Some(counts)) => {
            let partial = partial_symbols(&counts);
            tally.partial_files += partial.len() as u64;
            problems.extend(partial);
            let (lost, p) = missing(&counts, |i| !deleted.contains(&i), BARS);
            tally.lost_rows += lost;
            problems.extend(p);
        }
        Err(e) => problems.push(format!(
            "after a kill at {delay:?} (landed: {landed}): {e:#}"
        )),
    }
    tally.check(NAME, problems);
    // Re-run to completion: every symbol whole.
    let o = ctx.run(&ctx.db, &["ingest", &s(&ctx.vision)])?;
    let mut problems = Vec::new();
    if !o.status.success() {
        problems.push(format!("ingest re-run: {}", brief(&o)));
    }
    judge_integrity(tally, ctx.integrity(&ctx.db)?, true, &mut problems);
    if let Some(counts) = ctx.counts(&ctx.db, "1m", &mut problems) {
        let (lost, p) = missing(&counts, |_| true, BARS);
        tally.lost_rows += lost;
        problems.extend(p);
    }
    tally.check("ingest re-run completes, integrity ok", problems);
    Ok(())
}

/// a'. The first ingest into a new database SIGKILLed while its tables are being
/// committed: the database file already written, its rollback journal still there (marketdb
/// switches to WAL afterwards). The window is too short for a random delay, so this kill
/// waits for that state (it asserts nothing about when). Reads must then work on what it
/// left: integrity ok, whole files only.
fn kill_at_journal(ctx: &Ctx, tally: &mut Tally) -> Result<()> {
    const NAME: &str = "SIGKILL new-database ingest at its journal: reads work, integrity ok";
    let db = ctx.round.join("new.db");
    remove_db(&db)?;
    let journal = PathBuf::from(format!("{}-journal", db.display()));
    let mut child = ctx
        .command(&db, &["ingest", &s(&ctx.vision)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot spawn marketdb")?;
    let mut caught = false;
    while child.try_wait()?.is_none() {
        let committing = journal.exists() && fs::metadata(&db).is_ok_and(|m| m.len() > 0);
        if committing {
            let _ = child.kill();
            caught = true;
            break;
        }
        thread::yield_now();
    }
    let status = child.wait()?;
    if caught {
        tally.kills += 1;
        if status.signal() == Some(9) {
            tally.kills_landed += 1;
            tally.saw(NAME, "killed with the journal there");
        }
    } else {
        tally.saw(NAME, "missed the window");
    }
    let mut problems = Vec::new();
    judge_integrity(tally, ctx.integrity(&db)?, false, &mut problems);
    match ctx.present(&db, "1m") {
        Ok(None) => {}
        Ok(Some(counts)) => {
            let partial = partial_symbols(&counts);
            tally.partial_files += partial.len() as u64;
            problems.extend(partial);
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    tally.check(NAME, problems);
    // A write (the ingest again) must recover whatever the kill left.
    let o = ctx.run(&db, &["ingest", &s(&ctx.vision)])?;
    let mut problems = Vec::new();
    if !o.status.success() {
        problems.push(format!("ingest: {}", brief(&o)));
    }
    judge_integrity(tally, ctx.integrity(&db)?, true, &mut problems);
    if let Some(counts) = ctx.counts(&db, "1m", &mut problems) {
        let (lost, p) = missing(&counts, |_| true, BARS);
        tally.lost_rows += lost;
        problems.extend(p);
    }
    tally.check("... then an ingest completes it, integrity ok", problems);
    remove_db(&db)
}

/// b. SIGKILL during an export (format at random); outputs whole or absent; the same
/// export re-run completes and sweeps every temporary file.
fn kill_export(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng) -> Result<()> {
    let i = rng.range(0, 2) as usize;
    let f = Format::ALL[i];
    let args = ctx.export_args(f, &f.target(&ctx.out));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let delay = rng.delay(ctx.timing.export[i]);
    kill_after(&mut ctx.command(&ctx.db, &args), delay, tally)?;
    after_export_kill(ctx, tally, "SIGKILL export: outputs whole or absent")?;
    rerun_export(ctx, tally, f, "export re-run: whole, every temp swept")
}

/// b'. A NumPy export SIGKILLed while its manifest is written: the window is too short
/// for a random delay to hit often, so this kill waits for the manifest's temporary file
/// to appear (it asserts nothing about when). The re-run must complete as after any kill.
fn kill_at_manifest(ctx: &Ctx, tally: &mut Tally) -> Result<()> {
    const NAME: &str = "SIGKILL numpy export at its manifest write: re-run whole, swept";
    let f = Format::Numpy;
    let root = f.target(&ctx.out);
    let args = ctx.export_args(f, &root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = ctx
        .command(&ctx.db, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot spawn marketdb")?;
    let mut caught = false;
    while child.try_wait()?.is_none() {
        let writing = fs::read_dir(&root).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".manifest.json.tmp-")
            })
        });
        if writing {
            let _ = child.kill();
            caught = true;
            break;
        }
        thread::yield_now();
    }
    let status = child.wait()?;
    if caught {
        tally.kills += 1;
        if status.signal() == Some(9) {
            tally.kills_landed += 1;
            tally.saw(NAME, "killed while writing it");
        }
    } else {
        tally.saw(NAME, "finished first");
    }
    after_export_kill(ctx, tally, "SIGKILL export: outputs whole or absent")?;
    rerun_export(ctx, tally, f, NAME)
}

/// Right after a SIGKILL: temporary files may remain; final names are whole or absent.
fn after_export_kill(ctx: &Ctx, tally: &mut Tally, name: &'static str) -> Result<()> {
    tally.temps_after_kill += verify::temp_files(&ctx.work).len() as u64;
    let partial = verify::outputs_whole_or_absent(&ctx.out, SYMBOLS * BARS as usize);
    tally.partial_files += partial.len() as u64;
    tally.check(name, partial);
    Ok(())
}

/// The same export run to completion after a kill: exit 0, whole, no temporary file left
/// anywhere (the export sweeps those of dead processes).
fn rerun_export(ctx: &Ctx, tally: &mut Tally, f: Format, name: &'static str) -> Result<()> {
    let args = ctx.export_args(f, &f.target(&ctx.out));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ctx.run(&ctx.db, &args)?;
    let mut problems = Vec::new();
    if !o.status.success() {
        problems.push(format!("{} export re-run: {}", f.name(), brief(&o)));
    }
    let temps = verify::temp_files(&ctx.work);
    tally.temps_left += temps.len() as u64;
    problems.extend(temps.iter().map(|p| format!("left: {}", p.display())));
    let partial = verify::outputs_whole_or_absent(&ctx.out, SYMBOLS * BARS as usize);
    tally.partial_files += partial.len() as u64;
    if partial.is_empty() {
        // Whole where present; now it must be present and complete.
        problems.extend(f.complete(&f.target(&ctx.out)));
    }
    problems.extend(partial);
    if !tally.check(name, problems) {
        // Start the next steps from a whole export, and count no leftover twice: remove
        // the temporary files by hand and export again.
        for t in &temps {
            let _ = fs::remove_file(t);
        }
        let o = ctx.run(&ctx.db, &args)?;
        if !o.status.success() {
            bail!(
                "{} export fails even after removing the leftovers: {}",
                f.name(),
                brief(&o)
            );
        }
    }
    Ok(())
}

/// c. SIGKILL during a resample into 1h (after removing the 1h bars): all of them or none;
/// then the resample re-run stores them all.
fn kill_resample(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng) -> Result<()> {
    const NAME: &str = "SIGKILL resample: 1h bars all or nothing";
    let syms = all_symbols();
    let del = [
        "delete",
        "--symbols",
        &syms,
        "--timerange",
        DAY,
        "--freq",
        "1h",
        "--yes",
    ];
    let o = ctx.run(&ctx.db, &del)?;
    let mut problems = Vec::new();
    if !o.status.success() {
        problems.push(format!("delete 1h: {}", brief(&o)));
    }
    let total = |c: Option<Vec<u64>>| c.map(|c| c.iter().sum::<u64>());
    let before = total(ctx.counts(&ctx.db, "1h", &mut problems));
    if let Some(before) = before.filter(|&n| n != 0) {
        problems.push(format!("{before} 1h bars left after the delete"));
    }
    let delay = rng.delay(ctx.timing.resample);
    kill_after(&mut ctx.command(&ctx.db, &resample_args()), delay, tally)?;
    ctx.check_integrity(tally, "SIGKILL resample: integrity ok", &ctx.db)?;
    let full = SYMBOLS as u64 * 24;
    let after = total(ctx.counts(&ctx.db, "1h", &mut problems));
    if let Some(after) = after.filter(|&n| n != 0 && n != full) {
        tally.partial_files += 1;
        problems.push(format!(
            "{after} 1h bars after the kill, expected 0 or {full}"
        ));
    }
    tally.check(NAME, problems);

    let o = ctx.run(&ctx.db, &resample_args())?;
    let mut problems = Vec::new();
    if !o.status.success() {
        problems.push(format!("resample re-run: {}", brief(&o)));
    }
    let after = total(ctx.counts(&ctx.db, "1h", &mut problems));
    if let Some(after) = after.filter(|&n| n != full) {
        tally.lost_rows += full.saturating_sub(after);
        problems.push(format!("{after} 1h bars after the re-run, expected {full}"));
    }
    tally.check("resample re-run completes", problems);
    Ok(())
}

/// d. SIGTERM during a CSV or NumPy export: exit 143 with its message (or 0 when it had
/// finished), no temporary file, outputs whole or absent, the earlier NumPy export and
/// its manifest kept.
fn term_export(ctx: &Ctx, tally: &mut Tally, rng: &mut Rng) -> Result<()> {
    const NAME: &str = "SIGTERM export: exit 143 + message, no temp, earlier export kept";
    let i = rng.range(0, 1) as usize;
    let f = Format::ALL[i];
    let manifest_path = Format::Numpy.target(&ctx.out).join("manifest.json");
    let manifest = fs::read(&manifest_path).context("the earlier NumPy export's manifest")?;
    let args = ctx.export_args(f, &f.target(&ctx.out));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let delay = rng.delay(ctx.timing.export[i]);
    let child = ctx
        .command(&ctx.db, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot spawn marketdb")?;
    thread::sleep(delay);
    let sent = sigterm(&child);
    let o = child.wait_with_output()?;
    let mut problems = Vec::new();
    if sent.is_ok() {
        tally.sigterms += 1;
    }
    let err = text(&o.stderr);
    match (o.status.code(), o.status.signal()) {
        (Some(143), _) => {
            tally.sigterms_landed += 1;
            if !err.contains("interrupted by SIGTERM") {
                problems.push(format!("exit 143 without the message: {err:?}"));
            }
        }
        (Some(0), _) => tally.saw(NAME, "finished first"),
        // The signal came before the handler was installed (the first milliseconds):
        // the default action ended the process, which a shell reports as 143 too. The
        // checks below still apply.
        (None, Some(15)) => tally.saw(NAME, "died before the handler"),
        _ => problems.push(format!("{} export: {}", f.name(), brief(&o))),
    }
    let temps = verify::temp_files(&ctx.work);
    tally.temps_left += temps.len() as u64;
    problems.extend(temps.iter().map(|p| format!("left: {}", p.display())));
    let partial = verify::outputs_whole_or_absent(&ctx.out, SYMBOLS * BARS as usize);
    tally.partial_files += partial.len() as u64;
    problems.extend(partial);
    // The same request writes the same manifest, so it is byte-identical either way.
    match fs::read(&manifest_path) {
        Ok(now) if now == manifest => {}
        Ok(_) => problems.push("the earlier NumPy manifest changed".to_owned()),
        Err(e) => problems.push(format!("the earlier NumPy manifest is gone: {e}")),
    }
    tally.check(NAME, problems);
    Ok(())
}

/// After a round: integrity ok, every output whole, no temporary file anywhere, all rows.
fn end_of_round(ctx: &Ctx, tally: &mut Tally) -> Result<()> {
    const NAME: &str = "end of round: whole outputs, no temp, all rows, same data";
    const READS: &str = "end of round: reads leave the database file byte-identical";
    let before = fs::read(&ctx.db).ok();
    ctx.check_integrity(tally, "end of round: integrity ok", &ctx.db)?;
    let mut problems = Vec::new();
    let partial = verify::outputs_whole_or_absent(&ctx.out, SYMBOLS * BARS as usize);
    tally.partial_files += partial.len() as u64;
    problems.extend(partial);
    let temps = verify::temp_files(&ctx.work);
    tally.temps_left += temps.len() as u64;
    problems.extend(temps.iter().map(|p| format!("left: {}", p.display())));
    for (freq, per) in [("1m", BARS), ("1h", 24)] {
        if let Some(counts) = ctx.counts(&ctx.db, freq, &mut problems) {
            let (lost, p) = missing(&counts, |_| true, per);
            tally.lost_rows += lost;
            problems.extend(p.into_iter().map(|p| format!("{freq}: {p}")));
        }
    }
    ctx.same_data(&mut problems)?;
    tally.check(NAME, problems);
    // doctor, check and export above only read.
    let after = fs::read(&ctx.db).ok();
    let changed = before.is_none() || before != after;
    tally.check(
        READS,
        changed
            .then(|| "doctor, check or export changed the database file".to_owned())
            .into_iter()
            .collect(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rows_are_counted_for_the_symbols_that_must_be_whole() {
        let mut c = vec![BARS; SYMBOLS];
        c[1] = 0;
        c[3] = 7;
        let (lost, problems) = missing(&c, |i| i != 1, BARS);
        assert_eq!(lost, BARS - 7);
        assert_eq!(problems, vec!["T03USDT has 7 of 1440 bars"]);
        assert_eq!(missing(&c, |_| true, BARS).0, 2 * BARS - 7);
    }
}
