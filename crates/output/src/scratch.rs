//! [`ScratchDir`]: a private folder for intermediate files (downloads before they are
//! verified and stored). It holds an exclusive lock on a `.lock` file inside for its whole
//! life, so a folder left by a killed run (whose lock the system released with the
//! process) can be told from a live one, and is removed by the next one created beside it.
//! A folder is created under a staging name, locked, and only then renamed to the name the
//! cleaner looks at, so a cleaner never sees a live folder without its lock. Files inside
//! are created only through [`ScratchDir::create_file`], which refuses names that leave the
//! folder.

use std::{
    fs::File,
    path::{Component, Path, PathBuf},
};

use crate::{Error, Result};

const STAGING_MARK: &str = "new-";
const LOCK: &str = ".lock";

/// A locked private folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    /// Removes folders named `{prefix}...` of dead owners in `parent`, then creates a
    /// locked one.
    pub fn create_in(parent: &Path, prefix: &str) -> Result<ScratchDir> {
        remove_stale(parent, prefix);
        let staging_prefix = format!(".{prefix}{STAGING_MARK}");
        let staging = tempfile::Builder::new()
            .prefix(&staging_prefix)
            .tempdir_in(parent)
            .map_err(|e| Error::io("create folder in", parent, e))?;
        let lock_path = staging.path().join(LOCK);
        let lock = File::create(&lock_path).map_err(|e| Error::io("create", &lock_path, e))?;
        lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
        let name = staging
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&staging_prefix))
            .map(|suffix| format!("{prefix}{suffix}"))
            .ok_or_else(|| {
                Error::io(
                    "name",
                    staging.path(),
                    std::io::Error::other("unexpected name"),
                )
            })?;
        let path = parent.join(name);
        std::fs::rename(staging.path(), &path).map_err(|e| Error::io("rename to", &path, e))?;
        // The staging folder is gone (renamed); forgetting its guard avoids a failed
        // removal on drop.
        let _ = staging.keep();
        Ok(ScratchDir { path, _lock: lock })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (or truncates) the file `rel` inside the folder, creating its folders.
    pub fn create_file(&self, rel: &Path) -> Result<(PathBuf, File)> {
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::refused(
                rel,
                "is not a plain relative name inside the scratch folder",
            ));
        }
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            crate::gate::create_dir_all(parent)?;
        }
        let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        Ok((path, file))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove a scratch folder");
        }
    }
}

/// Removes every folder `{prefix}...` in `parent` whose lock can be taken (its owner is
/// dead).
fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(prefix)) {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removed the scratch folder of an interrupted run")
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the scratch folder of an interrupted run")
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    const PREFIX: &str = "marketdb-test-";

    #[test]
    fn a_dead_owners_folder_is_removed_and_a_live_one_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::create_in(parent.path(), PREFIX).unwrap();
        let (part, _) = live.create_file(Path::new("a/part.zip")).unwrap();
        // A folder as a killed run leaves it: its lock file is there, nobody holds it.
        let dead = parent.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("half.zip"), b"xx").unwrap();
        // Not ours: no lock file.
        let other = parent.path().join(format!("{PREFIX}other"));
        std::fs::create_dir(&other).unwrap();

        let second = ScratchDir::create_in(parent.path(), PREFIX).unwrap();
        assert!(!dead.exists(), "the dead run's folder is removed");
        assert!(part.exists(), "a live folder is kept");
        assert!(
            other.exists(),
            "a folder without a lock file is not touched"
        );
        let (a, b) = (live.path().to_path_buf(), second.path().to_path_buf());
        drop(live);
        drop(second);
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = ScratchDir::create_in(parent.path(), PREFIX).unwrap();
        for bad in ["../x", "/etc/passwd", "", "a/../../b"] {
            assert!(dir.create_file(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
