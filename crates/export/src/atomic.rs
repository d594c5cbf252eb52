//! Atomic file output: every file is written to a hidden temporary name in its final
//! folder (`.{name}.tmp-{pid}-{n}`), hashed (SHA-256) as it is written, flushed and
//! fsynced, then renamed over the final name, so a reader never sees a final name with
//! partial content. [`AtomicFile`] is the writer (also over a caller's [`Stream`], where
//! nothing is renamed), [`PendingFile`] a finished but not yet renamed file (CSV parts and
//! NumPy files wait for the whole export), [`FileRecord`] what the manifest lists, [`Dest`]
//! where a single-file export goes. A temporary file that is never committed is removed
//! when its handle is dropped; errors name the final path. Folder fsyncs are separate
//! ([`sync_dir`]) so a caller syncs each folder once, not once per file.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A file written by an export: its path relative to the export root (`/` separated), its
/// SHA-256 in lowercase hex, and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the export root, with `/` separators.
    pub path: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The hidden temporary sibling of `path`: `.{name}.tmp-{pid}-{n}`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A caller's stream (stdout, a pipe, a buffer) that an export writes to instead of a file.
pub(crate) struct Stream(pub Box<dyn Write + Send>);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

/// The label a stream output is reported under.
pub(crate) const STREAM_LABEL: &str = "-";

/// Where a single-file export (CSV, Parquet, statistics) writes.
#[derive(Debug)]
pub(crate) enum Dest {
    /// A file, written under a temporary name and renamed when complete.
    File(PathBuf),
    /// A caller's stream.
    Stream(Stream),
}

impl Dest {
    /// The path reported for this output (`-` for a stream).
    pub(crate) fn label(&self) -> PathBuf {
        match self {
            Dest::File(p) => p.clone(),
            Dest::Stream(_) => PathBuf::from(STREAM_LABEL),
        }
    }

    /// Creates the folder of a file output.
    pub(crate) fn prepare(&self) -> Result<()> {
        if let Dest::File(path) = self
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            create_dir_all(parent)?;
        }
        Ok(())
    }

    /// Starts writing (unhashed).
    pub(crate) fn open(self) -> Result<AtomicFile> {
        match self {
            Dest::File(p) => AtomicFile::create_unhashed(p),
            Dest::Stream(s) => Ok(AtomicFile::stream(s)),
        }
    }
}

#[derive(Debug)]
enum Out {
    File(BufWriter<File>),
    Stream(BufWriter<Stream>),
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A file being written under a temporary name (or straight to a stream); see the module
/// docs.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    target: PathBuf,
    /// `None` for a stream.
    temp: Option<PathBuf>,
    out: Option<Out>,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl AtomicFile {
    /// Creates the temporary sibling of `target` (the folder must exist); the content is
    /// hashed as it is written.
    pub(crate) fn create(target: impl Into<PathBuf>) -> Result<AtomicFile> {
        let mut f = AtomicFile::create_unhashed(target)?;
        f.hasher = Some(Sha256::new());
        Ok(f)
    }

    /// Like [`AtomicFile::create`] without hashing (the SHA-256 of the result is empty).
    pub(crate) fn create_unhashed(target: impl Into<PathBuf>) -> Result<AtomicFile> {
        let target = target.into();
        let temp = temp_path(&target);
        let file = File::create(&temp).map_err(|e| Error::io(&target, e))?;
        Ok(AtomicFile {
            target,
            temp: Some(temp),
            out: Some(Out::File(BufWriter::with_capacity(1 << 20, file))),
            hasher: None,
            bytes: 0,
        })
    }

    /// Writes to `stream` instead of a file: nothing is renamed, and whatever was written
    /// before a failure has reached the stream.
    pub(crate) fn stream(stream: Stream) -> AtomicFile {
        AtomicFile {
            target: PathBuf::from(STREAM_LABEL),
            temp: None,
            out: Some(Out::Stream(BufWriter::with_capacity(1 << 16, stream))),
            hasher: None,
            bytes: 0,
        }
    }

    /// The final path (`-` for a stream).
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Appends `buf`.
    pub(crate) fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let res = match self.out.as_mut() {
            Some(Out::File(f)) => f.write_all(buf),
            Some(Out::Stream(s)) => s.write_all(buf),
            None => return Err(closed(&self.target)),
        };
        res.map_err(|e| Error::io(&self.target, e))?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(buf);
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Flushes and (when `fsync`) syncs the temporary file; it is not renamed yet.
    pub(crate) fn finish(mut self, fsync: bool) -> Result<PendingFile> {
        match self.out.take() {
            None => return Err(closed(&self.target)),
            Some(Out::Stream(mut s)) => s.flush().map_err(|e| Error::io(&self.target, e))?,
            Some(Out::File(out)) => {
                let file = out
                    .into_inner()
                    .map_err(|e| Error::io(&self.target, e.into_error()))?;
                if fsync {
                    file.sync_all().map_err(|e| Error::io(&self.target, e))?;
                }
            }
        }
        let sha256 = self
            .hasher
            .take()
            .map(|h| hex(&h.finalize()))
            .unwrap_or_default();
        Ok(PendingFile {
            target: std::mem::take(&mut self.target),
            temp: self.temp.take(),
            sha256,
            bytes: self.bytes,
        })
    }

    /// Finishes and renames in one step.
    pub(crate) fn commit(self, fsync: bool) -> Result<(String, u64)> {
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
            Some(Out::File(out)) => out.flush(),
            Some(Out::Stream(out)) => out.flush(),
            None => Ok(()),
        }
    }
}

fn closed(path: &Path) -> Error {
    Error::io(path, io::Error::other("file already finished"))
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
pub(crate) struct PendingFile {
    target: PathBuf,
    temp: Option<PathBuf>,
    sha256: String,
    bytes: u64,
}

impl PendingFile {
    /// Renames the temporary file over the final name (nothing for a stream); returns
    /// (sha256, bytes).
    pub(crate) fn commit(mut self) -> Result<(String, u64)> {
        if let Some(temp) = self.temp.take()
            && let Err(e) = fs::rename(&temp, &self.target)
        {
            remove_quietly(&temp);
            return Err(Error::io(&self.target, e));
        }
        Ok((std::mem::take(&mut self.sha256), self.bytes))
    }

    /// The final path.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            remove_quietly(&temp);
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary file");
    }
}

/// Writes `bytes` to `root/rel` atomically and returns its record.
pub(crate) fn write_atomic(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<FileRecord> {
    let (pending, record) = write_pending(root, rel, bytes, fsync)?;
    pending.commit()?;
    Ok(record)
}

/// Writes `bytes` to the temporary sibling of `root/rel` and returns it, not yet renamed,
/// with the record it will have.
pub(crate) fn write_pending(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<(PendingFile, FileRecord)> {
    let mut f = AtomicFile::create(root.join(rel))?;
    f.write_all(bytes)?;
    let pending = f.finish(fsync)?;
    let record = FileRecord {
        path: rel.to_owned(),
        sha256: pending.sha256.clone(),
        bytes: pending.bytes,
    };
    Ok((pending, record))
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Fsyncs a folder so the renames inside it are durable (a no-op where folders cannot be
/// opened, such as Windows).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_renames_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let rec = write_atomic(dir.path(), "a.bin", b"abc", true).unwrap();
        assert_eq!(
            rec.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(rec.bytes, 3);
        assert_eq!(fs::read(dir.path().join("a.bin")).unwrap(), b"abc");
        assert_eq!(names(dir.path()), vec!["a.bin"]);
        // Overwrites an existing file.
        write_atomic(dir.path(), "a.bin", b"xyz", false).unwrap();
        assert_eq!(fs::read(dir.path().join("a.bin")).unwrap(), b"xyz");
    }

    #[test]
    fn dropped_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = AtomicFile::create(dir.path().join("b.bin")).unwrap();
        f.write_all(b"partial").unwrap();
        assert_eq!(
            names(dir.path()).len(),
            1,
            "the temp file exists while writing"
        );
        drop(f);
        assert!(names(dir.path()).is_empty());
        let mut f = AtomicFile::create(dir.path().join("c.bin")).unwrap();
        f.write_all(b"done").unwrap();
        let pending = f.finish(true).unwrap();
        assert_eq!(pending.bytes, 4);
        assert!(!pending.target().exists());
        drop(pending);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn rename_failure_cleans_up_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A folder under the final name makes the rename fail.
        fs::create_dir(dir.path().join("d.bin")).unwrap();
        fs::write(dir.path().join("d.bin").join("x"), b"x").unwrap();
        let err = write_atomic(dir.path(), "d.bin", b"data", false).unwrap_err();
        assert!(err.to_string().contains("d.bin"), "{err}");
        assert_eq!(names(dir.path()), vec!["d.bin"]);
        sync_dir(dir.path()).unwrap();
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
