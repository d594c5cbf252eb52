//! [`ReadGuard`] and [`WriteGuard`]: owned, `Send + 'static` handles on a pooled
//! connection, whichever backend it came from.
//!
//! Dropping a guard rolls back any transaction its user left open and returns the
//! connection to its pool. A guard does not move work off the async runtime by itself:
//! move it into `spawn_blocking` (or use [`crate::PoolManager`]'s helpers).

use std::fmt;
use std::ops::{Deref, DerefMut};

use rusqlite::Connection;

use crate::bb8_pool::Bb8Conn;
use crate::builtin::Lease;
use crate::connect;
use crate::pool::PoolKind;

/// A connection from either backend.
pub(crate) enum Inner {
    Bb8(Bb8Conn),
    Builtin(Lease),
}

impl Inner {
    fn conn(&self) -> &Connection {
        match self {
            Inner::Bb8(conn) => conn,
            Inner::Builtin(lease) => lease,
        }
    }

    fn conn_mut(&mut self) -> &mut Connection {
        match self {
            Inner::Bb8(conn) => &mut *conn,
            Inner::Builtin(lease) => &mut *lease,
        }
    }

    fn kind(&self) -> PoolKind {
        match self {
            Inner::Bb8(_) => PoolKind::Bb8,
            Inner::Builtin(_) => PoolKind::Builtin,
        }
    }
}

impl Drop for Inner {
    // Runs before the backend's own drop hands the connection back.
    fn drop(&mut self) {
        connect::reset(self.conn());
    }
}

/// A read-only connection; writes through it fail with SQLite's `ReadOnly` error.
pub struct ReadGuard {
    inner: Inner,
}

impl ReadGuard {
    pub(crate) fn new(inner: Inner) -> Self {
        ReadGuard { inner }
    }

    /// The backend this connection belongs to.
    pub fn kind(&self) -> PoolKind {
        self.inner.kind()
    }
}

impl Deref for ReadGuard {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.inner.conn()
    }
}

impl fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// The writer connection; exclusive while held.
pub struct WriteGuard {
    inner: Inner,
}

impl WriteGuard {
    pub(crate) fn new(inner: Inner) -> Self {
        WriteGuard { inner }
    }

    /// The backend this connection belongs to.
    pub fn kind(&self) -> PoolKind {
        self.inner.kind()
    }
}

impl Deref for WriteGuard {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.inner.conn()
    }
}

impl DerefMut for WriteGuard {
    fn deref_mut(&mut self) -> &mut Connection {
        self.inner.conn_mut()
    }
}

impl fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_static<T: Send + 'static>() {}

    #[test]
    fn guards_can_move_into_blocking_tasks() {
        send_static::<ReadGuard>();
        send_static::<WriteGuard>();
    }
}
