//! Atomic file output: every file is written to a hidden temporary name in its final folder
//! (`.{name}.tmp-{pid}-{n}`), optionally hashed (SHA-256) as it is written, flushed and
//! fsynced, then renamed over the final name, so a reader never sees a final name with
//! partial content. [`AtomicFile`] is the writer (made only by [`OutputGate::create`]),
//! [`PendingFile`] a finished file not yet renamed (multi-file outputs rename all theirs
//! together), [`Committed`] what a rename produced. The gate checks the final name again
//! just before the rename. A temporary file that is never committed is removed when its
//! handle is dropped; errors name the final path. Folder fsyncs are separate
//! ([`sync_dir`]) so a caller syncs each folder once, not once per file.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use sha2::{Digest, Sha256};

use crate::{CheckedPath, Error, OutputGate, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The marker between a file's name and its owner in a temporary name.
pub(crate) const TEMP_MARK: &str = ".tmp-";

/// The hidden temporary sibling of `path`: `.{name}.tmp-{pid}-{n}`.
pub fn temp_path(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_MARK}{}-{n}", std::process::id()))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A file being written under a temporary name; see the module docs.
#[derive(Debug)]
pub struct AtomicFile {
    gate: OutputGate,
    /// The final name as the caller gave it (errors and re-checks use it).
    target: PathBuf,
    /// The file the rename replaces (a symlink's final target).
    resolved: PathBuf,
    replaces: bool,
    temp: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl AtomicFile {
    pub(crate) fn create(
        gate: OutputGate,
        target: PathBuf,
        checked: CheckedPath,
    ) -> Result<AtomicFile> {
        let temp = temp_path(&checked.path);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io("create", &target, e))?;
        Ok(AtomicFile {
            gate,
            target,
            resolved: checked.path,
            replaces: checked.exists,
            temp: Some(temp),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: None,
            bytes: 0,
        })
    }

    /// Hashes the content (SHA-256) as it is written.
    pub fn hashed(mut self) -> AtomicFile {
        self.hasher = Some(Sha256::new());
        self
    }

    /// The final path as given.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether a regular file was at the final path when the file was started.
    pub fn replaces(&self) -> bool {
        self.replaces
    }

    /// The temporary file, for a library that writes by path (HDF5): it may rewrite the
    /// file in place; the handle still commits or removes it.
    pub fn temp_path(&self) -> Option<&Path> {
        self.temp.as_deref()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(closed(&self.target));
        };
        out.write_all(buf)
            .map_err(|e| Error::io("write", &self.target, e))?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(buf);
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Flushes and (when `fsync`) syncs the temporary file; it is not renamed yet.
    pub fn finish(mut self, fsync: bool) -> Result<PendingFile> {
        let Some(out) = self.out.take() else {
            return Err(closed(&self.target));
        };
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", &self.target, e.into_error()))?;
        if fsync {
            file.sync_all()
                .map_err(|e| Error::io("sync", &self.target, e))?;
        }
        drop(file);
        // A library that rewrote the temporary file by path (HDF5) counts its bytes.
        if let Some(temp) = self.temp.as_ref()
            && self.bytes == 0
            && let Ok(m) = fs::metadata(temp)
        {
            self.bytes = m.len();
        }
        let sha256 = self
            .hasher
            .take()
            .map(|h| hex(&h.finalize()))
            .unwrap_or_default();
        Ok(PendingFile {
            gate: self.gate.clone(),
            target: std::mem::take(&mut self.target),
            resolved: std::mem::take(&mut self.resolved),
            replaces: self.replaces,
            temp: self.temp.take(),
            sha256,
            bytes: self.bytes,
        })
    }

    /// Finishes and renames in one step.
    pub fn commit(self, fsync: bool) -> Result<Committed> {
        self.finish(fsync)?.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.write_all(buf) {
            Ok(()) => Ok(buf.len()),
            // Keep the OS error (its kind tells a full disk or a closed pipe apart).
            Err(Error::Io { source, .. }) => Err(source),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

fn closed(path: &Path) -> Error {
    Error::io("write", path, io::Error::other("file already finished"))
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Close the file before removing it (a full disk may refuse the final flush).
        let out = self.out.take();
        drop(out);
        if let Some(temp) = self.temp.take() {
            remove_quietly(&temp);
        }
    }
}

/// A complete, synced temporary file waiting to be renamed to its final name.
#[derive(Debug)]
pub struct PendingFile {
    gate: OutputGate,
    target: PathBuf,
    resolved: PathBuf,
    replaces: bool,
    temp: Option<PathBuf>,
    sha256: String,
    bytes: u64,
}

/// A file renamed into place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The final path as given.
    pub path: PathBuf,
    /// SHA-256 of the content, lowercase hex (empty when not hashed).
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Whether it replaced a regular file.
    pub replaced: bool,
}

impl PendingFile {
    /// Checks the final name again (the database may have appeared there meanwhile), then
    /// renames the temporary file over it.
    pub fn commit(mut self) -> Result<Committed> {
        let Some(temp) = self.temp.take() else {
            return Err(closed(&self.target));
        };
        let checked = match self.gate.check_file(&self.target) {
            Ok(c) if c.path == self.resolved => c,
            Ok(c) => {
                remove_quietly(&temp);
                return Err(Error::refused(
                    &self.target,
                    format!(
                        "now leads to {} instead of {}; nothing was replaced",
                        c.path.display(),
                        self.resolved.display()
                    ),
                ));
            }
            Err(e) => {
                remove_quietly(&temp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&temp, &checked.path) {
            remove_quietly(&temp);
            return Err(Error::io("rename into", &self.target, e));
        }
        Ok(Committed {
            path: std::mem::take(&mut self.target),
            sha256: std::mem::take(&mut self.sha256),
            bytes: self.bytes,
            replaced: checked.exists || self.replaces,
        })
    }

    /// The final path as given.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The folder the file is renamed into (to fsync once for many files).
    pub fn folder(&self) -> Option<&Path> {
        self.resolved.parent()
    }

    /// SHA-256 of the content (empty when not hashed).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            remove_quietly(&temp);
        }
    }
}

pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary file");
    }
}

/// Fsyncs a folder so the renames inside it are durable (a no-op where folders cannot be
/// opened, such as Windows).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io("sync folder", dir, e))?;
        d.sync_all().map_err(|e| Error::io("sync folder", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Publishes the finished file `temp` as `path` only if nothing is at `path` yet (a hard
/// link, so a file that appeared meanwhile is never replaced; a rename where the file
/// system has no hard links), then removes `temp`. Returns whether `temp` became `path`
/// (false: something was there first). For the database file a pool creates.
pub fn publish_new(temp: &Path, path: &Path) -> Result<bool> {
    let linked = match fs::hard_link(temp, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => fs::rename(temp, path).map(|()| true),
        Ok(()) => Ok(true),
    };
    remove_quietly(temp);
    linked.map_err(|e| Error::io("create", path, e))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_before_commit_and_drop_removes_the_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        let gate = OutputGate::new();
        let mut f = gate.create(&target).unwrap().hashed();
        f.write_all(b"abc").unwrap();
        assert!(!target.exists());
        let temp = f.temp_path().unwrap().to_path_buf();
        assert!(temp.exists());
        drop(f);
        assert!(!temp.exists() && !target.exists());

        let mut f = gate.create(&target).unwrap().hashed();
        f.write_all(b"abc").unwrap();
        let done = f.commit(true).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"abc");
        assert_eq!(done.bytes, 3);
        assert!(!done.replaced);
        assert_eq!(
            done.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let again = gate.create(&target).unwrap();
        assert!(again.replaces());
        assert!(again.commit(false).unwrap().replaced);
        assert_eq!(fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn a_database_that_appears_at_the_target_before_the_rename_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let gate = OutputGate::protecting(&db);
        let mut f = gate.create(&db.with_file_name("part.parquet")).unwrap();
        f.write_all(b"x").unwrap();
        let pending = f.finish(false).unwrap();
        // Another program puts a SQLite file where the export is about to rename to.
        let mut bytes = crate::SQLITE_HEADER.to_vec();
        bytes.extend_from_slice(&[7; 100]);
        fs::write(dir.path().join("part.parquet"), &bytes).unwrap();
        let err = pending.commit().unwrap_err();
        assert!(err.to_string().contains("SQLite"), "{err}");
        assert_eq!(fs::read(dir.path().join("part.parquet")).unwrap(), bytes);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn publish_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, path) = (dir.path().join(".t"), dir.path().join("db"));
        fs::write(&temp, b"new").unwrap();
        assert!(publish_new(&temp, &path).unwrap());
        assert!(!temp.exists());
        fs::write(&temp, b"newer").unwrap();
        assert!(!publish_new(&temp, &path).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!temp.exists());
    }
}
