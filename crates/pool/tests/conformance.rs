//! Conformance tests for marketdb-pool (the crate's one integration-test binary): one suite
//! of async checks (each takes a `PoolManager`, see `suite`) run against the bb8 backend, the
//! built-in backend, and `Backend::Auto` with the primary forced to fail; plus fallback
//! logging and error classification (`fallback`) and a bounded 1-writer/8-reader stress test
//! (`stress`). This file holds the shared harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
#[path = "conformance/fallback.rs"]
mod fallback;
#[path = "conformance/stress.rs"]
mod stress;
#[path = "conformance/suite.rs"]
mod suite;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketdb_pool::{
    Backend, Error, JournalMode, PoolConfig, PoolKind, PoolManager, Synchronous, TempStore,
};
use rusqlite::Connection;

const READERS: usize = 3;
const FORCED: &str = "forced primary failure for the test";

#[derive(Debug, Clone, Copy)]
enum Setup {
    Bb8,
    Builtin,
    /// `Backend::Auto` with `fail_primary` set: must end up on the built-in pool.
    Fallback,
}

impl Setup {
    fn config(self, path: impl Into<PathBuf>) -> PoolConfig {
        let mut config = PoolConfig::new(path);
        config.readers = READERS;
        match self {
            Setup::Bb8 => config.backend = Backend::Bb8,
            Setup::Builtin => config.backend = Backend::Builtin,
            Setup::Fallback => {
                config.backend = Backend::Auto;
                config.faults.fail_primary = Some(FORCED.to_owned());
            }
        }
        config
    }

    fn kind(self) -> PoolKind {
        match self {
            Setup::Bb8 => PoolKind::Bb8,
            Setup::Builtin | Setup::Fallback => PoolKind::Builtin,
        }
    }
}

/// Opens a pool for `setup` in a fresh folder, runs `test`, closes the pool.
async fn with_pool<F, Fut>(setup: Setup, tweak: fn(&mut PoolConfig), test: F)
where
    F: FnOnce(PoolManager) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let mut config = setup.config(dir.path().join("nested").join("pool.db"));
    tweak(&mut config);
    let pool = PoolManager::open(config).await.unwrap();
    assert_eq!(pool.kind(), setup.kind());
    test(pool.clone()).await;
    pool.close().await;
}

fn defaults(_: &mut PoolConfig) {}

fn short_timeout(config: &mut PoolConfig) {
    config.acquire_timeout = Duration::from_millis(300);
}

fn custom_pragmas(config: &mut PoolConfig) {
    config.busy_timeout = Duration::from_millis(1234);
    let p = &mut config.pragmas;
    p.journal_mode = JournalMode::Truncate;
    p.synchronous = Synchronous::Full;
    p.cache_size = -4321;
    p.temp_store = TempStore::File;
    p.mmap_size = 1 << 20;
    p.wal_autocheckpoint = 77;
    p.foreign_keys = false;
}

async fn create_table(pool: &PoolManager) {
    pool.write(|tx| {
        tx.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            .map_err(Error::from)
    })
    .await
    .unwrap();
}

fn count(conn: &Connection) -> Result<i64, Error> {
    Ok(conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)
}

/// Yields until `ready` holds; bounded so a broken pool fails instead of hanging.
async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if ready() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting for {what}");
}

// ---------------------------------------------------------------- log capture

/// Log output captured from a thread-local subscriber (the tests run on one thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn line_with(&self, needle: &str) -> Option<String> {
        self.text()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    }
}

// ---------------------------------------------------------------- one suite, three setups

macro_rules! conformance {
    ($($module:ident => $setup:expr;)+) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn open_close() {
                with_pool($setup, defaults, suite::open_close).await;
            }

            #[tokio::test]
            async fn readers_during_commit() {
                with_pool($setup, defaults, suite::readers_during_commit).await;
            }

            #[tokio::test]
            async fn writer_fifo() {
                with_pool($setup, defaults, suite::writer_fifo).await;
            }

            #[tokio::test]
            async fn acquire_timeouts() {
                with_pool($setup, short_timeout, suite::acquire_timeouts).await;
            }

            #[tokio::test]
            async fn panics_do_not_poison() {
                with_pool($setup, defaults, suite::panics_do_not_poison).await;
            }

            #[tokio::test]
            async fn write_is_immediate_and_atomic() {
                with_pool($setup, defaults, suite::write_is_immediate_and_atomic).await;
            }

            #[tokio::test]
            async fn abandoned_transactions_roll_back() {
                with_pool($setup, defaults, suite::abandoned_transactions_roll_back).await;
            }

            #[tokio::test]
            async fn read_guards_cannot_write() {
                with_pool($setup, defaults, suite::read_guards_cannot_write).await;
            }

            #[tokio::test]
            async fn default_pragmas_on_every_connection() {
                with_pool($setup, defaults, suite::pragmas_on_every_connection).await;
            }

            #[tokio::test]
            async fn custom_pragmas_on_every_connection() {
                with_pool($setup, custom_pragmas, suite::pragmas_on_every_connection).await;
            }

            #[tokio::test]
            async fn memory_and_empty_paths_are_rejected() {
                suite::memory_and_empty_paths_are_rejected($setup).await;
            }
        }
    )+};
}

conformance! {
    bb8_backend => Setup::Bb8;
    builtin_backend => Setup::Builtin;
    auto_fallback => Setup::Fallback;
}
