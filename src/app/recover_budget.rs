//! How many failed payloads `webhook.recover` may queue again: at most `PER_CALL` in one
//! call, and `PER_MINUTE` per webhook within a minute (a window opened by the first recovery
//! and counted by what was actually requeued), so neither one call nor calls in a row flood
//! the queue. A call reserves its share before it writes and gives back what it did not use,
//! so calls at the same moment cannot pass the bound together. Kept per node, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::WebhookId;
use crate::time::Millis;

/// Most payloads one `webhook.recover` call queues again.
pub const PER_CALL: u64 = 1000;

/// Most payloads of one webhook queued again by `webhook.recover` within `WINDOW`.
pub const PER_MINUTE: u64 = 5000;

/// The window `PER_MINUTE` counts in, in milliseconds.
const WINDOW: Millis = 60_000;

#[derive(Default)]
pub struct RecoverBudget {
    windows: Mutex<HashMap<WebhookId, Window>>,
}

struct Window {
    opened: Millis,
    used: u64,
}

/// A window with nothing left: when it ends, from now.
#[derive(Debug, PartialEq, Eq)]
pub struct Exhausted {
    pub retry_in: Millis,
}

impl RecoverBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves up to `PER_CALL` of the webhook's budget at `now`.
    pub fn reserve(&self, webhook: WebhookId, now: Millis) -> Result<u64, Exhausted> {
        let mut windows = self.lock();
        windows.retain(|_, w| w.opened + WINDOW > now);
        let window = windows.entry(webhook).or_insert(Window { opened: now, used: 0 });
        let granted = PER_CALL.min(PER_MINUTE.saturating_sub(window.used));
        if granted == 0 {
            return Err(Exhausted {
                retry_in: window.opened + WINDOW - now,
            });
        }
        window.used += granted;
        Ok(granted)
    }

    /// Gives back what a reservation did not use.
    pub fn refund(&self, webhook: WebhookId, unused: u64) {
        if let Some(window) = self.lock().get_mut(&webhook) {
            window.used = window.used.saturating_sub(unused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: WebhookId = WebhookId(1);

    #[test]
    fn a_call_gets_at_most_a_thousand_and_a_minute_at_most_five_thousand() {
        let budget = RecoverBudget::default();
        for _ in 0..5 {
            assert_eq!(budget.reserve(W, 1000), Ok(PER_CALL));
        }
        assert_eq!(budget.reserve(W, 31_000), Err(Exhausted { retry_in: 30_000 }));
        assert_eq!(budget.reserve(WebhookId(2), 31_000), Ok(PER_CALL), "per webhook");
        assert_eq!(budget.reserve(W, 61_000), Ok(PER_CALL), "a new minute");
    }

    #[test]
    fn what_a_call_did_not_use_is_given_back() {
        let budget = RecoverBudget::default();
        for _ in 0..4 {
            assert_eq!(budget.reserve(W, 0), Ok(PER_CALL));
        }
        budget.refund(W, 700);
        assert_eq!(budget.reserve(W, 0), Ok(PER_CALL));
        assert_eq!(budget.reserve(W, 0), Ok(700), "the rest of the minute's budget");
        assert!(budget.reserve(W, 0).is_err());
    }
}
