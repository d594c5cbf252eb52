//! A bounded stress test: one writer committing whole batches, eight readers checking they
//! only ever see whole batches and never a busy/locked error, on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use marketdb_pool::{Backend, Error, PoolConfig, PoolManager, run_blocking};
use tokio::task::JoinSet;

const BATCH_ROWS: i64 = 100;
const STRESS_READERS: usize = 8;

/// One writer commits whole batches while eight readers check they only ever see
/// whole batches and never a busy/locked error.
async fn stress(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PoolConfig::new(dir.path().join("stress.db"));
    config.readers = STRESS_READERS;
    config.backend = backend;
    let pool = PoolManager::open(config).await.unwrap();
    pool.write(|tx| {
        tx.execute_batch("CREATE TABLE rows(batch INTEGER NOT NULL, n INTEGER NOT NULL)")
            .map_err(Error::from)
    })
    .await
    .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    for reader in 0..STRESS_READERS {
        let (pool, done) = (pool.clone(), Arc::clone(&done));
        readers.spawn(async move {
            let (mut reads, mut last_batches) = (0_u64, 0_i64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let checked = pool
                    .read(|c| {
                        let mut stmt = c.prepare(
                            "SELECT batch, COUNT(*) FROM rows GROUP BY batch HAVING COUNT(*) != ?1",
                        )?;
                        let torn = stmt
                            .query_map([BATCH_ROWS], |r| {
                                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                            })?
                            .collect::<Result<Vec<_>, _>>()?;
                        let batches: i64 =
                            c.query_row("SELECT COUNT(DISTINCT batch) FROM rows", [], |r| {
                                r.get(0)
                            })?;
                        Ok::<_, Error>((torn, batches))
                    })
                    .await;
                let (torn, batches) = match checked {
                    Ok(result) => result,
                    Err(err) => panic!("reader {reader}: {err} (code {:?})", err.sqlite_code()),
                };
                assert!(
                    torn.is_empty(),
                    "reader {reader} saw partial batches {torn:?}"
                );
                assert!(batches >= last_batches, "reader {reader} went back in time");
                last_batches = batches;
                reads += 1;
                if finished {
                    return reads;
                }
            }
        });
    }

    let started = Instant::now();
    let mut batch = 0_i64;
    while batch < 20 || started.elapsed() < Duration::from_millis(1500) {
        pool.write(move |tx| {
            let mut insert = tx.prepare_cached("INSERT INTO rows(batch, n) VALUES (?1, ?2)")?;
            for n in 0..BATCH_ROWS {
                insert.execute([batch, n])?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        batch += 1;
        if batch % 10 == 0 {
            // PASSIVE: under constant reads a TRUNCATE checkpoint waits up to busy_timeout.
            let guard = pool.write_guard().await.unwrap();
            run_blocking(move || guard.execute_batch("PRAGMA wal_checkpoint(PASSIVE)"))
                .await
                .unwrap()
                .unwrap();
        }
    }
    done.store(true, Ordering::Release);
    while let Some(reads) = readers.join_next().await {
        assert!(reads.unwrap() >= 1);
    }
    let (rows, batches) = pool
        .read(|c| {
            Ok::<_, Error>(c.query_row(
                "SELECT COUNT(*), COUNT(DISTINCT batch) FROM rows",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!((rows, batches), (batch * BATCH_ROWS, batch));
    // Idle readers hold no snapshot, so a full checkpoint completes (busy = 0).
    let guard = pool.write_guard().await.unwrap();
    let busy = run_blocking(move || {
        guard.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(busy, 0);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_bb8() {
    stress(Backend::Bb8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_builtin() {
    stress(Backend::Builtin).await;
}
