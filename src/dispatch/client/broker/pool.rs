//! Broker links by key (broker, login and, for RabbitMQ, vhost and exchange), each made on
//! first use. A link no attempt has used for `IDLE` (its webhooks deleted, or their URLs
//! changed) is dropped at the next look-up after a sweep is due, which closes its
//! connection: the pool holds what webhooks use now, not every broker ever named.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a link may go unused before it is dropped.
const IDLE: Duration = Duration::from_secs(10 * 60);
/// How often the pool looks for idle links (at a look-up, so an unused pool does nothing).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Pool<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    entries: HashMap<String, Arc<Entry<T>>>,
    last_sweep: Instant,
}

/// One key's link (None until made, or after it broke), held while connecting so a burst
/// of attempts makes one connection, not one each.
pub(super) struct Entry<T> {
    pub link: tokio::sync::Mutex<Option<T>>,
    used: Mutex<Instant>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }
}

impl<T> Pool<T> {
    /// The entry of `key` (made when missing), marked used now.
    pub(super) fn entry(&self, key: String) -> Arc<Entry<T>> {
        self.entry_at(key, Instant::now())
    }

    fn entry_at(&self, key: String, now: Instant) -> Arc<Entry<T>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(state.last_sweep) >= SWEEP_EVERY {
            state.last_sweep = now;
            // An entry an attempt holds (a clone out there) is in use, however old its mark.
            state
                .entries
                .retain(|_, e| Arc::strong_count(e) > 1 || now.saturating_duration_since(e.last_used()) < IDLE);
        }
        let entry = state
            .entries
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Entry {
                    link: tokio::sync::Mutex::new(None),
                    used: Mutex::new(now),
                })
            })
            .clone();
        *entry.used.lock().unwrap_or_else(|e| e.into_inner()) = now;
        entry
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().entries.len()
    }
}

impl<T> Entry<T> {
    fn last_used(&self) -> Instant {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_unused_for_the_idle_time_are_dropped_and_used_ones_kept() {
        let pool: Pool<String> = Pool::default();
        let t0 = Instant::now();
        let _ = pool.entry_at("old".into(), t0);
        let held = pool.entry_at("held".into(), t0);
        let _ = pool.entry_at("recent".into(), t0 + IDLE - SWEEP_EVERY);
        assert_eq!(pool.len(), 3);
        let _ = pool.entry_at("new".into(), t0 + IDLE + SWEEP_EVERY);
        let mut left: Vec<_> = pool.state.lock().unwrap().entries.keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["held", "new", "recent"], "the idle one is dropped");
        drop(held);
        // No sweep before SWEEP_EVERY has passed again.
        let _ = pool.entry_at("new".into(), t0 + IDLE + SWEEP_EVERY + Duration::from_secs(1));
        assert_eq!(pool.len(), 3);
        let _ = pool.entry_at("new".into(), t0 + 3 * IDLE);
        assert_eq!(pool.len(), 1, "only the entry just used is left");
    }
}
