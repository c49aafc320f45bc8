//! Payloads and attempts in PostgreSQL, off the hot path: the delivery log, manual retry
//! and retention, and each webhook's `failing_since` after an outcome batch. (Publish is in
//! `publish`, the work queue and the outcome write in `queue`.)

use sqlx::postgres::PgRow;
use sqlx::{Acquire, PgPool, Row};

use super::clock::{self, on_db_clock};
use super::wakeups;
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::failing::Change;
use crate::store::{AttemptLog, DeliveryDetail, DeliveryFilter, DeliveryRecord, Failing};
use crate::store::{Requeue, Scope, StoreError, StoreResult};
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

/// The newest payload of each webhook in `ids` (see `Store::delivery_latest`): per id, a
/// LATERAL step backwards into `deliveries_by_webhook (webhook_id, id)` that stops at the
/// first row. The scope is checked on the row found, not in that step: a webhook of another
/// merchant would otherwise walk its whole history to find none.
pub async fn latest(pool: &PgPool, scope: Scope, ids: &[i64]) -> StoreResult<Vec<DeliveryRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT d.* FROM UNNEST($1::BIGINT[]) AS w(id) \
         CROSS JOIN LATERAL ( \
           SELECT {RECORD_COLUMNS}, merchant_id FROM deliveries \
           WHERE webhook_id = w.id ORDER BY id DESC LIMIT 1) d \
         WHERE ($2::BIGINT IS NULL OR d.merchant_id = $2) \
         ORDER BY d.webhook_id"
    ))
    .bind(ids)
    .bind(scope.merchant_filter())
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(record_from_row).collect())
}

/// attempted_at, http_status, duration_ms, response_prefix, error
type AttemptRow = (Millis, Option<i64>, i64, String, Option<String>, Option<String>);

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
        "SELECT attempted_at, http_status, duration_ms, response_prefix, error, sent_headers \
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt_no, id",
    )
    .bind(id.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(Some(DeliveryDetail {
        record: record_from_row(&row),
        body: row.get(11),
        attempts: attempts
            .into_iter()
            .map(
                |(attempted_at, http_status, duration_ms, response_prefix, error, sent_headers)| AttemptLog {
                    attempted_at,
                    http_status,
                    duration_ms,
                    response_prefix,
                    error,
                    sent_headers,
                },
            )
            .collect(),
    }))
}

/// Requeues a failed or delivered payload (CONTRACT §7.7: a success is sent again too), due at `now` on the database's clock (see `clock`), and, in
/// the same transaction, wakes every node for its webhook.
pub async fn requeue(pool: &PgPool, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
    let (mut conn, clock) = clock::clocked(pool).await?;
    let mut tx = conn.begin().await?;
    let webhook: Option<i64> = sqlx::query_scalar(concat!(
        "UPDATE deliveries SET status = 'retrying', next_attempt_at = ",
        on_db_clock!("$1", "$4"),
        ", finished_at = NULL \
         WHERE id = $2 AND ($3::BIGINT IS NULL OR merchant_id = $3) AND status IN ('failed', 'success') \
         RETURNING webhook_id",
    ))
    .bind(now)
    .bind(id.0)
    .bind(scope.merchant_filter())
    .bind(clock)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(webhook) = webhook {
        wakeups::notify(&mut tx, &[webhook]).await?;
        tx.commit().await.map_err(StoreError::from_commit_pg)?;
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

/// Deletes finished payloads with their attempts (by the same statement: no foreign key
/// cascades, see migration 0021) and events past retention, a chunk per statement, oldest
/// first through the `finished_at` and `created_at` indexes, until a chunk comes back short.
pub async fn purge(pool: &PgPool, before: Millis) -> StoreResult<u64> {
    let mut purged = 0;
    loop {
        let done: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM deliveries WHERE id IN ( \
               SELECT id FROM deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 \
                 AND status IN ('success', 'failed', 'canceled') \
               ORDER BY finished_at LIMIT $2) RETURNING id), \
             attempts AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .bind(before)
        .bind(PURGE_CHUNK)
        .fetch_one(pool)
        .await?;
        let done = done as u64;
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

/// Moves `failing_since` after an outcome batch (see `store::failing`) and returns the
/// webhooks still failing: one statement, run after the outcome write has committed. Its
/// UPDATE touches (and locks) only rows it changes, so a batch of successes for webhooks
/// that are not failing writes nothing, takes no row lock (publishes hold webhook rows
/// across their commit) and commits without a WAL flush. Should it fail, the recorder
/// retries the batch, whose outcome write then changes nothing.
pub async fn track_failing(pool: &PgPool, changes: &[(WebhookId, Change)]) -> StoreResult<Vec<Failing>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = changes.iter().map(|(w, _)| w.0).collect();
    let codes: Vec<i16> = changes.iter().map(|(_, c)| c.code()).collect();
    let at: Vec<Option<i64>> = changes.iter().map(|(_, c)| c.at()).collect();
    // kind: 0 clear, 1 restart at `at`, 2 fail from `at` unless already failing.
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "WITH f AS (SELECT * FROM UNNEST($1::BIGINT[], $2::SMALLINT[], $3::BIGINT[]) AS t(id, kind, at)), \
         moved AS ( \
           UPDATE webhooks w SET failing_since = f.at FROM f \
           WHERE w.id = f.id AND ((f.kind = 0 AND w.failing_since IS NOT NULL) \
             OR (f.kind = 1 AND w.failing_since IS DISTINCT FROM f.at) \
             OR (f.kind = 2 AND w.failing_since IS NULL)) \
           RETURNING w.id, w.failing_since) \
         SELECT w.id, COALESCE(moved.failing_since, w.failing_since) FROM f \
           JOIN webhooks w ON w.id = f.id LEFT JOIN moved ON moved.id = f.id \
         WHERE f.kind <> 0 AND COALESCE(moved.failing_since, w.failing_since) IS NOT NULL \
         ORDER BY w.id",
    )
    .bind(&ids)
    .bind(&codes)
    .bind(&at)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, since)| Failing {
            webhook: WebhookId(id),
            since,
        })
        .collect())
}
