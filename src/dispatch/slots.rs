//! Attempts in flight per webhook, counted in one place for every sender: the worker's
//! lanes and `webhook.test` pings alike take a slot before they send, so no webhook ever
//! has more than `per_webhook` requests open at once, whoever sends them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::WebhookId;

pub struct Slots {
    per_webhook: usize,
    taken: Mutex<HashMap<WebhookId, usize>>,
    freed: Notify,
}

impl Slots {
    pub fn new(per_webhook: usize) -> Self {
        Self {
            per_webhook: per_webhook.max(1),
            taken: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    /// Takes up to `want` of the webhook's free slots; returns how many it got.
    pub fn take(&self, webhook: WebhookId, want: usize) -> usize {
        let mut taken = self.taken.lock().unwrap();
        let used = taken.entry(webhook).or_default();
        let got = want.min(self.per_webhook.saturating_sub(*used));
        *used += got;
        if *used == 0 {
            taken.remove(&webhook);
        }
        got
    }

    /// Gives `n` slots back.
    pub fn give(&self, webhook: WebhookId, n: usize) {
        if n == 0 {
            return;
        }
        {
            let mut taken = self.taken.lock().unwrap();
            if let Some(used) = taken.get_mut(&webhook) {
                *used = used.saturating_sub(n);
                if *used == 0 {
                    taken.remove(&webhook);
                }
            }
        }
        self.freed.notify_waiters();
    }

    /// Waits up to `patience` for one slot of the webhook; false when none came free.
    pub async fn take_one(&self, webhook: WebhookId, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.take(webhook, 1) == 1 {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return false;
            }
        }
    }

    /// Slots of the webhook in use now.
    pub fn in_use(&self, webhook: WebhookId) -> usize {
        self.taken.lock().unwrap().get(&webhook).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_never_gets_more_than_its_slots() {
        let s = Slots::new(3);
        let w = WebhookId(1);
        assert_eq!(s.take(w, 2), 2);
        assert_eq!(s.take(w, 2), 1);
        assert_eq!(s.take(w, 1), 0);
        assert_eq!(s.take(WebhookId(2), 5), 3, "other webhooks have their own");
        s.give(w, 2);
        assert_eq!(s.in_use(w), 1);
        assert_eq!(s.take(w, 5), 2);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_given_back() {
        let s = std::sync::Arc::new(Slots::new(1));
        let w = WebhookId(7);
        assert_eq!(s.take(w, 1), 1);
        assert!(!s.take_one(w, Duration::from_millis(20)).await, "full: times out");
        let giver = {
            let s = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.give(w, 1);
            })
        };
        assert!(s.take_one(w, Duration::from_secs(5)).await);
        giver.await.unwrap();
        assert_eq!(s.in_use(w), 1);
    }
}
