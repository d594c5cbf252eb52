//! Which journal a database file uses, read from its header (bytes 18 and 19: 1 for a
//! rollback journal, 2 for WAL), and the explanation a read gets when it timed out behind
//! a rollback-journal writer. In WAL mode (marketdb's own layout) readers never wait for
//! writers; in rollback-journal mode (the layout the Python original creates) a writer's
//! commit locks every reader out, which no reader-side setting can change.

use std::{io::Read, path::Path};

use crate::Error;

/// The journal a database file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileJournal {
    /// A rollback journal (`-journal`): readers wait while a writer commits.
    Rollback,
    /// Write-ahead log (`-wal`): readers never wait for writers.
    Wal,
}

impl FileJournal {
    /// In words, as `doctor` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileJournal::Rollback => "rollback journal",
            FileJournal::Wal => "wal",
        }
    }
}

/// The journal of the SQLite file at `path`, from its header; `None` when the file is
/// missing, unreadable or not a SQLite database.
pub fn file_journal(path: &Path) -> Option<FileJournal> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if &head[..16] != b"SQLite format 3\0" {
        return None;
    }
    match (head[18], head[19]) {
        (2, 2) => Some(FileJournal::Wal),
        (1, 1) => Some(FileJournal::Rollback),
        _ => None,
    }
}

/// Whether `e` is SQLite's `SQLITE_BUSY`/`SQLITE_LOCKED` (from a statement or from
/// opening a connection).
fn is_busy(e: &Error) -> bool {
    let busy = |code: Option<rusqlite::ErrorCode>| {
        matches!(
            code,
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    };
    match e {
        Error::Sqlite(r) => busy(r.sqlite_error_code()),
        Error::Pool(p) => busy(p.sqlite_code()),
        _ => false,
    }
}

/// A read error, explained when it is a busy timeout on a rollback-journal file.
pub(crate) fn explain_locked_read(e: Error, path: &Path) -> Error {
    if is_busy(&e) && file_journal(path) == Some(FileJournal::Rollback) {
        tracing::debug!(
            path = %path.display(),
            "a read timed out behind the writer of a rollback-journal database"
        );
        return Error::RollbackJournalLocked {
            path: path.display().to_string(),
            source: Box::new(e),
        };
    }
    e
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn the_header_tells_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, rollback) = (dir.path().join("w.db"), dir.path().join("r.db"));
        let c = rusqlite::Connection::open(&wal).unwrap();
        c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        let c = rusqlite::Connection::open(&rollback).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        assert_eq!(file_journal(&wal), Some(FileJournal::Wal));
        assert_eq!(file_journal(&rollback), Some(FileJournal::Rollback));
        assert_eq!(file_journal(&dir.path().join("none.db")), None);
        std::fs::write(dir.path().join("x.db"), b"not a database at all").unwrap();
        assert_eq!(file_journal(&dir.path().join("x.db")), None);
    }

    #[test]
    fn a_busy_read_of_a_rollback_file_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let busy = Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        ));
        let e = explain_locked_read(busy, &path);
        let text = e.to_string();
        assert!(text.contains("rollback journal"), "{text}");
        assert!(text.contains("marketdb doctor --wal"), "{text}");
        // Any other error, or a WAL file, is left as it is.
        let other = explain_locked_read(Error::NoData { what: "x".into() }, &path);
        assert!(matches!(other, Error::NoData { .. }));
    }
}
