//! The webhook lifecycle in SQLite: update, secret rotation, payload ranges, recovery and
//! the merchant-wide delivery log. Writes are writer jobs, reads run on a reader.
//!
//! The one idea to know: every change of a webhook moves its `version`, and the claim
//! returns the version with each payload, so a dispatcher that cached the webhook's target
//! (URL, headers, secrets) reloads it before sending anything more.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::deliveries::{record_from_row, status_from, RECORD_COLUMNS};
use crate::domain::rotation::previous_after_rotation;
use crate::domain::signing_keys::{previous_from_stored, previous_to_stored};
use crate::domain::{DeliveryId, KeyPair, PreviousKey, RotateOutcome, SignatureScheme, WebhookChange, WebhookId};
use crate::store::{DeliveryRecord, DeliverySearch, PayloadRecord, Recovered, Scope, StoreResult};
use crate::time::Millis;

/// The webhook's merchant, if it exists in the scope.
fn owner(c: &Connection, scope: Scope, id: WebhookId) -> StoreResult<Option<i64>> {
    Ok(
        c.prepare_cached("SELECT merchant_id FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")?
            .query_row(params![id.0, scope.merchant_filter()], |r| r.get(0))
            .optional()?,
    )
}

pub fn update(c: &Connection, scope: Scope, id: WebhookId, change: &WebhookChange) -> StoreResult<bool> {
    let Some(merchant) = owner(c, scope, id)? else {
        return Ok(false);
    };
    c.prepare_cached(
        "UPDATE webhooks SET url = COALESCE(?2, url), topics = COALESCE(?3, topics), \
           extra_headers = COALESCE(?4, extra_headers), is_active = COALESCE(?5, is_active), \
           disabled_reason = CASE WHEN ?5 IS NULL THEN disabled_reason END, \
           failing_since = CASE WHEN ?5 IS NULL THEN failing_since END, \
           announce_pending = CASE WHEN ?5 IS NULL THEN announce_pending ELSE 0 END, \
           ordered = COALESCE(?6, ordered), \
           max_rate = CASE WHEN ?7 THEN ?8 ELSE max_rate END, \
           filter = CASE WHEN ?9 THEN ?10 ELSE filter END, \
           signing_key = CASE WHEN ?11 IS NULL THEN signing_key WHEN ?11 = 'hmac' THEN NULL \
             ELSE COALESCE(signing_key, ?12) END, \
           public_key = CASE WHEN ?11 IS NULL THEN public_key WHEN ?11 = 'hmac' THEN NULL \
             ELSE COALESCE(public_key, ?13) END, \
           signature_scheme = COALESCE(?11, signature_scheme), \
           version = version + 1 \
         WHERE id = ?1",
    )?
    .execute(params![
        id.0,
        change.url.as_ref().map(|u| u.as_str()),
        change.topics.as_ref().map(|t| t.joined()),
        change.extra_headers.as_ref().map(|h| h.raw()),
        change.is_active.map(i64::from),
        change.ordered.map(i64::from),
        change.max_rate.is_some(),
        change.max_rate.flatten().map(|r| r.per_second()),
        change.filter.is_some(),
        change.filter.as_ref().and_then(|f| f.as_ref().map(|f| f.as_str())),
        change.signature_scheme.map(|s| s.as_str()),
        change.key_pair.as_ref().map(|k| k.private.as_str()),
        change.key_pair.as_ref().map(|k| k.public.as_str()),
    ])?;
    if let Some(description) = &change.description {
        c.prepare_cached("UPDATE webhooks SET description = ?2 WHERE id = ?1")?
            .execute(params![id.0, description.as_str()])?;
    }
    if let Some(topics) = &change.topics {
        c.prepare_cached("DELETE FROM webhook_topics WHERE webhook_id = ?1")?
            .execute([id.0])?;
        let mut insert =
            c.prepare_cached("INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) VALUES (?1, ?2, ?3)")?;
        for pattern in topics.patterns() {
            insert.execute(params![merchant, pattern.key(), id.0])?;
        }
    }
    Ok(true)
}

/// `secret` and `key_pair.private` come in their stored form (sealed when encryption is on).
pub fn rotate_secret(
    c: &Connection,
    scope: Scope,
    id: WebhookId,
    secret: &str,
    key_pair: &KeyPair,
    now: Millis,
    previous_expires_at: Millis,
) -> StoreResult<RotateOutcome> {
    let row = c
        .prepare_cached(
            "SELECT secret_key, signing_key, signature_scheme, previous_keys FROM webhooks \
             WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)",
        )?
        .query_row(params![id.0, scope.merchant_filter()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()?;
    let Some((current, signing_key, scheme, previous)) = row else {
        return Ok(RotateOutcome::NotFound);
    };
    let replaced = PreviousKey {
        secret_key: current,
        signing_key,
        expires_at: previous_expires_at,
    };
    let previous = match previous_after_rotation(replaced, previous_from_stored(previous.as_deref()), now) {
        Ok(previous) => previous,
        Err(refused) => return Ok(RotateOutcome::Refused(refused)),
    };
    let pair = SignatureScheme::from_stored(&scheme).has_key_pair().then_some(key_pair);
    c.prepare_cached(
        "UPDATE webhooks SET secret_key = ?2, signing_key = ?3, public_key = ?4, previous_keys = ?5, \
           version = version + 1 \
         WHERE id = ?1",
    )?
    .execute(params![
        id.0,
        secret,
        pair.map(|k| k.private.as_str()),
        pair.map(|k| k.public.as_str()),
        previous_to_stored(&previous),
    ])?;
    Ok(RotateOutcome::Rotated)
}

/// Reads through the `(webhook_id, increment_id)` index.
pub fn payload_range(
    c: &Connection,
    scope: Scope,
    id: WebhookId,
    from: i64,
    to: i64,
    limit: i64,
) -> StoreResult<Vec<PayloadRecord>> {
    Ok(c.prepare_cached(
        "SELECT increment_id, id, topic, status, created_at, body FROM deliveries \
         WHERE webhook_id = ?1 AND increment_id BETWEEN ?2 AND ?3 AND (?4 IS NULL OR merchant_id = ?4) \
         ORDER BY increment_id, id LIMIT ?5",
    )?
    .query_map(params![id.0, from, to, scope.merchant_filter(), limit], |r| {
        Ok(PayloadRecord {
            increment_id: r.get(0)?,
            delivery_id: DeliveryId(r.get(1)?),
            topic: r.get(2)?,
            status: status_from(&r.get::<_, String>(3)?),
            created_at: r.get(4)?,
            body: r.get(5)?,
        })
    })?
    .collect::<Result<_, _>>()?)
}

/// At most `limit`, oldest first; None when the webhook does not exist in the scope. Reads
/// (and counts what is left) through `deliveries_failed`.
pub fn recover(
    c: &Connection,
    scope: Scope,
    id: WebhookId,
    since: Millis,
    now: Millis,
    limit: u64,
) -> StoreResult<Option<Recovered>> {
    if owner(c, scope, id)?.is_none() {
        return Ok(None);
    }
    let requeued = c
        .prepare_cached(
            "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?3, finished_at = NULL \
             WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ?1 AND status = 'failed' \
                            AND created_at >= ?2 ORDER BY created_at, id LIMIT ?4)",
        )?
        .execute(params![id.0, since, now, limit as i64])?;
    let remaining: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM deliveries WHERE webhook_id = ?1 AND status = 'failed' AND created_at >= ?2",
        )?
        .query_row(params![id.0, since], |r| r.get(0))?;
    Ok(Some(Recovered {
        requeued: requeued as u64,
        remaining: remaining as u64,
    }))
}

/// Only the filters given become conditions, so the planner sees a plain
/// `merchant_id = ? ORDER BY id DESC` and walks `deliveries_by_merchant` (or, for an admin,
/// the primary key) newest first. A merchant's time range is ordered by `(created_at, id)`
/// instead, so it is one range of `deliveries_by_merchant_time` wherever it lies in history
/// (see `DeliverySearch::by_time`).
pub fn search(c: &Connection, scope: Scope, filter: &DeliverySearch) -> StoreResult<Vec<DeliveryRecord>> {
    let (sql, values) = search_query(scope, filter);
    Ok(c.prepare_cached(&sql)?
        .query_map(params_from_iter(values), record_from_row)?
        .collect::<Result<_, _>>()?)
}

/// `search`'s statement and parameters (its plan is tested).
pub(super) fn search_query(scope: Scope, filter: &DeliverySearch) -> (String, Vec<Value>) {
    let by_time = filter.by_time(scope);
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |condition: &str, value: Value| {
        values.push(value);
        conditions.push(format!("{condition} ?{}", values.len()));
    };
    if let Some(m) = scope.merchant_filter() {
        add("merchant_id =", Value::Integer(m));
    }
    if let Some(s) = filter.status {
        add("status =", Value::Text(s.as_str().to_string()));
    }
    if let Some(t) = &filter.topic {
        add("topic =", Value::Text(t.clone()));
    }
    if let Some(e) = filter.event_id {
        add("event_id =", Value::Integer(e));
    }
    if let Some(w) = filter.webhook_id {
        add("webhook_id =", Value::Integer(w));
    }
    if let Some(t) = filter.since {
        add("created_at >=", Value::Integer(t));
    }
    if let Some(t) = filter.until {
        add("created_at <", Value::Integer(t));
    }
    if let Some(b) = filter.before {
        values.push(Value::Integer(b));
        let n = values.len();
        conditions.push(if by_time {
            format!(
                "(created_at, id) < ({}, ?{n})",
                crate::store::cursor_time(&format!("?{n}"))
            )
        } else {
            format!("id < ?{n}")
        });
    }
    values.push(Value::Integer(filter.limit));
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let order = if by_time { "created_at DESC, id DESC" } else { "id DESC" };
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?{}", values.len()));
    (sql, values)
}
