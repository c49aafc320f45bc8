//! Attempts in flight per webhook, counted in one place for every sender: the worker's
//! lanes and `webhook.test` pings alike take a slot before they send, so no webhook ever
//! has more requests open at once than its limit, whoever sends them.
//!
//! The limit adapts to the receiver (CONTRACT §6.2), AIMD as TCP does: it starts at
//! `per_webhook`; a congestion signal (429, 503, or no HTTP answer at all: a timeout, a
//! refused or reset connection) halves it, at most once per round trip (a signal from an
//! attempt sent before the last cut says nothing new); every `limit` successes in a row add
//! one, up to `per_webhook` again. It never goes below 1. Connection errors count as
//! congestion because an overloaded server sheds load that way too, and a receiver that is
//! down loses nothing when fewer attempts wait on it. Other answers (500, 404 …) are the
//! receiver's business, not its load: they leave the limit alone. The limit is per node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::client::AttemptOutcome;
use crate::domain::WebhookId;

/// What an attempt's outcome says about the receiver's load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    Success,
    Congestion,
    /// Answered, but neither: leaves the limit alone.
    Neutral,
}

impl Signal {
    pub fn of(outcome: &AttemptOutcome) -> Self {
        match outcome.http_status {
            _ if outcome.success => Signal::Success,
            Some(429 | 503) | None => Signal::Congestion,
            Some(_) => Signal::Neutral,
        }
    }
}

/// One webhook's slots; kept only while they differ from a fresh webhook's.
struct Window {
    used: usize,
    limit: usize,
    /// Successes since the limit last moved.
    successes: usize,
    /// When the limit was last cut.
    cut_at: Option<Instant>,
}

pub struct Slots {
    per_webhook: usize,
    windows: Mutex<HashMap<WebhookId, Window>>,
    freed: Notify,
}

impl Slots {
    pub fn new(per_webhook: usize) -> Self {
        Self {
            per_webhook: per_webhook.max(1),
            windows: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the webhook's window, dropping it after when it is back to a fresh one's.
    fn with<T>(&self, webhook: WebhookId, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.lock();
        let w = windows.entry(webhook).or_insert(Window {
            used: 0,
            limit: self.per_webhook,
            successes: 0,
            cut_at: None,
        });
        let out = f(w);
        if w.used == 0 && w.limit == self.per_webhook {
            windows.remove(&webhook);
        }
        out
    }

    /// Takes up to `want` of the webhook's free slots; returns how many it got.
    pub fn take(&self, webhook: WebhookId, want: usize) -> usize {
        self.with(webhook, |w| {
            let got = want.min(w.limit.saturating_sub(w.used));
            w.used += got;
            got
        })
    }

    /// Gives `n` slots back.
    pub fn give(&self, webhook: WebhookId, n: usize) {
        if n == 0 {
            return;
        }
        self.with(webhook, |w| w.used = w.used.saturating_sub(n));
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
        self.lock().get(&webhook).map_or(0, |w| w.used)
    }

    /// How many attempts the webhook may have in flight now.
    pub fn limit(&self, webhook: WebhookId) -> usize {
        self.lock().get(&webhook).map_or(self.per_webhook, |w| w.limit)
    }

    /// Adapts the webhook's limit to the outcome of an attempt sent at `sent_at`.
    pub fn feedback(&self, webhook: WebhookId, sent_at: Instant, signal: Signal) {
        let max = self.per_webhook;
        self.with(webhook, |w| match signal {
            Signal::Congestion if w.cut_at.is_none_or(|cut| sent_at >= cut) => {
                w.limit = (w.limit / 2).max(1);
                w.successes = 0;
                w.cut_at = Some(Instant::now());
            }
            Signal::Success if w.limit < max => {
                w.successes += 1;
                if w.successes >= w.limit {
                    w.limit += 1;
                    w.successes = 0;
                }
            }
            _ => {}
        });
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

    #[test]
    fn congestion_halves_the_limit_once_per_round_trip_and_successes_grow_it_back() {
        let s = Slots::new(16);
        let w = WebhookId(3);
        let before = Instant::now();
        s.feedback(w, before, Signal::Congestion);
        assert_eq!(s.limit(w), 8);
        s.feedback(w, before, Signal::Congestion);
        assert_eq!(s.limit(w), 8, "sent before the cut: the same congestion");
        s.feedback(w, Instant::now(), Signal::Congestion);
        assert_eq!(s.limit(w), 4);
        assert_eq!(s.take(w, 10), 4, "the worker claims no more than the limit");
        s.give(w, 4);
        for _ in 0..3 {
            s.feedback(w, Instant::now(), Signal::Congestion);
        }
        assert_eq!(s.limit(w), 1, "never below one");
        s.feedback(w, Instant::now(), Signal::Neutral);
        assert_eq!(s.limit(w), 1, "a 500 says nothing about load");
        s.feedback(w, Instant::now(), Signal::Success);
        assert_eq!(s.limit(w), 2, "one window of successes adds one");
        for _ in 0..2 {
            s.feedback(w, Instant::now(), Signal::Success);
        }
        assert_eq!(s.limit(w), 3);
        for _ in 0..1000 {
            s.feedback(w, Instant::now(), Signal::Success);
        }
        assert_eq!(s.limit(w), 16, "never above per_webhook");
        assert_eq!(s.limit(WebhookId(4)), 16, "other webhooks keep theirs");
    }

    #[test]
    fn timeouts_and_429_and_503_are_congestion() {
        let outcome = |success, http_status| AttemptOutcome {
            success,
            http_status,
            duration: Duration::ZERO,
            response_prefix: String::new(),
            error: None,
            retry_after: None,
        };
        assert_eq!(Signal::of(&outcome(true, Some(200))), Signal::Success);
        assert_eq!(Signal::of(&outcome(false, Some(429))), Signal::Congestion);
        assert_eq!(Signal::of(&outcome(false, Some(503))), Signal::Congestion);
        assert_eq!(Signal::of(&outcome(false, None)), Signal::Congestion);
        assert_eq!(Signal::of(&outcome(false, Some(500))), Signal::Neutral);
    }
}
