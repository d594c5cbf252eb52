//! [`OutputGate`]: the checks every output path passes before anything is written to it, and
//! again just before a finished file is renamed into place (so a database that appeared at
//! the path meanwhile is not replaced either).
//!
//! The rules:
//! - a symlink is followed (up to [`MAX_LINKS`] hops) and its target written, so the link
//!   stays a link;
//! - the protected database, its `-wal`, `-shm` and `-journal` files (under any spelling:
//!   compared by device and inode when they exist, by normalised path otherwise, so a
//!   hardlink is caught too), and any file that starts with the SQLite header are refused;
//! - anything that is not a regular file or a missing path (a folder where a file is
//!   expected, a FIFO, a device, a socket) is refused, and a folder output must be a folder.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{Error, Result, atomic::AtomicFile};

/// Symlink hops followed before giving up (the same bound as Linux's `ELOOP`).
pub const MAX_LINKS: usize = 40;

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The suffixes of the files SQLite keeps beside a database.
pub const SQLITE_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The only way marketdb creates an output file; see the module docs for the rules. Cheap
/// to clone.
#[derive(Clone, Debug, Default)]
pub struct OutputGate {
    /// The database and its sidecar files, as given.
    protected: Arc<[PathBuf]>,
}

/// An output path that passed the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedPath {
    /// The path to create or replace (a symlink's final target).
    pub path: PathBuf,
    /// Whether something is already there (a regular file for a file output, a folder for a
    /// folder output).
    pub exists: bool,
}

impl OutputGate {
    /// A gate that protects no database of its own (SQLite files are still refused).
    pub fn new() -> OutputGate {
        OutputGate::default()
    }

    /// A gate that also protects the database at `db` and the files SQLite keeps beside it.
    pub fn protecting(db: &Path) -> OutputGate {
        let mut protected = vec![db.to_path_buf()];
        for suffix in SQLITE_SIDECARS {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            protected.push(PathBuf::from(name));
        }
        OutputGate {
            protected: protected.into(),
        }
    }

    /// The protected files (the database first), as given.
    pub fn protected(&self) -> &[PathBuf] {
        &self.protected
    }

    /// Checks an output file path: see the module docs.
    pub fn check_file(&self, out: &Path) -> Result<CheckedPath> {
        if out.as_os_str().is_empty() {
            return Err(Error::refused(out, "is empty; give a file path"));
        }
        refuse_special(out, FILES_ONLY)?;
        let path = follow_links(out)?;
        let shown = |reason: &str| -> Error {
            if path == out {
                Error::refused(out, reason)
            } else {
                Error::refused(out, format!("links to {}, which {reason}", path.display()))
            }
        };
        if let Some(f) = self.protected_match(&path) {
            return Err(shown(&format!(
                "is the open database ({}); give another file name",
                f.display()
            )));
        }
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CheckedPath {
                path,
                exists: false,
            }),
            Err(e) => Err(Error::io("inspect", &path, e)),
            Ok(m) if m.is_file() => {
                if starts_with_sqlite_header(&path) {
                    return Err(shown(
                        "is a SQLite database; marketdb never replaces one with an output \
                         (delete it first if you mean to)",
                    ));
                }
                Ok(CheckedPath { path, exists: true })
            }
            Ok(m) if m.is_dir() => Err(shown("is a folder; give a file path")),
            Ok(m) => Err(shown(&format!("is {}; {FILES_ONLY}", kind(&m)))),
        }
    }

    /// Checks an output folder path: not the database or its files, a folder if it exists.
    /// `what` names the output in messages (`a NumPy export`...). What the folder may
    /// hold is the caller's rule.
    pub fn check_folder(&self, out: &Path, what: &str) -> Result<CheckedPath> {
        if out.as_os_str().is_empty() {
            return Err(Error::refused(out, "is empty; give a folder path"));
        }
        refuse_special(out, &format!("{what} writes a folder"))?;
        let path = follow_links(out)?;
        if let Some(f) = self.protected_match(&path) {
            return Err(Error::refused(
                out,
                format!("is the open database ({})", f.display()),
            ));
        }
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CheckedPath {
                path,
                exists: false,
            }),
            Err(e) => Err(Error::io("inspect", &path, e)),
            Ok(m) if !m.is_dir() => Err(Error::refused(
                out,
                format!("is {}; {what} writes a folder", kind(&m)),
            )),
            Ok(_) => Ok(CheckedPath { path, exists: true }),
        }
    }

    /// Checks the path of a database a command will create or write (`demo --db`): a
    /// regular file or nothing (symlinks followed), never a folder, FIFO, device or socket,
    /// and not a file this gate protects.
    pub fn check_database(&self, db: &Path) -> Result<CheckedPath> {
        if db.as_os_str().is_empty() {
            return Err(Error::refused(db, "is empty; give a database file path"));
        }
        let path = follow_links(db)?;
        if let Some(f) = self.protected_match(&path) {
            return Err(Error::refused(
                db,
                format!("is the open database ({})", f.display()),
            ));
        }
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CheckedPath {
                path,
                exists: false,
            }),
            Err(e) => Err(Error::io("inspect", &path, e)),
            Ok(m) if m.is_file() => Ok(CheckedPath { path, exists: true }),
            Ok(m) => Err(Error::refused(
                db,
                format!("is {}; a database is a regular file", kind(&m)),
            )),
        }
    }

    /// Checks `target` and starts writing its replacement under a hidden temporary name
    /// beside it (its folder is created first). Nothing is visible under the final name
    /// until the file is committed.
    pub fn create(&self, target: &Path) -> Result<AtomicFile> {
        let checked = self.check_file(target)?;
        if let Some(parent) = checked.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        AtomicFile::create(self.clone(), target.to_path_buf(), checked)
    }

    /// Creates `path` with `bytes` only if nothing is there (`O_EXCL`), synced; returns
    /// false when something already was. For lock files, whose whole point is that two
    /// writers cannot both create them.
    pub fn create_exclusive(&self, path: &Path, bytes: &[u8]) -> Result<bool> {
        use std::io::Write;
        self.check_file(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        let mut f = match fs::File::options().write(true).create_new(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(Error::io("create", path, e)),
        };
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", path, e))?;
        Ok(true)
    }

    /// Removes `path`, an earlier output (a stale part, a replaced manifest, a partition
    /// whose rows are gone), after the checks of a file output: never the protected database
    /// or its files, a SQLite file, or anything but a regular file (a link to one is removed
    /// itself, its target kept). A missing path is not an error; returns whether something
    /// was removed.
    pub fn remove(&self, path: &Path) -> Result<bool> {
        let checked = self.check_file(path)?;
        if !checked.exists && fs::symlink_metadata(path).is_err() {
            return Ok(false);
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    /// Creates `dir` and its parents, refusing a path that is protected or not a folder.
    pub fn create_dir_all(&self, dir: &Path) -> Result<PathBuf> {
        let checked = self.check_folder(dir, "this output")?;
        if !checked.exists {
            create_dir_all(&checked.path)?;
        }
        Ok(checked.path)
    }

    /// The protected file that `path` names, if any.
    fn protected_match(&self, path: &Path) -> Option<&Path> {
        self.protected
            .iter()
            .find(|f| same_file(path, f))
            .map(PathBuf::as_path)
    }
}

/// Refuses a path that the system resolves to a FIFO, socket or device, whatever its link
/// says: `/proc/self/fd/1` reads as a link to `pipe:[...]`, which names no file, but the
/// system opens the pipe itself.
fn refuse_special(out: &Path, tail: &str) -> Result<()> {
    match fs::metadata(out) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            Err(Error::refused(out, format!("is {}; {tail}", kind(&m))))
        }
        _ => Ok(()),
    }
}

/// The end of a refusal of a special file where a file is expected.
const FILES_ONLY: &str =
    "marketdb writes regular files only (use '-' for stdout where the command allows it)";

/// Creates `dir` and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))
}

/// Follows `path` through symlinks to the path that a write should replace. A dangling
/// link resolves to its (missing) target, which the write then creates.
pub fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(|e| Error::io("read link", &p, e))?;
                p = match p.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::refused(
        path,
        "has too many levels of symbolic links",
    ))
}

/// What kind of file-system node `m` describes, in words.
pub fn kind(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// `path` made absolute with its folder canonicalised (the file itself may not exist).
fn normalise(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(name))
}

/// Whether `a` and `b` name the same file: same inode when both exist, same normalised
/// path otherwise.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    match (normalise(a), normalise(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whether the regular file at `path` starts with the SQLite header.
pub fn starts_with_sqlite_header(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    crate::read::open_regular(path)
        .ok()
        .and_then(|mut f| f.read_exact(&mut head).ok())
        .is_some_and(|()| &head == SQLITE_HEADER)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> PathBuf {
        let p = dir.join("m.db");
        let mut bytes = SQLITE_HEADER.to_vec();
        bytes.extend_from_slice(&[0; 100]);
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn the_database_and_its_sidecars_are_refused_under_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let gate = OutputGate::protecting(&db(dir.path()));
        for name in [
            "m.db",
            "m.db-wal",
            "m.db-shm",
            "m.db-journal",
            "./m.db",
            "x/../m.db",
        ] {
            fs::create_dir_all(dir.path().join("x")).unwrap();
            let err = gate.check_file(&dir.path().join(name)).unwrap_err();
            assert!(
                err.to_string().contains("is the open database"),
                "{name}: {err}"
            );
            assert!(gate.create(&dir.path().join(name)).is_err(), "{name}");
        }
        #[cfg(unix)]
        {
            let hard = dir.path().join("hard.csv");
            fs::hard_link(dir.path().join("m.db"), &hard).unwrap();
            let err = gate.check_file(&hard).unwrap_err();
            assert!(err.to_string().contains("is the open database"), "{err}");
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(dir.path().join("m.db"), &link).unwrap();
            let err = gate.check_file(&link).unwrap_err();
            assert!(err.to_string().contains("links to"), "{err}");
        }
    }

    #[test]
    fn other_sqlite_files_folders_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = db(dir.path());
        let gate = OutputGate::new();
        let err = gate.check_file(&other).unwrap_err();
        assert!(err.to_string().contains("SQLite database"), "{err}");
        let err = gate.check_file(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
        #[cfg(unix)]
        {
            let err = gate.check_file(Path::new("/dev/null")).unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
            let err = gate.check_folder(Path::new("/dev/null"), "x").unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
        }
        let plain = dir.path().join("plain.csv");
        fs::write(&plain, "a\n").unwrap();
        assert!(gate.check_file(&plain).unwrap().exists);
        assert!(!gate.check_file(&dir.path().join("new.csv")).unwrap().exists);
    }

    #[cfg(unix)]
    #[test]
    fn link_loops_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = OutputGate::new().check_file(&a).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }
}
