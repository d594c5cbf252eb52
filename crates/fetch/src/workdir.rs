//! The fetcher's private folder in the system temporary directory. It holds an exclusive
//! lock on a `.lock` file inside for its whole life, so a folder left by a killed run
//! (whose lock the system released with the process) can be told from a live one, and is
//! removed by the next fetcher that starts. A folder is created under a staging name,
//! locked, and only then renamed to the name the cleaner looks at, so a cleaner never
//! sees a live folder without its lock.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const PREFIX: &str = "marketdb-fetch-";
const STAGING_PREFIX: &str = ".marketdb-fetch-new-";
const LOCK: &str = ".lock";

#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    /// Removes folders of dead fetchers in `parent`, then creates a locked one.
    pub(crate) fn create_in(parent: &Path) -> Result<WorkDir> {
        remove_stale(parent);
        let staging = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        let lock_path = staging.path().join(LOCK);
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let name = staging
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .map(|suffix| format!("{PREFIX}{suffix}"))
            .ok_or_else(|| Error::io(staging.path(), std::io::Error::other("unexpected name")))?;
        let path = parent.join(name);
        std::fs::rename(staging.path(), &path).map_err(|e| Error::io(&path, e))?;
        // The staging folder is gone (renamed); forgetting its guard avoids a failed
        // removal on drop.
        let _ = staging.keep();
        Ok(WorkDir { path, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove the download folder");
        }
    }
}

/// Removes every fetcher folder in `parent` whose lock can be taken (its owner is dead).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(PREFIX)) {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removed the folder of an interrupted download")
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the folder of an interrupted download")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_fetchers_folder_is_removed_and_a_live_one_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = WorkDir::create_in(parent.path()).unwrap();
        std::fs::write(live.path().join("part.zip"), b"x").unwrap();
        // A folder as a killed run leaves it: its lock file is there, nobody holds it.
        let dead = parent.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("half.zip"), b"xx").unwrap();
        // Not ours: no lock file.
        let other = parent.path().join(format!("{PREFIX}other"));
        std::fs::create_dir(&other).unwrap();

        let second = WorkDir::create_in(parent.path()).unwrap();
        assert!(!dead.exists(), "the dead run's folder is removed");
        assert!(
            live.path().join("part.zip").exists(),
            "a live folder is kept"
        );
        assert!(
            other.exists(),
            "a folder without a lock file is not touched"
        );
        let (a, b) = (live.path().to_path_buf(), second.path().to_path_buf());
        drop(live);
        drop(second);
        assert!(!a.exists() && !b.exists());
    }
}
