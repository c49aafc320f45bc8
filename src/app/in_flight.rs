//! One run of a piece of work for every caller that asks for the same one while it runs: a
//! burst of requests for one key (an argon2 check of one name and key, a read of one user or
//! of the merchant list) waits for a single run instead of queueing one each. A caller that
//! asks after the run ended starts a new one, so nothing is kept beyond the run.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

/// The runs in progress, by key.
pub(super) struct InFlight<K, V>(Mutex<HashMap<K, Arc<OnceCell<V>>>>);

impl<K, V> Default for InFlight<K, V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> InFlight<K, V> {
    /// What `work` gives, shared with the callers that asked for `key` while it ran.
    pub async fn run<F: Future<Output = V>>(&self, key: K, work: impl FnOnce() -> F) -> V {
        let run = self.board(&key);
        let value = run.get_or_init(work).await.clone();
        self.land(&key, &run);
        value
    }

    /// `run` for work that can fail. A failure is not shared: a caller that waited for the
    /// failed run runs the work itself.
    pub async fn try_run<E, F: Future<Output = Result<V, E>>>(&self, key: K, work: impl FnOnce() -> F) -> Result<V, E> {
        let run = self.board(&key);
        let value = run.get_or_try_init(work).await.cloned();
        self.land(&key, &run);
        value
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run of `key` to wait for: the one in progress, or a new one.
    fn board(&self, key: &K) -> Arc<OnceCell<V>> {
        self.lock().entry(key.clone()).or_default().clone()
    }

    /// Ends `run`'s turn as the run of `key` in progress (later callers start another).
    fn land(&self, key: &K, run: &Arc<OnceCell<V>>) {
        let mut runs = self.lock();
        if runs.get(key).is_some_and(|r| Arc::ptr_eq(r, run)) {
            runs.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::InFlight;

    #[tokio::test]
    async fn callers_that_ask_at_once_share_one_run_and_later_ones_start_another() {
        let runs = AtomicUsize::new(0);
        let in_flight = InFlight::<&str, usize>::default();
        let work = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            runs.fetch_add(1, Ordering::SeqCst) + 1
        };
        let (a, b, c) = tokio::join!(
            in_flight.run("k", work),
            in_flight.run("k", work),
            in_flight.run("k", work)
        );
        assert_eq!((a, b, c), (1, 1, 1));
        assert_eq!(in_flight.run("k", work).await, 2, "a run that ended is not kept");
        assert!(in_flight.lock().is_empty());
    }

    #[tokio::test]
    async fn a_failed_run_is_not_shared() {
        let in_flight = InFlight::<(), u8>::default();
        let failed: Result<u8, &str> = in_flight.try_run((), || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        assert_eq!(in_flight.try_run((), || async { Ok::<_, &str>(7) }).await, Ok(7));
    }
}
