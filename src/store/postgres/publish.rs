//! Events and payloads in PostgreSQL: publish (fan-out with gap-free increment ids across
//! nodes) and `webhook.test`'s payload.
//!
//! Increment ids are gap-free because a payload's id is taken by bumping its webhook's row
//! inside the transaction that stores the payload: the row lock makes concurrent publishers
//! (on any node) take turns per webhook, and a rollback undoes the bump with the payload.

use sqlx::PgPool;

use super::wakeups;
use crate::domain::{BodyTemplate, DeliveryId, EventId, WebhookId};
use crate::store::{ClaimedDelivery, PublishRequest, Published, Scope, StoreResult};
use crate::time::Millis;

use crate::domain::records::IDEMPOTENCY_WINDOW_MS;

pub async fn publish(pool: &PgPool, req: &PublishRequest<'_>) -> StoreResult<Published> {
    let mut tx = pool.begin().await?;
    if let Some(key) = req.idempotency_key {
        // Two publishes with the same key must make one event, whichever node they reach.
        // A transaction-scoped advisory lock on (merchant, key) makes them take turns: the
        // second waits here until the first commits, then its SELECT (a fresh snapshot, as
        // every statement gets under READ COMMITTED) finds the first event and replays it.
        // An `ON CONFLICT` insert would serialise them too, but would also need a retry loop
        // for the expired-key case below; the lock keeps one straight path. Different keys
        // that hash alike only wait for each other; the unique index remains the backstop.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($2, $1))")
            .bind(req.merchant.0)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let earlier: Option<(i64, i64, Millis)> = sqlx::query_as(
            "SELECT id, payloads, created_at FROM events \
             WHERE merchant_id = $1 AND idempotency_key = $2",
        )
        .bind(req.merchant.0)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        match earlier {
            Some((id, payloads, at)) if at > req.now - IDEMPOTENCY_WINDOW_MS => {
                tx.rollback().await?;
                return Ok(Published {
                    event_id: EventId(id),
                    payloads,
                    webhooks: vec![],
                    replayed: true,
                });
            }
            Some((id, _, _)) => {
                sqlx::query("UPDATE events SET idempotency_key = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
    }
    // The event row first, before any webhook is locked, to keep the locked part short.
    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO events (merchant_id, topic, idempotency_key, payloads, created_at) \
         VALUES ($1, $2, $3, 0, $4) RETURNING id",
    )
    .bind(req.merchant.0)
    .bind(req.topic.as_str())
    .bind(req.idempotency_key)
    .bind(req.now)
    .fetch_one(&mut *tx)
    .await?;
    // Lock the matching active webhooks in id order (so publishers sharing webhooks cannot
    // deadlock) and take each one's next increment id. A webhook deactivated or deleted by a
    // transaction we waited for is re-checked after the wait and left out.
    let keys = req.topic.match_keys();
    let mut bumped: Vec<(i64, i64, i64)> = sqlx::query_as(
        "UPDATE webhooks SET increment_id = increment_id + 1 WHERE id IN ( \
           SELECT id FROM webhooks WHERE merchant_id = $1 AND is_active AND id IN ( \
             SELECT webhook_id FROM webhook_topics WHERE merchant_id = $1 AND pattern = ANY($2)) \
           ORDER BY id FOR UPDATE) \
         RETURNING id, increment_id, merchant_id",
    )
    .bind(req.merchant.0)
    .bind(keys.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    bumped.sort_unstable();
    let webhooks: Vec<i64> = bumped.iter().map(|b| b.0).collect();
    if !bumped.is_empty() {
        let increments: Vec<i64> = bumped.iter().map(|b| b.1).collect();
        let merchants: Vec<i64> = bumped.iter().map(|b| b.2).collect();
        let bodies: Vec<Vec<u8>> = increments.iter().map(|&n| req.body.render(n)).collect();
        // The payloads, the event's payload count and the wake-up in one round trip.
        sqlx::query(
            "WITH made AS ( \
               INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, \
                 status, next_attempt_at, created_at) \
               SELECT w, m, $4, n, $5, b, 'pending', $6, $6 \
               FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $7::BYTEA[]) AS p(w, m, n, b)), \
             counted AS (UPDATE events SET payloads = $8 WHERE id = $4) \
             SELECT pg_notify($9, $10)",
        )
        .bind(&webhooks)
        .bind(&merchants)
        .bind(&increments)
        .bind(event_id)
        .bind(req.topic.as_str())
        .bind(req.now)
        .bind(&bodies)
        .bind(bumped.len() as i64)
        .bind(wakeups::CHANNEL)
        .bind(wakeups::payload(&webhooks))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Published {
        event_id: EventId(event_id),
        payloads: webhooks.len() as i64,
        webhooks: webhooks.into_iter().map(WebhookId).collect(),
        replayed: false,
    })
}

/// webhook.test's payload: takes the webhook's next increment id (any webhook of the
/// scope, active or not) and is stored already leased to `owner`, so no dispatcher takes it.
pub async fn create_claimed(
    pool: &PgPool,
    scope: Scope,
    webhook: WebhookId,
    topic: &str,
    body: &BodyTemplate,
    owner: &str,
    lease_until: Millis,
) -> StoreResult<Option<ClaimedDelivery>> {
    let mut tx = pool.begin().await?;
    let bumped: Option<(i64, i64)> = sqlx::query_as(
        "UPDATE webhooks SET increment_id = increment_id + 1 \
         WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) \
         RETURNING increment_id, merchant_id",
    )
    .bind(webhook.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((increment_id, merchant)) = bumped else {
        return Ok(None);
    };
    let now = crate::time::now_millis();
    let rendered = body.render(increment_id);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, status, \
         next_attempt_at, lease_owner, lease_until, created_at) \
         VALUES ($1, $2, NULL, $3, $4, $5, 'pending', $6, $7, $8, $6) RETURNING id",
    )
    .bind(webhook.0)
    .bind(merchant)
    .bind(increment_id)
    .bind(topic)
    .bind(&rendered)
    .bind(now)
    .bind(owner)
    .bind(lease_until)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(ClaimedDelivery {
        id: DeliveryId(id),
        webhook_id: webhook,
        increment_id,
        attempts: 0,
        body: rendered,
        webhook_version: 0,
    }))
}
