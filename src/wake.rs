//! Wake-ups for the dispatcher: publishers name the webhooks that just got payloads, so
//! new work starts at once instead of waiting for the next queue scan.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::domain::WebhookId;

#[derive(Default)]
pub struct Wake {
    pending: Mutex<(HashSet<WebhookId>, bool)>,
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
