//! Temporary files of killed writers: [`temp_owner`] reads the process id out of a
//! temporary name made by [`crate::temp_path`], and [`sweep_stale_temps`] removes those
//! whose process has exited. Files of running processes are never touched.

use std::{fs, path::Path};

use crate::atomic::TEMP_MARK;

/// The process id in a temporary name made by [`crate::temp_path`]
/// (`.{name}.tmp-{pid}-{n}`).
pub fn temp_owner(file_name: &str) -> Option<u32> {
    if !file_name.starts_with('.') {
        return None;
    }
    let (_, tail) = file_name.rsplit_once(TEMP_MARK)?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether the process `pid` is running on this machine. Where that cannot be told (no
/// `/proc`), every process counts as running, so nothing is swept.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// Removes, in `dir` (and below it when `recursive`), temporary files whose name starts
/// with `prefix` and whose process has exited: what a killed writer leaves. Returns the
/// number removed.
pub fn sweep_stale_temps(dir: &Path, prefix: &str, recursive: bool) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() && recursive {
            removed += sweep_stale_temps(&entry.path(), prefix, true);
        } else if ft.is_file()
            && name.starts_with(prefix)
            && let Some(pid) = temp_owner(&name)
            && !process_alive(pid)
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(
                        pid,
                        "removed a stale temporary file: {}",
                        entry.path().display()
                    );
                    removed += 1;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot remove a stale temporary file: {}",
                    entry.path().display()
                ),
            }
        }
    }
    removed
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_tell_their_owner_and_dead_owners_are_swept() {
        assert_eq!(temp_owner(".a.csv.tmp-123-4"), Some(123));
        assert_eq!(temp_owner("a.csv.tmp-123-4"), None);
        assert_eq!(temp_owner(".a.csv.tmp-123-"), None);
        assert_eq!(temp_owner(".a.csv.tmp-x-1"), None);
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("1m");
        fs::create_dir(&sub).unwrap();
        // pid 0 is never a user process; our own pid is alive.
        let dead = sub.join(".x.npy.tmp-0-1");
        let live = sub.join(format!(".y.npy.tmp-{}-1", std::process::id()));
        let plain = sub.join("z.npy");
        for p in [&dead, &live, &plain] {
            fs::write(p, b"").unwrap();
        }
        assert_eq!(sweep_stale_temps(dir.path(), ".", false), 0);
        assert_eq!(sweep_stale_temps(dir.path(), ".", true), 1);
        assert!(!dead.exists() && live.exists() && plain.exists());
    }
}
