//! [`PoolManager`]: opens a pool for a [`PoolConfig`] (choosing the backend, downgrading
//! from bb8 to the built-in pool on pool-layer failures only, and logging the choice) and
//! runs closures and transactions on the blocking pool.
//!
//! It never retries or masks database errors, and knows nothing about schemas.

use std::sync::Arc;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tracing::{info, warn};

use crate::bb8_pool::Bb8Pool;
use crate::builtin::BuiltinPool;
use crate::config::{Backend, PoolConfig};
use crate::connect::{create_atomically, prepare_location};
use crate::error::{Chain, Error, Result};
use crate::guard::{ReadGuard, WriteGuard};
use crate::pool::{ConnectionPool, PoolKind, PoolStats, run_blocking};

/// A shared handle on an open pool; clones share the same connections.
#[derive(Debug, Clone)]
pub struct PoolManager {
    pool: Arc<dyn ConnectionPool>,
    config: Arc<PoolConfig>,
}

impl PoolManager {
    /// Validates the config, creates the parent folders, then opens the writer (creating the
    /// file) and the readers with the configured backend. A read-only config
    /// ([`PoolConfig::read_only`]) creates nothing and opens readers only; a missing file is
    /// then an [`Error::Open`].
    ///
    /// `:memory:` and empty paths are rejected with [`Error::InvalidPath`]: every pooled
    /// connection would get its own private in-memory database, so the readers would never
    /// see the writer's tables. With [`Backend::Auto`], a pool-layer failure of bb8
    /// ([`Error::is_pool_layer`]) is logged and the built-in pool serves instead; any other
    /// error (bad path, not a database, permission denied) is returned as is.
    pub async fn open(config: PoolConfig) -> Result<PoolManager> {
        config.validate()?;
        let config = Arc::new(config);
        if !config.read_only {
            let c = Arc::clone(&config);
            run_blocking(move || {
                prepare_location(&c.path)?;
                create_atomically(&c)
            })
            .await??;
        }

        let pool: Arc<dyn ConnectionPool> = match config.backend {
            Backend::Bb8 => Arc::new(Bb8Pool::open(Arc::clone(&config)).await?),
            Backend::Builtin => Arc::new(BuiltinPool::open(Arc::clone(&config)).await?),
            Backend::Auto => match Bb8Pool::open(Arc::clone(&config)).await {
                Ok(pool) => Arc::new(pool),
                Err(err) if err.is_pool_layer() => {
                    warn!(path = %config.path.display(), "{}", Chain(&err));
                    warn!("falling back to built-in pool");
                    Arc::new(BuiltinPool::open(Arc::clone(&config)).await?)
                }
                Err(err) => return Err(err),
            },
        };
        match pool.kind() {
            PoolKind::Bb8 => info!("using bb8 pool"),
            PoolKind::Builtin => info!("using built-in pool"),
        }
        info!(
            readers = config.readers,
            read_only = config.read_only,
            "pool initialised: {}",
            config.path.display()
        );
        Ok(PoolManager { pool, config })
    }

    /// Runs `f` with a read-only connection on the blocking pool.
    ///
    /// If `f` panics, the panic becomes [`Error::Panicked`] and the connection goes back to
    /// the pool. If this future is dropped, `f` still runs to completion.
    pub async fn read<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let guard = self.read_guard().await?;
        run_blocking(move || f(&guard)).await?
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer, on the blocking pool:
    /// committed if `f` returns `Ok`, rolled back if it returns `Err` or panics.
    ///
    /// If this future is dropped, `f` still runs and its transaction still commits.
    pub async fn write<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let mut guard = self.write_guard().await?;
        run_blocking(move || {
            // IMMEDIATE takes the write lock up front, so a busy database shows up here,
            // under busy_timeout, rather than as SQLITE_BUSY halfway through `f`.
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(Error::from)?;
            // On `Err` (or unwind) the transaction's drop rolls back.
            let value = f(&tx)?;
            tx.commit().map_err(Error::from)?;
            Ok(value)
        })
        .await?
    }

    /// A read-only connection to keep across several blocking steps (streaming scans).
    pub async fn read_guard(&self) -> Result<ReadGuard> {
        self.pool.read().await
    }

    /// The writer connection, held until the guard drops; [`Error::ReadOnly`] in a
    /// read-only pool.
    pub async fn write_guard(&self) -> Result<WriteGuard> {
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.config.path.clone(),
            });
        }
        self.pool.write().await
    }

    /// Whether this pool was opened read-only (no writer).
    pub fn is_read_only(&self) -> bool {
        self.config.read_only
    }

    /// The backend serving this pool.
    pub fn kind(&self) -> PoolKind {
        self.pool.kind()
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Closes the pool for every clone; later acquisitions fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.pool.close().await;
        info!("pool closed: {}", self.config.path.display());
    }
}
