//! [`OpensInFlight`]: counts connection opens still running on blocking threads.
//!
//! When bb8 fails to build a pool, it drops the futures of the opens it started; each of
//! them runs on, on its blocking thread, and closes its connection only when it ends. A
//! fallback that opens its own connections at once would then compete with descriptors
//! that are about to be released (the "too many open files" case that made it fall back).
//! So every open carries an [`OpenTicket`], dropped after its connection on the same
//! thread, and a failed build waits for [`OpensInFlight::settled`].

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Shared count of the opens started and not yet ended.
#[derive(Debug, Default)]
pub(crate) struct OpensInFlight {
    count: Mutex<usize>,
    ended: Notify,
}

/// Held by one open until it ends; keep it next to the connection it opens, after it in
/// drop order, so the count falls only once the connection is closed.
#[derive(Debug)]
pub(crate) struct OpenTicket(Arc<OpensInFlight>);

impl OpensInFlight {
    /// Counts one more open until the returned ticket drops.
    pub(crate) fn start(self: &Arc<Self>) -> OpenTicket {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        OpenTicket(Arc::clone(self))
    }

    fn running(&self) -> usize {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once no open is running.
    pub(crate) async fn settled(&self) {
        loop {
            // Created before the check, so an end between check and await still wakes us.
            let ended = self.ended.notified();
            if self.running() == 0 {
                return;
            }
            ended.await;
        }
    }
}

impl Drop for OpenTicket {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_sub(1);
        drop(count);
        self.0.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Opens whose futures were dropped (as bb8 drops them on a failed build) still hold
    /// their resource; `settled` must return only after every one has released it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settled_waits_for_abandoned_blocking_opens() {
        let opens = Arc::new(OpensInFlight::default());
        let released = Arc::new(AtomicUsize::new(0));
        for i in 0..6u64 {
            let ticket = opens.start();
            let released = Arc::clone(&released);
            // The handle is dropped at once: nobody awaits the open, as after a failed build.
            drop(tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(40 + 30 * i));
                released.fetch_add(1, Ordering::SeqCst);
                drop(ticket);
            }));
        }
        opens.settled().await;
        assert_eq!(released.load(Ordering::SeqCst), 6);
        assert_eq!(opens.running(), 0);
    }

    #[tokio::test]
    async fn settled_returns_at_once_when_nothing_runs() {
        let opens = Arc::new(OpensInFlight::default());
        drop(opens.start());
        tokio::time::timeout(Duration::from_secs(5), opens.settled())
            .await
            .expect("settled must not wait when no open runs");
    }
}
