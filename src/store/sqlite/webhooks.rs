//! Webhooks and their subscription index in SQLite.

use sqlx::{Row, SqlitePool};

use crate::domain::{MerchantId, NewWebhook, Webhook, WebhookId};
use crate::store::{Scope, StatusTarget, StoreResult};
use crate::time::now_millis;

const COLUMNS: &str = "id, merchant_id, increment_id, is_active, topics, url, extra_headers, secret_key";

fn webhook_from_row(row: &sqlx::sqlite::SqliteRow) -> Webhook {
    Webhook {
        id: WebhookId(row.get(0)),
        merchant_id: MerchantId(row.get(1)),
        increment_id: row.get(2),
        is_active: row.get::<i64, _>(3) != 0,
        topics: row.get(4),
        url: row.get(5),
        extra_headers: row.get(6),
        secret_key: row.get(7),
    }
}

pub async fn create(
    pool: &SqlitePool,
    merchant: MerchantId,
    hook: &NewWebhook,
    limit: i64,
) -> StoreResult<Option<WebhookId>> {
    // BEGIN IMMEDIATE takes the write lock first, so the count cannot go stale.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE merchant_id = ?")
        .bind(merchant.0)
        .fetch_one(&mut *tx)
        .await?;
    if existing >= limit {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (merchant_id, is_active, topics, url, extra_headers, secret_key, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(merchant.0)
    .bind(hook.is_active as i64)
    .bind(hook.topics.joined())
    .bind(hook.url.as_str())
    .bind(hook.extra_headers.raw())
    .bind(hook.secret_key.as_str())
    .bind(now_millis())
    .fetch_one(&mut *tx)
    .await?;
    for pattern in hook.topics.patterns() {
        sqlx::query("INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) VALUES (?, ?, ?)")
            .bind(merchant.0)
            .bind(pattern.key())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(WebhookId(id)))
}

pub async fn count(pool: &SqlitePool, merchant: MerchantId) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE merchant_id = ?")
            .bind(merchant.0)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn list(pool: &SqlitePool, scope: Scope) -> StoreResult<Vec<Webhook>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE (?1 IS NULL OR merchant_id = ?1) ORDER BY id"
    ))
    .bind(scope.merchant_filter())
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(webhook_from_row).collect())
}

pub async fn set_active(pool: &SqlitePool, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
    let query = match target {
        StatusTarget::Id(id) => {
            sqlx::query("UPDATE webhooks SET is_active = ?1 WHERE id = ?2 AND (?3 IS NULL OR merchant_id = ?3)")
                .bind(active as i64)
                .bind(id.0)
        }
        StatusTarget::Topic(pattern) => sqlx::query(
            "UPDATE webhooks SET is_active = ?1 WHERE id IN \
             (SELECT webhook_id FROM webhook_topics WHERE pattern = ?2) AND (?3 IS NULL OR merchant_id = ?3)",
        )
        .bind(active as i64)
        .bind(pattern.as_str()),
        StatusTarget::All => {
            sqlx::query("UPDATE webhooks SET is_active = ?1 WHERE ?2 IS NULL AND (?3 IS NULL OR merchant_id = ?3)")
                .bind(active as i64)
                .bind(None::<&str>)
        }
    };
    let done = query.bind(scope.merchant_filter()).execute(pool).await?;
    Ok(done.rows_affected())
}

pub async fn delete(pool: &SqlitePool, scope: Scope, id: WebhookId) -> StoreResult<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")
        .bind(id.0)
        .bind(scope.merchant_filter())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE deliveries SET status = 'canceled', finished_at = ?, lease_owner = NULL, lease_until = NULL \
         WHERE webhook_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(now_millis())
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
