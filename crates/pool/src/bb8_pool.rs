//! The primary backend: two bb8 pools (one writer, N readers) over a small hand-written
//! [`bb8::ManageConnection`] for rusqlite.
//!
//! `connect` opens and configures the connection inside `spawn_blocking`; `is_valid` is never
//! called (`test_on_check_out(false)`) and `has_broken` is a constant, so bb8 itself never
//! touches SQLite on a worker thread. No idle reaper, no max lifetime, `min_idle = max_size`
//! and `build` (not `build_unchecked`), so initialisation fails fast. This module does not
//! decide about fallback; it only reports pool-layer failures as [`Error::PoolInit`]: an
//! open that outlasts `init_timeout`, and a reader set that cannot open once the file has
//! (see [`Bb8Pool::open`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bb8::{Pool, QueueStrategy, RunError};
use rusqlite::Connection;

use crate::config::PoolConfig;
use crate::connect::{Role, open, open_async};
use crate::error::{Error, Result};
use crate::guard::{Inner, ReadGuard, WriteGuard};
use crate::in_flight::OpensInFlight;
use crate::pool::{ConnectionPool, PoolKind, PoolStats, RoleStats, drop_blocking, run_blocking};

/// A checked-out bb8 connection.
pub(crate) type Bb8Conn = bb8::PooledConnection<'static, SqliteManager>;

/// Opens writer or reader connections for bb8.
#[derive(Debug)]
pub(crate) struct SqliteManager {
    config: Arc<PoolConfig>,
    role: Role,
    opens: Arc<OpensInFlight>,
}

impl bb8::ManageConnection for SqliteManager {
    type Connection = Connection;
    type Error = Error;

    async fn connect(&self) -> Result<Connection> {
        #[cfg(feature = "fault-injection")]
        if let Some(stall) = self.config.faults.stall_primary {
            tokio::time::sleep(stall).await;
        }
        let (config, role) = (Arc::clone(&self.config), self.role);
        let ticket = self.opens.start();
        // The ticket leaves with the connection: if bb8 drops this future, the blocking
        // task still ends, closes the connection and only then drops the ticket.
        let (conn, _ticket) = run_blocking(move || (open(&config, role), ticket)).await?;
        conn
    }

    async fn is_valid(&self, _conn: &mut Connection) -> Result<()> {
        // Local files do not drop connections; a real check would be a query on a worker.
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Connection) -> bool {
        false
    }
}

/// Field order is drop order: readers close first, so the writer is the last connection
/// and SQLite folds and removes the WAL (read-only connections cannot).
#[derive(Debug)]
struct Pools {
    readers: Pool<SqliteManager>,
    /// `None` in a read-only pool.
    writer: Option<Pool<SqliteManager>>,
}

/// The bb8 backend. `pools` is `None` once closed.
#[derive(Debug)]
pub(crate) struct Bb8Pool {
    pools: Mutex<Option<Pools>>,
    writer_waits: AtomicU64,
    reader_waits: AtomicU64,
    acquire_timeout: Duration,
}

impl Bb8Pool {
    /// Builds the writer pool (creating the file; none when read-only, where one reader is
    /// opened and closed first instead), then the reader pool. Once the file has opened, a
    /// reader set that cannot open (`SQLITE_CANTOPEN`: typically too many open files) is a
    /// pool-layer failure, which a fallback with fewer readers may cure.
    pub(crate) async fn open(config: Arc<PoolConfig>) -> Result<Self> {
        let writer = match config.read_only {
            true => {
                let probe = open_async(Arc::clone(&config), Role::Reader).await?;
                let _ = run_blocking(move || drop(probe)).await;
                None
            }
            false => Some(build(&config, Role::Writer, 1).await?),
        };
        #[cfg(feature = "fault-injection")]
        if let Some(reason) = &config.faults.fail_primary {
            let _ = run_blocking(move || drop(writer)).await;
            return Err(Error::PoolInit {
                backend: PoolKind::Bb8,
                reason: reason.clone(),
            });
        }
        // `validate` guarantees the count fits.
        let size = u32::try_from(config.readers).unwrap_or(u32::MAX);
        let readers = match build(&config, Role::Reader, size).await {
            Ok(readers) => readers,
            Err(err) => {
                let _ = run_blocking(move || drop(writer)).await;
                if err.sqlite_code() == Some(rusqlite::ErrorCode::CannotOpen) {
                    return Err(Error::PoolInit {
                        backend: PoolKind::Bb8,
                        reason: format!(
                            "cannot open {size} reader connection(s) although the database \
                             opens ({err}; too many open files?)"
                        ),
                    });
                }
                return Err(err);
            }
        };
        Ok(Bb8Pool {
            pools: Mutex::new(Some(Pools { writer, readers })),
            writer_waits: AtomicU64::new(0),
            reader_waits: AtomicU64::new(0),
            acquire_timeout: config.acquire_timeout,
        })
    }

    fn pools(&self) -> MutexGuard<'_, Option<Pools>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn get(&self, role: Role) -> Result<Bb8Conn> {
        let (pool, waits) = {
            let pools = self.pools();
            let Some(pools) = pools.as_ref() else {
                return Err(Error::Closed);
            };
            match role {
                Role::Writer => match &pools.writer {
                    Some(writer) => (writer.clone(), &self.writer_waits),
                    None => return Err(Error::Closed),
                },
                Role::Reader => (pools.readers.clone(), &self.reader_waits),
            }
        };
        // Counted in the same poll that queues the get, so it is exact on one thread.
        if pool.state().idle_connections == 0 {
            waits.fetch_add(1, Ordering::Relaxed);
        }
        match pool.get_owned().await {
            Ok(conn) if self.pools().is_none() => {
                // Closed while we waited: this may be the last handle on the connections.
                drop_blocking((conn, pool));
                Err(Error::Closed)
            }
            Ok(conn) => Ok(conn),
            Err(RunError::TimedOut) => Err(Error::Timeout {
                what: role.as_str(),
                after: self.acquire_timeout,
            }),
            Err(RunError::User(err)) => Err(err),
        }
    }
}

async fn build(config: &Arc<PoolConfig>, role: Role, size: u32) -> Result<Pool<SqliteManager>> {
    let opens = Arc::new(OpensInFlight::default());
    let manager = SqliteManager {
        config: Arc::clone(config),
        role,
        opens: Arc::clone(&opens),
    };
    let builder = Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .max_lifetime(None)
        .idle_timeout(None)
        .test_on_check_out(false)
        // A failed open is a database error; retrying would only delay reporting it.
        .retry_connection(false)
        .connection_timeout(config.acquire_timeout)
        .queue_strategy(QueueStrategy::Fifo);
    let deadline = config.init_timeout;
    match tokio::time::timeout(deadline, builder.build(manager)).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(err)) => {
            // bb8 dropped the opens it had started; they still hold descriptors until they
            // end, and a fallback opening at once would meet them (see `in_flight`).
            let _ = tokio::time::timeout(deadline, opens.settled()).await;
            Err(err)
        }
        // No wait here: the opens still running are the stalled ones the deadline gave up
        // on, and waiting for them would delay the fallback as long again.
        Err(_) => Err(Error::PoolInit {
            backend: PoolKind::Bb8,
            reason: format!(
                "timed out after {deadline:?} opening {size} {} connection(s)",
                role.as_str()
            ),
        }),
    }
}

fn role_stats(pool: Option<&Pool<SqliteManager>>, waits: &AtomicU64) -> RoleStats {
    let (in_use, idle) = pool.map_or((0, 0), |pool| {
        let state = pool.state();
        let idle = state.idle_connections as usize;
        ((state.connections as usize).saturating_sub(idle), idle)
    });
    RoleStats {
        in_use,
        idle,
        waits: waits.load(Ordering::Relaxed),
    }
}

#[async_trait]
impl ConnectionPool for Bb8Pool {
    async fn read(&self) -> Result<ReadGuard> {
        Ok(ReadGuard::new(Inner::Bb8(self.get(Role::Reader).await?)))
    }

    async fn write(&self) -> Result<WriteGuard> {
        Ok(WriteGuard::new(Inner::Bb8(self.get(Role::Writer).await?)))
    }

    fn kind(&self) -> PoolKind {
        PoolKind::Bb8
    }

    async fn close(&self) {
        let taken = self.pools().take();
        if let Some(pools) = taken {
            // Idle connections close here; checked-out ones when their guards drop.
            let _ = run_blocking(move || drop(pools)).await;
        }
    }

    fn stats(&self) -> PoolStats {
        let pools = self.pools();
        let pools = pools.as_ref();
        PoolStats {
            readers: role_stats(pools.map(|p| &p.readers), &self.reader_waits),
            writer: role_stats(pools.and_then(|p| p.writer.as_ref()), &self.writer_waits),
        }
    }
}

impl Drop for Bb8Pool {
    fn drop(&mut self) {
        let pools = self
            .pools
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(pools) = pools {
            drop_blocking(pools);
        }
    }
}
