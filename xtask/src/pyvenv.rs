//! The virtualenv with the pinned Python original, shared by `cargo xtask compat` (the
//! compatibility checks) and `cargo xtask bench --python` (the Python side of the
//! benchmark): `target/compat/venv` with `cryptoservice==1.9.0` from PyPI, created once and
//! reused while the installed version is the pinned one.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The version whose files and calls marketdb promises to match.
pub const CRYPTOSERVICE: &str = "cryptoservice==1.9.0";

/// The virtualenv's folder under the workspace root.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target").join("compat").join("venv")
}

/// The virtualenv's interpreter, creating the virtualenv first when it is missing or holds
/// another version.
pub fn cryptoservice(root: &Path) -> Result<PathBuf> {
    let venv = dir(root);
    let python = venv.join("bin").join("python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; assert m.version('cryptoservice') == '1.9.0'",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(python);
    }
    shell(root, "python3", &["-m", "venv", &venv.to_string_lossy()])?;
    shell(
        root,
        &python.to_string_lossy(),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            CRYPTOSERVICE,
        ],
    )?;
    Ok(python)
}

fn shell(root: &Path, program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
