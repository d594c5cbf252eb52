//! Where an export may write. Before anything is written, an output path is resolved and
//! checked ([`resolve_file`] for CSV, Parquet and statistics files, [`resolve_folder`] for
//! NumPy folders) so that no export can destroy a user's data:
//! - a symlink is followed (up to [`MAX_LINKS`] hops) and its target written, so the link
//!   stays a link;
//! - the open database, its `-wal`, `-shm` and `-journal` files, and any file that starts
//!   with the SQLite header are refused;
//! - anything that is not a regular file or a missing path (a folder where a file is
//!   expected, a FIFO, a device, a socket) is refused;
//! - a NumPy folder must be new, empty, or a previous marketdb export: it holds a
//!   `manifest.json`, or nothing but interval folders (`1m/`, `1h/`...), which is what an
//!   export interrupted before its manifest leaves.
//!
//! It also removes stale temporary files of earlier exports whose process is gone
//! ([`sweep_stale_temps`]). It writes no export content itself.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use marketdb_model::Freq;

use crate::{Error, Result, manifest::MANIFEST_NAME};

/// Symlink hops followed before giving up (the same bound as Linux's `ELOOP`).
pub const MAX_LINKS: usize = 40;

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A checked output file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedFile {
    /// The file to replace or create (a symlink's final target).
    pub path: PathBuf,
    /// Whether a regular file is already there (it will be replaced).
    pub replaces: bool,
}

/// Follows `path` through symlinks to the path that a write should replace. A dangling
/// link resolves to its (missing) target, which the export then creates.
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                p = match p.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(refuse(path, "has too many levels of symbolic links"))
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::request("output", path.display(), reason)
}

/// What kind of file-system node `m` describes, in words.
fn kind(m: &fs::Metadata) -> &'static str {
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
    } else {
        "not a regular file"
    }
}

/// The database file and the files SQLite keeps beside it.
fn database_files(db: &Path) -> Vec<PathBuf> {
    let mut out = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        out.push(PathBuf::from(name));
    }
    out
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
fn same_file(a: &Path, b: &Path) -> bool {
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

fn starts_with_sqlite_header(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| &head == SQLITE_HEADER)
        .unwrap_or(false)
}

/// Checks an output file path for an export from the database at `db`; see the module
/// docs for the rules.
pub(crate) fn resolve_file(out: &Path, db: &Path) -> Result<ResolvedFile> {
    if out.as_os_str().is_empty() {
        return Err(refuse(out, "is empty; give a file path"));
    }
    let path = follow_links(out)?;
    let shown = |reason: &str| -> Error {
        if path == out {
            refuse(out, reason.to_owned())
        } else {
            refuse(out, format!("links to {}, which {reason}", path.display()))
        }
    };
    for f in database_files(db) {
        if same_file(&path, &f) {
            return Err(shown(&format!(
                "is the database being exported ({}); give another file name",
                f.display()
            )));
        }
    }
    match fs::metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ResolvedFile {
            path,
            replaces: false,
        }),
        Err(e) => Err(Error::io(&path, e)),
        Ok(m) if m.is_file() => {
            if starts_with_sqlite_header(&path) {
                return Err(shown(
                    "is a SQLite database; an export never replaces one (delete it first \
                     if you mean to)",
                ));
            }
            Ok(ResolvedFile {
                path,
                replaces: true,
            })
        }
        Ok(m) if m.is_dir() => Err(shown("is a folder; give a file path")),
        Ok(m) => Err(shown(&format!(
            "is {}; an export writes regular files only (use '-' for stdout)",
            kind(&m)
        ))),
    }
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
/// The checks every folder output shares: a path, not the database, a folder if it
/// exists. Returns the folder (a symlink's final target) and whether it exists.
fn output_folder(out: &Path, db: &Path, what: &str) -> Result<(PathBuf, bool)> {
    if out.as_os_str().is_empty() {
        return Err(refuse(out, "is empty; give a folder path"));
    }
    let path = follow_links(out)?;
    for f in database_files(db) {
        if same_file(&path, &f) {
            return Err(refuse(
                out,
                format!("is the database being exported ({})", f.display()),
            ));
        }
    }
    match fs::metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((path, false)),
        Err(e) => Err(Error::io(&path, e)),
        Ok(m) if !m.is_dir() => Err(refuse(
            out,
            format!("is {}; {what} writes a folder", kind(&m)),
        )),
        Ok(_) => Ok((path, true)),
    }
}

pub(crate) fn resolve_folder(out: &Path, db: &Path) -> Result<ResolvedFolder> {
    let (path, exists) = output_folder(out, db, "a NumPy export")?;
    if !exists {
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

/// Checks a dataset output folder: new, empty, a previous dataset (it holds
/// `_marketdb/state.json`), or one whose first export was interrupted before its state
/// was written (it holds only the dataset's own folders and temporary files); never the
/// database or a file. Returns the folder (a symlink's final target).
pub(crate) fn resolve_dataset_folder(out: &Path, db: &Path) -> Result<PathBuf> {
    let (path, exists) = output_folder(out, db, "a dataset export")?;
    if !exists || path.join(crate::dataset::STATE_PATH).is_file() {
        return Ok(path);
    }
    let own = |name: &str, is_dir: bool| {
        if is_dir {
            name == "_marketdb"
                || crate::dataset::DatasetKind::ALL
                    .iter()
                    .any(|k| k.dir() == name)
        } else {
            temp_owner(name).is_some()
        }
    };
    let mut others = Vec::new();
    for entry in fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
        let entry = entry.map_err(|e| Error::io(&path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !own(&name, is_dir) && others.len() < 3 {
            others.push(name);
        }
    }
    if others.is_empty() {
        return Ok(path);
    }
    Err(refuse(
        out,
        format!(
            "holds files that are not a marketdb dataset ({}); give a new or empty folder",
            others.join(", ")
        ),
    ))
}

/// The process id in a temporary name made by `atomic.rs` (`.{name}.tmp-{pid}-{n}`).
pub(crate) fn temp_owner(file_name: &str) -> Option<u32> {
    if !file_name.starts_with('.') {
        return None;
    }
    let (_, tail) = file_name.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether the process `pid` is running on this machine. Where that cannot be told (no
/// `/proc`), every process counts as running, so nothing is swept.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// Removes, in `dir` (and below it when `recursive`), temporary files of the export naming
/// scheme whose name starts with `prefix` and whose process has exited: what a killed
/// export leaves. Returns the number removed. Files of running processes are kept.
pub(crate) fn sweep_stale_temps(dir: &Path, prefix: &str, recursive: bool) -> usize {
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
    fn a_dataset_folder_interrupted_before_its_first_state_is_resumed_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let out = dir.path().join("ds");
        // Killed before `_marketdb/state.json` existed: only the dataset's own folders
        // and a temporary file of the dead process.
        fs::create_dir_all(out.join("_marketdb")).unwrap();
        fs::create_dir_all(out.join("klines/freq=1m")).unwrap();
        fs::write(out.join(".state.json.tmp-0-1"), b"").unwrap();
        assert_eq!(resolve_dataset_folder(&out, &db).unwrap(), out);
        // Anything else is not ours to write into.
        fs::write(out.join("notes.txt"), b"mine").unwrap();
        let err = resolve_dataset_folder(&out, &db).unwrap_err();
        assert!(err.to_string().contains("notes.txt"), "{err}");
        fs::remove_file(out.join("notes.txt")).unwrap();
        fs::write(out.join("klines.csv"), b"").unwrap();
        assert!(
            resolve_dataset_folder(&out, &db).is_err(),
            "a file named like no table"
        );
    }

    #[test]
    fn the_database_and_its_sidecars_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        for name in ["m.db", "m.db-wal", "m.db-shm", "m.db-journal", "./m.db"] {
            let err = resolve_file(&dir.path().join(name), &db).unwrap_err();
            assert!(err.to_string().contains("is the database"), "{name}: {err}");
        }
        // The same file under another spelling of the path.
        let other = dir.path().join("sub");
        fs::create_dir(&other).unwrap();
        let err = resolve_file(&other.join("../m.db"), &db).unwrap_err();
        assert!(err.to_string().contains("is the database"), "{err}");
        let err = resolve_folder(&db, &db).unwrap_err();
        assert!(err.to_string().contains("is the database"), "{err}");
    }

    #[test]
    fn any_sqlite_file_is_refused_and_a_regular_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let other = dir.path().join("other.sqlite");
        fs::copy(&db, &other).unwrap();
        let err = resolve_file(&other, &db).unwrap_err().to_string();
        assert!(err.contains("is a SQLite database"), "{err}");
        let csv = dir.path().join("x.csv");
        assert!(!resolve_file(&csv, &db).unwrap().replaces);
        fs::write(&csv, "a,b\n").unwrap();
        let r = resolve_file(&csv, &db).unwrap();
        assert_eq!(
            r,
            ResolvedFile {
                path: csv,
                replaces: true
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_special_files_refused() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let real = dir.path().join("real.csv");
        fs::write(&real, "x").unwrap();
        let link = dir.path().join("link.csv");
        symlink("real.csv", &link).unwrap();
        let r = resolve_file(&link, &db).unwrap();
        assert_eq!(r.path, dir.path().join("real.csv"));
        assert!(r.replaces);
        // A link to the database is the database.
        let to_db = dir.path().join("to_db.csv");
        symlink(&db, &to_db).unwrap();
        let err = resolve_file(&to_db, &db).unwrap_err().to_string();
        assert!(
            err.contains("links to") && err.contains("is the database"),
            "{err}"
        );
        // A dangling link resolves to its missing target.
        let dangling = dir.path().join("dangling.csv");
        symlink("new.csv", &dangling).unwrap();
        let r = resolve_file(&dangling, &db).unwrap();
        assert_eq!(r.path, dir.path().join("new.csv"));
        assert!(!r.replaces);
        // A loop is refused.
        symlink("loop_b", dir.path().join("loop_a")).unwrap();
        symlink("loop_a", dir.path().join("loop_b")).unwrap();
        let err = resolve_file(&dir.path().join("loop_a"), &db).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
        // Devices and folders.
        let err = resolve_file(Path::new("/dev/null"), &db)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a character device"), "{err}");
        let err = resolve_file(dir.path(), &db).unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
    }

    #[test]
    fn folders_must_be_new_empty_or_an_earlier_export() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let out = dir.path().join("export");
        assert!(!resolve_folder(&out, &db).unwrap().replaces);
        fs::create_dir(&out).unwrap();
        assert!(!resolve_folder(&out, &db).unwrap().replaces);
        // What an interrupted export leaves: interval folders and temporary files.
        fs::create_dir_all(out.join("1m/cls")).unwrap();
        assert!(resolve_folder(&out, &db).unwrap().replaces);
        fs::write(out.join(".manifest.json.tmp-999999-3"), "").unwrap();
        assert!(resolve_folder(&out, &db).unwrap().replaces);
        fs::remove_file(out.join(".manifest.json.tmp-999999-3")).unwrap();
        fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = resolve_folder(&out, &db).unwrap_err().to_string();
        assert!(err.contains("not a marketdb export (notes.txt)"), "{err}");
        fs::create_dir(out.join("photos")).unwrap();
        fs::remove_file(out.join("notes.txt")).unwrap();
        let err = resolve_folder(&out, &db).unwrap_err().to_string();
        assert!(err.contains("(photos)"), "{err}");
        fs::write(out.join(MANIFEST_NAME), "{}").unwrap();
        assert!(resolve_folder(&out, &db).unwrap().replaces);
        // The database's own folder holds the database: refused.
        let err = resolve_folder(dir.path(), &db).unwrap_err().to_string();
        assert!(err.contains("not a marketdb export"), "{err}");
        let file = dir.path().join("f.txt");
        fs::write(&file, "x").unwrap();
        let err = resolve_folder(&file, &db).unwrap_err().to_string();
        assert!(err.contains("is a regular file"), "{err}");
    }

    #[test]
    fn temp_names_and_the_sweep() {
        assert_eq!(temp_owner(".k.csv.tmp-123-4"), Some(123));
        assert_eq!(temp_owner(".a.b.tmp-7-0"), Some(7));
        assert_eq!(temp_owner("k.csv.tmp-123-4"), None);
        assert_eq!(temp_owner(".k.csv.tmp-123-"), None);
        assert_eq!(temp_owner(".k.csv.tmp-x-1"), None);
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("1m/cls");
        fs::create_dir_all(&nested).unwrap();
        // pid 0 is never a user process; our own pid is alive.
        let stale = nested.join(".20240101.npy.tmp-0-3");
        let live = nested.join(format!(".20240102.npy.tmp-{}-1", std::process::id()));
        let other = nested.join("20240101.npy");
        for p in [&stale, &live, &other] {
            fs::write(p, "x").unwrap();
        }
        if Path::new("/proc/self").exists() {
            assert_eq!(
                sweep_stale_temps(dir.path(), ".", false),
                0,
                "not recursive"
            );
            assert_eq!(sweep_stale_temps(dir.path(), ".", true), 1);
            assert!(!stale.exists());
        }
        assert!(live.exists() && other.exists());
    }
}
