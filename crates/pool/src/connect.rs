//! Opening and configuring one SQLite connection ([`open`]), shared by both backends, plus
//! preparing the file's location ([`prepare_location`]) and resetting a returned
//! connection ([`reset`]).
//!
//! Everything here blocks: callers run it inside `spawn_blocking` ([`open_async`] does).
//! It knows no pool and no schema.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, ErrorCode, OpenFlags, ffi};

use crate::config::{JournalMode, PoolConfig};
use crate::error::{Error, Result};
use crate::pool::run_blocking;

/// What a connection is for; decides open flags and which pragmas apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// Creates the parent folders of the database file.
pub(crate) fn prepare_location(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Whether process `pid` runs on this machine (every process counts as running where
/// `/proc` cannot tell).
fn process_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    pid == std::process::id()
        || !proc_root.join("self").exists()
        || proc_root.join(pid.to_string()).exists()
}

/// Creates a missing database file atomically, already in the configured journal mode: the
/// file is made under a hidden name (`.{name}.init-{pid}-{n}`, unique per opener) and linked into place only once
/// SQLite has written its header. A process killed while creating a database therefore
/// leaves no half-made file under the real name, in particular no rollback journal that a
/// read-only reader could not roll back. Leftovers of killed creators are removed. Never
/// replaces a file that appeared meanwhile.
pub(crate) fn create_atomically(config: &PoolConfig) -> Result<()> {
    let path = config.path.as_path();
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    let io = |p: &Path, source: std::io::Error| Error::Io {
        path: p.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.init-");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            // `{prefix}{pid}-{n}`: the pid is what decides whether the file is stale.
            if let Some(pid) = file
                .strip_prefix(&prefix)
                .and_then(|p| p.split('-').next())
                .and_then(|p| p.parse().ok())
                && !process_alive(pid)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // Unique per opener, not only per process: two threads creating the same new file
    // would otherwise build and delete each other's temporary file.
    static OPENERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = OPENERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_file_name(format!("{prefix}{}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let made = (|| -> rusqlite::Result<()> {
        let conn = Connection::open_with_flags(
            &temp,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mode = config.pragmas.journal_mode.as_str();
        conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))?;
        // Writes page 1 in every journal mode (WAL already wrote it).
        conn.execute_batch("PRAGMA user_version = 0")?;
        conn.close().map_err(|(_, e)| e)
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&temp);
        return Err(open_error(path, e));
    }
    // Linked into place only if nothing appeared there meanwhile (the gate's rule for a
    // new file that must never replace another).
    marketdb_output::publish_new(&temp, path)
        .map(|_| ())
        .map_err(|e| match e {
            marketdb_output::Error::Io { source, .. } => io(path, source),
            other => io(path, std::io::Error::other(other.to_string())),
        })
}

/// [`open`] on the blocking pool.
pub(crate) async fn open_async(config: Arc<PoolConfig>, role: Role) -> Result<Connection> {
    run_blocking(move || open(&config, role)).await?
}

/// Opens one connection: the writer read-write (creating the file), a reader read-only;
/// then sets busy_timeout, proves the file is a database and applies the pragmas.
///
/// A read-only pool on a WAL file whose folder cannot hold the `-shm` file (a read-only
/// mount, a write-protected folder) cannot open it normally; when no `-wal` holds
/// uncheckpointed changes, the file is then opened `immutable` (nothing can change it
/// there), and otherwise refused with the reason.
pub(crate) fn open(config: &PoolConfig, role: Role) -> Result<Connection> {
    let path = config.path.as_path();
    // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI.
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = Connection::open_with_flags(path, flags).and_then(|mut conn| {
        configure(&conn, config, role)?;
        if let (Role::Writer, Some(setup)) = (role, config.writer_setup) {
            (setup.0)(&mut conn)?;
        }
        Ok(conn)
    });
    match opened {
        Ok(conn) => Ok(conn),
        Err(e)
            if config.read_only
                && e.sqlite_error_code() == Some(ErrorCode::CannotOpen)
                && path.is_file() =>
        {
            open_immutable(config, role, e)
        }
        Err(e) => Err(open_error(path, e)),
    }
}

/// The `-wal` file beside `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// A `file:` URI for `path` with `immutable=1`, every byte outside the unreserved set
/// percent-encoded.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                uri.push(char::from(*b));
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// The read-only fallback of [`open`] after `first` (`SQLITE_CANTOPEN`); a failure to
/// open the URI itself reports `first`.
fn open_immutable(config: &PoolConfig, role: Role, first: rusqlite::Error) -> Result<Connection> {
    let path = config.path.as_path();
    // A -shm that exists means the folder held one: the cause lies elsewhere.
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    if Path::new(&shm).exists() {
        return Err(open_error(path, first));
    }
    // SQLite says CANTOPEN for a full descriptor table too, which is no read-only folder:
    // a WAL reader needs three descriptors (the file, its -wal and -shm), so try to hold
    // three before blaming the folder.
    let held: Vec<std::io::Result<std::fs::File>> =
        (0..3).map(|_| std::fs::File::open(path)).collect();
    if held.iter().any(|f| {
        f.as_ref()
            .err()
            .is_some_and(|e| matches!(e.raw_os_error(), Some(23 | 24)))
    }) {
        return Err(open_error(path, first));
    }
    drop(held);
    if std::fs::metadata(wal_path(path)).is_ok_and(|m| m.len() > 0) {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "its -wal file holds changes not yet in the database and the folder \
                     does not let a read-only reader share it; open it once where the folder \
                     is writable (any marketdb write command folds the wal)",
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(immutable_uri(path), flags) else {
        return Err(open_error(path, first));
    };
    configure(&conn, config, role).map_err(|e| open_error(path, e))?;
    tracing::info!(
        "{}: opened immutable (read-only folder, no -shm file); changes made elsewhere while \
         it is open are not seen",
        path.display()
    );
    Ok(conn)
}

fn configure(conn: &Connection, config: &PoolConfig, role: Role) -> rusqlite::Result<()> {
    conn.busy_timeout(config.busy_timeout)?;
    // Opening is lazy; reading the header is what detects a file that is not a database.
    conn.pragma_query_value(None, "schema_version", |row| row.get::<_, i64>(0))?;
    // SQLite silently opens a write-protected file read-only; a writer must not.
    if role == Role::Writer && conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_READONLY),
            Some("the database file is write-protected".to_owned()),
        ));
    }
    // A read-only pool must not change the file, not even its journal mode.
    if !config.read_only {
        apply_journal_mode(conn, config.pragmas.journal_mode, role)?;
    }
    let p = &config.pragmas;
    // Typed values only, so formatting cannot inject SQL.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};
         PRAGMA cache_size = {};
         PRAGMA temp_store = {};
         PRAGMA mmap_size = {};
         PRAGMA wal_autocheckpoint = {};
         PRAGMA foreign_keys = {};",
        p.synchronous.as_str(),
        p.cache_size,
        p.temp_store.as_str(),
        p.mmap_size,
        p.wal_autocheckpoint,
        if p.foreign_keys { "ON" } else { "OFF" },
    ))
}

/// WAL is a property of the file, set by the writer; rollback modes are per connection,
/// so readers repeat them. A read-only connection cannot leave or enter WAL.
fn apply_journal_mode(conn: &Connection, wanted: JournalMode, role: Role) -> rusqlite::Result<()> {
    if role == Role::Reader {
        let current: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        if wanted == JournalMode::Wal || current.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
    }
    let sql = format!("PRAGMA journal_mode = {}", wanted.as_str());
    let got: String = conn.query_row(&sql, [], |row| row.get(0))?;
    if !got.eq_ignore_ascii_case(wanted.as_str()) {
        tracing::warn!(
            wanted = wanted.as_str(),
            got = got.as_str(),
            role = role.as_str(),
            "sqlite kept a different journal mode"
        );
    }
    Ok(())
}

fn open_error(path: &Path, source: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(e, _) = &source
        && e.extended_code == ffi::SQLITE_READONLY_ROLLBACK
    {
        return Error::HotJournal {
            path: path.to_path_buf(),
        };
    }
    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        Error::NotADatabase {
            path: path.to_path_buf(),
        }
    } else {
        Error::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Rolls back a transaction a guard's user left open, so the next user gets a clean
/// connection (and a reader does not pin an old snapshot, which starves checkpoints).
pub(crate) fn reset(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    tracing::warn!("connection returned with an open transaction; rolling it back");
    if let Err(err) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %err, "rollback of an abandoned transaction failed");
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn config(dir: &tempfile::TempDir) -> PoolConfig {
        PoolConfig::new(dir.path().join("sub").join("c.db"))
    }

    #[test]
    fn writer_creates_the_file_and_readers_follow() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        let writer = open(&config, Role::Writer).unwrap();
        writer.execute_batch("CREATE TABLE t(x)").unwrap();
        let reader = open(&config, Role::Reader).unwrap();
        let mode: String = reader
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let err = reader
            .execute_batch("INSERT INTO t VALUES (1)")
            .unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly));
    }

    #[test]
    fn reader_does_not_create_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        let err = open(&config, Role::Reader).unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err}");
        assert!(!config.path.exists());
    }

    #[test]
    fn garbage_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        std::fs::write(&config.path, vec![0xA5_u8; 8192]).unwrap();
        let err = open(&config, Role::Writer).unwrap_err();
        assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    }

    #[test]
    fn immutable_uris_encode_every_special_byte() {
        assert_eq!(
            immutable_uri(Path::new("/a b/c?d#e%f.db")),
            "file:/a%20b/c%3Fd%23e%25f.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("rel/x.db")),
            "file:rel/x.db?immutable=1"
        );
    }

    #[test]
    fn new_files_appear_whole_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        // A leftover of a creator that died (pid 0 is never a user process).
        let stale = config.path.with_file_name(".c.db.init-0");
        std::fs::write(&stale, b"half").unwrap();
        let stale_numbered = config.path.with_file_name(".c.db.init-0-7");
        std::fs::write(&stale_numbered, b"half").unwrap();
        create_atomically(&config).unwrap();
        assert!(!stale.exists(), "the leftover is swept");
        assert!(!stale_numbered.exists(), "the numbered leftover is swept");
        let header = std::fs::read(&config.path).unwrap();
        assert!(header.starts_with(b"SQLite format 3\0"));
        assert_eq!((header[18], header[19]), (2, 2), "WAL in the header");
        let names: Vec<String> = std::fs::read_dir(config.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["c.db"], "nothing else is left");
        // An existing file is never touched.
        std::fs::write(&config.path, b"mine").unwrap();
        create_atomically(&config).unwrap();
        assert_eq!(std::fs::read(&config.path).unwrap(), b"mine");
    }

    #[test]
    fn threads_creating_one_new_file_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| create_atomically(&config)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
        let header = std::fs::read(&config.path).unwrap();
        assert!(header.starts_with(b"SQLite format 3\0"));
        let names: Vec<String> = std::fs::read_dir(config.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["c.db"], "no temporary file is left");
    }

    #[test]
    fn a_hot_journal_is_named_for_read_only_opens() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        let path = config.path.clone();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        // A writer in rollback mode killed mid-transaction leaves its journal: made here by
        // copying the file and journal while a write transaction is open.
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=DELETE; PRAGMA cache_size=1; BEGIN; \
                 INSERT INTO t SELECT x FROM t; INSERT INTO t SELECT x FROM t;",
            )
            .unwrap();
        for _ in 0..12 {
            writer
                .execute_batch("INSERT INTO t SELECT x FROM t")
                .unwrap();
        }
        let mut journal = path.as_os_str().to_owned();
        journal.push("-journal");
        let copy = dir.path().join("copy.db");
        let mut copy_journal = copy.as_os_str().to_owned();
        copy_journal.push("-journal");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(&journal, &copy_journal).unwrap();
        drop(writer);
        let ro = PoolConfig::read_only(&copy);
        let err = open(&ro, Role::Reader).unwrap_err();
        assert!(matches!(err, Error::HotJournal { .. }), "{err}");
        assert!(err.to_string().contains("doctor --checkpoint"), "{err}");
        // A write open recovers it.
        let rw = PoolConfig::new(&copy);
        let w = open(&rw, Role::Writer).unwrap();
        let n: i64 = w
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the interrupted transaction was rolled back");
    }

    #[test]
    fn reset_rolls_back_an_abandoned_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        prepare_location(&config.path).unwrap();
        let conn = open(&config, Role::Writer).unwrap();
        conn.execute_batch("CREATE TABLE t(x); BEGIN; INSERT INTO t VALUES (1);")
            .unwrap();
        reset(&conn);
        assert!(conn.is_autocommit());
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
