//! Wake-ups for the dispatcher: publishers name the webhooks that just got payloads, so
//! new work starts at once instead of waiting for the next queue scan; and deletions and
//! deactivations name the webhooks whose lanes it should drop now rather than when their
//! next (paced) claim finds nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::domain::WebhookId;

#[derive(Default)]
pub struct Wake {
    pending: Mutex<(HashSet<WebhookId>, bool)>,
    /// Webhooks deleted or turned off, and whether every webhook's state may have changed.
    forgotten: Mutex<(HashSet<WebhookId>, bool)>,
    notify: Notify,
}

impl Wake {
    /// These webhooks have new payloads due now.
    pub fn webhooks(&self, ids: impl IntoIterator<Item = WebhookId>) {
        let mut any = false;
        {
            let mut p = self.pending.lock().unwrap();
            for id in ids {
                p.0.insert(id);
                any = true;
            }
        }
        if any {
            self.notify.notify_one();
        }
    }

    /// Something changed that only a queue scan finds (e.g. a webhook was re-activated).
    pub fn rescan(&self) {
        self.pending.lock().unwrap().1 = true;
        self.notify.notify_one();
    }

    /// These webhooks were deleted or turned off: the dispatcher drops their lanes and what
    /// it cached of them.
    pub fn forget(&self, ids: impl IntoIterator<Item = WebhookId>) {
        self.forgotten.lock().unwrap().0.extend(ids);
        self.notify.notify_one();
    }

    /// Webhooks were turned off without naming them (all of a merchant's, or by topic): the
    /// dispatcher drops every idle lane and its cache, and a queue scan finds what still has
    /// work.
    pub fn forget_all(&self) {
        self.forgotten.lock().unwrap().1 = true;
        self.notify.notify_one();
    }

    /// Takes the forgotten webhooks and whether all were.
    pub fn take_forgotten(&self) -> (Vec<WebhookId>, bool) {
        let mut f = self.forgotten.lock().unwrap();
        let ids = f.0.drain().collect();
        let all = std::mem::take(&mut f.1);
        (ids, all)
    }

    /// Takes the announced webhooks and whether a scan was asked for.
    pub fn take(&self) -> (Vec<WebhookId>, bool) {
        let mut p = self.pending.lock().unwrap();
        let ids = p.0.drain().collect();
        let rescan = std::mem::take(&mut p.1);
        (ids, rescan)
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}
