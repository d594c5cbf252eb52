//! What a NumPy export folder may hold. The path checks themselves (never the database or a
//! SQLite file, never a device or FIFO, symlinks followed) are the output gate's
//! ([`marketdb_output::OutputGate`]); this module adds the folder rule of the NumPy export:
//! new, empty, or a previous marketdb export, which holds a `manifest.json`, or nothing but
//! interval folders (`1m/`, `1h/`...), which is what an export interrupted before its
//! manifest leaves.
//!
//! It writes nothing itself.

use std::{fs, path::PathBuf};

use marketdb_model::Freq;
use marketdb_output::OutputGate;

pub(crate) use marketdb_output::{sweep_stale_temps, temp_owner};

use crate::{Error, Result, manifest::MANIFEST_NAME};

fn refuse(path: &std::path::Path, reason: impl Into<String>) -> Error {
    Error::request("output", path.display(), reason)
}

/// A checked NumPy export folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedFolder {
    /// The folder (a symlink's final target).
    pub path: PathBuf,
    /// Whether it holds a previous export (which this one replaces).
    pub replaces: bool,
}

/// Checks a NumPy output folder: new, empty, or a previous marketdb export.
pub(crate) fn resolve_folder(gate: &OutputGate, out: &std::path::Path) -> Result<ResolvedFolder> {
    let checked = gate.check_folder(out, "a NumPy export")?;
    let path = checked.path;
    if !checked.exists {
        return Ok(ResolvedFolder {
            path,
            replaces: false,
        });
    }
    let mut others = Vec::new();
    let (mut manifest, mut interval_dirs) = (false, false);
    for entry in fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
        let entry = entry.map_err(|e| Error::io(&path, e))?;
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let text = name.to_string_lossy();
        if name == MANIFEST_NAME {
            manifest = true;
        } else if is_dir && text.parse::<Freq>().is_ok() {
            interval_dirs = true;
        } else if !is_dir && temp_owner(&text).is_some() {
            // A temporary file of an interrupted export (its manifest, say): ours, and
            // swept before the new export writes.
            interval_dirs = true;
        } else if others.len() < 3 {
            others.push(name.to_string_lossy().into_owned());
        }
    }
    if others.is_empty() || manifest {
        return Ok(ResolvedFolder {
            path,
            replaces: manifest || interval_dirs,
        });
    }
    Err(refuse(
        out,
        format!(
            "holds files that are not a marketdb export ({}); give a new or empty folder",
            others.join(", ")
        ),
    ))
}

/// Checks that a NumPy export from the database at `db` may write into `out` (the rules of
/// [`crate::AsyncDataExporter::export_to_numpy`]) without writing anything; returns whether
/// `out` holds an earlier export. For a command that checks its output before doing
/// anything else (`demo`).
pub fn check_numpy_folder(db: &std::path::Path, out: &std::path::Path) -> Result<bool> {
    Ok(resolve_folder(&OutputGate::protecting(db), out)?.replaces)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::path::Path;

    use super::*;

    fn db(dir: &Path) -> (PathBuf, OutputGate) {
        let p = dir.join("m.db");
        let mut bytes = marketdb_output::SQLITE_HEADER.to_vec();
        bytes.extend_from_slice(&[0; 100]);
        fs::write(&p, bytes).unwrap();
        let gate = OutputGate::protecting(&p);
        (p, gate)
    }

    #[test]
    fn the_database_is_no_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (db, gate) = db(dir.path());
        let err = resolve_folder(&gate, &db).unwrap_err();
        assert!(err.to_string().contains("is the open database"), "{err}");
    }

    #[test]
    fn folders_must_be_new_empty_or_an_earlier_export() {
        let dir = tempfile::tempdir().unwrap();
        let (_, gate) = db(dir.path());
        let out = dir.path().join("export");
        assert!(!resolve_folder(&gate, &out).unwrap().replaces);
        fs::create_dir(&out).unwrap();
        assert!(!resolve_folder(&gate, &out).unwrap().replaces);
        // What an interrupted export leaves: interval folders and temporary files.
        fs::create_dir_all(out.join("1m/cls")).unwrap();
        assert!(resolve_folder(&gate, &out).unwrap().replaces);
        fs::write(out.join(".manifest.json.tmp-999999-3"), "").unwrap();
        assert!(resolve_folder(&gate, &out).unwrap().replaces);
        fs::remove_file(out.join(".manifest.json.tmp-999999-3")).unwrap();
        fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = resolve_folder(&gate, &out).unwrap_err().to_string();
        assert!(err.contains("not a marketdb export (notes.txt)"), "{err}");
        fs::create_dir(out.join("photos")).unwrap();
        fs::remove_file(out.join("notes.txt")).unwrap();
        let err = resolve_folder(&gate, &out).unwrap_err().to_string();
        assert!(err.contains("(photos)"), "{err}");
        fs::write(out.join(MANIFEST_NAME), "{}").unwrap();
        assert!(resolve_folder(&gate, &out).unwrap().replaces);
        // The database's own folder holds the database: refused.
        let err = resolve_folder(&gate, dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a marketdb export"), "{err}");
        let file = dir.path().join("f.txt");
        fs::write(&file, "x").unwrap();
        let err = resolve_folder(&gate, &file).unwrap_err().to_string();
        assert!(err.contains("is a regular file"), "{err}");
    }
}
