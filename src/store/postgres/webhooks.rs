//! Webhooks and their subscription index in PostgreSQL. Each merchant row keeps its number
//! of webhooks (`webhook_count`), moved in the transaction that creates or deletes one.
//!
//! Statements that lock several webhook rows take the locks in ascending id order (a
//! `SELECT … ORDER BY id FOR UPDATE` sub-select), the order publishers use, so a status change
//! and a publish touching the same webhooks cannot deadlock.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::wakeups;
use crate::domain::signing_keys::previous_from_stored;
use crate::domain::{DisabledAnnouncement, MerchantId, NewWebhook, SignatureScheme, Webhook, WebhookId};
use crate::sealing::Keyring;
use crate::store::{Scope, StatusTarget, StoreError, StoreResult};
use crate::time::{now_millis, Millis};

/// Read from `webhooks w JOIN merchants m` (see `FROM`).
const COLUMNS: &str = "w.id, w.merchant_id, w.increment_id, w.is_active, w.topics, w.url, w.extra_headers, \
     w.secret_key, m.code, w.version, w.previous_keys, w.signature_scheme, \
     w.disabled_reason, w.ordered, w.max_rate, w.filter, w.signing_key, w.public_key, w.description, w.failing_since";
const FROM: &str = "webhooks w JOIN merchants m ON m.id = w.merchant_id";

fn webhook_from_row(row: &PgRow) -> Webhook {
    Webhook {
        id: WebhookId(row.get(0)),
        merchant_id: MerchantId(row.get(1)),
        increment_id: row.get(2),
        is_active: row.get(3),
        topics: row.get(4),
        url: row.get(5),
        extra_headers: row.get(6),
        secret_key: row.get(7),
        merchant_code: row.get(8),
        version: row.get(9),
        previous_keys: previous_from_stored(row.get::<Option<String>, _>(10).as_deref()),
        signature_scheme: SignatureScheme::from_stored(row.get::<&str, _>(11)),
        disabled_reason: row.get(12),
        ordered: row.get(13),
        max_rate: row.get(14),
        filter: row.get(15),
        signing_key: row.get(16),
        public_key: row.get(17),
        description: row.get(18),
        failing_since: row.get(19),
    }
}

pub async fn create(
    pool: &PgPool,
    merchant: MerchantId,
    hook: &NewWebhook,
    limit: i64,
    keyring: &Keyring,
) -> StoreResult<Option<WebhookId>> {
    let patterns: Vec<String> = hook.topics.patterns().iter().map(|p| p.key()).collect();
    let mut tx = pool.begin().await?;
    // The counter's row lock serialises creates for one merchant: a create waiting on it
    // re-checks the limit against the count the one before it committed.
    let counted =
        sqlx::query("UPDATE merchants SET webhook_count = webhook_count + 1 WHERE id = $1 AND webhook_count < $2")
            .bind(merchant.0)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
    if counted.rows_affected() == 0 {
        return Ok(None); // at the limit (or no such merchant)
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (merchant_id, is_active, topics, url, extra_headers, secret_key, created_at, \
           ordered, max_rate, filter, signature_scheme, signing_key, public_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(merchant.0)
    .bind(hook.is_active)
    .bind(hook.topics.joined())
    .bind(hook.url.as_str())
    .bind(hook.extra_headers.raw())
    .bind(if keyring.is_on() { "" } else { hook.secret_key.as_str() })
    .bind(now_millis())
    .bind(hook.ordered)
    .bind(hook.max_rate.map(|r| r.per_second()))
    .bind(hook.filter.as_ref().map(|f| f.as_str()))
    .bind(hook.signature_scheme.as_str())
    .bind(
        hook.key_pair
            .as_ref()
            .filter(|_| !keyring.is_on())
            .map(|k| k.private.as_str()),
    )
    .bind(hook.key_pair.as_ref().map(|k| k.public.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    if keyring.is_on() {
        // The id the secrets are bound to is known only now (see `sealing`).
        sqlx::query("UPDATE webhooks SET secret_key = $2, signing_key = $3 WHERE id = $1")
            .bind(id)
            .bind(keyring.seal(id, hook.secret_key.as_str()))
            .bind(hook.key_pair.as_ref().map(|k| keyring.seal(id, &k.private)))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) \
         SELECT $1, pattern, $3 FROM UNNEST($2::text[]) AS p(pattern)",
    )
    .bind(merchant.0)
    .bind(&patterns)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if !hook.description.as_str().is_empty() {
        sqlx::query("UPDATE webhooks SET description = $2 WHERE id = $1")
            .bind(id)
            .bind(hook.description.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(Some(WebhookId(id)))
}

pub async fn count(pool: &PgPool, merchant: MerchantId) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT webhook_count FROM merchants WHERE id = $1")
            .bind(merchant.0)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}

pub async fn list(pool: &PgPool, scope: Scope) -> StoreResult<Vec<Webhook>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE ($1::BIGINT IS NULL OR w.merchant_id = $1) ORDER BY w.id"
    ))
    .bind(scope.merchant_filter())
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(webhook_from_row).collect())
}

/// A statement per scope, so even a generic plan walks `webhooks_merchant (merchant_id, id)`
/// from the page's start for a merchant (the primary key for an admin) instead of filtering
/// every merchant's rows; ids start at 1, so the first page is the one after 0.
pub async fn page(pool: &PgPool, scope: Scope, after: Option<WebhookId>, limit: i64) -> StoreResult<Vec<Webhook>> {
    // $1 is bound to NULL for an admin so both variants take the same parameters.
    let matching = match scope {
        Scope::All => "$1::BIGINT IS NULL",
        Scope::Merchant(_) => "w.merchant_id = $1",
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {matching} AND w.id > $2 ORDER BY w.id LIMIT $3"
    ))
    .bind(scope.merchant_filter())
    .bind(after.map_or(0, |a| a.0))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(webhook_from_row).collect())
}

pub async fn get(pool: &PgPool, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE w.id = $1 AND ($2::BIGINT IS NULL OR w.merchant_id = $2)"
    ))
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(webhook_from_row))
}

/// Activating also tells the other nodes (by NOTIFY, at commit) which webhooks may now
/// have payloads to send; until then their queue scans skip inactive webhooks.
pub async fn set_active(pool: &PgPool, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
    let matching = match target {
        StatusTarget::Id(_) => "id = $2",
        StatusTarget::Topic(_) => {
            "id IN (SELECT webhook_id FROM webhook_topics WHERE pattern = $2 \
             AND ($3::BIGINT IS NULL OR merchant_id = $3))"
        }
        // $2 is bound to NULL so every variant takes the same three parameters.
        StatusTarget::All => "$2::TEXT IS NULL",
    };
    let sql = format!(
        "UPDATE webhooks SET is_active = $1, disabled_reason = NULL, failing_since = NULL, announce_pending = FALSE WHERE id IN ( \
           SELECT id FROM webhooks WHERE {matching} AND ($3::BIGINT IS NULL OR merchant_id = $3) \
           ORDER BY id FOR UPDATE) \
         RETURNING id"
    );
    let query = sqlx::query_scalar(&sql).bind(active);
    let query = match target {
        StatusTarget::Id(id) => query.bind(id.0),
        StatusTarget::Topic(pattern) => query.bind(pattern.as_str()),
        StatusTarget::All => query.bind(None::<&str>),
    };
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = query.bind(scope.merchant_filter()).fetch_all(&mut *tx).await?;
    if active && !ids.is_empty() {
        wakeups::notify(&mut tx, &ids).await?;
    }
    if !active && !ids.is_empty() {
        // Every node drops what it holds of them; a list too long to name is "all".
        wakeups::changed(&mut tx, &ids).await?;
    }
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(ids.len() as u64)
}

/// Turns the webhook off at `now` with its announcement pending, in one statement: a crash
/// leaves either both or neither. The same statement tells every node it changed
/// (`wakeups::CHANGED`), at its commit.
pub async fn disable(pool: &PgPool, id: WebhookId, reason: &str, now: Millis) -> StoreResult<bool> {
    let changed: Option<i64> = sqlx::query_scalar(
        "WITH off AS (UPDATE webhooks SET is_active = FALSE, disabled_reason = $2, failing_since = NULL, \
           announce_pending = TRUE, disabled_at = $3 \
         WHERE id = $1 AND is_active RETURNING id) \
         SELECT id FROM off, pg_notify($4, id::TEXT)",
    )
    .bind(id.0)
    .bind(reason)
    .bind(now)
    .bind(wakeups::CHANGED)
    .fetch_optional(pool)
    .await?;
    Ok(changed.is_some())
}

/// Reads only pending rows (the partial index `webhooks_announce_pending`), locking none:
/// nodes sweeping at once may read the same rows, and their publishes' shared idempotency
/// key makes one event.
pub async fn announcements_pending(pool: &PgPool, limit: i64) -> StoreResult<Vec<DisabledAnnouncement>> {
    let rows = sqlx::query(
        "SELECT w.id, m.code, w.url, COALESCE(w.disabled_reason, ''), COALESCE(w.disabled_at, 0) \
         FROM webhooks w JOIN merchants m ON m.id = w.merchant_id \
         WHERE w.announce_pending ORDER BY w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| DisabledAnnouncement {
            webhook_id: WebhookId(r.get(0)),
            merchant_code: r.get(1),
            url: r.get(2),
            reason: r.get(3),
            disabled_at: r.get(4),
        })
        .collect())
}

pub async fn announcement_done(pool: &PgPool, id: WebhookId, disabled_at: Millis) -> StoreResult<()> {
    sqlx::query("UPDATE webhooks SET announce_pending = FALSE WHERE id = $1 AND disabled_at = $2 AND announce_pending")
        .bind(id.0)
        .bind(disabled_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete(pool: &PgPool, scope: Scope, id: WebhookId) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    // Waits for a publish holding the row, so that publish's payloads are committed (and
    // canceled below) before the webhook goes; later publishes no longer find it.
    let owner: Option<i64> = sqlx::query_scalar(
        "DELETE FROM webhooks WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) RETURNING merchant_id",
    )
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(owner) = owner else {
        return Ok(false);
    };
    sqlx::query("UPDATE merchants SET webhook_count = webhook_count - 1 WHERE id = $1")
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    // Rows in id order, like the delivery recorder's batches, to keep lock orders alike.
    sqlx::query(
        "UPDATE deliveries SET status = 'canceled', finished_at = $1, lease_owner = NULL, \
           lease_until = NULL \
         WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = $2 \
                        AND status IN ('pending', 'retrying') ORDER BY id FOR UPDATE)",
    )
    .bind(now_millis())
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    wakeups::changed(&mut tx, &[id.0]).await?;
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(true)
}
