//! Leases of the SQLite store, kept in memory.
//!
//! One SQLite file is served by one process (the server takes a lock on the file's
//! `.serve-lock`, see `startup`), and a lease ends with its process, so a lease only has to
//! keep this process's dispatcher from sending a payload twice at once: a map from payload
//! to lease expiry does that without a write. Claiming is then a read, and the writer
//! commits nothing for it (the database has no lease columns).
//!
//! The order that keeps it right: a payload is held before it can be seen as due (claim
//! holds what it read; `webhook.test` holds its payload before the insert commits), and it
//! is let go only after the write that takes it out of the queue has committed. One race is
//! left: a claim reads a payload as queued, its outcome commits and its lease goes, and then
//! the claim would take it. So releases are numbered (`epoch`): a claim notes the epoch
//! before it reads, and never takes what was let go after that, since its read may be stale.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use crate::domain::{DeliveryId, WebhookId};
use crate::time::Millis;

#[derive(Default)]
pub struct Leases {
    inner: Mutex<Held>,
}

/// How many recent releases are remembered for the race above (claims take microseconds,
/// so a claim that sees more releases than this during its read is very rare).
const RECENT: usize = 8192;

#[derive(Default)]
struct Held {
    until: HashMap<DeliveryId, (WebhookId, Millis)>,
    per_webhook: HashMap<WebhookId, usize>,
    /// Counts `release` calls.
    epoch: u64,
    /// The last `RECENT` payloads let go, with the epoch of their release.
    recent: VecDeque<(u64, DeliveryId)>,
    /// The newest epoch that fell out of `recent`.
    forgotten: u64,
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

    /// The release count, to note before reading candidates for `take`.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Holds, until `until`, at most `limit` of the candidates (read after `epoch` was
    /// `seen`) that are free: not held (or their lease expired) and not let go since `seen`.
    /// Returns those taken, in the order given, and whether some were refused as stale.
    pub fn take<T>(
        &self,
        webhook: WebhookId,
        seen: u64,
        candidates: Vec<T>,
        id_of: impl Fn(&T) -> DeliveryId,
        (now, until): (Millis, Millis),
        limit: usize,
    ) -> (Vec<T>, bool) {
        let mut held = self.lock();
        if held.forgotten > seen {
            // Too much happened during the read to tell what is stale: take nothing now.
            return (Vec::new(), true);
        }
        let stale: HashSet<DeliveryId> = held
            .recent
            .iter()
            .rev()
            .take_while(|(epoch, _)| *epoch > seen)
            .map(|(_, id)| *id)
            .collect();
        let mut refused_stale = false;
        let mut taken = Vec::with_capacity(limit);
        for candidate in candidates {
            if taken.len() == limit {
                break;
            }
            let id = id_of(&candidate);
            if stale.contains(&id) {
                refused_stale = true;
                continue;
            }
            if held.until.get(&id).is_some_and(|&(_, u)| u > now) {
                continue;
            }
            held.insert(id, webhook, until);
            taken.push(candidate);
        }
        (taken, refused_stale)
    }

    /// Holds one payload (made already claimed, by `webhook.test`).
    pub fn hold(&self, id: DeliveryId, webhook: WebhookId, until: Millis) {
        self.lock().insert(id, webhook, until);
    }

    /// Moves the leases of those of `ids` still held (unexpired at `now`) to `until`;
    /// returns them. (A handed payload that waited is confirmed so, see `store::handoff`.)
    pub fn extend(&self, ids: &[DeliveryId], (now, until): (Millis, Millis)) -> Vec<DeliveryId> {
        let mut held = self.lock();
        let mut kept = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(lease) = held.until.get_mut(id).filter(|(_, u)| *u > now) {
                lease.1 = until;
                kept.push(*id);
            }
        }
        kept
    }

    /// Lets payloads go (their outcome has committed, or their claim was abandoned).
    pub fn release(&self, ids: impl IntoIterator<Item = DeliveryId>) {
        let mut held = self.lock();
        held.epoch += 1;
        let epoch = held.epoch;
        for id in ids {
            held.remove(id);
            held.recent.push_back((epoch, id));
            if held.recent.len() > RECENT {
                if let Some((old, _)) = held.recent.pop_front() {
                    held.forgotten = old;
                }
            }
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

    /// Takes from fresh reads (noted at the current epoch).
    fn take(l: &Leases, candidates: &[i64], now: Millis, until: Millis, limit: usize) -> Vec<DeliveryId> {
        l.take(W, l.epoch(), ids(candidates), |d| *d, (now, until), limit).0
    }

    #[test]
    fn a_held_payload_is_not_taken_again_until_released_or_expired() {
        let l = Leases::default();
        assert_eq!(take(&l, &[1, 2, 3], 0, 100, 2), ids(&[1, 2]));
        assert_eq!(l.held_for(W), 2);
        assert_eq!(take(&l, &[1, 2, 3], 50, 100, 5), ids(&[3]));
        l.release(ids(&[1]));
        assert_eq!(take(&l, &[1, 2, 3], 60, 200, 5), ids(&[1]));
        // 2 and 3 were held until 100: at 100 they are free again; 1 (until 200) is not.
        assert_eq!(take(&l, &[1, 2, 3], 100, 300, 5), ids(&[2, 3]));
        assert_eq!(l.held_for(W), 3);
        l.release(ids(&[1, 2, 3, 4]));
        assert_eq!(l.held_for(W), 0);
    }

    #[test]
    fn what_was_let_go_after_the_read_began_is_not_taken() {
        let l = Leases::default();
        assert_eq!(take(&l, &[1, 2], 0, 100, 5), ids(&[1, 2]));
        let seen = l.epoch();
        // While the claim reads, 1's outcome commits and its lease goes.
        l.release(ids(&[1]));
        let (taken, stale) = l.take(W, seen, ids(&[1, 3]), |d| *d, (0, 100), 5);
        assert_eq!((taken, stale), (ids(&[3]), true));
        // A read that begins after the release may take it.
        assert_eq!(take(&l, &[1], 0, 100, 5), ids(&[1]));
    }

    #[test]
    fn a_read_overtaken_by_too_many_releases_takes_nothing() {
        let l = Leases::default();
        let seen = l.epoch();
        for i in 0..(RECENT as i64 + 1) {
            l.release([DeliveryId(1000 + i)]);
        }
        assert_eq!(l.take(W, seen, ids(&[1]), |d| *d, (0, 100), 5), (vec![], true));
        assert_eq!(take(&l, &[1], 0, 100, 5), ids(&[1]));
    }

    #[test]
    fn only_leases_still_held_are_extended() {
        let l = Leases::default();
        assert_eq!(take(&l, &[1, 2, 3], 0, 100, 5), ids(&[1, 2, 3]));
        l.release(ids(&[2]));
        assert_eq!(l.extend(&ids(&[1, 2, 3, 4]), (50, 500)), ids(&[1, 3]));
        // Extended: not free at 100 any more, but at 500.
        assert!(take(&l, &[1, 3], 100, 600, 5).is_empty());
        assert_eq!(take(&l, &[1], 500, 600, 5), ids(&[1]));
        // One that ran out is not extended.
        assert!(l.extend(&ids(&[3]), (500, 900)).is_empty());
    }

    #[test]
    fn counts_are_per_webhook() {
        let l = Leases::default();
        l.hold(DeliveryId(9), WebhookId(2), 100);
        take(&l, &[1], 0, 100, 1);
        assert_eq!((l.held_for(W), l.held_for(WebhookId(2))), (1, 1));
        l.release(ids(&[9]));
        assert_eq!((l.held_for(W), l.held_for(WebhookId(2))), (1, 0));
    }
}
