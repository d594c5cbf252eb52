//! `cargo xtask compat`: both directions against the real `cryptoservice` 1.9.0 from PyPI.
//!
//! The checks themselves live in `scripts/compat.py` (they call the Python package); this
//! command prepares what they need (the virtualenv of `pyvenv.rs`, a debug build of
//! the `marketdb` binary), runs them and keeps the report in `target/compat/report.txt`.
//! `--self-check` first runs them on a file where marketdb's value was changed and requires
//! that run to fail on exactly that check, so a green result cannot come from checks that
//! compare nothing.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::{cargo, pyvenv};

#[allow(clippy::print_stdout)]
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut self_check = false;
    for arg in args {
        match arg.as_str() {
            "--self-check" => self_check = true,
            other => bail!("unknown compat argument {other:?} (expected --self-check)"),
        }
    }
    let dir = root.join("target").join("compat");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let python = pyvenv::cryptoservice(root)?;
    cargo(root, &["build", "--quiet", "--bin", "marketdb"])?;
    let marketdb = root.join("target").join("debug").join("marketdb");

    if self_check {
        println!("== compat self-check: one close price changed in marketdb's file");
        let (ok, report) = checks(root, &python, &marketdb, &dir, true)?;
        let caught = report.lines().any(|line| {
            line.starts_with("marketdb writes, python reads: 1h klines") && line.ends_with("FAILED")
        });
        let failures = report.lines().filter(|l| l.ends_with("FAILED")).count();
        if ok || !caught || failures != 1 {
            println!("{report}");
            bail!("the compat checks did not catch exactly the changed value");
        }
        println!("caught: the 1h kline check failed and no other\n");
    }

    let (ok, report) = checks(root, &python, &marketdb, &dir, false)?;
    println!("{report}");
    let saved = dir.join("report.txt");
    fs::write(&saved, &report).with_context(|| format!("cannot write {}", saved.display()))?;
    if !ok {
        bail!("compatibility checks failed (report: {})", saved.display());
    }
    Ok(())
}

/// Runs the script; returns whether every check passed, and the report table. The Python
/// package's own log lines go to `python.log` beside the report.
fn checks(
    root: &Path,
    python: &Path,
    marketdb: &Path,
    dir: &Path,
    corrupt: bool,
) -> Result<(bool, String)> {
    let work = dir.join(if corrupt { "run-corrupt" } else { "run" });
    let log_path = dir.join(if corrupt {
        "python-corrupt.log"
    } else {
        "python.log"
    });
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = Command::new(python);
    cmd.arg(root.join("scripts").join("compat.py"))
        .arg("--marketdb")
        .arg(marketdb)
        .arg("--work")
        .arg(&work)
        .current_dir(root)
        .env_remove("MARKETDB_DB")
        .stdout(Stdio::null())
        .stderr(log);
    if corrupt {
        cmd.arg("--corrupt");
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let report_path = work.join("report.txt");
    let report = fs::read_to_string(&report_path).with_context(|| {
        format!(
            "the compat script ended ({status}) without a report; see {}",
            log_path.display()
        )
    })?;
    match status.code() {
        Some(0) => Ok((true, report)),
        Some(1) => Ok((false, report)),
        _ => bail!(
            "the compat script crashed ({status}); see {}",
            log_path.display()
        ),
    }
}
