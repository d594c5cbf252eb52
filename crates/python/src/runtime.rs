//! The tokio runtime the package's calls run on, one per process.
//!
//! A child made by `fork` inherits the parent's memory but none of its threads: a runtime
//! created before the fork has no workers and no blocking threads in the child, and a call
//! on it waits forever. So the runtime belongs to the process that made it: a call from
//! another process (the child) creates that process's own runtime, and the inherited one
//! is leaked, never dropped (dropping it would wait for threads that do not exist there).
//!
//! At interpreter exit the runtime is shut down and its threads joined (`shutdown`), before
//! Python finalizes: no thread of ours is then left to take the GIL of a finalizing
//! interpreter, which is what made Python abort a Rust thread at exit.

use std::{
    future::Future,
    pin::Pin,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use pyo3_async_runtimes::{
    TaskLocals,
    generic::{ContextExt, Runtime},
};
use tokio::runtime::Handle;

use crate::error::{Failure, Result, StorageError};

/// The runtime of the current process and the process id that made it.
static CURRENT: Mutex<Option<(u32, tokio::runtime::Runtime)>> = Mutex::new(None);

/// How long `shutdown` waits for work still running (a write being committed).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

fn current() -> MutexGuard<'static, Option<(u32, tokio::runtime::Runtime)>> {
    // A panic while holding the lock leaves a usable runtime (or none) behind.
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handle of this process's runtime, created on first use (again after a fork).
pub fn handle() -> Result<Handle> {
    let pid = std::process::id();
    let mut slot = current();
    if let Some((owner, runtime)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(runtime.handle().clone());
    }
    if let Some((_, inherited)) = slot.take() {
        // Made by the parent before a fork: its threads are not in this process.
        std::mem::forget(inherited);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("marketdb")
        .build()
        .map_err(|e| {
            Failure::Py(StorageError::new_err(format!(
                "cannot start the runtime: {e}"
            )))
        })?;
    let handle = runtime.handle().clone();
    *slot = Some((pid, runtime));
    Ok(handle)
}

/// Whether `pid` is this process (a handle made before a fork belongs to the parent).
pub fn is_this_process(pid: u32) -> bool {
    pid == std::process::id()
}

/// Shuts the runtime down and joins its threads (at interpreter exit, with the GIL
/// released). A later call starts a new runtime.
pub fn shutdown() {
    let taken = current().take();
    if let Some((owner, runtime)) = taken {
        if is_this_process(owner) {
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
        } else {
            std::mem::forget(runtime);
        }
    }
}

tokio::task_local! {
    /// The asyncio event loop and context of the coroutine awaiting a task.
    static TASK_LOCALS: std::cell::OnceCell<TaskLocals>;
}

/// The bridge to asyncio (pyo3-async-runtimes' generic API) on this process's runtime.
pub struct ProcessRuntime;

impl Runtime for ProcessRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        spawn_here().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        spawn_here().spawn_blocking(f)
    }
}

/// The runtime for a spawn from the bridge, which cannot report an error. `finish` calls
/// [`handle`] before it hands a future to the bridge, so the runtime exists by then and
/// this cannot fail short of a fork between the two calls in a process out of threads;
/// the bridge turns the panic into a Python exception.
fn spawn_here() -> Handle {
    #[allow(clippy::expect_used)]
    handle().expect("the runtime could not be started in this process")
}

impl ContextExt for ProcessRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}
