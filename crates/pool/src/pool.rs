//! The object-safe [`ConnectionPool`] trait both backends implement, with [`PoolKind`],
//! [`PoolStats`] and the blocking-thread helpers [`run_blocking`] and `drop_blocking`.
//!
//! It hands out guards only; running closures and transactions is [`crate::PoolManager`]'s job.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::guard::{ReadGuard, WriteGuard};

/// Which backend serves a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The bb8-based primary.
    Bb8,
    /// The built-in tokio fallback.
    Builtin,
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolKind::Bb8 => "bb8",
            PoolKind::Builtin => "builtin",
        })
    }
}

/// Counters for one side of a pool (the readers or the writer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleStats {
    /// Connections currently handed out.
    pub in_use: usize,
    /// Connections ready to be handed out.
    pub idle: usize,
    /// Acquisitions so far that found no idle connection and had to queue.
    pub waits: u64,
}

/// A snapshot of a pool's counters; all zero connections after `close`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The read-only connections.
    pub readers: RoleStats,
    /// The single writer connection.
    pub writer: RoleStats,
}

/// A pool of one writer and N read-only connections to one SQLite file.
///
/// Guards are owned and `Send + 'static`; use them inside `spawn_blocking`
/// (see [`run_blocking`]) so SQLite never runs on a tokio worker thread.
///
/// Waiters are served in arrival order. The built-in pool is strictly FIFO; bb8 wakes its
/// waiters FIFO, but a caller arriving just as a connection comes back may take it first.
#[async_trait]
pub trait ConnectionPool: Send + Sync + fmt::Debug {
    /// Waits, up to the acquire timeout, for a read-only connection.
    async fn read(&self) -> Result<ReadGuard>;
    /// Waits, up to the acquire timeout, for the writer connection.
    async fn write(&self) -> Result<WriteGuard>;
    /// Which backend this is.
    fn kind(&self) -> PoolKind;
    /// Refuses further acquisitions ([`Error::Closed`]) and closes idle connections;
    /// connections still in use close when their guards drop.
    async fn close(&self);
    /// Current counters.
    fn stats(&self) -> PoolStats;
}

/// Runs blocking work on tokio's blocking pool; a panic (or cancellation at runtime
/// shutdown) becomes [`Error::Panicked`] instead of unwinding into the caller.
pub async fn run_blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|err| {
        if err.is_panic() {
            let payload = err.into_panic();
            let message = match payload.downcast::<String>() {
                Ok(message) => *message,
                Err(payload) => match payload.downcast::<&'static str>() {
                    Ok(message) => (*message).to_owned(),
                    Err(_) => "non-string panic payload".to_owned(),
                },
            };
            Error::Panicked(message)
        } else {
            Error::Panicked("blocking task was cancelled".to_owned())
        }
    })
}

/// Drops `value` (typically connections, whose close may checkpoint the WAL) on the
/// blocking pool when a runtime is available, inline otherwise.
pub(crate) fn drop_blocking<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_displays_its_name() {
        assert_eq!(PoolKind::Bb8.to_string(), "bb8");
        assert_eq!(PoolKind::Builtin.to_string(), "builtin");
    }

    #[tokio::test]
    async fn run_blocking_turns_panics_into_errors() {
        assert_eq!(run_blocking(|| 7).await.unwrap(), 7);
        let err = run_blocking(|| -> u8 { panic!("boom {}", 1) })
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Panicked(m) if m == "boom 1"), "{err}");
        let err = run_blocking(|| -> u8 { panic!("static") })
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Panicked(m) if m == "static"), "{err}");
    }
}
