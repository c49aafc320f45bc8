//! The webhook lifecycle in PostgreSQL: update, secret rotation, payload ranges, recovery
//! and the merchant-wide delivery log.
//!
//! The one idea to know: every change of a webhook moves its `version`, and the claim
//! returns the version with each payload, so every node's dispatcher that cached the
//! webhook's target (URL, headers, secrets) reloads it before sending anything more.
//! Changes that may put payloads back in the queue (activation, recovery) wake every node
//! by NOTIFY in the same transaction, as `set_active` and `requeue` do.

use sqlx::postgres::PgArguments;
use sqlx::{Acquire, Arguments, PgPool, Row};

use super::clock::{self, on_db_clock};
use super::deliveries::{record_from_row, RECORD_COLUMNS};
use super::wakeups;
use crate::domain::rotation::previous_after_rotation;
use crate::domain::signing_keys::{previous_from_stored, previous_to_stored};
use crate::domain::{
    DeliveryId, DeliveryStatus, KeyPair, PreviousKey, RotateOutcome, SignatureScheme, WebhookChange, WebhookId,
};
use crate::store::{DeliveryRecord, DeliverySearch, PayloadRecord, Recovered, Scope, StoreError, StoreResult};
use crate::time::Millis;

pub async fn update(pool: &PgPool, scope: Scope, id: WebhookId, change: &WebhookChange) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    // Locks the webhook row (as publishers do), so a publish sees the old topics or the new.
    let merchant: Option<i64> = sqlx::query_scalar(
        "UPDATE webhooks SET url = COALESCE($3, url), topics = COALESCE($4, topics), \
           extra_headers = COALESCE($5, extra_headers), is_active = COALESCE($6, is_active), \
           disabled_reason = CASE WHEN $6::BOOLEAN IS NULL THEN disabled_reason END, \
           failing_since = CASE WHEN $6::BOOLEAN IS NULL THEN failing_since END, \
           announce_pending = CASE WHEN $6::BOOLEAN IS NULL THEN announce_pending ELSE FALSE END, \
           ordered = COALESCE($7, ordered), \
           max_rate = CASE WHEN $8 THEN $9 ELSE max_rate END, \
           filter = CASE WHEN $10 THEN $11 ELSE filter END, \
           signing_key = CASE WHEN $12::TEXT IS NULL THEN signing_key WHEN $12 = 'hmac' THEN NULL \
             ELSE COALESCE(signing_key, $13) END, \
           public_key = CASE WHEN $12::TEXT IS NULL THEN public_key WHEN $12 = 'hmac' THEN NULL \
             ELSE COALESCE(public_key, $14) END, \
           signature_scheme = COALESCE($12, signature_scheme), \
           version = version + 1 \
         WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) \
         RETURNING merchant_id",
    )
    .bind(id.0)
    .bind(scope.merchant_filter())
    .bind(change.url.as_ref().map(|u| u.as_str()))
    .bind(change.topics.as_ref().map(|t| t.joined()))
    .bind(change.extra_headers.as_ref().map(|h| h.raw()))
    .bind(change.is_active)
    .bind(change.ordered)
    .bind(change.max_rate.is_some())
    .bind(change.max_rate.flatten().map(|r| r.per_second()))
    .bind(change.filter.is_some())
    .bind(change.filter.as_ref().and_then(|f| f.as_ref().map(|f| f.as_str())))
    .bind(change.signature_scheme.map(|s| s.as_str()))
    .bind(change.key_pair.as_ref().map(|k| k.private.as_str()))
    .bind(change.key_pair.as_ref().map(|k| k.public.as_str()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(merchant) = merchant else {
        return Ok(false);
    };
    if let Some(description) = &change.description {
        sqlx::query("UPDATE webhooks SET description = $2 WHERE id = $1")
            .bind(id.0)
            .bind(description.as_str())
            .execute(&mut *tx)
            .await?;
    }
    if let Some(topics) = &change.topics {
        let patterns: Vec<String> = topics.patterns().iter().map(|p| p.key()).collect();
        sqlx::query("DELETE FROM webhook_topics WHERE webhook_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) \
             SELECT $1, pattern, $3 FROM UNNEST($2::text[]) AS p(pattern)",
        )
        .bind(merchant)
        .bind(&patterns)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    }
    if change.is_active == Some(true) {
        wakeups::notify(&mut tx, &[id.0]).await?;
    }
    // Other nodes forget what they hold of it (their hand-off of its payloads included).
    wakeups::changed(&mut tx, &[id.0]).await?;
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(true)
}

/// Reads and rewrites the row under its lock, so concurrent rotations queue up and each
/// sees the keys the one before it left.
/// `secret` and `key_pair.private` come in their stored form (sealed when encryption is on).
pub async fn rotate_secret(
    pool: &PgPool,
    scope: Scope,
    id: WebhookId,
    secret: &str,
    key_pair: &KeyPair,
    now: Millis,
    previous_expires_at: Millis,
) -> StoreResult<RotateOutcome> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT secret_key, signing_key, signature_scheme, previous_keys FROM webhooks \
         WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) FOR UPDATE",
    )
    .bind(id.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(RotateOutcome::NotFound);
    };
    let replaced = PreviousKey {
        secret_key: row.get(0),
        signing_key: row.get(1),
        expires_at: previous_expires_at,
    };
    let previous = previous_from_stored(row.get::<Option<String>, _>(3).as_deref());
    let previous = match previous_after_rotation(replaced, previous, now) {
        Ok(previous) => previous,
        Err(refused) => return Ok(RotateOutcome::Refused(refused)),
    };
    let pair = SignatureScheme::from_stored(row.get::<&str, _>(2))
        .has_key_pair()
        .then_some(key_pair);
    sqlx::query(
        "UPDATE webhooks SET secret_key = $2, signing_key = $3, public_key = $4, previous_keys = $5, \
           version = version + 1 \
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(secret)
    .bind(pair.map(|k| k.private.as_str()))
    .bind(pair.map(|k| k.public.as_str()))
    .bind(previous_to_stored(&previous))
    .execute(&mut *tx)
    .await?;
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(RotateOutcome::Rotated)
}

/// Reads through the `(webhook_id, increment_id)` index.
pub async fn payload_range(
    pool: &PgPool,
    scope: Scope,
    id: WebhookId,
    from: i64,
    to: i64,
    limit: i64,
) -> StoreResult<Vec<PayloadRecord>> {
    let rows = sqlx::query(
        "SELECT increment_id, id, topic, status, created_at, body FROM deliveries \
         WHERE webhook_id = $1 AND increment_id BETWEEN $2 AND $3 \
           AND ($4::BIGINT IS NULL OR merchant_id = $4) \
         ORDER BY increment_id, id LIMIT $5",
    )
    .bind(id.0)
    .bind(from)
    .bind(to)
    .bind(scope.merchant_filter())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| PayloadRecord {
            increment_id: r.get(0),
            delivery_id: DeliveryId(r.get(1)),
            topic: r.get(2),
            status: DeliveryStatus::parse(r.get::<&str, _>(3)).unwrap_or(DeliveryStatus::Pending),
            created_at: r.get(4),
            body: r.get(5),
        })
        .collect())
}

/// At most `limit`, oldest first; None when the webhook does not exist in the scope. Reads
/// (and counts what is left) through `deliveries_failed`; rows are locked in id order, as
/// the recorder and webhook deletion lock them. Due at `now` on the database's clock (see
/// `clock`).
pub async fn recover(
    pool: &PgPool,
    scope: Scope,
    id: WebhookId,
    since: Millis,
    now: Millis,
    limit: u64,
) -> StoreResult<Option<Recovered>> {
    let (mut conn, clock) = clock::clocked(pool).await?;
    let mut tx = conn.begin().await?;
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2)")
            .bind(id.0)
            .bind(scope.merchant_filter())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let done = sqlx::query(concat!(
        "UPDATE deliveries SET status = 'retrying', next_attempt_at = ",
        on_db_clock!("$3", "$5"),
        ", finished_at = NULL, lease_owner = NULL, lease_until = NULL \
         WHERE id IN (SELECT id FROM (SELECT id FROM deliveries WHERE webhook_id = $1 \
                          AND status = 'failed' AND created_at >= $2 ORDER BY created_at, id LIMIT $4) oldest \
                        ORDER BY id FOR UPDATE)",
    ))
    .bind(id.0)
    .bind(since)
    .bind(now)
    .bind(limit as i64)
    .bind(clock)
    .execute(&mut *tx)
    .await?;
    let remaining: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2",
    )
    .bind(id.0)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        wakeups::notify(&mut tx, &[id.0]).await?;
    }
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(Some(Recovered {
        requeued: done.rows_affected(),
        remaining: remaining as u64,
    }))
}

/// Only the filters given become conditions, so the planner sees a plain
/// `merchant_id = $1 ORDER BY id DESC` and walks `deliveries_by_merchant` (or, for an admin,
/// the primary key) newest first. A merchant's time range is ordered by `(created_at, id)`
/// instead, so it is one range of `deliveries_by_merchant_time` wherever it lies in history
/// (see `DeliverySearch::by_time`).
pub async fn search(pool: &PgPool, scope: Scope, filter: &DeliverySearch) -> StoreResult<Vec<DeliveryRecord>> {
    let (sql, args) = search_query(scope, filter)?;
    let rows = sqlx::query_with(&sql, args).fetch_all(pool).await?;
    Ok(rows.iter().map(record_from_row).collect())
}

/// `search`'s statement and parameters (its plan is tested).
pub(super) fn search_query(scope: Scope, filter: &DeliverySearch) -> StoreResult<(String, PgArguments)> {
    let by_time = filter.by_time(scope);
    let mut conditions = Vec::new();
    let mut args = PgArguments::default();
    let mut n = 0;
    let mut next = |condition: &str| {
        n += 1;
        conditions.push(format!("{condition} ${n}"));
    };
    let bind_err = |e| crate::store::StoreError::from(sqlx::Error::Encode(e));
    if let Some(m) = scope.merchant_filter() {
        next("merchant_id =");
        args.add(m).map_err(bind_err)?;
    }
    if let Some(s) = filter.status {
        next("status =");
        args.add(s.as_str()).map_err(bind_err)?;
    }
    if let Some(t) = &filter.topic {
        next("topic =");
        args.add(t.as_str()).map_err(bind_err)?;
    }
    if let Some(e) = filter.event_id {
        next("event_id =");
        args.add(e).map_err(bind_err)?;
    }
    if let Some(w) = filter.webhook_id {
        next("webhook_id =");
        args.add(w).map_err(bind_err)?;
    }
    if let Some(t) = filter.since {
        next("created_at >=");
        args.add(t).map_err(bind_err)?;
    }
    if let Some(t) = filter.until {
        next("created_at <");
        args.add(t).map_err(bind_err)?;
    }
    if let Some(b) = filter.before {
        // One parameter per condition, so this one is number `len + 1`.
        let k = conditions.len() + 1;
        conditions.push(if by_time {
            format!(
                "(created_at, id) < ({}, ${k})",
                crate::store::cursor_time(&format!("${k}"))
            )
        } else {
            format!("id < ${k}")
        });
        args.add(b).map_err(bind_err)?;
    }
    args.add(filter.limit).map_err(bind_err)?;
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let order = if by_time { "created_at DESC, id DESC" } else { "id DESC" };
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", conditions.len() + 1));
    Ok((sql, args))
}
