//! [`discover`]: turns the paths a user gave (files and folders) into the sorted list of
//! data files to ingest.
//!
//! Folders are walked recursively and contribute their `.csv` and `.zip` files (extension
//! case-insensitive). Files named explicitly are kept whatever their extension, so a
//! renamed download can still be ingested with overrides. `.CHECKSUM` files are never data:
//! they are skipped everywhere (they are verified beside their data file). Inside folders,
//! hidden entries (names starting with `.`, such as macOS `._X.zip` companions) are skipped,
//! and symbolic links to folders are not followed (no cycles). The result is sorted and
//! free of duplicates. It does not open or check the files themselves.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Lists the data files under `paths`: explicit files as given, folders recursively
/// (`.csv` and `.zip` only), `.CHECKSUM` files skipped; sorted, without duplicates. A path
/// that does not exist or cannot be listed is an error naming it.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else if is_checksum(path) {
            tracing::debug!(path = %path.display(), "skipping checksum file");
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    tracing::debug!(files = out.len(), "discovered input files");
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if file_type.is_dir() {
            walk(&path, out)?;
            continue;
        }
        // Follow a symlink only to see whether it points at a file.
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if is_file && is_data_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn extension_is(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

fn is_checksum(path: &Path) -> bool {
    extension_is(path, "checksum")
}

fn is_data_file(path: &Path) -> bool {
    extension_is(path, "csv") || extension_is(path, "zip")
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn walks_folders_and_keeps_explicit_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sub = root.join("spot/BTCUSDT");
        std::fs::create_dir_all(&sub).unwrap();
        for name in [
            "b.zip",
            "b.zip.CHECKSUM",
            "a.CSV",
            "notes.txt",
            ".hidden.csv",
            "spot/BTCUSDT/c.zip",
            "spot/BTCUSDT/c.zip.CHECKSUM",
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let explicit = root.join("notes.txt");
        let found = discover(&[
            root.to_path_buf(),
            explicit.clone(),
            root.join("b.zip"),
            root.join("b.zip.CHECKSUM"),
        ])
        .unwrap();
        assert_eq!(
            found,
            vec![
                root.join("a.CSV"),
                root.join("b.zip"),
                explicit,
                root.join("spot/BTCUSDT/c.zip"),
            ]
        );
    }

    #[test]
    fn missing_paths_are_named() {
        let err = discover(&[PathBuf::from("/no/such/dir/x.zip")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "cannot read /no/such/dir/x.zip");
    }
}
