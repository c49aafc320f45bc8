//! Leases of the SQLite store, kept in memory.
//!
//! One SQLite file is served by one process (start-up drops any lease a killed process left
//! in the database), so a lease only has to keep this process's dispatcher from sending a
//! payload twice at once: a map from payload to lease expiry does that without a write.
//! Claiming is then a read, and the writer thread only commits publishes and outcomes.
//!
//! The order that keeps it right: a payload is held before it can be seen as due (claim
//! holds what it read; `webhook.test` holds its payload before the insert commits), and it
//! is let go only after the write that takes it out of the queue has committed.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::{DeliveryId, WebhookId};
use crate::time::Millis;

#[derive(Default)]
pub struct Leases {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    until: HashMap<DeliveryId, (WebhookId, Millis)>,
    per_webhook: HashMap<WebhookId, usize>,
}

impl Held {
    fn remove(&mut self, id: DeliveryId) {
        if let Some((webhook, _)) = self.until.remove(&id) {
            if let Some(n) = self.per_webhook.get_mut(&webhook) {
                *n -= 1;
                if *n == 0 {
                    self.per_webhook.remove(&webhook);
                }
            }
        }
    }

    fn insert(&mut self, id: DeliveryId, webhook: WebhookId, until: Millis) {
        if self.until.insert(id, (webhook, until)).is_none() {
            *self.per_webhook.entry(webhook).or_default() += 1;
        }
    }
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many of the webhook's payloads are held (expired leases included), so a claim
    /// can read enough candidates to find `limit` free ones.
    pub fn held_for(&self, webhook: WebhookId) -> usize {
        self.lock().per_webhook.get(&webhook).copied().unwrap_or(0)
    }

    /// Holds the candidates that are free (never held, or their lease expired) until
    /// `until`, at most `limit` of them, in the order given; returns which.
    pub fn take(
        &self,
        webhook: WebhookId,
        candidates: impl IntoIterator<Item = DeliveryId>,
        now: Millis,
        until: Millis,
        limit: usize,
    ) -> Vec<DeliveryId> {
        let mut held = self.lock();
        let mut taken = Vec::with_capacity(limit);
        for id in candidates {
            if taken.len() == limit {
                break;
            }
            if held.until.get(&id).is_some_and(|&(_, u)| u > now) {
                continue;
            }
            held.insert(id, webhook, until);
            taken.push(id);
        }
        taken
    }

    /// Holds one payload (made already claimed, by `webhook.test`).
    pub fn hold(&self, id: DeliveryId, webhook: WebhookId, until: Millis) {
        self.lock().insert(id, webhook, until);
    }

    /// Lets payloads go (their outcome has committed, or their claim was abandoned).
    pub fn release(&self, ids: impl IntoIterator<Item = DeliveryId>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: WebhookId = WebhookId(1);

    fn ids(v: &[i64]) -> Vec<DeliveryId> {
        v.iter().copied().map(DeliveryId).collect()
    }

    #[test]
    fn a_held_payload_is_not_taken_again_until_released_or_expired() {
        let l = Leases::default();
        assert_eq!(l.take(W, ids(&[1, 2, 3]), 0, 100, 2), ids(&[1, 2]));
        assert_eq!(l.held_for(W), 2);
        assert_eq!(l.take(W, ids(&[1, 2, 3]), 50, 100, 5), ids(&[3]));
        l.release(ids(&[1]));
        assert_eq!(l.take(W, ids(&[1, 2, 3]), 60, 200, 5), ids(&[1]));
        // 2 and 3 were held until 100: at 100 they are free again; 1 (until 200) is not.
        assert_eq!(l.take(W, ids(&[1, 2, 3]), 100, 300, 5), ids(&[2, 3]));
        assert_eq!(l.held_for(W), 3);
        l.release(ids(&[1, 2, 3, 4]));
        assert_eq!(l.held_for(W), 0);
    }

    #[test]
    fn counts_are_per_webhook() {
        let l = Leases::default();
        l.hold(DeliveryId(9), WebhookId(2), 100);
        l.take(W, ids(&[1]), 0, 100, 1);
        assert_eq!((l.held_for(W), l.held_for(WebhookId(2))), (1, 1));
        l.release(ids(&[9]));
        assert_eq!((l.held_for(W), l.held_for(WebhookId(2))), (1, 0));
    }
}
