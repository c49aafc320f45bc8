//! Events, payloads and attempts in PostgreSQL: publish (fan-out with gap-free increment ids
//! across nodes), the leased work queue, the delivery log and retention.
//!
//! Increment ids are gap-free because a payload's id is taken by bumping its webhook's row
//! inside the transaction that stores the payload: the row lock makes concurrent publishers
//! (on any node) take turns per webhook, and a rollback undoes the bump with the payload.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::wakeups;
use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, EventId, WebhookId};
use crate::store::{
    AttemptLog, ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliveryUpdate, PublishRequest,
    Published, Requeue, Scope, StoreResult,
};
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
    }))
}

pub async fn queue_scan(pool: &PgPool, now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
    // Hops from one webhook id to the next through the queue index (a "loose index scan"),
    // so the cost grows with the number of webhooks that have work, not with the number of
    // queued payloads; then one index probe per such webhook for its earliest unleased payload.
    let rows: Vec<(i64, Millis)> = sqlx::query_as(
        "WITH RECURSIVE hop(w) AS ( \
           (SELECT webhook_id FROM deliveries WHERE status IN ('pending', 'retrying') \
            ORDER BY webhook_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT webhook_id FROM deliveries \
                   WHERE status IN ('pending', 'retrying') AND webhook_id > hop.w \
                   ORDER BY webhook_id LIMIT 1) \
           FROM hop WHERE hop.w IS NOT NULL) \
         SELECT hop.w, due.next_attempt_at \
         FROM hop JOIN webhooks wh ON wh.id = hop.w AND wh.is_active \
         CROSS JOIN LATERAL ( \
           SELECT next_attempt_at FROM deliveries \
           WHERE webhook_id = hop.w AND status IN ('pending', 'retrying') \
             AND (lease_until IS NULL OR lease_until <= $1) \
           ORDER BY next_attempt_at LIMIT 1) due \
         ORDER BY hop.w",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(w, due)| (WebhookId(w), due)).collect())
}

pub async fn claim(
    pool: &PgPool,
    webhook: WebhookId,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    // SKIP LOCKED: rows another node is claiming right now are passed over, never waited
    // for, and never handed out twice (a row updated meanwhile is re-checked once locked).
    let rows = sqlx::query(
        "UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
           SELECT id FROM deliveries WHERE webhook_id = $3 AND status IN ('pending', 'retrying') \
             AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until <= $4) \
             AND EXISTS (SELECT 1 FROM webhooks WHERE id = $3 AND is_active) \
           ORDER BY next_attempt_at, id LIMIT $5 \
           FOR UPDATE SKIP LOCKED) \
         RETURNING id, increment_id, attempts, body",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(webhook.0)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut claimed: Vec<ClaimedDelivery> = rows
        .iter()
        .map(|r| ClaimedDelivery {
            id: DeliveryId(r.get(0)),
            webhook_id: webhook,
            increment_id: r.get(1),
            attempts: r.get(2),
            body: r.get(3),
        })
        .collect();
    claimed.sort_by_key(|c| c.increment_id);
    Ok(claimed)
}

/// The whole batch in one statement (so one transaction and one round trip): the outcomes
/// travel as parallel arrays, a CTE logs every attempt, and the UPDATE moves each payload
/// whose lease is still held by the attempt's owner.
pub async fn record(pool: &PgPool, updates: &[DeliveryUpdate]) -> StoreResult<()> {
    if updates.is_empty() {
        return Ok(());
    }
    // Ascending ids, so batches lock rows in the order webhook deletion does. (A deadlock
    // would still only abort one side; the recorder retries.)
    let mut sorted: Vec<&DeliveryUpdate> = updates.iter().collect();
    sorted.sort_by_key(|u| u.delivery_id.0);
    let mut a = Arrays::default();
    for u in sorted {
        let finished =
            matches!(u.status, DeliveryStatus::Success | DeliveryStatus::Failed).then_some(u.attempt.attempted_at);
        a.id.push(u.delivery_id.0);
        a.owner.push(u.lease_owner.as_str());
        a.status.push(u.status.as_str());
        a.next_attempt_at.push(u.next_attempt_at);
        a.finished_at.push(finished);
        a.attempted_at.push(u.attempt.attempted_at);
        a.http_status.push(u.attempt.http_status);
        a.duration_ms.push(u.attempt.duration_ms);
        a.response_prefix.push(u.attempt.response_prefix.as_str());
        a.error.push(u.attempt.error.as_deref());
    }
    // Attempts of payloads purged meanwhile are dropped rather than failing the batch.
    sqlx::query(
        "WITH u AS ( \
           SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], \
             $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[]) WITH ORDINALITY \
             AS t(id, owner, status, next_attempt_at, finished_at, attempted_at, http_status, \
                  duration_ms, response_prefix, error, n)), \
         logged AS ( \
           INSERT INTO delivery_attempts (delivery_id, attempted_at, http_status, duration_ms, \
             response_prefix, error) \
           SELECT u.id, u.attempted_at, u.http_status, u.duration_ms, u.response_prefix, u.error \
           FROM u WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = u.id) ORDER BY u.n) \
         UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, \
           next_attempt_at = u.next_attempt_at, lease_owner = NULL, lease_until = NULL, \
           last_http_status = u.http_status, last_error = u.error, finished_at = u.finished_at \
         FROM u WHERE d.id = u.id AND d.lease_owner = u.owner AND d.status IN ('pending', 'retrying')",
    )
    .bind(&a.id)
    .bind(&a.owner)
    .bind(&a.status)
    .bind(&a.next_attempt_at)
    .bind(&a.finished_at)
    .bind(&a.attempted_at)
    .bind(&a.http_status)
    .bind(&a.duration_ms)
    .bind(&a.response_prefix)
    .bind(&a.error)
    .execute(pool)
    .await?;
    Ok(())
}

/// `record`'s batch as one array per column.
#[derive(Default)]
struct Arrays<'a> {
    id: Vec<i64>,
    owner: Vec<&'a str>,
    status: Vec<&'static str>,
    next_attempt_at: Vec<Millis>,
    finished_at: Vec<Option<Millis>>,
    attempted_at: Vec<Millis>,
    http_status: Vec<Option<i64>>,
    duration_ms: Vec<i64>,
    response_prefix: Vec<&'a str>,
    error: Vec<Option<&'a str>>,
}

const RECORD_COLUMNS: &str = "id, webhook_id, event_id, increment_id, topic, status, attempts, \
     next_attempt_at, last_http_status, last_error, created_at";

fn record_from_row(r: &PgRow) -> DeliveryRecord {
    DeliveryRecord {
        id: DeliveryId(r.get(0)),
        webhook_id: WebhookId(r.get(1)),
        event_id: r.get(2),
        increment_id: r.get(3),
        topic: r.get(4),
        status: DeliveryStatus::parse(r.get::<&str, _>(5)).unwrap_or(DeliveryStatus::Pending),
        attempts: r.get(6),
        next_attempt_at: r.get(7),
        last_http_status: r.get(8),
        last_error: r.get(9),
        created_at: r.get(10),
    }
}

pub async fn list(
    pool: &PgPool,
    scope: Scope,
    webhook: WebhookId,
    filter: &DeliveryFilter,
) -> StoreResult<Vec<DeliveryRecord>> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries \
         WHERE webhook_id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) \
           AND ($3::TEXT IS NULL OR status = $3) AND ($4::BIGINT IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(webhook.0)
    .bind(scope.merchant_filter())
    .bind(filter.status.map(|s| s.as_str()))
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(record_from_row).collect())
}

/// attempted_at, http_status, duration_ms, response_prefix, error
type AttemptRow = (Millis, Option<i64>, i64, String, Option<String>);

pub async fn get(pool: &PgPool, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
    // One snapshot for the row and its attempts, so they agree while outcomes are recorded.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let Some(row) = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS}, body FROM deliveries \
         WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2)"
    ))
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempted_at, http_status, duration_ms, response_prefix, error \
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(DeliveryDetail {
        record: record_from_row(&row),
        body: row.get(11),
        attempts: attempts
            .into_iter()
            .map(
                |(attempted_at, http_status, duration_ms, response_prefix, error)| AttemptLog {
                    attempted_at,
                    http_status,
                    duration_ms,
                    response_prefix,
                    error,
                },
            )
            .collect(),
    }))
}

/// Requeues a failed payload and, in the same transaction, wakes every node for its webhook.
pub async fn requeue(pool: &PgPool, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
    let mut tx = pool.begin().await?;
    let webhook: Option<i64> = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'retrying', next_attempt_at = $1, finished_at = NULL \
         WHERE id = $2 AND ($3::BIGINT IS NULL OR merchant_id = $3) AND status = 'failed' \
         RETURNING webhook_id",
    )
    .bind(now)
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(webhook) = webhook {
        wakeups::notify(&mut tx, &[webhook]).await?;
        tx.commit().await?;
        return Ok(Requeue::Requeued(WebhookId(webhook)));
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2)")
            .bind(id.0)
            .bind(scope.merchant_filter())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(match status {
        None => Requeue::NotFound,
        Some(s) => Requeue::NotFailed(DeliveryStatus::parse(&s).unwrap_or(DeliveryStatus::Pending)),
    })
}

pub async fn purge(pool: &PgPool, before: Millis) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 \
         AND status IN ('success', 'failed', 'canceled')",
    )
    .bind(before)
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM events WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
