//! Payloads and attempts in PostgreSQL, off the hot path: the delivery log, manual retry
//! and retention. (Publish is in `publish`, the work queue in `queue`.)

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::wakeups;
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::{AttemptLog, DeliveryDetail, DeliveryFilter, DeliveryRecord, Requeue, Scope, StoreResult};
use crate::time::Millis;

pub(super) const RECORD_COLUMNS: &str = "id, webhook_id, event_id, increment_id, topic, status, attempts, \
     next_attempt_at, last_http_status, last_error, created_at";

pub(super) fn record_from_row(r: &PgRow) -> DeliveryRecord {
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
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt_no, id",
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

/// Rows deleted per purge statement: each statement (and its transaction) stays short, so
/// retention never holds locks or a snapshot for long, and vacuum can follow behind it.
const PURGE_CHUNK: i64 = 5000;

/// Deletes finished payloads (their attempts go with them, `ON DELETE CASCADE`) and events
/// past retention, a chunk per statement, oldest first through the `finished_at` and
/// `created_at` indexes, until a chunk comes back short.
pub async fn purge(pool: &PgPool, before: Millis) -> StoreResult<u64> {
    let mut purged = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM deliveries WHERE id IN ( \
               SELECT id FROM deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 \
                 AND status IN ('success', 'failed', 'canceled') \
               ORDER BY finished_at LIMIT $2)",
        )
        .bind(before)
        .bind(PURGE_CHUNK)
        .execute(pool)
        .await?
        .rows_affected();
        purged += done;
        if done < PURGE_CHUNK as u64 {
            break;
        }
    }
    loop {
        let done = sqlx::query(
            "DELETE FROM events WHERE id IN ( \
               SELECT id FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(before)
        .bind(PURGE_CHUNK)
        .execute(pool)
        .await?
        .rows_affected();
        if done < PURGE_CHUNK as u64 {
            break;
        }
    }
    Ok(purged)
}
