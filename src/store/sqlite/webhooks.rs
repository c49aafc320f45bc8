//! Webhooks and their subscription index in SQLite. Writes run as writer jobs, reads on a
//! reader connection. Each merchant row keeps its number of webhooks (`webhook_count`),
//! moved in the job that creates or deletes one, so the limit check is one row update.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::domain::signing_keys::previous_from_stored;
use crate::domain::{DisabledAnnouncement, MerchantId, NewWebhook, SignatureScheme, Webhook, WebhookId};
use crate::sealing::Keyring;
use crate::store::{Scope, StatusTarget, StoreResult};
use crate::time::{now_millis, Millis};

/// Read from `webhooks w JOIN merchants m` (see `FROM`).
const COLUMNS: &str = "w.id, w.merchant_id, w.increment_id, w.is_active, w.topics, w.url, w.extra_headers, \
     w.secret_key, m.code, w.version, w.previous_keys, w.signature_scheme, \
     w.disabled_reason, w.ordered, w.max_rate, w.filter, w.signing_key, w.public_key, w.description, w.failing_since";
const FROM: &str = "webhooks w JOIN merchants m ON m.id = w.merchant_id";

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: WebhookId(r.get(0)?),
        merchant_id: MerchantId(r.get(1)?),
        increment_id: r.get(2)?,
        is_active: r.get::<_, i64>(3)? != 0,
        topics: r.get(4)?,
        url: r.get(5)?,
        extra_headers: r.get(6)?,
        secret_key: r.get(7)?,
        merchant_code: r.get(8)?,
        version: r.get(9)?,
        previous_keys: previous_from_stored(r.get::<_, Option<String>>(10)?.as_deref()),
        signature_scheme: SignatureScheme::from_stored(&r.get::<_, String>(11)?),
        disabled_reason: r.get(12)?,
        ordered: r.get::<_, i64>(13)? != 0,
        max_rate: r.get(14)?,
        filter: r.get(15)?,
        signing_key: r.get(16)?,
        public_key: r.get(17)?,
        description: r.get(18)?,
        failing_since: r.get(19)?,
    })
}

/// With encryption on, the row is inserted without its secrets (the id they are bound to is
/// known only then) and they are written sealed in the same transaction.
pub fn create(
    c: &Connection,
    merchant: MerchantId,
    hook: &NewWebhook,
    limit: i64,
    keyring: &Keyring,
) -> StoreResult<Option<WebhookId>> {
    let counted = c
        .prepare_cached("UPDATE merchants SET webhook_count = webhook_count + 1 WHERE id = ?1 AND webhook_count < ?2")?
        .execute(params![merchant.0, limit])?;
    if counted == 0 {
        return Ok(None); // at the limit (or no such merchant)
    }
    c.prepare_cached(
        "INSERT INTO webhooks (merchant_id, is_active, topics, url, extra_headers, secret_key, created_at, \
           ordered, max_rate, filter, signature_scheme, signing_key, public_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        merchant.0,
        hook.is_active as i64,
        hook.topics.joined(),
        hook.url.as_str(),
        hook.extra_headers.raw(),
        if keyring.is_on() { "" } else { hook.secret_key.as_str() },
        now_millis(),
        hook.ordered as i64,
        hook.max_rate.map(|r| r.per_second()),
        hook.filter.as_ref().map(|f| f.as_str()),
        hook.signature_scheme.as_str(),
        hook.key_pair
            .as_ref()
            .filter(|_| !keyring.is_on())
            .map(|k| k.private.as_str()),
        hook.key_pair.as_ref().map(|k| k.public.as_str()),
    ])?;
    let id = c.last_insert_rowid();
    if !hook.description.as_str().is_empty() {
        c.prepare_cached("UPDATE webhooks SET description = ?2 WHERE id = ?1")?
            .execute(params![id, hook.description.as_str()])?;
    }
    if keyring.is_on() {
        c.prepare_cached("UPDATE webhooks SET secret_key = ?2, signing_key = ?3 WHERE id = ?1")?
            .execute(params![
                id,
                keyring.seal(id, hook.secret_key.as_str()),
                hook.key_pair.as_ref().map(|k| keyring.seal(id, &k.private)),
            ])?;
    }
    let mut topic =
        c.prepare_cached("INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) VALUES (?1, ?2, ?3)")?;
    for pattern in hook.topics.patterns() {
        topic.execute(params![merchant.0, pattern.key(), id])?;
    }
    Ok(Some(WebhookId(id)))
}

pub fn count(c: &Connection, merchant: MerchantId) -> StoreResult<i64> {
    Ok(c.prepare_cached("SELECT webhook_count FROM merchants WHERE id = ?1")?
        .query_row([merchant.0], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub fn list(c: &Connection, scope: Scope) -> StoreResult<Vec<Webhook>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE (?1 IS NULL OR w.merchant_id = ?1) ORDER BY w.id"
    ))?
    .query_map([scope.merchant_filter()], webhook_from_row)?
    .collect::<Result<_, _>>()?)
}

/// Only the conditions that apply are written, so the planner sees `merchant_id = ? AND
/// id > ?` and walks `webhooks_merchant (merchant_id, id)` from the page's start (for an
/// admin, the primary key): a page reads its own rows, not the merchants before it.
pub fn page(c: &Connection, scope: Scope, after: Option<WebhookId>, limit: i64) -> StoreResult<Vec<Webhook>> {
    let (sql, values) = page_query(scope, after, limit);
    Ok(c.prepare_cached(&sql)?
        .query_map(params_from_iter(values), webhook_from_row)?
        .collect::<Result<_, _>>()?)
}

/// `page`'s statement and its parameters.
pub(super) fn page_query(scope: Scope, after: Option<WebhookId>, limit: i64) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(m) = scope.merchant_filter() {
        values.push(Value::Integer(m));
        conditions.push(format!("w.merchant_id = ?{}", values.len()));
    }
    if let Some(after) = after {
        values.push(Value::Integer(after.0));
        conditions.push(format!("w.id > ?{}", values.len()));
    }
    values.push(Value::Integer(limit));
    let mut sql = format!("SELECT {COLUMNS} FROM {FROM}");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY w.id LIMIT ?{}", values.len()));
    (sql, values)
}

pub fn get(c: &Connection, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE w.id = ?1 AND (?2 IS NULL OR w.merchant_id = ?2)"
    ))?
    .query_row(params![id.0, scope.merchant_filter()], webhook_from_row)
    .optional()?)
}

pub fn set_active(c: &Connection, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
    let (matching, key) = match target {
        StatusTarget::Id(id) => ("id = ?2", Value::Integer(id.0)),
        StatusTarget::Topic(pattern) => (
            "id IN (SELECT webhook_id FROM webhook_topics WHERE pattern = ?2)",
            Value::Text(pattern.clone()),
        ),
        // ?2 is bound to NULL so every variant takes the same three parameters.
        StatusTarget::All => ("?2 IS NULL", Value::Null),
    };
    let sql = format!("UPDATE webhooks SET is_active = ?1, disabled_reason = NULL, failing_since = NULL, announce_pending = 0 WHERE {matching} AND (?3 IS NULL OR merchant_id = ?3)");
    let changed = c
        .prepare_cached(&sql)?
        .execute(params![active as i64, key, scope.merchant_filter()])?;
    Ok(changed as u64)
}

/// Turns the webhook off at `now` with its announcement pending, in one statement: a crash
/// leaves either both or neither.
pub fn disable(c: &Connection, id: WebhookId, reason: &str, now: Millis) -> StoreResult<bool> {
    let changed = c
        .prepare_cached(
            "UPDATE webhooks SET is_active = 0, disabled_reason = ?2, failing_since = NULL, \
               announce_pending = 1, disabled_at = ?3 \
             WHERE id = ?1 AND is_active = 1",
        )?
        .execute(params![id.0, reason, now])?;
    Ok(changed > 0)
}

/// Reads only pending rows (the partial index `webhooks_announce_pending`).
pub fn announcements_pending(c: &Connection, limit: i64) -> StoreResult<Vec<DisabledAnnouncement>> {
    let rows = c
        .prepare_cached(
            "SELECT w.id, m.code, w.url, COALESCE(w.disabled_reason, ''), COALESCE(w.disabled_at, 0) \
             FROM webhooks w JOIN merchants m ON m.id = w.merchant_id \
             WHERE w.announce_pending = 1 ORDER BY w.id LIMIT ?1",
        )?
        .query_map([limit], |r| {
            Ok(DisabledAnnouncement {
                webhook_id: WebhookId(r.get(0)?),
                merchant_code: r.get(1)?,
                url: r.get(2)?,
                reason: r.get(3)?,
                disabled_at: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn announcement_done(c: &Connection, id: WebhookId, disabled_at: Millis) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE webhooks SET announce_pending = 0 WHERE id = ?1 AND disabled_at = ?2 AND announce_pending = 1",
    )?
    .execute(params![id.0, disabled_at])?;
    Ok(())
}

/// Deletes the webhook and cancels its queued payloads (their leases, in memory, end as
/// their attempts' outcomes are recorded or run out).
pub fn delete(c: &Connection, scope: Scope, id: WebhookId) -> StoreResult<bool> {
    let owner: Option<i64> = c
        .prepare_cached("SELECT merchant_id FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")?
        .query_row(params![id.0, scope.merchant_filter()], |r| r.get(0))
        .optional()?;
    let Some(owner) = owner else {
        return Ok(false);
    };
    c.prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
        .execute([id.0])?;
    c.prepare_cached("UPDATE merchants SET webhook_count = webhook_count - 1 WHERE id = ?1")?
        .execute([owner])?;
    c.prepare_cached(
        "UPDATE deliveries SET status = 'canceled', finished_at = ?1 \
         WHERE webhook_id = ?2 AND status IN ('pending', 'retrying')",
    )?
    .execute(params![now_millis(), id.0])?;
    Ok(true)
}
