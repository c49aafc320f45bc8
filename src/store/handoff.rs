//! Payloads leased at insert: the publishing node's dispatcher takes them from here rather
//! than claiming them back from the database (issue 28).
//!
//! On PostgreSQL a fresh payload used to cost a claim: a statement that found the rows the
//! publish had just written and leased them, and on two nodes the other node's claim raced
//! for them too. Now the publish statement itself writes the lease (this node's owner name,
//! and the lease's end) onto the fresh payloads of plain webhooks (neither ordered nor
//! paced: those keep their claims, which decide order and tokens), and the node hands them
//! to its dispatcher through this queue, bodies included, once the batch's commit is flushed
//! (`postgres::publisher`: the statement commits without waiting for its flush). Each node
//! then sends what it published, and the other node is not woken for it.
//!
//! SQLite does the same with its in-memory leases (`sqlite::publish`): the publish job holds
//! the payloads before its batch commits, and the store puts them here once the batch is
//! durable. There it saves a read on a reader thread per claim, and a wake-up's wait.
//!
//! A payload is sent as handed only within `FRESH` of its publish. One that waited longer
//! (its webhook's slots were busy) is confirmed first (`Store::delivery_renew`): still
//! queued, its webhook still active, the lease still this node's, which the confirmation
//! extends: the check that remains should this node miss another node's word that the
//! webhook changed (`hookd_changed`, see `store::postgres::wakeups`). One that waited past
//! `wait` (the lease less an attempt's longest time and a margin) is dropped: its lease
//! runs out soon and a claim sends it.
//!
//! A webhook has at most `room` payloads waiting here; beyond that the publish writes them
//! unleased, for a claim. Such a claim may take more than its lane's free slots, up to the
//! room left here: the rest wait here too (`park`), the webhook's whole queue in increment
//! order, and until a claim comes back short the webhook's publishes lease nothing (`hold`),
//! so that payloads queued for a claim are not sent after newer ones handed over meanwhile
//! (see `dispatch::worker`, `claim_first`).
//!
//! Nothing is handed while no dispatcher runs on this node (`open`); what waits when it stops, or for a webhook deleted or turned off, is
//! given up, and the dispatcher ends those leases at once (`Store::delivery_release`); so is
//! what waits for a webhook updated (through any node), to be claimed under its new settings.
//! (Should that fail, or the node die, the leases simply run out: later, never twice.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::{ClaimedDelivery, DeliveryId, WebhookId};
use crate::time::Millis;

/// How long a handed payload may wait and still be sent without a confirmation.
pub const FRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Handoff {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    waiting: HashMap<WebhookId, VecDeque<Waiting>>,
    /// Webhooks whose publishes lease nothing here for now (`hold`).
    held: HashSet<WebhookId>,
}

/// A running dispatcher's terms.
#[derive(Clone)]
struct Open {
    owner: String,
    lease: Duration,
    wait: Duration,
    room: usize,
}

struct Waiting {
    delivery: ClaimedDelivery,
    handed_at: Instant,
    send_by: Instant,
}

/// What `take` found.
#[derive(Debug, Default)]
pub struct Taken {
    /// Handed within `FRESH`: to be sent.
    pub fresh: Vec<ClaimedDelivery>,
    /// Waited longer: to be confirmed (`Store::delivery_renew`) before they are sent.
    pub stale: Vec<ClaimedDelivery>,
    /// More of the webhook's payloads still wait.
    pub more: bool,
}

impl Taken {
    pub fn len(&self) -> usize {
        self.fresh.len() + self.stale.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a publish may lease to this node, read before its statement runs.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The lease's owner: this node's dispatcher.
    pub owner: String,
    /// The lease's end, on the node's clock.
    pub lease_until: Millis,
    /// How many payloads of a webhook not in `rooms` may be leased.
    pub room: i64,
    /// Webhooks with payloads waiting already, and how many more each may take.
    pub rooms: Vec<(i64, i64)>,
    at: Instant,
    send_by: Instant,
}

impl Handoff {
    /// A dispatcher runs: publishes may lease to `owner` for `lease`, up to `room` payloads
    /// waiting per webhook. Stays closed when the lease leaves no time to wait (an attempt
    /// may take `attempt` from its start).
    pub fn open(&self, owner: &str, lease: Duration, attempt: Duration, room: usize) {
        let margin = lease / 10;
        let Some(wait) = lease.checked_sub(attempt + margin).filter(|w| !w.is_zero()) else {
            return;
        };
        self.lock().open = Some(Open {
            owner: owner.to_owned(),
            lease,
            wait,
            room,
        });
    }

    /// The dispatcher stopped: nothing more is handed; what waited is given up (the leases
    /// of those still in time are for the caller to end).
    pub fn close(&self) -> Vec<DeliveryId> {
        let mut state = self.lock();
        state.open = None;
        state.held.clear();
        let waiting = std::mem::take(&mut state.waiting);
        in_time(waiting.into_values().flatten())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a publish starting now (`now` on the node's clock) may lease to this node; None
    /// while no dispatcher runs here.
    pub fn offer(&self, now: Millis) -> Option<Offer> {
        let state = self.lock();
        let open = state.open.as_ref()?;
        let room = open.room as i64;
        let waiting = (state.waiting.iter()).filter(|(w, _)| !state.held.contains(w));
        let rooms = (waiting.map(|(w, q)| (w.0, room.saturating_sub(q.len() as i64).max(0))))
            .chain(state.held.iter().map(|w| (w.0, 0)))
            .collect();
        Some(Offer {
            owner: open.owner.clone(),
            lease_until: now + open.lease.as_millis() as Millis,
            room,
            rooms,
            at: Instant::now(),
            send_by: Instant::now() + open.wait,
        })
    }

    /// The publish that read `offer` committed and leased these payloads to this node.
    /// Dropped (left to their leases) when the dispatcher stopped or changed meanwhile.
    pub fn put(&self, offer: &Offer, handed: Vec<ClaimedDelivery>) {
        let mut state = self.lock();
        if state.open.as_ref().is_none_or(|o| o.owner != offer.owner) {
            return;
        }
        for delivery in handed {
            let waiting = Waiting {
                delivery,
                handed_at: offer.at,
                send_by: offer.send_by,
            };
            state
                .waiting
                .entry(waiting.delivery.webhook_id)
                .or_default()
                .push_back(waiting);
        }
    }

    /// Up to `max` of the webhook's waiting payloads, oldest first, each with time left to
    /// be sent under its lease (those without are dropped).
    pub fn take(&self, webhook: WebhookId, max: usize) -> Taken {
        let mut state = self.lock();
        let mut taken = Taken::default();
        let Some(queue) = state.waiting.get_mut(&webhook) else {
            return taken;
        };
        let now = Instant::now();
        while taken.len() < max {
            let Some(w) = queue.pop_front() else { break };
            if now < w.handed_at + FRESH {
                taken.fresh.push(w.delivery);
            } else if now < w.send_by {
                taken.stale.push(w.delivery);
            }
        }
        taken.more = !queue.is_empty();
        if !taken.more {
            state.waiting.remove(&webhook);
        }
        taken
    }

    /// The increment id of the webhook's payload waiting first (None when none waits).
    pub fn head(&self, webhook: WebhookId) -> Option<i64> {
        let state = self.lock();
        state.waiting.get(&webhook)?.front().map(|w| w.delivery.increment_id)
    }

    /// How many more of the webhook's payloads may wait here (zero while closed).
    pub fn room_left(&self, webhook: WebhookId) -> usize {
        let state = self.lock();
        let Some(open) = state.open.as_ref() else {
            return 0;
        };
        open.room
            .saturating_sub(state.waiting.get(&webhook).map_or(0, VecDeque::len))
    }

    /// The webhook's publishes lease nothing to this node until `resume`: its payloads
    /// queued for a claim are older than any they would hand over.
    pub fn hold(&self, webhook: WebhookId) {
        self.lock().held.insert(webhook);
    }

    pub fn is_held(&self, webhook: WebhookId) -> bool {
        self.lock().held.contains(&webhook)
    }

    pub fn resume(&self, webhook: WebhookId) {
        self.lock().held.remove(&webhook);
    }

    /// Payloads a claim took beyond the slots free (all of one webhook, leased to this node
    /// until at least `wait` from now): they wait here with those handed at insert, the
    /// whole queue in increment order, so the oldest goes first whichever way it came. While
    /// closed, nothing waits: their ids are returned, for the caller to end their leases.
    pub fn park(&self, webhook: WebhookId, claimed: Vec<ClaimedDelivery>) -> Vec<DeliveryId> {
        let mut state = self.lock();
        let Some(wait) = state.open.as_ref().map(|o| o.wait) else {
            return claimed.iter().map(|d| d.id).collect();
        };
        if claimed.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let queue = state.waiting.entry(webhook).or_default();
        queue.extend(claimed.into_iter().map(|delivery| Waiting {
            delivery,
            handed_at: now,
            send_by: now + wait,
        }));
        queue.make_contiguous().sort_by_key(|w| w.delivery.increment_id);
        Vec::new()
    }

    /// How long the payload waiting longest has waited (zero when none waits).
    pub fn oldest_wait(&self) -> Duration {
        let state = self.lock();
        let oldest = state
            .waiting
            .values()
            .filter_map(|q| q.front())
            .map(|w| w.handed_at)
            .min();
        oldest.map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// Whether the webhook has payloads waiting.
    #[cfg(test)]
    fn has(&self, webhook: WebhookId) -> bool {
        self.lock().waiting.contains_key(&webhook)
    }

    /// Gives up what waits for these webhooks (deleted or turned off; `all`: every webhook);
    /// the leases of those still in time are for the caller to end.
    pub fn forget(&self, webhooks: &[WebhookId], all: bool) -> Vec<DeliveryId> {
        let mut state = self.lock();
        if all {
            state.held.clear();
        }
        for w in webhooks {
            state.held.remove(w);
        }
        let given_up: Vec<VecDeque<Waiting>> = if all {
            std::mem::take(&mut state.waiting).into_values().collect()
        } else {
            webhooks.iter().filter_map(|w| state.waiting.remove(w)).collect()
        };
        in_time(given_up.into_iter().flatten())
    }
}

/// The ids of those still in time: their leases are surely still this node's to end. (Past
/// `send_by` a lease may have run out and been claimed again, even by this node.)
fn in_time(waiting: impl Iterator<Item = Waiting>) -> Vec<DeliveryId> {
    let now = Instant::now();
    waiting.filter(|w| now < w.send_by).map(|w| w.delivery.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(webhook: i64, id: i64) -> ClaimedDelivery {
        ClaimedDelivery {
            id: DeliveryId(id),
            webhook_id: WebhookId(webhook),
            increment_id: id,
            attempts: 0,
            body: Vec::new(),
            webhook_version: 0,
            trace: None,
        }
    }

    fn ids(taken: Taken) -> Vec<i64> {
        assert!(taken.stale.is_empty(), "none waited long");
        taken.fresh.iter().map(|d| d.id.0).collect()
    }

    #[test]
    fn nothing_is_offered_while_no_dispatcher_runs_or_the_lease_leaves_no_time() {
        let h = Handoff::default();
        assert!(h.offer(0).is_none());
        h.open("node", Duration::from_secs(5), Duration::from_secs(5), 16);
        assert!(h.offer(0).is_none(), "an attempt may take the whole lease");
        h.open("node", Duration::from_secs(60), Duration::from_secs(8), 16);
        let offer = h.offer(1_000).expect("open");
        assert_eq!(
            (offer.owner.as_str(), offer.lease_until, offer.room),
            ("node", 61_000, 16)
        );
        h.put(&offer, vec![payload(1, 1)]);
        assert_eq!(h.close(), vec![DeliveryId(1)], "what waited is given up");
        assert!(h.offer(0).is_none());
        h.put(&offer, vec![payload(1, 1)]);
        assert!(
            !h.has(WebhookId(1)),
            "handed after the dispatcher stopped: left to its lease"
        );
    }

    #[test]
    fn payloads_wait_per_webhook_in_order_and_shrink_the_webhook_s_room() {
        let h = Handoff::default();
        h.open("node", Duration::from_secs(60), Duration::from_secs(8), 4);
        let offer = h.offer(0).unwrap();
        h.put(&offer, vec![payload(1, 1), payload(2, 2), payload(1, 3), payload(1, 4)]);
        let mut rooms = h.offer(0).unwrap().rooms;
        rooms.sort();
        assert_eq!(rooms, vec![(1, 1), (2, 3)]);
        assert!(h.oldest_wait() < Duration::from_secs(1));
        let taken = h.take(WebhookId(1), 2);
        assert!(taken.more, "one more waits");
        assert_eq!(ids(taken), vec![1, 3]);
        assert_eq!(ids(h.take(WebhookId(1), 5)), vec![4]);
        assert!(!h.has(WebhookId(1)));
        assert_eq!(h.forget(&[WebhookId(2)], false), vec![DeliveryId(2)]);
        assert!(!h.has(WebhookId(2)), "a forgotten webhook's payloads are given up");
    }

    #[test]
    fn claimed_payloads_wait_among_the_handed_ones_in_increment_order() {
        let h = Handoff::default();
        assert_eq!(h.park(WebhookId(1), vec![payload(1, 2)]), vec![DeliveryId(2)], "closed");
        h.open("node", Duration::from_secs(60), Duration::from_secs(8), 6);
        let offer = h.offer(0).unwrap();
        h.put(&offer, vec![payload(1, 5), payload(1, 6)]);
        assert_eq!((h.head(WebhookId(1)), h.room_left(WebhookId(1))), (Some(5), 4));
        assert!(h
            .park(WebhookId(1), vec![payload(1, 2), payload(1, 3), payload(1, 7)])
            .is_empty());
        assert_eq!((h.head(WebhookId(1)), h.room_left(WebhookId(1))), (Some(2), 1));
        assert_eq!(ids(h.take(WebhookId(1), 10)), vec![2, 3, 5, 6, 7]);
        assert_eq!((h.head(WebhookId(1)), h.room_left(WebhookId(1))), (None, 6));
        h.hold(WebhookId(1));
        assert_eq!(h.offer(0).unwrap().rooms, vec![(1, 0)], "held: nothing leased");
        h.resume(WebhookId(1));
        assert!(h.offer(0).unwrap().rooms.is_empty() && !h.is_held(WebhookId(1)));
    }

    #[test]
    fn a_payload_that_waited_is_confirmed_first_and_one_out_of_time_dropped() {
        let h = Handoff::default();
        // 3 s lease, 1 s attempts, 0.3 s margin: 1.7 s to wait; fresh for 1 s.
        h.open("node", Duration::from_secs(3), Duration::from_secs(1), 4);
        let offer = h.offer(0).unwrap();
        h.put(&offer, vec![payload(1, 1), payload(1, 2), payload(1, 3)]);
        assert_eq!(ids(h.take(WebhookId(1), 1)), vec![1]);
        std::thread::sleep(FRESH);
        assert!(
            h.oldest_wait() >= FRESH,
            "the waiting ones count as due since their publish"
        );
        let taken = h.take(WebhookId(1), 1);
        assert!(taken.fresh.is_empty());
        assert_eq!(taken.stale.iter().map(|d| d.id.0).collect::<Vec<_>>(), vec![2]);
        std::thread::sleep(Duration::from_millis(800));
        assert!(h.take(WebhookId(1), 4).is_empty(), "out of time: dropped");
        assert!(!h.has(WebhookId(1)));
        h.put(&offer, vec![payload(2, 4)]);
        assert!(
            h.forget(&[WebhookId(2)], false).is_empty(),
            "out of time: its lease is not ended"
        );
    }
}
