//! The virtualenv with the pinned Python original, shared by `cargo xtask compat` (the
//! compatibility checks), `cargo xtask bench --python` (the Python side of the benchmark)
//! and `scripts/python.sh` (the Python package's tests and benchmark): `target/pymarketdb`
//! with `cryptoservice==1.9.0` from PyPI, made by `scripts/python.sh env`, so one CI run
//! installs the Python original once.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The virtualenv's interpreter, creating the virtualenv first when it is missing or holds
/// another version.
pub fn cryptoservice(root: &Path) -> Result<PathBuf> {
    let script = root.join("scripts").join("python.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("env")
        .current_dir(root)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "`bash {} env` failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !python.exists() {
        bail!(
            "`scripts/python.sh env` named {}, which is missing",
            python.display()
        );
    }
    Ok(python)
}
