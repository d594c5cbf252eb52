//! The Python original measured on the same files: `scripts/bench_python.py` run with the
//! interpreter of the cryptoservice 1.9.0 virtualenv, one process per operation (store from
//! the daily CSV files, `read_data`, `export_to_files`), each printing the same result line
//! as a harness child (`child::parse_result`).
//!
//! The interpreter comes from `MARKETDB_BENCH_PYTHON` (set by `cargo xtask bench --python`,
//! which creates the virtualenv as `cargo xtask compat` does), else the virtualenv's usual
//! place under `target/compat`. The Python package's own log lines are kept and shown only
//! when the script fails.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use marketdb::model::time::date_string;

use crate::{child::parse_result, report::Timed, rss::Mem, workload::Workload};

/// The environment variable naming the virtualenv's interpreter.
pub const PYTHON_ENV: &str = "MARKETDB_BENCH_PYTHON";

/// The workspace root (this package lives in `benches/`).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// How to run the Python side.
#[derive(Clone, Debug)]
pub struct Python {
    interpreter: PathBuf,
    script: PathBuf,
}

impl Python {
    /// Finds the interpreter and the script, or says how to get them.
    pub fn locate() -> Result<Python> {
        let interpreter = std::env::var_os(PYTHON_ENV).map_or_else(
            || root().join("target/pymarketdb/bin/python"),
            PathBuf::from,
        );
        if !interpreter.is_file() {
            bail!(
                "no Python with cryptoservice 1.9.0 at {} (run `cargo xtask bench --python`, \
                 which creates it, or set {PYTHON_ENV})",
                interpreter.display()
            );
        }
        let script = root().join("scripts/bench_python.py");
        if !script.is_file() {
            bail!("{} is missing", script.display());
        }
        Ok(Python {
            interpreter,
            script,
        })
    }

    /// Runs `op` of the script (`store`, `read`, `numpy`) for workload `w` on `db`, with
    /// `--vision` or `--out` as the operation needs; fails unless it handled `w.rows()`.
    pub fn run(
        &self,
        op: &str,
        w: Workload,
        db: &Path,
        extra: Option<(&str, &Path)>,
    ) -> Result<(Timed, Mem)> {
        let spec = w.spec()?;
        let mut cmd = Command::new(&self.interpreter);
        cmd.arg(&self.script)
            .arg(op)
            .arg("--db")
            .arg(db)
            .args(["--start", &date_string(spec.range.start)])
            .args(["--days", &w.days().to_string()]);
        if let Some((flag, path)) = extra {
            cmd.arg(flag).arg(path);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.interpreter.display()))?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "the Python {op} failed ({}):\n{}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let (t, m) = parse_result(&String::from_utf8_lossy(&out.stdout))
            .with_context(|| format!("the Python {op}"))?;
        if t.rows != w.rows() {
            bail!("the Python {op}: {} rows, expected {}", t.rows, w.rows());
        }
        Ok((t, m))
    }
}
