//! The exports' file output, over the output gate ([`marketdb_output`]): every file is
//! created by [`OutputGate::create`] (checked, written under a hidden temporary name,
//! fsynced, checked again and renamed), or written to a caller's [`Stream`] where nothing is
//! renamed. [`AtomicFile`] is the writer for either, [`PendingFile`] a finished file not yet
//! renamed (CSV parts and NumPy files wait for the whole export), [`FileRecord`] what the
//! manifest lists, [`Dest`] where a single-file export goes. Errors name the final path.

use std::{
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use marketdb_output::OutputGate;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub(crate) use marketdb_output::{hex, sync_dir};

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

/// A caller's stream (stdout, a pipe, a buffer) that an export writes to instead of a file.
pub(crate) struct Stream(pub Box<dyn Write + Send>);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The label a stream output is reported under.
pub(crate) const STREAM_LABEL: &str = "-";

/// Where a single-file export (CSV, Parquet, statistics) writes.
#[derive(Debug)]
pub(crate) enum Dest {
    /// A file, created through the gate and renamed when complete.
    File(OutputGate, PathBuf),
    /// A caller's stream.
    Stream(Stream),
}

impl Dest {
    /// The path reported for this output (`-` for a stream).
    pub(crate) fn label(&self) -> PathBuf {
        match self {
            Dest::File(_, p) => p.clone(),
            Dest::Stream(_) => PathBuf::from(STREAM_LABEL),
        }
    }

    /// Starts writing (unhashed).
    pub(crate) fn open(self) -> Result<AtomicFile> {
        match self {
            Dest::File(gate, p) => AtomicFile::create_unhashed(&gate, &p),
            Dest::Stream(s) => Ok(AtomicFile::stream(s)),
        }
    }
}

#[derive(Debug)]
enum Out {
    File(Box<marketdb_output::AtomicFile>),
    Stream(BufWriter<Stream>),
}

/// A file being written under a temporary name (or straight to a stream); see the module
/// docs.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    target: PathBuf,
    out: Option<Out>,
}

impl AtomicFile {
    /// Starts `target` through the gate; the content is hashed as it is written.
    pub(crate) fn create(gate: &OutputGate, target: &Path) -> Result<AtomicFile> {
        Ok(AtomicFile {
            target: target.to_path_buf(),
            out: Some(Out::File(Box::new(gate.create(target)?.hashed()))),
        })
    }

    /// Like [`AtomicFile::create`] without hashing (the SHA-256 of the result is empty).
    pub(crate) fn create_unhashed(gate: &OutputGate, target: &Path) -> Result<AtomicFile> {
        Ok(AtomicFile {
            target: target.to_path_buf(),
            out: Some(Out::File(Box::new(gate.create(target)?))),
        })
    }

    /// Writes to `stream` instead of a file: nothing is renamed, and whatever was written
    /// before a failure has reached the stream.
    pub(crate) fn stream(stream: Stream) -> AtomicFile {
        AtomicFile {
            target: PathBuf::from(STREAM_LABEL),
            out: Some(Out::Stream(BufWriter::with_capacity(1 << 16, stream))),
        }
    }

    /// The final path (`-` for a stream).
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Appends `buf`.
    pub(crate) fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        match self.out.as_mut() {
            Some(Out::File(f)) => Ok(marketdb_output::AtomicFile::write_all(f, buf)?),
            Some(Out::Stream(s)) => s.write_all(buf).map_err(|e| Error::io(&self.target, e)),
            None => Err(closed(&self.target)),
        }
    }

    /// Flushes and (when `fsync`) syncs the temporary file; it is not renamed yet.
    pub(crate) fn finish(mut self, fsync: bool) -> Result<PendingFile> {
        match self.out.take() {
            None => Err(closed(&self.target)),
            Some(Out::Stream(mut s)) => {
                s.flush().map_err(|e| Error::io(&self.target, e))?;
                Ok(PendingFile {
                    target: std::mem::take(&mut self.target),
                    file: None,
                })
            }
            Some(Out::File(f)) => Ok(PendingFile {
                target: std::mem::take(&mut self.target),
                file: Some(f.finish(fsync)?),
            }),
        }
    }

    /// Finishes and renames in one step; returns (sha256, bytes).
    pub(crate) fn commit(self, fsync: bool) -> Result<(String, u64)> {
        self.finish(fsync)?.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.out.as_mut() {
            Some(Out::File(f)) => f.write(buf),
            Some(Out::Stream(s)) => s.write(buf),
            None => Err(io::Error::other("file already finished")),
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

/// A complete, synced temporary file waiting to be renamed to its final name (or a
/// finished stream).
#[derive(Debug)]
pub(crate) struct PendingFile {
    target: PathBuf,
    file: Option<marketdb_output::PendingFile>,
}

impl PendingFile {
    /// Renames the temporary file over the final name through the gate's second check
    /// (nothing for a stream); returns (sha256, bytes).
    pub(crate) fn commit(self) -> Result<(String, u64)> {
        match self.file {
            None => Ok((String::new(), 0)),
            Some(f) => {
                let done = f.commit()?;
                Ok((done.sha256, done.bytes))
            }
        }
    }

    /// The gate's pending file (none for a stream), for a [`marketdb_output::FileSet`].
    pub(crate) fn into_inner(self) -> Option<marketdb_output::PendingFile> {
        self.file
    }

    /// The final path.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// SHA-256 of the content (empty when not hashed).
    pub(crate) fn sha256(&self) -> &str {
        self.file.as_ref().map_or("", |f| f.sha256())
    }

    /// Size in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.bytes())
    }
}

/// Writes `bytes` to `root/rel` atomically through the gate and returns its record.
pub(crate) fn write_atomic(
    gate: &OutputGate,
    root: &Path,
    rel: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<FileRecord> {
    let (pending, record) = write_pending(gate, root, rel, bytes, fsync)?;
    pending.commit()?;
    Ok(record)
}

/// Writes `bytes` to the temporary sibling of `root/rel` and returns it, not yet renamed,
/// with the record it will have.
pub(crate) fn write_pending(
    gate: &OutputGate,
    root: &Path,
    rel: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<(PendingFile, FileRecord)> {
    let mut f = AtomicFile::create(gate, &root.join(rel))?;
    f.write_all(bytes)?;
    let pending = f.finish(fsync)?;
    let record = FileRecord {
        path: rel.to_owned(),
        sha256: pending.sha256().to_owned(),
        bytes: pending.bytes(),
    };
    Ok((pending, record))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::fs;

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
        let gate = OutputGate::new();
        let rec = write_atomic(&gate, dir.path(), "a.bin", b"abc", true).unwrap();
        assert_eq!(
            rec.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(rec.bytes, 3);
        assert_eq!(fs::read(dir.path().join("a.bin")).unwrap(), b"abc");
        assert_eq!(names(dir.path()), vec!["a.bin"]);
        // Overwrites an existing file.
        write_atomic(&gate, dir.path(), "a.bin", b"xyz", false).unwrap();
        assert_eq!(fs::read(dir.path().join("a.bin")).unwrap(), b"xyz");
    }

    #[test]
    fn dropped_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let gate = OutputGate::new();
        let mut f = AtomicFile::create(&gate, &dir.path().join("b.bin")).unwrap();
        f.write_all(b"partial").unwrap();
        assert_eq!(
            names(dir.path()).len(),
            1,
            "the temp file exists while writing"
        );
        drop(f);
        assert!(names(dir.path()).is_empty());
        let mut f = AtomicFile::create(&gate, &dir.path().join("c.bin")).unwrap();
        f.write_all(b"done").unwrap();
        let pending = f.finish(true).unwrap();
        assert_eq!(pending.bytes(), 4);
        assert!(!pending.target().exists());
        drop(pending);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_folder_at_the_final_name_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d.bin")).unwrap();
        fs::write(dir.path().join("d.bin").join("x"), b"x").unwrap();
        let err =
            write_atomic(&OutputGate::new(), dir.path(), "d.bin", b"data", false).unwrap_err();
        assert!(err.to_string().contains("d.bin"), "{err}");
        assert_eq!(names(dir.path()), vec!["d.bin"]);
        sync_dir(dir.path()).unwrap();
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
