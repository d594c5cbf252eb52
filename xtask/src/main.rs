//! Developer commands for the marketdb workspace, run as `cargo xtask <command>`:
//! `ci` (exactly what `.ci/run` checks), `tidy` (house-rule checks), `bench` (the benchmark
//! harness), `torture` (the reliability harness, `docs/reliability.md`), `compat` (both
//! directions against the real cryptoservice 1.9.0, `docs/compat.md`), `docs` (every example
//! of README.md and docs/ run and compared with what it shows). It keeps few
//! dependencies on purpose: std and anyhow.

// A developer tool: it writes reports and fixtures directly (the output gate is for what
// marketdb writes for its users).
#![allow(clippy::disallowed_methods)]

mod compat;
#[cfg(unix)]
mod docs;
mod pyvenv;
mod tidy;
#[cfg(unix)]
mod torture;

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => run_tidy(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("compat") => compat::run(&root, &args[1..]),
        #[cfg(unix)]
        Some("docs") => docs::run(&root, &args[1..]),
        #[cfg(unix)]
        Some("torture") => torture::run(&root, &args[1..]),
        Some("help") | Some("--help") | None => {
            help();
            Ok(())
        }
        Some(other) => {
            help();
            bail!("unknown xtask command {other:?}")
        }
    }
}

#[allow(clippy::print_stdout)]
fn help() {
    println!(
        "cargo xtask <command>\n\n  ci      run .ci/run: python venv, fmt check, clippy -D warnings, tidy, tests\n  \
         tidy    check //! headers and workspace dependency declarations\n  \
         bench   [--workload w1,w2,w3|all|all+w3] [--python[=LIST]] [--reps N] [--out DIR]\n          \
         the benchmark harness (release build), report in target/bench/; --python also\n          \
         measures cryptoservice 1.9.0 (virtualenv target/pymarketdb)\n  \
         bench stream [--symbols N] [--seconds S] [--paced] [--out DIR]\n          \
         the stream throughput benchmark (docs/benchmarks.md)\n          \
         bench w4 [--symbols N] [--days N] [--out DIR]\n          \
         W4, research scale: 300 x 60 days by default, minutes and gigabytes\n  \
         torture [--rounds N] [--contend-secs S]\n          \
         the reliability harness: kills, signals, full disk, contention (unix, debug build),\n          \
         report in target/torture/report.md\n  \
         compat [--self-check]\n          \
         both directions against cryptoservice 1.9.0 from PyPI (virtualenv target/pymarketdb),\n          \
         report in target/compat/report.txt; --self-check first proves a wrong value fails\n  \
         docs [--bless] [FILE...]\n          \
         runs every example of README.md and docs/*.md and compares what it prints with\n          \
         what the document shows; --bless rewrites the shown outputs from the run"
    );
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `.ci/run` itself, so what a developer runs and what CI runs cannot drift.
fn ci(root: &Path) -> Result<()> {
    let script = root.join(".ci").join("run");
    let status = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}

#[allow(clippy::print_stderr)]
fn run_tidy(root: &Path) -> Result<()> {
    let problems = tidy::check(root)?;
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

/// Builds the release `marketdb` binary (the harness measures `marketdb ingest` as a user
/// runs it), prepares the Python original's virtualenv when `--python` is asked for, then
/// runs the harness with both named in its environment.
fn bench(root: &Path, args: &[String]) -> Result<()> {
    cargo(
        root,
        &[
            "build",
            "--release",
            "--quiet",
            "--package",
            "marketdb",
            "--bin",
            "marketdb",
        ],
    )?;
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "marketdb-bench",
        "--",
    ])
    .args(args)
    .current_dir(root)
    .env(
        "MARKETDB_BENCH_BIN",
        root.join("target").join("release").join("marketdb"),
    );
    if args
        .iter()
        .any(|a| a == "--python" || a.starts_with("--python="))
    {
        cmd.env("MARKETDB_BENCH_PYTHON", pyvenv::cryptoservice(root)?);
    }
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("the benchmark harness failed ({status})");
    }
    Ok(())
}
