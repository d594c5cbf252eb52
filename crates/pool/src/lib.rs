//! SQLite connection pools for marketdb: one writer and N read-only connections to one
//! database file, served by bb8 (primary) or a built-in tokio pool (fallback).
//!
//! Main types: [`PoolManager`] (opens a pool from a [`PoolConfig`], picks and downgrades the
//! backend, runs closures via [`PoolManager::read`] / [`PoolManager::write`]), the
//! object-safe [`ConnectionPool`] trait, the owned guards [`ReadGuard`] / [`WriteGuard`],
//! and [`Error`].
//!
//! Concurrency model: WAL, every connection with `busy_timeout` and the configured
//! [`Pragmas`], readers opened `SQLITE_OPEN_READ_ONLY` after the writer created the file,
//! and every write transaction `BEGIN IMMEDIATE`; with one writer that keeps
//! `SQLITE_BUSY` away from callers.
//!
//! No SQLite call runs on a tokio worker thread, because:
//! - connections are opened and configured only in `spawn_blocking` (bb8's async
//!   `connect` awaits a blocking task; the built-in pool opens all of them in one);
//! - bb8 never validates connections on checkout and its `has_broken` is a constant;
//! - `PoolManager::read`/`write` move the owned guard into [`run_blocking`], so the query,
//!   the commit or rollback, and the guard's drop all happen on the blocking thread, also
//!   when the closure panics;
//! - `close` and dropping a pool close idle connections on the blocking pool.
//!
//! Callers holding a raw guard from [`PoolManager::read_guard`] must do the same (move it
//! into `spawn_blocking`). A guard dropped with an open transaction rolls it back.
//!
//! This crate knows nothing about market data, schemas or migrations, and does not retry.

mod bb8_pool;
mod builtin;
mod config;
mod connect;
mod error;
mod guard;
mod in_flight;
mod manager;
mod pool;

#[cfg(feature = "fault-injection")]
pub use config::Faults;
pub use config::{Backend, JournalMode, PoolConfig, Pragmas, Synchronous, TempStore, WriterSetup};
pub use error::{Error, Result};
pub use guard::{ReadGuard, WriteGuard};
pub use manager::PoolManager;
pub use pool::{ConnectionPool, PoolKind, PoolStats, RoleStats, run_blocking};
