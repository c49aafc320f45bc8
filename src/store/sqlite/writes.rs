//! The SQL of the hot writes (run by `writer` inside a batch transaction): publish with
//! fan-out and gap-free increment ids, claiming due payloads, and recording outcomes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, EventId, WebhookId};
use crate::store::{ClaimedDelivery, DeliveryUpdate, Published};
use crate::time::{now_millis, Millis};

const IDEMPOTENCY_WINDOW_MS: Millis = 24 * 3600 * 1000;

/// An owned publish request (it crosses to the writer thread).
pub struct PublishJob {
    pub merchant: i64,
    pub topic: String,
    /// The subscription keys matching the topic: itself, `resource:*`, `*`.
    pub match_keys: [String; 3],
    pub body: BodyTemplate,
    pub idempotency_key: Option<String>,
    pub now: Millis,
}

pub struct ClaimJob {
    pub webhook: WebhookId,
    pub owner: String,
    pub now: Millis,
    pub lease_until: Millis,
    pub limit: i64,
}

pub struct CreateClaimedJob {
    pub merchant_filter: Option<i64>,
    pub webhook: WebhookId,
    pub topic: String,
    pub body: BodyTemplate,
    pub owner: String,
    pub lease_until: Millis,
}

pub fn publish(c: &Connection, job: &PublishJob) -> rusqlite::Result<Published> {
    if let Some(key) = &job.idempotency_key {
        let earlier: Option<(i64, i64, Millis)> = c
            .prepare_cached(
                "SELECT id, payloads, created_at FROM events WHERE merchant_id = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![job.merchant, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match earlier {
            Some((id, payloads, at)) if at > job.now - IDEMPOTENCY_WINDOW_MS => {
                return Ok(Published {
                    event_id: EventId(id),
                    payloads,
                    webhooks: vec![],
                    replayed: true,
                });
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
    let mut hooks: Vec<i64> = c
        .prepare_cached(
            "SELECT t.webhook_id FROM webhook_topics t JOIN webhooks w ON w.id = t.webhook_id \
             WHERE t.merchant_id = ?1 AND t.pattern IN (?2, ?3, ?4) AND w.is_active = 1",
        )?
        .query_map(
            params![job.merchant, job.match_keys[0], job.match_keys[1], job.match_keys[2]],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    hooks.sort_unstable();
    hooks.dedup();
    let event_id: i64 = c
        .prepare_cached(
            "INSERT INTO events (merchant_id, topic, idempotency_key, payloads, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                job.merchant,
                job.topic,
                job.idempotency_key,
                hooks.len() as i64,
                job.now
            ],
            |r| r.get(0),
        )?;
    for &webhook in &hooks {
        insert_payload(
            c,
            WebhookId(webhook),
            Some(event_id),
            &job.topic,
            &job.body,
            job.now,
            None,
        )?;
    }
    Ok(Published {
        event_id: EventId(event_id),
        payloads: hooks.len() as i64,
        webhooks: hooks.into_iter().map(WebhookId).collect(),
        replayed: false,
    })
}

/// Takes the webhook's next increment id and stores its payload; optionally leased at once.
fn insert_payload(
    c: &Connection,
    webhook: WebhookId,
    event_id: Option<i64>,
    topic: &str,
    body: &BodyTemplate,
    now: Millis,
    lease: Option<(&str, Millis)>,
) -> rusqlite::Result<ClaimedDelivery> {
    let (increment_id, merchant): (i64, i64) = c
        .prepare_cached(
            "UPDATE webhooks SET increment_id = increment_id + 1 WHERE id = ?1 RETURNING increment_id, merchant_id",
        )?
        .query_row([webhook.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let rendered = body.render(increment_id);
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, status, \
             next_attempt_at, lease_owner, lease_until, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?7) RETURNING id",
        )?
        .query_row(
            params![
                webhook.0,
                merchant,
                event_id,
                increment_id,
                topic,
                rendered,
                now,
                lease.map(|l| l.0),
                lease.map(|l| l.1)
            ],
            |r| r.get(0),
        )?;
    Ok(ClaimedDelivery {
        id: DeliveryId(id),
        webhook_id: webhook,
        increment_id,
        attempts: 0,
        body: rendered,
    })
}

pub fn create_claimed(c: &Connection, job: &CreateClaimedJob) -> rusqlite::Result<Option<ClaimedDelivery>> {
    let exists: Option<i64> = c
        .prepare_cached("SELECT id FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")?
        .query_row(params![job.webhook.0, job.merchant_filter], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let lease = Some((job.owner.as_str(), job.lease_until));
    insert_payload(c, job.webhook, None, &job.topic, &job.body, now_millis(), lease).map(Some)
}

pub fn claim(c: &Connection, job: &ClaimJob) -> rusqlite::Result<Vec<ClaimedDelivery>> {
    let mut claimed: Vec<ClaimedDelivery> = c
        .prepare_cached(
            "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id IN ( \
               SELECT id FROM deliveries WHERE webhook_id = ?3 AND status IN ('pending', 'retrying') \
                 AND next_attempt_at <= ?4 AND (lease_until IS NULL OR lease_until <= ?4) \
               ORDER BY next_attempt_at, id LIMIT ?5) \
             AND EXISTS (SELECT 1 FROM webhooks WHERE id = ?3 AND is_active = 1) \
             RETURNING id, increment_id, attempts, body",
        )?
        .query_map(
            params![job.owner, job.lease_until, job.webhook.0, job.now, job.limit],
            |r| {
                Ok(ClaimedDelivery {
                    id: DeliveryId(r.get(0)?),
                    webhook_id: job.webhook,
                    increment_id: r.get(1)?,
                    attempts: r.get(2)?,
                    body: r.get(3)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    claimed.sort_by_key(|d| d.increment_id);
    Ok(claimed)
}

pub fn record(c: &Connection, updates: &[DeliveryUpdate]) -> rusqlite::Result<()> {
    // A payload purged while its attempt was in flight gets no log row (and no update).
    let mut log = c.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempted_at, http_status, duration_ms, response_prefix, error) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?1)",
    )?;
    let mut update = c.prepare_cached(
        "UPDATE deliveries SET status = ?1, attempts = attempts + 1, next_attempt_at = ?2, \
           lease_owner = NULL, lease_until = NULL, last_http_status = ?3, last_error = ?4, finished_at = ?5 \
         WHERE id = ?6 AND lease_owner = ?7 AND status IN ('pending', 'retrying')",
    )?;
    for u in updates {
        let a = &u.attempt;
        log.execute(params![
            u.delivery_id.0,
            a.attempted_at,
            a.http_status,
            a.duration_ms,
            a.response_prefix,
            a.error
        ])?;
        let finished = matches!(u.status, DeliveryStatus::Success | DeliveryStatus::Failed).then_some(a.attempted_at);
        update.execute(params![
            u.status.as_str(),
            u.next_attempt_at,
            a.http_status,
            a.error,
            finished,
            u.delivery_id.0,
            u.lease_owner
        ])?;
    }
    Ok(())
}
