//! Payloads and attempts in SQLite, the parts off the hot path: the delivery log (reads),
//! manual retry and retention (writer jobs), and each webhook's `failing_since` after an
//! outcome batch. Publish is in `publish`, the queue (and the outcome write) in `queue`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::failing::{changes, Change};
use crate::store::{AttemptLog, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliveryUpdate, Failing};
use crate::store::{Requeue, Scope, StoreResult};
use crate::time::Millis;

pub(super) const RECORD_COLUMNS: &str =
    "id, webhook_id, event_id, increment_id, topic, status, attempts, next_attempt_at, \
     last_http_status, last_error, created_at";

pub(super) fn record_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: DeliveryId(r.get(0)?),
        webhook_id: WebhookId(r.get(1)?),
        event_id: r.get(2)?,
        increment_id: r.get(3)?,
        topic: r.get(4)?,
        status: status_from(&r.get::<_, String>(5)?),
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_http_status: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
    })
}

pub(super) fn status_from(s: &str) -> DeliveryStatus {
    DeliveryStatus::parse(s).unwrap_or(DeliveryStatus::Pending)
}

pub fn list(
    c: &Connection,
    scope: Scope,
    webhook: WebhookId,
    filter: &DeliveryFilter,
) -> StoreResult<Vec<DeliveryRecord>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries WHERE webhook_id = ?1 AND (?2 IS NULL OR merchant_id = ?2) \
             AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5"
    ))?
    .query_map(
        params![
            webhook.0,
            scope.merchant_filter(),
            filter.status.map(|s| s.as_str()),
            filter.before,
            filter.limit
        ],
        record_from_row,
    )?
    .collect::<Result<_, _>>()?)
}

/// The newest payload of each webhook in `ids` (see `Store::delivery_latest`). The ids go
/// in as one JSON array, so the statement is the same (and cached) whatever their number;
/// for each, the inner SELECT is a backwards step into `deliveries_by_webhook (webhook_id,
/// id)` that stops at the first row. The scope is checked on the row found, not in that
/// step: a webhook of another merchant would otherwise walk its whole history to find none.
pub fn latest(c: &Connection, scope: Scope, ids: &[i64]) -> StoreResult<Vec<DeliveryRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(ids).expect("integers serialise");
    Ok(c.prepare_cached(&latest_sql())?
        .query_map(params![ids, scope.merchant_filter()], record_from_row)?
        .collect::<Result<_, _>>()?)
}

/// `latest`'s statement: ?1 the ids as a JSON array, ?2 the merchant filter.
pub(super) fn latest_sql() -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries WHERE id IN ( \
           SELECT (SELECT d.id FROM deliveries d WHERE d.webhook_id = j.value ORDER BY d.id DESC LIMIT 1) \
           FROM json_each(?1) j) \
         AND (?2 IS NULL OR merchant_id = ?2) ORDER BY webhook_id"
    )
}

/// Reads the payload and its attempts in one read transaction (one snapshot), so they agree
/// while outcomes are being recorded.
pub fn get(c: &Connection, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
    super::reads::in_snapshot(c, |c| get_in_snapshot(c, scope, id))
}

fn get_in_snapshot(c: &Connection, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
    let found = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS}, body FROM deliveries WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)"
        ))?
        .query_row(params![id.0, scope.merchant_filter()], |r| {
            Ok((record_from_row(r)?, r.get(11)?))
        })
        .optional()?;
    let Some((record, body)) = found else {
        return Ok(None);
    };
    let attempts = c
        .prepare_cached(
            "SELECT attempted_at, http_status, duration_ms, response_prefix, error, sent_headers FROM delivery_attempts \
             WHERE delivery_id = ?1 ORDER BY attempt_no, id",
        )?
        .query_map([id.0], |r| {
            Ok(AttemptLog {
                attempted_at: r.get(0)?,
                http_status: r.get(1)?,
                duration_ms: r.get(2)?,
                response_prefix: r.get(3)?,
                error: r.get(4)?,
                sent_headers: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(DeliveryDetail { record, body, attempts }))
}

pub fn requeue(c: &Connection, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
    let found: Option<(i64, String)> = c
        .prepare_cached("SELECT webhook_id, status FROM deliveries WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)")?
        .query_row(params![id.0, scope.merchant_filter()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((webhook, status)) = found else {
        return Ok(Requeue::NotFound);
    };
    let requeued = c
        .prepare_cached(
            "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?1, finished_at = NULL \
             WHERE id = ?2 AND status IN ('failed', 'success')",
        )?
        .execute(params![now, id.0])?;
    if requeued == 0 {
        return Ok(Requeue::NotFailed(status_from(&status)));
    }
    Ok(Requeue::Requeued(WebhookId(webhook)))
}

pub fn purge(c: &Connection, before: Millis) -> StoreResult<u64> {
    let purged = c
        .prepare_cached(
            "DELETE FROM deliveries WHERE finished_at IS NOT NULL AND finished_at < ?1 \
             AND status IN ('success', 'failed', 'canceled')",
        )?
        .execute([before])?;
    c.prepare_cached("DELETE FROM events WHERE created_at < ?1")?
        .execute([before])?;
    Ok(purged as u64)
}

/// Moves `failing_since` after an outcome batch (in the batch's writer job, so in its
/// transaction; see `store::failing`) and returns the webhooks still failing. At most one
/// UPDATE per webhook, and only when it changes the row; one point read per failing webhook.
pub fn track_failing(c: &Connection, updates: &[DeliveryUpdate]) -> StoreResult<Vec<Failing>> {
    let mut clear =
        c.prepare_cached("UPDATE webhooks SET failing_since = NULL WHERE id = ?1 AND failing_since IS NOT NULL")?;
    let mut restart =
        c.prepare_cached("UPDATE webhooks SET failing_since = ?2 WHERE id = ?1 AND failing_since IS NOT ?2")?;
    let mut start =
        c.prepare_cached("UPDATE webhooks SET failing_since = ?2 WHERE id = ?1 AND failing_since IS NULL")?;
    let mut since = c.prepare_cached("SELECT failing_since FROM webhooks WHERE id = ?1")?;
    let mut failing = Vec::new();
    for (webhook, change) in changes(updates) {
        match change {
            Change::Clear => {
                clear.execute([webhook.0])?;
                continue;
            }
            Change::Restart(at) => restart.execute([webhook.0, at])?,
            Change::Fail(at) => start.execute([webhook.0, at])?,
        };
        let found: Option<Option<i64>> = since.query_row([webhook.0], |r| r.get(0)).optional()?;
        if let Some(Some(since)) = found {
            failing.push(Failing { webhook, since });
        }
    }
    Ok(failing)
}
