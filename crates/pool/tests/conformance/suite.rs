//! The conformance suite: async checks that take an open `PoolManager` and must hold for
//! every backend. Instantiated per backend by the `conformance!` macro in the parent file.

use std::path::Path;
use std::time::Duration;

use marketdb_pool::{Error, PoolConfig, PoolManager, Synchronous, TempStore, run_blocking};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, Transaction};

use super::{READERS, Setup, count, create_table, until};

pub(crate) async fn open_close(pool: PoolManager) {
    let path = pool.config().path.clone();
    assert!(path.is_file(), "the writer creates the file");
    let stats = pool.stats();
    assert_eq!((stats.writer.idle, stats.writer.in_use), (1, 0));
    assert_eq!((stats.readers.idle, stats.readers.in_use), (READERS, 0));
    create_table(&pool).await;
    assert_eq!(pool.read(count).await.unwrap(), 0);

    let mut held = pool.write_guard().await.unwrap();
    assert_eq!(pool.stats().writer.in_use, 1);
    let clone = pool.clone();
    pool.close().await;
    assert!(matches!(clone.read_guard().await, Err(Error::Closed)));
    assert!(matches!(pool.write_guard().await, Err(Error::Closed)));
    assert!(matches!(pool.read(count).await, Err(Error::Closed)));
    let write = pool.write(|tx| {
        tx.execute("INSERT INTO t(v) VALUES (1)", [])
            .map_err(Error::from)
    });
    assert!(matches!(write.await, Err(Error::Closed)));
    assert_eq!(pool.stats().readers.idle, 0);

    // A guard taken before close still works; dropping it closes the last connection,
    // which checkpoints and removes the WAL file.
    run_blocking(move || {
        held.execute("INSERT INTO t(v) VALUES (1)", []).unwrap();
        held.transaction().unwrap().commit().unwrap();
        drop(held);
    })
    .await
    .unwrap();
    let mut wal = path.into_os_string();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists(), "every connection was closed");
}

pub(crate) async fn readers_during_commit(pool: PoolManager) {
    create_table(&pool).await;
    let (inserted_tx, inserted_rx) = tokio::sync::oneshot::channel();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let writer = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.write(move |tx| {
                tx.execute("INSERT INTO t(v) VALUES (1)", [])?;
                inserted_tx.send(()).unwrap();
                commit_rx.recv().unwrap();
                Ok::<_, Error>(())
            })
            .await
        }
    });
    inserted_rx.await.unwrap();

    // Every reader at once, while the write transaction is open: old snapshot, no error.
    let mut guards = Vec::new();
    for _ in 0..READERS {
        guards.push(pool.read_guard().await.unwrap());
    }
    let (guards, seen) = run_blocking(move || {
        let seen: Vec<i64> = guards.iter().map(|g| count(g).unwrap()).collect();
        (guards, seen)
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![0; READERS]);

    commit_tx.send(()).unwrap();
    writer.await.unwrap().unwrap();
    let seen = run_blocking(move || guards.iter().map(|g| count(g).unwrap()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(seen, vec![1; READERS]);
}

pub(crate) async fn writer_fifo(pool: PoolManager) {
    create_table(&pool).await;
    let held = pool.write_guard().await.unwrap();
    let base = pool.stats().writer.waits;
    let mut writers = Vec::new();
    for i in 0..6_i64 {
        let queued = pool.clone();
        writers.push(tokio::spawn(async move {
            queued
                .write(move |tx| {
                    tx.execute("INSERT INTO t(v) VALUES (?1)", [i])
                        .map_err(Error::from)
                })
                .await
        }));
        // Do not queue the next writer until this one is waiting.
        let waits = base + u64::try_from(i).unwrap() + 1;
        until("the writer to queue", || pool.stats().writer.waits >= waits).await;
    }
    run_blocking(move || drop(held)).await.unwrap();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let order = pool
        .read(|c| {
            let mut stmt = c.prepare("SELECT v FROM t ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(Error::from)
        })
        .await
        .unwrap();
    assert_eq!(order, (0..6).collect::<Vec<_>>());
}

pub(crate) async fn acquire_timeouts(pool: PoolManager) {
    create_table(&pool).await;
    let after = pool.config().acquire_timeout;
    let held = pool.write_guard().await.unwrap();
    let err = pool.write_guard().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { what: "writer", after: a } if a == after),
        "{err}"
    );
    let write = pool.write(|tx| {
        tx.execute("INSERT INTO t(v) VALUES (1)", [])
            .map_err(Error::from)
    });
    assert!(matches!(write.await, Err(Error::Timeout { .. })));

    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(pool.read_guard().await.unwrap());
    }
    let err = pool.read_guard().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { what: "reader", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(pool.stats().readers.waits >= 1);

    run_blocking(move || drop((held, readers))).await.unwrap();
    assert_eq!(
        pool.read(count).await.unwrap(),
        0,
        "the timed-out write did nothing"
    );
    pool.write(|tx| {
        tx.execute("INSERT INTO t(v) VALUES (1)", [])
            .map_err(Error::from)
    })
    .await
    .unwrap();
}

pub(crate) async fn panics_do_not_poison(pool: PoolManager) {
    create_table(&pool).await;
    let err = pool
        .write(|tx: &Transaction<'_>| -> Result<(), Error> {
            tx.execute("INSERT INTO t(v) VALUES (1)", [])?;
            panic!("write boom");
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked(m) if m.contains("write boom")),
        "{err}"
    );
    assert_eq!(
        pool.read(count).await.unwrap(),
        0,
        "the panicked write rolled back"
    );

    for _ in 0..=READERS {
        let err = pool
            .read(|_| -> Result<(), Error> { panic!("read boom") })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Panicked(m) if m.contains("read boom")),
            "{err}"
        );
    }
    pool.write(|tx| {
        tx.execute("INSERT INTO t(v) VALUES (2)", [])
            .map_err(Error::from)
    })
    .await
    .unwrap();
    // No connection was lost: all readers at once, each usable.
    let mut guards = Vec::new();
    for _ in 0..READERS {
        guards.push(pool.read_guard().await.unwrap());
    }
    let seen = run_blocking(move || guards.iter().map(|g| count(g).unwrap()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(seen, vec![1; READERS]);
    assert_eq!(pool.stats().writer.in_use, 0);
}

pub(crate) async fn write_is_immediate_and_atomic(pool: PoolManager) {
    create_table(&pool).await;
    let path = pool.config().path.clone();
    // Before `f` writes anything, the transaction already holds the write lock.
    let outsider_blocked = pool
        .write(move |_tx| {
            let outsider = Connection::open(&path)?;
            outsider.busy_timeout(Duration::ZERO)?;
            let busy = outsider.execute_batch("BEGIN IMMEDIATE").unwrap_err();
            Ok::<_, Error>(busy.sqlite_error_code() == Some(ErrorCode::DatabaseBusy))
        })
        .await
        .unwrap();
    assert!(outsider_blocked, "the write transaction is BEGIN IMMEDIATE");

    let err = pool
        .write(|tx| {
            tx.execute("INSERT INTO t(v) VALUES (1)", [])?;
            Err::<(), _>(Error::Closed)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Closed),
        "the closure's own error comes back"
    );
    assert_eq!(pool.read(count).await.unwrap(), 0, "an Err rolls back");
    let id = pool
        .write(|tx| {
            tx.execute("INSERT INTO t(v) VALUES (1)", [])?;
            Ok::<_, Error>(tx.last_insert_rowid())
        })
        .await
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(pool.read(count).await.unwrap(), 1, "an Ok commits");
}

pub(crate) async fn abandoned_transactions_roll_back(pool: PoolManager) {
    create_table(&pool).await;
    let writer = pool.write_guard().await.unwrap();
    let reader = pool.read_guard().await.unwrap();
    run_blocking(move || {
        writer
            .execute_batch("BEGIN; INSERT INTO t(v) VALUES (1);")
            .unwrap();
        reader.execute_batch("BEGIN; SELECT * FROM t;").unwrap();
        // Both guards drop here with their transactions open.
    })
    .await
    .unwrap();
    pool.write(|tx| {
        tx.execute("INSERT INTO t(v) VALUES (2)", [])
            .map_err(Error::from)
    })
    .await
    .unwrap();
    let mut guards = Vec::new();
    for _ in 0..READERS {
        guards.push(pool.read_guard().await.unwrap());
    }
    let clean = run_blocking(move || guards.iter().all(|g| g.is_autocommit()))
        .await
        .unwrap();
    assert!(clean, "readers come back without a transaction");
    let values = pool
        .read(|c| {
            Ok::<_, Error>(c.query_row("SELECT group_concat(v) FROM t", [], |r| {
                r.get::<_, String>(0)
            })?)
        })
        .await
        .unwrap();
    assert_eq!(values, "2", "the abandoned insert was rolled back");
}

pub(crate) async fn read_guards_cannot_write(pool: PoolManager) {
    create_table(&pool).await;
    let guard = pool.read_guard().await.unwrap();
    let err = run_blocking(move || guard.execute("INSERT INTO t(v) VALUES (1)", []))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly), "{err}");
    let err = pool
        .read(|c| c.execute("DELETE FROM t", []).map_err(Error::from))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
    assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly));
    assert_eq!(pool.read(count).await.unwrap(), 0);
}

/// Every pragma, as SQLite reports it, on one connection.
fn pragmas_of(conn: &Connection) -> Vec<(&'static str, String)> {
    let names = [
        "journal_mode",
        "synchronous",
        "cache_size",
        "temp_store",
        "mmap_size",
        "foreign_keys",
        "busy_timeout",
        "wal_autocheckpoint",
    ];
    names
        .into_iter()
        .map(|name| {
            let value = match conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() {
                Value::Integer(i) => i.to_string(),
                Value::Text(text) => text.to_lowercase(),
                other => panic!("unexpected {name} value {other:?}"),
            };
            (name, value)
        })
        .collect()
}

fn expected_pragmas(config: &PoolConfig) -> Vec<(&'static str, String)> {
    let p = &config.pragmas;
    let synchronous = match p.synchronous {
        Synchronous::Off => 0,
        Synchronous::Normal => 1,
        Synchronous::Full => 2,
        Synchronous::Extra => 3,
    };
    let temp_store = match p.temp_store {
        TempStore::Default => 0,
        TempStore::File => 1,
        TempStore::Memory => 2,
    };
    vec![
        ("journal_mode", p.journal_mode.to_string()),
        ("synchronous", synchronous.to_string()),
        ("cache_size", p.cache_size.to_string()),
        ("temp_store", temp_store.to_string()),
        ("mmap_size", p.mmap_size.to_string()),
        ("foreign_keys", u8::from(p.foreign_keys).to_string()),
        ("busy_timeout", config.busy_timeout.as_millis().to_string()),
        ("wal_autocheckpoint", p.wal_autocheckpoint.to_string()),
    ]
}

pub(crate) async fn pragmas_on_every_connection(pool: PoolManager) {
    let expected = expected_pragmas(pool.config());
    let writer = pool.write_guard().await.unwrap();
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(pool.read_guard().await.unwrap());
    }
    let (on_writer, on_readers) = run_blocking(move || {
        let on_readers: Vec<_> = readers.iter().map(|r| pragmas_of(r)).collect();
        (pragmas_of(&writer), on_readers)
    })
    .await
    .unwrap();
    assert_eq!(on_writer, expected, "writer");
    assert_eq!(on_readers.len(), READERS);
    for (i, on_reader) in on_readers.into_iter().enumerate() {
        assert_eq!(on_reader, expected, "reader {i}");
    }
}

pub(crate) async fn memory_and_empty_paths_are_rejected(setup: Setup) {
    for path in [":memory:", ""] {
        let err = PoolManager::open(setup.config(path)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
        assert!(!err.is_pool_layer());
        assert!(err.to_string().contains(&format!("{path:?}")), "{err}");
    }
    let err = PoolManager::open(setup.config(":memory:"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in-memory"), "{err}");
}
