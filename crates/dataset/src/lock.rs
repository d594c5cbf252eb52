//! One export at a time per dataset. Locally the lock is `_marketdb/lock`, created only if
//! absent (`O_EXCL`) and holding the host, process id and start time of its export; a lock
//! whose process is gone on this host is recognised as left by a killed export, and either
//! lock is broken only when the caller says so (`--break-lock`). On an object store the lock
//! is the same object, created with a conditional put (`If-None-Match: *`), so of two
//! exports starting at once exactly one gets it; a server that ignores the condition cannot
//! offer this guarantee (`docs/formats.md`). The lock is removed when the export ends.

use std::path::{Path, PathBuf};

use marketdb_output::OutputGate;
use serde::{Deserialize, Serialize};

use crate::layout::LOCK_PATH;
use crate::remote::Remote;
use crate::{Error, Result};

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// When the export started, ms since the epoch.
    pub started_ms: i64,
    pub tool: String,
}

impl LockHolder {
    fn me() -> LockHolder {
        LockHolder {
            host: host_name(),
            pid: std::process::id(),
            started_ms: marketdb_model::time::now_ms(),
            tool: concat!("marketdb ", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Whether the holder is an export on this host whose process is gone.
    fn is_stale_here(&self) -> bool {
        self.host == host_name() && !marketdb_output::process_alive(self.pid)
    }

    fn describe(&self) -> String {
        format!(
            "pid {} on host {} since {}",
            self.pid,
            self.host,
            marketdb_model::time::format_rfc3339(self.started_ms)
        )
    }
}

/// This machine's name (what `hostname` prints), or `unknown`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A held lock; released (removed) when dropped or [`DatasetLock::release`]d.
#[derive(Debug)]
pub(crate) enum DatasetLock {
    Local { path: PathBuf, token: Vec<u8> },
    Store { remote: Remote, released: bool },
}

fn refusal(root: &str, holder: Option<&LockHolder>, stale: bool) -> Error {
    let who = holder.map_or_else(|| "an unreadable lock".to_owned(), LockHolder::describe);
    let reason = if stale {
        format!(
            "a lock left by an export that is no longer running ({who}); run again with \
             --break-lock to remove it"
        )
    } else {
        format!(
            "another export is publishing into it ({who}); wait for it to finish, or if it \
             is gone, run again with --break-lock"
        )
    };
    Error::Locked {
        root: root.to_owned(),
        reason,
    }
}

impl DatasetLock {
    /// Takes the lock of the dataset folder `root`.
    pub(crate) fn local(gate: &OutputGate, root: &Path, break_lock: bool) -> Result<DatasetLock> {
        let path = root.join(LOCK_PATH);
        let label = root.display().to_string();
        let token = serde_json::to_vec(&LockHolder::me()).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        for _ in 0..2 {
            if gate.create_exclusive(&path, &token)? {
                return Ok(DatasetLock::Local { path, token });
            }
            let holder = marketdb_output::read_regular(&path, 1 << 16)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<LockHolder>(&b).ok());
            let stale = holder.as_ref().is_some_and(LockHolder::is_stale_here);
            if !break_lock {
                return Err(refusal(&label, holder.as_ref(), stale));
            }
            tracing::warn!(lock = %path.display(), ?holder, "breaking the dataset lock");
            gate.remove(&path)?;
        }
        Err(refusal(&label, None, false))
    }

    /// Takes the lock of the dataset at an object-store prefix.
    pub(crate) async fn store(remote: &Remote, break_lock: bool) -> Result<DatasetLock> {
        let token = serde_json::to_vec(&LockHolder::me()).map_err(|source| Error::Json {
            path: PathBuf::from(format!("{}/{LOCK_PATH}", remote.url)),
            source,
        })?;
        for _ in 0..2 {
            if remote.put_if_absent(LOCK_PATH, token.clone()).await? {
                return Ok(DatasetLock::Store {
                    remote: remote.clone(),
                    released: false,
                });
            }
            let holder = remote
                .get(LOCK_PATH)
                .await?
                .and_then(|b| serde_json::from_slice::<LockHolder>(&b).ok());
            let stale = holder.as_ref().is_some_and(LockHolder::is_stale_here);
            if !break_lock {
                return Err(refusal(&remote.url, holder.as_ref(), stale));
            }
            tracing::warn!(url = %remote.url, ?holder, "breaking the dataset lock");
            remote.delete(LOCK_PATH).await?;
        }
        Err(refusal(&remote.url, None, false))
    }

    /// Removes the lock.
    pub(crate) async fn release(mut self) -> Result<()> {
        match &mut self {
            DatasetLock::Local { .. } => {
                drop(self);
                Ok(())
            }
            DatasetLock::Store { remote, released } => {
                *released = true;
                remote.delete(LOCK_PATH).await
            }
        }
    }
}

impl Drop for DatasetLock {
    fn drop(&mut self) {
        match self {
            DatasetLock::Local { path, token } => {
                // Only our own lock (a --break-lock elsewhere may have replaced it).
                let ours = marketdb_output::read_regular(path, 1 << 16)
                    .ok()
                    .flatten()
                    .is_some_and(|b| &b == token);
                if ours && let Err(e) = OutputGate::new().remove(path) {
                    tracing::warn!(error = %e, "cannot remove the dataset lock");
                }
            }
            DatasetLock::Store { released, remote } if !*released => {
                tracing::warn!(
                    url = %remote.url,
                    "an export ended without releasing its object-store lock; the next export \
                     names it and --break-lock removes it"
                );
            }
            DatasetLock::Store { .. } => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_at_a_time_and_a_dead_holder_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let gate = OutputGate::new();
        std::fs::create_dir_all(dir.path().join("_marketdb")).unwrap();
        let first = DatasetLock::local(&gate, dir.path(), false).unwrap();
        let err = DatasetLock::local(&gate, dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another export is publishing"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(!dir.path().join(LOCK_PATH).exists(), "released on drop");
        // A lock of a process that is gone, on this host.
        let dead = LockHolder {
            host: host_name(),
            pid: 0,
            started_ms: 0,
            tool: "marketdb".into(),
        };
        std::fs::write(
            dir.path().join(LOCK_PATH),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let err = DatasetLock::local(&gate, dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no longer running") && err.contains("--break-lock"),
            "{err}"
        );
        let broken = DatasetLock::local(&gate, dir.path(), true).unwrap();
        drop(broken);
        assert!(!dir.path().join(LOCK_PATH).exists());
    }
}
