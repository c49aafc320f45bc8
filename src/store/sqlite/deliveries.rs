//! Events, payloads and attempts in SQLite: publish (fan-out with gap-free increment ids),
//! the leased work queue, the delivery log and retention.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, EventId, WebhookId};
use crate::store::{
    AttemptLog, ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliveryUpdate, PublishRequest,
    Published, Requeue, Scope, StoreResult,
};
use crate::time::Millis;

const IDEMPOTENCY_WINDOW_MS: Millis = 24 * 3600 * 1000;

pub async fn publish(pool: &SqlitePool, req: &PublishRequest<'_>) -> StoreResult<Published> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(key) = req.idempotency_key {
        let earlier: Option<(i64, i64, Millis)> = sqlx::query_as(
            "SELECT id, payloads, created_at FROM events WHERE merchant_id = ? AND idempotency_key = ?",
        )
        .bind(req.merchant.0)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        match earlier {
            Some((id, payloads, at)) if at > req.now - IDEMPOTENCY_WINDOW_MS => {
                tx.rollback().await?;
                return Ok(Published { event_id: EventId(id), payloads, webhooks: vec![], replayed: true });
            }
            Some((id, _, _)) => {
                sqlx::query("UPDATE events SET idempotency_key = NULL WHERE id = ?").bind(id).execute(&mut *tx).await?;
            }
            None => {}
        }
    }
    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO events (merchant_id, topic, idempotency_key, payloads, created_at) \
         VALUES (?, ?, ?, 0, ?) RETURNING id",
    )
    .bind(req.merchant.0)
    .bind(req.topic.as_str())
    .bind(req.idempotency_key)
    .bind(req.now)
    .fetch_one(&mut *tx)
    .await?;
    let [exact, prefix, all] = req.topic.match_keys();
    let hooks: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT t.webhook_id FROM webhook_topics t JOIN webhooks w ON w.id = t.webhook_id \
         WHERE t.merchant_id = ? AND t.pattern IN (?, ?, ?) AND w.is_active = 1 ORDER BY t.webhook_id",
    )
    .bind(req.merchant.0)
    .bind(exact)
    .bind(prefix)
    .bind(all)
    .fetch_all(&mut *tx)
    .await?;
    for &webhook in &hooks {
        insert_payload(&mut tx, WebhookId(webhook), Some(event_id), req.topic.as_str(), req.body, req.now, None)
            .await?;
    }
    sqlx::query("UPDATE events SET payloads = ? WHERE id = ?")
        .bind(hooks.len() as i64)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Published {
        event_id: EventId(event_id),
        payloads: hooks.len() as i64,
        webhooks: hooks.into_iter().map(WebhookId).collect(),
        replayed: false,
    })
}

/// Takes the webhook's next increment id and stores its payload; optionally leased at once.
async fn insert_payload(
    tx: &mut Transaction<'_, Sqlite>,
    webhook: WebhookId,
    event_id: Option<i64>,
    topic: &str,
    body: &BodyTemplate,
    now: Millis,
    lease: Option<(&str, Millis)>,
) -> StoreResult<ClaimedDelivery> {
    let (increment_id, merchant): (i64, i64) = sqlx::query_as(
        "UPDATE webhooks SET increment_id = increment_id + 1 WHERE id = ? RETURNING increment_id, merchant_id",
    )
    .bind(webhook.0)
    .fetch_one(&mut **tx)
    .await?;
    let rendered = body.render(increment_id);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, status, \
         next_attempt_at, lease_owner, lease_until, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?) RETURNING id",
    )
    .bind(webhook.0)
    .bind(merchant)
    .bind(event_id)
    .bind(increment_id)
    .bind(topic)
    .bind(&rendered)
    .bind(now)
    .bind(lease.map(|l| l.0))
    .bind(lease.map(|l| l.1))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(ClaimedDelivery { id: DeliveryId(id), webhook_id: webhook, increment_id, attempts: 0, body: rendered })
}

pub async fn create_claimed(
    pool: &SqlitePool,
    scope: Scope,
    webhook: WebhookId,
    topic: &str,
    body: &BodyTemplate,
    owner: &str,
    lease_until: Millis,
) -> StoreResult<Option<ClaimedDelivery>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")
        .bind(webhook.0)
        .bind(scope.merchant_filter())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let now = crate::time::now_millis();
    let claimed = insert_payload(&mut tx, webhook, None, topic, body, now, Some((owner, lease_until))).await?;
    tx.commit().await?;
    Ok(Some(claimed))
}

pub async fn queue_scan(pool: &SqlitePool, now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
    // Hops from one webhook id to the next through the queue index, so the cost grows with
    // the number of webhooks that have work, not with the number of queued payloads.
    let rows: Vec<(i64, Option<Millis>)> = sqlx::query_as(
        "WITH RECURSIVE hop(w) AS ( \
           SELECT MIN(webhook_id) FROM deliveries WHERE status IN ('pending', 'retrying') \
           UNION ALL \
           SELECT (SELECT MIN(webhook_id) FROM deliveries \
                   WHERE status IN ('pending', 'retrying') AND webhook_id > hop.w) \
           FROM hop WHERE hop.w IS NOT NULL) \
         SELECT hop.w, (SELECT next_attempt_at FROM deliveries \
                        WHERE webhook_id = hop.w AND status IN ('pending', 'retrying') \
                          AND (lease_until IS NULL OR lease_until <= ?1) \
                        ORDER BY next_attempt_at LIMIT 1) \
         FROM hop JOIN webhooks w ON w.id = hop.w AND w.is_active = 1 WHERE hop.w IS NOT NULL",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(|(w, due)| due.map(|d| (WebhookId(w), d))).collect())
}

pub async fn claim(
    pool: &SqlitePool,
    webhook: WebhookId,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let rows = sqlx::query(
        "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id IN ( \
           SELECT id FROM deliveries WHERE webhook_id = ?3 AND status IN ('pending', 'retrying') \
             AND next_attempt_at <= ?4 AND (lease_until IS NULL OR lease_until <= ?4) \
           ORDER BY next_attempt_at, id LIMIT ?5) \
         AND EXISTS (SELECT 1 FROM webhooks WHERE id = ?3 AND is_active = 1) \
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

pub async fn record(pool: &SqlitePool, updates: &[DeliveryUpdate]) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for u in updates {
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, http_status, duration_ms, response_prefix, error) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(u.delivery_id.0)
        .bind(u.attempt.attempted_at)
        .bind(u.attempt.http_status)
        .bind(u.attempt.duration_ms)
        .bind(&u.attempt.response_prefix)
        .bind(&u.attempt.error)
        .execute(&mut *tx)
        .await?;
        let finished = matches!(u.status, DeliveryStatus::Success | DeliveryStatus::Failed).then_some(u.attempt.attempted_at);
        sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, \
               lease_owner = NULL, lease_until = NULL, last_http_status = ?, last_error = ?, finished_at = ? \
             WHERE id = ? AND lease_owner = ? AND status IN ('pending', 'retrying')",
        )
        .bind(u.status.as_str())
        .bind(u.next_attempt_at)
        .bind(u.attempt.http_status)
        .bind(&u.attempt.error)
        .bind(finished)
        .bind(u.delivery_id.0)
        .bind(&u.lease_owner)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn release_all(pool: &SqlitePool) -> StoreResult<u64> {
    let done = sqlx::query("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

const RECORD_COLUMNS: &str = "id, webhook_id, event_id, increment_id, topic, status, attempts, next_attempt_at, \
     last_http_status, last_error, created_at";

fn record_from_row(r: &SqliteRow) -> DeliveryRecord {
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
    pool: &SqlitePool,
    scope: Scope,
    webhook: WebhookId,
    filter: &DeliveryFilter,
) -> StoreResult<Vec<DeliveryRecord>> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries WHERE webhook_id = ?1 AND (?2 IS NULL OR merchant_id = ?2) \
         AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5"
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

pub async fn get(pool: &SqlitePool, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS}, body FROM deliveries WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)"
    ))
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let attempts: Vec<(Millis, Option<i64>, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT attempted_at, http_status, duration_ms, response_prefix, error FROM delivery_attempts \
         WHERE delivery_id = ? ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?;
    Ok(Some(DeliveryDetail {
        record: record_from_row(&row),
        body: row.get(11),
        attempts: attempts
            .into_iter()
            .map(|(attempted_at, http_status, duration_ms, response_prefix, error)| AttemptLog {
                attempted_at,
                http_status,
                duration_ms,
                response_prefix,
                error,
            })
            .collect(),
    }))
}

pub async fn requeue(pool: &SqlitePool, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
    let found: Option<(i64, String)> =
        sqlx::query_as("SELECT webhook_id, status FROM deliveries WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")
            .bind(id.0)
            .bind(scope.merchant_filter())
            .fetch_optional(pool)
            .await?;
    let Some((webhook, status)) = found else { return Ok(Requeue::NotFound) };
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, finished_at = NULL \
         WHERE id = ? AND status = 'failed'",
    )
    .bind(now)
    .bind(id.0)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(Requeue::NotFailed(DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending)));
    }
    Ok(Requeue::Requeued(WebhookId(webhook)))
}

pub async fn purge(pool: &SqlitePool, before: Millis) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM deliveries WHERE finished_at IS NOT NULL AND finished_at < ? \
         AND status IN ('success', 'failed', 'canceled')",
    )
    .bind(before)
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM events WHERE created_at < ?").bind(before).execute(pool).await?;
    Ok(done.rows_affected())
}
