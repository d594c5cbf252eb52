//! The fallback backend, built from tokio primitives only: for the writer and for the
//! readers, a fair (FIFO) `Semaphore` with one permit per connection, guarding a fixed set
//! of connections each behind a tokio `Mutex` (a [`Lease`] holds both the permit and the
//! owned lock).
//!
//! tokio's semaphore queues waiters strictly first-come first-served (its `Mutex` is built
//! on the same semaphore), so writers are served in arrival order. Connections are opened
//! once, inside `spawn_blocking`; nothing here reconnects or reaps.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::PoolConfig;
use crate::connect::{Role, open};
use crate::error::{Error, Result};
use crate::guard::{Inner, ReadGuard, WriteGuard};
use crate::pool::{ConnectionPool, PoolKind, PoolStats, RoleStats, drop_blocking, run_blocking};

type Slot = Arc<Mutex<Connection>>;

/// A checked-out connection. Field order matters: the lock is released before the
/// permit, so a free permit always means a free slot.
#[derive(Debug)]
pub(crate) struct Lease {
    conn: OwnedMutexGuard<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// The connections of one role and the semaphore that queues for them.
#[derive(Debug)]
struct Slots {
    role: Role,
    size: usize,
    permits: Arc<Semaphore>,
    /// Emptied by `close`.
    conns: std::sync::Mutex<Vec<Slot>>,
    waits: AtomicU64,
    timeout: Duration,
}

impl Slots {
    fn new(role: Role, conns: Vec<Connection>, timeout: Duration) -> Self {
        Slots {
            role,
            size: conns.len(),
            permits: Arc::new(Semaphore::new(conns.len())),
            conns: std::sync::Mutex::new(
                conns.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
            ),
            waits: AtomicU64::new(0),
            timeout,
        }
    }

    fn conns(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn acquire(&self) -> Result<Lease> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(Error::Closed),
            Err(TryAcquireError::NoPermits) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                let queued = Arc::clone(&self.permits).acquire_owned();
                match tokio::time::timeout(self.timeout, queued).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => return Err(Error::Closed),
                    Err(_elapsed) => {
                        return Err(Error::Timeout {
                            what: self.role.as_str(),
                            after: self.timeout,
                        });
                    }
                }
            }
        };
        for slot in self.conns().iter() {
            if let Ok(conn) = Arc::clone(slot).try_lock_owned() {
                return Ok(Lease {
                    conn,
                    _permit: permit,
                });
            }
        }
        // Only reachable when `close` emptied the set after we got a permit.
        Err(Error::Closed)
    }

    /// Refuses new leases and hands back the connections (leased ones live on in
    /// their leases until dropped).
    fn close(&self) -> Vec<Slot> {
        self.permits.close();
        std::mem::take(&mut *self.conns())
    }

    fn stats(&self) -> RoleStats {
        let (in_use, idle) = if self.permits.is_closed() {
            (0, 0)
        } else {
            let idle = self.permits.available_permits();
            (self.size.saturating_sub(idle), idle)
        };
        RoleStats {
            in_use,
            idle,
            waits: self.waits.load(Ordering::Relaxed),
        }
    }
}

/// The built-in backend.
#[derive(Debug)]
pub(crate) struct BuiltinPool {
    writer: Slots,
    readers: Slots,
}

impl BuiltinPool {
    /// Opens the writer (creating the file; none when read-only), then the readers, on one
    /// blocking thread, within `init_timeout` (else [`Error::PoolInit`]). When only some of
    /// the readers can open (`SQLITE_CANTOPEN` after at least one opened: typically too many
    /// open files), it serves with those and logs how many.
    pub(crate) async fn open(config: Arc<PoolConfig>) -> Result<Self> {
        let timeout = config.acquire_timeout;
        let deadline = config.init_timeout;
        let wanted = config.readers;
        let opening = run_blocking(move || -> Result<_> {
            #[cfg(feature = "fault-injection")]
            if let Some(stall) = config.faults.stall_builtin {
                std::thread::sleep(stall);
            }
            let writer = match config.read_only {
                true => Vec::new(),
                false => vec![open(&config, Role::Writer)?],
            };
            let mut readers = Vec::with_capacity(config.readers);
            for _ in 0..config.readers {
                match open(&config, Role::Reader) {
                    Ok(conn) => readers.push(conn),
                    Err(e)
                        if !readers.is_empty()
                            && e.sqlite_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
                    {
                        tracing::warn!(
                            "opened {} of {} reader connection(s) ({e}; too many open files?); \
                             serving with {}",
                            readers.len(),
                            config.readers,
                            readers.len()
                        );
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((writer, readers))
        });
        let (writer, readers) = match tokio::time::timeout(deadline, opening).await {
            Ok(opened) => opened??,
            Err(_) => {
                return Err(Error::PoolInit {
                    backend: PoolKind::Builtin,
                    reason: format!(
                        "timed out after {deadline:?} opening the writer and {wanted} reader(s)"
                    ),
                });
            }
        };
        Ok(BuiltinPool {
            writer: Slots::new(Role::Writer, writer, timeout),
            readers: Slots::new(Role::Reader, readers, timeout),
        })
    }
}

#[async_trait]
impl ConnectionPool for BuiltinPool {
    async fn read(&self) -> Result<ReadGuard> {
        Ok(ReadGuard::new(Inner::Builtin(
            self.readers.acquire().await?,
        )))
    }

    async fn write(&self) -> Result<WriteGuard> {
        Ok(WriteGuard::new(Inner::Builtin(
            self.writer.acquire().await?,
        )))
    }

    fn kind(&self) -> PoolKind {
        PoolKind::Builtin
    }

    async fn close(&self) {
        // Readers first: the writer, closing last, folds and removes the WAL.
        let taken = (self.readers.close(), self.writer.close());
        let _ = run_blocking(move || drop(taken)).await;
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            readers: self.readers.stats(),
            writer: self.writer.stats(),
        }
    }
}

impl Drop for BuiltinPool {
    fn drop(&mut self) {
        drop_blocking((self.readers.close(), self.writer.close()));
    }
}
