//! Wake-ups for the dispatcher: publishers name the webhooks that just got payloads, so
//! new work starts at once instead of waiting for the next queue scan; and deletions and
//! deactivations name the webhooks whose lanes it should drop now rather than when their
//! next (paced) claim finds nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::domain::WebhookId;

/// How long after another node's wake-up this node claims (see `Wake::from_afar`).
pub const AFAR_GRACE_MS: i64 = 50;

#[derive(Default)]
pub struct Wake {
    /// Webhooks with new payloads, and whether a queue scan was asked for.
    pending: Named,
    /// Webhooks with new payloads written by another node (see `from_afar`).
    afar: Named,
    /// Webhooks whose finished payloads' outcomes were just written (see `recorded`).
    recorded: Named,
    /// Webhooks with payloads handed to the dispatcher at insert (see `handed`).
    handed: Named,
    /// Webhooks deleted or turned off, and whether every webhook's state may have changed.
    forgotten: Named,
    notify: Notify,
}

/// Webhooks named since the dispatcher last looked, and a flag for "all of them".
#[derive(Default)]
struct Named(Mutex<(HashSet<WebhookId>, bool)>);

impl Named {
    /// Adds `ids`; whether there was any.
    fn add(&self, ids: impl IntoIterator<Item = WebhookId>) -> bool {
        let mut named = self.0.lock().unwrap();
        let mut any = false;
        for id in ids {
            named.0.insert(id);
            any = true;
        }
        any
    }

    fn flag(&self) {
        self.0.lock().unwrap().1 = true;
    }

    fn take(&self) -> (Vec<WebhookId>, bool) {
        let mut named = self.0.lock().unwrap();
        let ids = named.0.drain().collect();
        (ids, std::mem::take(&mut named.1))
    }
}

impl Wake {
    /// These webhooks have new payloads due now.
    pub fn webhooks(&self, ids: impl IntoIterator<Item = WebhookId>) {
        if self.pending.add(ids) {
            self.notify.notify_one();
        }
    }

    /// These webhooks got payloads due now from another node. That node's dispatcher
    /// claims them at once itself, so this one looks a moment later (`AFAR_GRACE`): what
    /// the writer could not take is still found quickly, and the wake-ups of many of its
    /// commits make one claim here rather than one (mostly empty) claim each.
    pub fn from_afar(&self, ids: impl IntoIterator<Item = WebhookId>) {
        if self.afar.add(ids) {
            self.notify.notify_one();
        }
    }

    /// Takes the webhooks announced by other nodes (see `from_afar`).
    pub fn take_afar(&self) -> Vec<WebhookId> {
        self.afar.take().0
    }

    /// Outcomes that finished these webhooks' payloads are written. Only an ordered
    /// webhook's lane waits for that (its next payload is claimable once the head's outcome
    /// is written); the dispatcher passes over the others, which woke the lane for one
    /// more claim per outcome batch, a third of all claims and mostly empty or taking what
    /// the next publish's wake-up would have (docs/performance.md).
    pub fn recorded(&self, ids: impl IntoIterator<Item = WebhookId>) {
        if self.recorded.add(ids) {
            self.notify.notify_one();
        }
    }

    /// These webhooks have payloads waiting in the hand-off (`store::handoff`), leased to
    /// this node at insert: the dispatcher takes them from there, with no claim.
    pub fn handed(&self, ids: impl IntoIterator<Item = WebhookId>) {
        if self.handed.add(ids) {
            self.notify.notify_one();
        }
    }

    /// Takes the webhooks named by `handed`.
    pub fn take_handed(&self) -> Vec<WebhookId> {
        self.handed.take().0
    }

    /// Takes the webhooks named by `recorded`.
    pub fn take_recorded(&self) -> Vec<WebhookId> {
        self.recorded.take().0
    }

    /// Something changed that only a queue scan finds (e.g. a webhook was re-activated).
    pub fn rescan(&self) {
        self.pending.flag();
        self.notify.notify_one();
    }

    /// These webhooks were deleted, turned off or changed (`webhook.update`): the dispatcher
    /// drops their lanes and what it cached of them, and gives back what its hand-off held.
    pub fn forget(&self, ids: impl IntoIterator<Item = WebhookId>) {
        self.forgotten.add(ids);
        self.notify.notify_one();
    }

    /// Webhooks were turned off without naming them (all of a merchant's, or by topic): the
    /// dispatcher drops every idle lane and its cache, and a queue scan finds what still has
    /// work.
    pub fn forget_all(&self) {
        self.forgotten.flag();
        self.notify.notify_one();
    }

    /// Takes the forgotten webhooks and whether all were.
    pub fn take_forgotten(&self) -> (Vec<WebhookId>, bool) {
        self.forgotten.take()
    }

    /// Takes the announced webhooks and whether a scan was asked for.
    pub fn take(&self) -> (Vec<WebhookId>, bool) {
        self.pending.take()
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}
