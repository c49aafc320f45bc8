//! The dispatcher: claims due payloads and runs their attempts.
//!
//! The one idea to know: delivery is at-least-once by leases. A payload is claimed by
//! leasing it to this node until an expiry (on PostgreSQL written onto the row, on SQLite
//! held in memory); the lease ends once the write that logs the attempt's outcome has
//! committed. If the process dies in between, the lease expires (or, on SQLite, ends with
//! the process) and the payload is sent again. On PostgreSQL this node's own publishes
//! lease their fresh payloads of plain webhooks to it as they insert them and hand them
//! over (`store::handoff`): a lane takes those first, with no claim, unless payloads the
//! hand-off had no room for wait in the queue, older than those handed (`claim_first`).
//!
//! Work is organised in lanes, one per webhook with payloads due, each with at most its
//! webhook's limit of attempts in flight (adaptive, at most `per_webhook`, see `slots`; one
//! for an ordered webhook) and `max_in_flight` over all lanes, so a receiver that hangs only
//! holds its own lane. Claims are paced by the webhook's settings (`ordered`, `max_rate`,
//! see `store::pace`): when pacing holds due payloads back, the claim says until when, and
//! the lane sleeps until exactly then. New payloads of this process wake the loop at once; a
//! queue scan every `poll_interval` finds the rest (retries come due, other processes'
//! payloads, expired leases). Outcomes are written back in batches (`recorder`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::deliver::{attempt, Target};
use super::recorder::{self, Outcome};
use super::slots::Signal;
use super::Engine;
use crate::domain::Scope;
use crate::domain::{ClaimedDelivery, DeliveryId, DeliveryStatus, WebhookId};
use crate::store::handoff::{Handoff, Taken};
use crate::store::{PacedClaim, Pacing, Store, StoreResult};
use crate::time::{now_millis, Millis};

/// Most webhook targets kept loaded (a few hundred bytes each).
const MAX_TARGETS: usize = 100_000;

/// How many payloads per slot of a webhook may wait in the hand-off (`store::handoff`). A
/// lane whose slots are all busy takes no more, and under a steady load from many
/// publishers a room of one slot's worth filled up half the time, leaving the rest to
/// claims (`bench/pg_calls.sh e2e`: 0.094 claims per event with a room of 16, against 0.153
/// with none).
const HANDOFF_ROOM: usize = 4;

/// Most retry times a lane remembers; past that the queue scan finds the rest.
const MAX_REMEMBERED_RETRIES: usize = 4096;

#[derive(Default)]
struct Lane {
    in_flight: usize,
    /// When this lane next has a payload due; None when it has none we know of.
    next_due: Option<Millis>,
    /// When this node's own retries of the webhook come due (earliest first), so a claim that
    /// finds nothing due yet still knows when to look again, rather than waiting for the
    /// next queue scan.
    retries: BinaryHeap<Reverse<Millis>>,
    /// Its webhook's slots are all held by others (test pings) until one is given back.
    starved: bool,
    /// It has payloads waiting in the hand-off (leased at insert, see `store::handoff`).
    handed: bool,
    /// The highest increment id its last claim took, when that claim took all it asked for:
    /// payloads left to claim may be older than those waiting in the hand-off until the
    /// hand-off's first is past this (see `Dispatcher::claim_first`).
    claimed_through: Option<i64>,
}

impl Lane {
    /// Whether the lane claims again: once a quarter of its slots are free (at least one),
    /// not at every finished attempt. A lane with work keeps most of its slots busy, and
    /// each claim takes several payloads rather than one (on PostgreSQL a claim is a
    /// statement and a transaction, and with two nodes most one-row claims came back
    /// empty-handed or with a single row; see docs/performance.md).
    fn has_room(&self, cap: usize) -> bool {
        self.in_flight + refill_at(cap) <= cap && !self.starved
    }

    /// Whether it has payloads to take now: handed ones, or due ones to claim.
    fn ready(&self, now: Millis) -> bool {
        self.handed || self.claimable(now)
    }

    fn claimable(&self, now: Millis) -> bool {
        self.next_due.is_some_and(|t| t <= now)
    }

    fn due(&mut self, at: Millis) {
        self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
    }

    /// A wake-up named the lane's webhook: due at `at`, and no longer waiting for a slot.
    fn woken(&mut self, at: Millis) {
        self.due(at);
        self.starved = false;
    }

    fn retry_at(&mut self, at: Millis) {
        self.due(at);
        if self.retries.len() < MAX_REMEMBERED_RETRIES {
            self.retries.push(Reverse(at));
        }
    }

    /// A claim took everything due at `now`: the lane waits for its next known retry.
    fn drained(&mut self, now: Millis) {
        self.claimed_through = None;
        while self.retries.peek().is_some_and(|Reverse(at)| *at <= now) {
            self.retries.pop();
        }
        self.next_due = self.retries.peek().map(|Reverse(at)| *at);
    }
}

/// Whether a lane that has payloads both waiting in the hand-off and due to claim claims
/// first, with all its free slots and as many more as the hand-off has room for (those wait
/// there in increment order). Payloads the hand-off had no room for at their publish are
/// queued for a claim, and the hand-off fills up again with newer ones as it empties: taking
/// from it first, as a lane otherwise does, kept the older ones waiting until publishing
/// stopped. So the lane claims first while what it may claim can be older than the hand-off's
/// first payload: until a claim took all it asked for up to an increment id past that one
/// (`Lane::claimed_through`), or came back short (nothing more due).
///
/// Meanwhile the webhook's publishes lease nothing to this node (`Handoff::hold`, until a
/// claim comes back short): what they write waits for a claim behind the older payloads,
/// the hand-off empties, and each claim takes that much more (a claim reads the queue index
/// from its floor past the payloads leased since, so 80 rows cost it little more than 4).
fn claim_first(lane: &Lane, handoff: &Handoff, webhook: WebhookId, now: Millis) -> bool {
    lane.handed
        && lane.claimable(now)
        && (handoff.head(webhook)).is_some_and(|first| lane.claimed_through.is_none_or(|c| c < first))
}

/// How many of a lane's `cap` slots must be free before it claims again (see `has_room`).
fn refill_at(cap: usize) -> usize {
    (cap / 4).max(1)
}

/// Payloads a lane asked the store for: claimed (beyond the slots it had, up to `extra` more
/// to wait in the hand-off), or handed ones that waited, confirmed.
enum Fetched {
    Claimed {
        claimed: StoreResult<PacedClaim>,
        extra: usize,
    },
    Confirmed(StoreResult<Vec<ClaimedDelivery>>),
}

/// Of handed payloads that waited (`store::handoff::Taken::stale`), those the store confirms
/// still this node's to send, their leases extended to `lease_until`.
async fn confirm(
    store: &dyn Store,
    stale: Vec<ClaimedDelivery>,
    owner: &str,
    now: Millis,
    lease_until: Millis,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let ids: Vec<DeliveryId> = stale.iter().map(|d| d.id).collect();
    let renewed: HashSet<DeliveryId> = store
        .delivery_renew(&ids, owner, now, lease_until)
        .await?
        .into_iter()
        .collect();
    Ok(stale.into_iter().filter(|d| renewed.contains(&d.id)).collect())
}

/// Ends `owner`'s leases of handed payloads given up unsent (`Store::delivery_release`), so
/// they can be claimed at once, and asks for a queue scan so that this node's dispatcher, if
/// it still runs, claims them now (a lane woken before the release found them leased);
/// should the release fail, the leases run out by themselves.
async fn end_leases(engine: Arc<Engine>, ids: Vec<DeliveryId>, owner: String) {
    if ids.is_empty() {
        return;
    }
    match engine.store.delivery_release(&ids, &owner).await {
        Ok(()) => engine.wake.rescan(),
        Err(e) => tracing::warn!(
            error = ?e,
            payloads = ids.len(),
            "ending the leases of handed payloads failed; they end by themselves"
        ),
    }
}

/// An attempt finished: the lane gets its slot back, and learns when to look again.
struct Done {
    webhook: WebhookId,
    retry_at: Option<Millis>,
}

struct Dispatcher {
    engine: Arc<Engine>,
    owner: String,
    lanes: HashMap<WebhookId, Lane>,
    /// Where each webhook's payloads go, as last loaded. `webhook.update` and
    /// `rotate_secret` (on any node) move the webhook's version, which every claim returns:
    /// a claim showing a newer version reloads the target before anything is sent. A
    /// deleted webhook just has nothing to claim.
    targets: HashMap<WebhookId, Arc<Target>>,
    /// Each webhook's pacing, loaded (and reloaded) with its target.
    pacing: HashMap<WebhookId, Pacing>,
    in_flight: usize,
    record_tx: mpsc::UnboundedSender<Outcome>,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// Runs until `stop` turns true, then lets attempts in flight finish (bounded by the
/// request timeout) and writes their outcomes.
pub async fn run(engine: Arc<Engine>, owner: String, mut stop: watch::Receiver<bool>) {
    let (record_tx, record_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(recorder::run(engine.clone(), record_rx));
    let settings = engine.settings.clone();
    let attempt_time = settings.client.request_timeout + settings.client.connect_timeout;
    let room = HANDOFF_ROOM * settings.per_webhook;
    (engine.handoff).open(&owner, settings.lease, attempt_time, room);
    let wake = engine.wake.clone();
    let mut d = Dispatcher {
        engine: engine.clone(),
        owner,
        lanes: HashMap::new(),
        targets: HashMap::new(),
        pacing: HashMap::new(),
        in_flight: 0,
        record_tx,
        done_tx,
    };
    let mut next_scan = Instant::now();
    loop {
        let (woken, rescan) = wake.take();
        let (forgotten, forget_all) = wake.take_forgotten();
        d.forget(&forgotten, forget_all);
        let rescan = rescan || forget_all;
        let now = now_millis();
        for id in woken {
            d.lanes.entry(id).or_default().woken(now);
        }
        for id in wake.take_recorded() {
            // Only an ordered lane waits for its head's outcome to be written (see
            // `Wake::recorded`); one not loaded yet is taken as ordered.
            if d.pacing.get(&id).is_none_or(|p| p.ordered) {
                d.lanes.entry(id).or_default().woken(now);
            }
        }
        for id in wake.take_handed() {
            let lane = d.lanes.entry(id).or_default();
            lane.handed = true;
            lane.starved = false;
        }
        for id in wake.take_afar() {
            d.lanes.entry(id).or_default().woken(now + crate::wake::AFAR_GRACE_MS);
        }
        if rescan || Instant::now() >= next_scan {
            d.scan().await;
            next_scan = Instant::now() + settings.poll_interval;
        }
        d.claim_due().await;
        engine.metrics.dispatch_lanes.set(d.lanes.len() as i64);
        let wake_at = d.next_timer().map_or(next_scan, |t| t.min(next_scan));
        tokio::select! {
            _ = stop.changed() => break,
            _ = wake.notified() => {}
            Some(done) = done_rx.recv() => {
                d.finish(done);
                while let Ok(done) = done_rx.try_recv() {
                    d.finish(done);
                }
            }
            _ = tokio::time::sleep_until(wake_at) => {}
        }
    }
    // Nothing more is handed; what waited there can be claimed at once (by other nodes).
    let waiting = engine.handoff.close();
    let ended = end_leases(engine.clone(), waiting, d.owner.clone());
    let _ = tokio::time::timeout(Duration::from_secs(2), ended).await;
    // Let attempts in flight finish and be recorded; their leases protect them otherwise.
    let Dispatcher {
        mut in_flight,
        record_tx,
        done_tx,
        ..
    } = d;
    drop((record_tx, done_tx));
    let grace = Instant::now() + settings.client.request_timeout + Duration::from_secs(2);
    while in_flight > 0 {
        match tokio::time::timeout_at(grace, done_rx.recv()).await {
            Ok(Some(_)) => in_flight -= 1,
            _ => break,
        }
    }
    let _ = tokio::time::timeout_at(grace, writer).await;
}

impl Dispatcher {
    async fn scan(&mut self) {
        let now = now_millis();
        match self.engine.store.queue_scan(now).await {
            Ok(found) => {
                // `hookd_queue_oldest_due_seconds` from what the scan read anyway: each
                // webhook's earliest due time (no query of its own); and from what waits in
                // the hand-off (leased, so the scan does not see it; due since its publish).
                let oldest = found.iter().map(|&(_, due)| due).filter(|&due| due <= now).min();
                let waited = oldest.map_or(0.0, |due| (now - due) as f64 / 1000.0);
                let handed = self.engine.handoff.oldest_wait().as_secs_f64();
                self.engine.metrics.queue_oldest_due.set(waited.max(handed));
                for (webhook, due) in found {
                    self.lanes.entry(webhook).or_default().due(due);
                }
            }
            Err(e) => tracing::warn!(error = ?e, "scanning the delivery queue failed"),
        }
    }

    /// Takes payloads for every lane that has some ready and room: first those handed to it
    /// at insert, then, when it is due, a claim for the rest. The claims run concurrently
    /// (on PostgreSQL each is a query of its own).
    async fn claim_due(&mut self) {
        let s = &self.engine.settings;
        let max_in_flight = s.max_in_flight;
        let lease = s.lease.as_millis() as i64;
        let now = now_millis();
        let mut due: Vec<(Millis, WebhookId)> = self
            .lanes
            .iter()
            .filter(|(id, l)| l.has_room(self.cap(**id)) && l.ready(now))
            .map(|(id, l)| (l.next_due.unwrap_or(now).min(now), *id))
            .collect();
        due.sort_unstable();
        let mut claims = tokio::task::JoinSet::new();
        let mut handed = Vec::new();
        let mut room = max_in_flight.saturating_sub(self.in_flight);
        for (_, webhook) in due {
            if room == 0 {
                break;
            }
            let Some(target) = self.target(webhook).await else {
                self.lanes.remove(&webhook);
                let given_up = self.engine.handoff.forget(&[webhook], false);
                self.release(given_up);
                continue;
            };
            let (cap, pacing) = (self.cap(webhook), self.pacing_of(webhook));
            let lane = self.lanes.get_mut(&webhook).expect("lane exists");
            // The webhook's slots are shared with `webhook.test` pings; a lane whose slots
            // they hold waits until one is given back (which wakes it).
            let want = self
                .engine
                .slots
                .take(webhook, cap.saturating_sub(lane.in_flight).min(room));
            if want == 0 {
                lane.starved = true;
                continue;
            }
            room -= want;
            let claim_first = claim_first(lane, &self.engine.handoff, webhook, now);
            if claim_first {
                self.engine.handoff.hold(webhook);
            }
            let mut taken = Taken::default();
            if lane.handed && !claim_first {
                taken = self.engine.handoff.take(webhook, want);
                lane.handed = taken.more;
            }
            let rest = want - taken.len();
            let claim = rest > 0 && lane.claimable(now);
            // Held (see `claim_first`, which holds it): the claim fills the hand-off too, in order.
            let extra = if claim && self.engine.handoff.is_held(webhook) {
                self.engine.handoff.room_left(webhook)
            } else {
                0
            };
            if !claim {
                self.engine.slots.give(webhook, rest);
            }
            if !taken.fresh.is_empty() {
                handed.push((webhook, target.clone(), taken.fresh));
            }
            let (store, owner) = (&self.engine.store, &self.owner);
            if !taken.stale.is_empty() {
                let (store, owner, target) = (store.clone(), owner.clone(), target.clone());
                claims.spawn(async move {
                    let reserved = taken.stale.len();
                    let confirmed = confirm(&*store, taken.stale, &owner, now, now + lease).await;
                    (webhook, target, reserved, Fetched::Confirmed(confirmed))
                });
            }
            if claim {
                let (store, owner) = (store.clone(), owner.clone());
                claims.spawn(async move {
                    let asked = (rest + extra) as i64;
                    let claimed = store
                        .delivery_claim_paced(webhook, &owner, now, now + lease, asked, pacing)
                        .await;
                    (webhook, target, rest, Fetched::Claimed { claimed, extra })
                });
            }
        }
        for (webhook, target, taken) in handed {
            self.launch(webhook, target, taken).await;
        }
        while let Some(joined) = claims.join_next().await {
            let Ok((webhook, target, want, fetched)) = joined else {
                continue;
            };
            let (claimed, extra) = match fetched {
                Fetched::Claimed { claimed, extra } => (claimed, extra),
                Fetched::Confirmed(confirmed) => {
                    let confirmed = confirmed.unwrap_or_else(|e| {
                        tracing::warn!(error = ?e, %webhook, "confirming handed payloads failed; their leases run out");
                        Vec::new()
                    });
                    self.engine.slots.give(webhook, want - confirmed.len());
                    self.launch(webhook, target, confirmed).await;
                    continue;
                }
            };
            let got = claimed.as_ref().map_or(0, |c| c.claimed.len());
            self.engine.slots.give(webhook, want.saturating_sub(got));
            match claimed {
                Ok(mut paced) => {
                    let lane = self.lanes.entry(webhook).or_default();
                    if paced.next_at.is_some() {
                        // Pacing holds what is due back until then (the next token, or an
                        // ordered head's retry): sleep until exactly that time.
                        lane.next_due = paced.next_at;
                    } else if got < want + extra {
                        lane.drained(now);
                        self.engine.handoff.resume(webhook);
                    } else {
                        lane.claimed_through = paced.claimed.iter().map(|c| c.increment_id).max();
                    }
                    // Beyond the slots it had: the newest wait in the hand-off, in order.
                    let beyond = paced.claimed.split_off(got.min(want));
                    if !beyond.is_empty() {
                        lane.handed = true;
                        let given_up = self.engine.handoff.park(webhook, beyond);
                        self.release(given_up);
                    }
                    self.launch(webhook, target, paced.claimed).await;
                }
                Err(e) => {
                    let lane = self.lanes.entry(webhook).or_default();
                    tracing::warn!(error = ?e, %webhook, "claiming payloads failed");
                    lane.next_due = Some(now + 1000);
                }
            }
        }
        self.lanes
            .retain(|_, l| l.in_flight > 0 || l.next_due.is_some() || l.handed);
    }

    /// Ends this node's leases of handed payloads it gave up (`store::handoff`), in the
    /// background.
    fn release(&self, ids: Vec<DeliveryId>) {
        if !ids.is_empty() {
            tokio::spawn(end_leases(self.engine.clone(), ids, self.owner.clone()));
        }
    }

    /// Starts an attempt for each of the webhook's payloads (its slots are taken).
    async fn launch(&mut self, webhook: WebhookId, target: Arc<Target>, payloads: Vec<ClaimedDelivery>) {
        // Changed since it was loaded (on any node): load it again. Should that fail, the
        // payloads go out as before rather than wait.
        let target = match payloads.iter().map(|c| c.webhook_version).max() {
            Some(v) if v != target.version => self.reload_target(webhook).await.unwrap_or(target),
            _ => target,
        };
        let lane = self.lanes.entry(webhook).or_default();
        lane.in_flight += payloads.len();
        self.in_flight += payloads.len();
        for c in payloads {
            self.spawn_attempt(target.clone(), c);
        }
    }

    /// Drops what is held for webhooks deleted, turned off or changed (`all`: for every
    /// webhook): idle lanes go at once, busy ones once their attempts end (unless woken
    /// again), what waits in the hand-off is given back, and the cached target and pacing are
    /// loaded again if it still has work.
    /// Without this a lane lived on until its next claim, which pacing may put far off.
    fn forget(&mut self, ids: &[WebhookId], all: bool) {
        let forget_lane = |lane: &mut Lane| {
            lane.next_due = None;
            lane.retries.clear();
            lane.handed = false;
            lane.claimed_through = None;
            lane.in_flight > 0
        };
        // What waits in the hand-off for them is given up too.
        let given_up = self.engine.handoff.forget(ids, all);
        self.release(given_up);
        if all {
            self.targets.clear();
            self.pacing.clear();
            self.lanes.retain(|_, lane| forget_lane(lane));
        }
        for id in ids {
            self.targets.remove(id);
            self.pacing.remove(id);
            if self.lanes.get_mut(id).is_some_and(|lane| !forget_lane(lane)) {
                self.lanes.remove(id);
            }
        }
    }

    /// The webhook's target loaded afresh (it changed since it was cached).
    async fn reload_target(&mut self, webhook: WebhookId) -> Option<Arc<Target>> {
        self.targets.remove(&webhook);
        self.target(webhook).await
    }

    fn pacing_of(&self, webhook: WebhookId) -> Pacing {
        self.pacing.get(&webhook).copied().unwrap_or_default()
    }

    /// How many attempts the webhook's lane may have in flight: its adaptive limit, or one
    /// when it is ordered.
    fn cap(&self, webhook: WebhookId) -> usize {
        let limit = self.engine.slots.limit(webhook);
        if self.pacing_of(webhook).ordered {
            limit.min(1)
        } else {
            limit
        }
    }

    /// The webhook's target, loaded once; None when the webhook is gone.
    async fn target(&mut self, webhook: WebhookId) -> Option<Arc<Target>> {
        if let Some(t) = self.targets.get(&webhook) {
            return Some(t.clone());
        }
        match self.engine.store.webhook_get(Scope::All, webhook).await {
            Ok(Some(hook)) => {
                let t = Target::of(&hook);
                if self.targets.len() >= MAX_TARGETS {
                    self.targets.clear();
                    self.pacing.clear();
                }
                self.targets.insert(webhook, t.clone());
                let pacing = Pacing {
                    ordered: hook.ordered,
                    max_rate: hook.max_rate,
                };
                self.pacing.insert(webhook, pacing);
                Some(t)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = ?e, %webhook, "loading webhook failed");
                None
            }
        }
    }

    fn spawn_attempt(&self, target: Arc<Target>, claimed: ClaimedDelivery) {
        let engine = self.engine.clone();
        let owner = self.owner.clone();
        let (record, done) = (self.record_tx.clone(), self.done_tx.clone());
        // An ordered lane's next head waits for this outcome to be written.
        let urgent = self.pacing_of(claimed.webhook_id).ordered;
        tokio::spawn(async move {
            let webhook = claimed.webhook_id;
            let sent_at = std::time::Instant::now();
            let (update, outcome) = attempt(&engine, &target, claimed, &owner).await;
            engine.slots.feedback(webhook, sent_at, Signal::of(&outcome));
            engine.slots.give(webhook, 1);
            let retry_at = (update.status == DeliveryStatus::Retrying).then_some(update.next_attempt_at);
            // The slot is free once the receiver has answered; until the outcome is written
            // the payload's lease keeps it from being claimed again.
            let _ = record.send(Outcome { update, urgent });
            let _ = done.send(Done { webhook, retry_at });
        });
    }

    fn finish(&mut self, done: Done) {
        let ordered = self.pacing_of(done.webhook).ordered;
        self.in_flight = self.in_flight.saturating_sub(1);
        let lane = self.lanes.entry(done.webhook).or_default();
        lane.in_flight = lane.in_flight.saturating_sub(1);
        lane.starved = false;
        if let Some(at) = done.retry_at {
            lane.retry_at(at);
        } else if ordered {
            // The head is done with (delivered or failed): the next one may go at once.
            lane.due(now_millis());
        }
    }

    /// The earliest due time among lanes that have room for more.
    fn next_timer(&self) -> Option<Instant> {
        let now = now_millis();
        let earliest = self
            .lanes
            .iter()
            .filter(|(id, l)| l.has_room(self.cap(**id)))
            .filter_map(|(_, l)| if l.handed { Some(now) } else { l.next_due })
            .min()?;
        let wait = (earliest - now).max(0) as u64;
        Some(Instant::now() + Duration::from_millis(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::Lane;

    #[test]
    fn a_lane_claims_again_once_a_quarter_of_its_slots_are_free() {
        let lane = |in_flight| Lane {
            in_flight,
            ..Lane::default()
        };
        // 16 slots: claims with 4 or more free, so each claim asks for 4 payloads or more.
        assert!(lane(0).has_room(16));
        assert!(lane(12).has_room(16));
        assert!(!lane(13).has_room(16));
        // Small limits (an ordered webhook's 1, a cut limit) claim as soon as one is free.
        assert!(lane(0).has_room(1));
        assert!(!lane(1).has_room(1));
        assert!(lane(2).has_room(3));
        assert!(!lane(3).has_room(3));
        let starved = Lane {
            starved: true,
            ..Lane::default()
        };
        assert!(!starved.has_room(16));
    }
}
