//! Events and payloads in SQLite: publish (fan-out with gap-free increment ids, webhooks'
//! filters evaluated on the matched rows) and `webhook.test`'s payload. Both run as writer
//! jobs, inside a batch transaction; the one writer is what makes the increment ids
//! gap-free (a webhook's last id is read and bumped with no other write in between, and a
//! rolled-back job takes its bump with it).
//!
//! While a dispatcher runs, a publish hands the fresh payloads of plain webhooks (neither
//! ordered nor paced) to it (`store::handoff`), as PostgreSQL's publish does: it holds them
//! in `leases` before the commit makes them visible, so no claim takes them, and the store
//! puts them in the hand-off once the batch is durable. The dispatcher sends them without a
//! claim, which on SQLite is a read on a reader thread per lane and wake-up.

use rusqlite::{params, Connection, OptionalExtension};

use super::leases::Leases;

use std::sync::Arc;

use crate::domain::filter::Verdicts;
use crate::domain::{BodyTemplate, DeliveryId, EventId, KeyCheck, WebhookId};
use crate::store::handoff::Offer;
use crate::store::{ClaimedDelivery, Published, StoreError, StoreResult};
use crate::time::{now_millis, Millis};

use crate::domain::records::IDEMPOTENCY_WINDOW_MS;

thread_local! {
    /// Events stored by the writer thread's current batch (`hookd_publish_batch_size`).
    pub static PUBLISHED_IN_BATCH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An owned publish request (it crosses to the writer thread).
pub struct PublishJob {
    pub merchant: i64,
    pub topic: String,
    /// The subscription keys matching the topic: itself, `resource:*`, `*`.
    pub match_keys: [String; 3],
    pub body: BodyTemplate,
    pub idempotency_key: Option<String>,
    pub now: Millis,
    pub verdicts: Verdicts,
    /// The event's `traceparent`, stored with it (CONTRACT §7.6).
    pub trace: Option<String>,
    /// The remembered caller's key, to find unchanged (`KeyCheck`).
    pub key_check: Option<KeyCheck>,
    /// What the publish may hand to this process's dispatcher (None: no dispatcher runs).
    pub offer: Option<Offer>,
}

/// A publish stored: its answer, and the payloads it holds for the hand-off.
pub struct Stored {
    pub published: Published,
    pub handed: Vec<ClaimedDelivery>,
}

impl Stored {
    /// The payloads the job holds in `leases` (let go if its batch rolls back).
    pub fn held(stored: &Result<Stored, StoreError>) -> Vec<DeliveryId> {
        let handed = stored.as_ref().map(|s| s.handed.as_slice()).unwrap_or_default();
        handed.iter().map(|d| d.id).collect()
    }
}

pub struct CreateClaimedJob {
    pub merchant_filter: Option<i64>,
    pub webhook: WebhookId,
    pub topic: String,
    pub body: BodyTemplate,
    pub lease_until: Millis,
}

/// Stores the event and its payloads; or, with nothing stored, why not: the filters of
/// matched webhooks that `job.verdicts` does not judge (`FiltersUnjudged`: filters are never
/// evaluated here, on the writer thread every merchant's publish goes through), or a caller's
/// key that is no longer its user's (`KeyRevoked`). Refusals are answers, not failures, so
/// they cost the writer's batch no rollback.
pub fn publish(c: &Connection, job: &PublishJob, leases: &Leases) -> StoreResult<Result<Stored, StoreError>> {
    if let Some(check) = &job.key_check {
        let stored: Option<String> = c
            .prepare_cached("SELECT key_hash FROM users WHERE id = ?1")?
            .query_row([check.user.0], |r| r.get(0))
            .optional()?;
        if stored.as_deref() != Some(check.key_hash.as_str()) {
            return Ok(Err(StoreError::KeyRevoked));
        }
    }
    if let Some(key) = &job.idempotency_key {
        let earlier: Option<(i64, i64, Millis)> = c
            .prepare_cached(
                "SELECT id, payloads, created_at FROM events WHERE merchant_id = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![job.merchant, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match earlier {
            Some((id, payloads, at)) if at > job.now - IDEMPOTENCY_WINDOW_MS => {
                let published = Published {
                    event_id: EventId(id),
                    payloads,
                    webhooks: vec![],
                    replayed: true,
                    handed: vec![],
                };
                return Ok(Ok(Stored {
                    published,
                    handed: vec![],
                }));
            }
            Some((id, _, _)) => {
                c.prepare_cached("UPDATE events SET idempotency_key = NULL WHERE id = ?1")?
                    .execute([id])?;
            }
            None => {}
        }
    }
    // A webhook subscribed through two matching patterns appears twice: dedup here, which
    // is cheaper than a DISTINCT (a temporary b-tree in SQLite) on every publish.
    let mut matched: Vec<Matched> = c
        .prepare_cached(MATCHED_WEBHOOKS)?
        .query_map(
            params![job.merchant, job.match_keys[0], job.match_keys[1], job.match_keys[2]],
            |r| {
                Ok(Matched {
                    webhook: r.get(0)?,
                    last: r.get(1)?,
                    filter: r.get(2)?,
                    plain: r.get(3)?,
                    version: r.get(4)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    matched.sort_unstable_by_key(|m| m.webhook);
    matched.dedup_by_key(|m| m.webhook);
    // A webhook whose filter is not true for this event gets no payload and keeps its
    // increment id.
    let unjudged: Vec<Arc<str>> = (matched.iter())
        .filter_map(|m| m.filter.as_deref())
        .filter(|f| job.verdicts.get(f).is_none())
        .map(Arc::from)
        .collect();
    if !unjudged.is_empty() {
        return Ok(Err(StoreError::FiltersUnjudged(unjudged)));
    }
    let hooks: Vec<Matched> = matched
        .into_iter()
        .filter(|m| m.filter.as_deref().is_none_or(|f| job.verdicts.get(f) == Some(true)))
        .collect();
    // No RETURNING here or below: SQLite runs it through a temporary table.
    c.prepare_cached(
        "INSERT INTO events (merchant_id, topic, idempotency_key, payloads, created_at, traceparent) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        job.merchant,
        job.topic,
        job.idempotency_key,
        hooks.len() as i64,
        job.now,
        job.trace
    ])?;
    let event_id = c.last_insert_rowid();
    PUBLISHED_IN_BATCH.set(PUBLISHED_IN_BATCH.get() + 1);
    let mut published = Published {
        event_id: EventId(event_id),
        payloads: hooks.len() as i64,
        webhooks: Vec::with_capacity(hooks.len()),
        replayed: false,
        handed: vec![],
    };
    let mut handed = Vec::new();
    for m in &hooks {
        let webhook = WebhookId(m.webhook);
        let at = Slot {
            webhook,
            merchant: job.merchant,
            increment_id: m.last + 1,
        };
        let payload = insert_payload(c, &at, Some(event_id), &job.topic, &job.body, job.now)?;
        published.webhooks.push(webhook);
        if job.offer.as_ref().is_some_and(|o| m.plain && has_room(o, m.webhook)) {
            published.handed.push(webhook);
            handed.push(ClaimedDelivery {
                webhook_version: m.version,
                trace: job.trace.clone(),
                ..payload
            });
        }
    }
    // Held before the commit makes them visible, so no claim takes them; and only once
    // nothing of the job can fail, so a job that fails holds nothing (one that succeeded
    // in a batch rolled back is let go by `Task::abandon`).
    if let Some(offer) = &job.offer {
        for d in &handed {
            leases.hold(d.id, d.webhook_id, offer.lease_until);
        }
    }
    Ok(Ok(Stored { published, handed }))
}

/// A webhook the publish matched (see `MATCHED_WEBHOOKS`).
struct Matched {
    webhook: i64,
    /// Its last increment id.
    last: i64,
    filter: Option<String>,
    /// Neither ordered nor paced: its payload may be handed over.
    plain: bool,
    version: i64,
}

/// Whether the offer lets one more of the webhook's payloads wait in the hand-off.
fn has_room(offer: &Offer, webhook: i64) -> bool {
    let room = (offer.rooms.iter())
        .find(|(w, _)| *w == webhook)
        .map_or(offer.room, |r| r.1);
    room > 0
}

/// The active webhooks subscribed to one of a topic's three match keys (?2, ?3, ?4) of
/// merchant ?1: id, last increment id, filter, whether plain (neither ordered nor paced),
/// version. One search per key, joined by UNION ALL: `pattern IN (?2, ?3, ?4)` (or the
/// same with OR) makes SQLite fill a temporary b-tree with the three keys on every publish.
const MATCHED_WEBHOOKS: &str = "\
    SELECT t.webhook_id, w.increment_id, w.filter, w.ordered = 0 AND w.max_rate IS NULL, w.version FROM webhook_topics t JOIN webhooks w ON w.id = t.webhook_id \
      WHERE t.merchant_id = ?1 AND t.pattern = ?2 AND w.is_active = 1 \
    UNION ALL \
    SELECT t.webhook_id, w.increment_id, w.filter, w.ordered = 0 AND w.max_rate IS NULL, w.version FROM webhook_topics t JOIN webhooks w ON w.id = t.webhook_id \
      WHERE t.merchant_id = ?1 AND t.pattern = ?3 AND w.is_active = 1 \
    UNION ALL \
    SELECT t.webhook_id, w.increment_id, w.filter, w.ordered = 0 AND w.max_rate IS NULL, w.version FROM webhook_topics t JOIN webhooks w ON w.id = t.webhook_id \
      WHERE t.merchant_id = ?1 AND t.pattern = ?4 AND w.is_active = 1";

/// Where a payload goes: its webhook, that webhook's merchant, and its increment id (the
/// webhook's last one plus one, read in this transaction).
struct Slot {
    webhook: WebhookId,
    merchant: i64,
    increment_id: i64,
}

/// Takes the slot's increment id for the webhook and stores the payload.
fn insert_payload(
    c: &Connection,
    at: &Slot,
    event_id: Option<i64>,
    topic: &str,
    body: &BodyTemplate,
    now: Millis,
) -> StoreResult<ClaimedDelivery> {
    let (webhook, increment_id) = (at.webhook, at.increment_id);
    c.prepare_cached("UPDATE webhooks SET increment_id = ?2 WHERE id = ?1")?
        .execute([webhook.0, increment_id])?;
    let rendered = body.render(increment_id);
    c.prepare_cached(
        "INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, status, \
         next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
    )?
    .execute(params![
        webhook.0,
        at.merchant,
        event_id,
        increment_id,
        topic,
        rendered,
        now
    ])?;
    let id = c.last_insert_rowid();
    Ok(ClaimedDelivery {
        id: DeliveryId(id),
        webhook_id: webhook,
        increment_id,
        attempts: 0,
        body: rendered,
        webhook_version: 0,
        trace: None,
    })
}

/// The payload is held in `leases` before the commit makes it visible to a claim.
pub fn create_claimed(c: &Connection, job: &CreateClaimedJob, leases: &Leases) -> StoreResult<Option<ClaimedDelivery>> {
    let slot = c
        .prepare_cached(
            "SELECT merchant_id, increment_id FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)",
        )?
        .query_row(params![job.webhook.0, job.merchant_filter], |r| {
            Ok(Slot {
                webhook: job.webhook,
                merchant: r.get(0)?,
                increment_id: r.get::<_, i64>(1)? + 1,
            })
        })
        .optional()?;
    let Some(slot) = slot else {
        return Ok(None);
    };
    let claimed = insert_payload(c, &slot, None, &job.topic, &job.body, now_millis())?;
    leases.hold(claimed.id, job.webhook, job.lease_until);
    Ok(Some(claimed))
}
