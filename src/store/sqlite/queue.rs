//! The work queue in SQLite: the scan for webhooks with work, the claim, and the outcomes.
//!
//! Claiming is a read: leases live in memory (see `leases`), so a claim reads due payloads
//! through the queue index on a reader connection and holds what it takes; nothing is
//! written until the outcome, which a writer job records.

use rusqlite::{params, Connection, OptionalExtension};

use super::leases::Leases;
use super::reads;
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::pace::{Bucket, Buckets};
use crate::store::{ClaimedDelivery, DeliveryUpdate, PacedClaim, Pacing, StoreResult};
use crate::time::Millis;

/// Active webhooks with payloads to send, each with its earliest due time (leases are in
/// memory: a claim skips what is held). Hops from one webhook id to the next through the
/// queue index, so the cost grows with the number of webhooks that have work, not with
/// the number of queued payloads.
pub fn queue_scan(c: &Connection) -> StoreResult<Vec<(WebhookId, Millis)>> {
    let rows = c
        .prepare_cached(
            "WITH RECURSIVE hop(w) AS ( \
               SELECT MIN(webhook_id) FROM deliveries WHERE status IN ('pending', 'retrying') \
               UNION ALL \
               SELECT (SELECT MIN(webhook_id) FROM deliveries \
                       WHERE status IN ('pending', 'retrying') AND webhook_id > hop.w) \
               FROM hop WHERE hop.w IS NOT NULL) \
             SELECT hop.w, (SELECT next_attempt_at FROM deliveries \
                            WHERE webhook_id = hop.w AND status IN ('pending', 'retrying') \
                            ORDER BY next_attempt_at LIMIT 1) \
             FROM hop JOIN webhooks w ON w.id = hop.w AND w.is_active = 1 WHERE hop.w IS NOT NULL",
        )?
        .query_map([], |r| Ok((WebhookId(r.get(0)?), r.get::<_, Option<Millis>>(1)?)))?
        .filter_map(|row| row.map(|(w, due)| due.map(|d| (w, d))).transpose())
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Of `ids`, those still queued (pending or retrying) and of an active webhook: handed
/// payloads that waited are confirmed so before they are sent (`Store::delivery_renew`).
pub fn still_queued(c: &Connection, ids: &[DeliveryId]) -> StoreResult<Vec<DeliveryId>> {
    reads::in_snapshot(c, |c| {
        let mut queued = c.prepare_cached(
            "SELECT 1 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.id = ?1 AND d.status IN ('pending', 'retrying') AND w.is_active = 1",
        )?;
        let mut kept = Vec::with_capacity(ids.len());
        for id in ids {
            if queued.exists([id.0])? {
                kept.push(*id);
            }
        }
        Ok(kept)
    })
}

/// Payloads of active webhooks due at `now`, at most `cap` counted.
pub fn due_count(c: &Connection, now: Millis, cap: i64) -> StoreResult<i64> {
    let n = c
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?1 AND w.is_active = 1 \
             LIMIT ?2)",
        )?
        .query_row(params![now, cap], |r| r.get(0))?;
    Ok(n)
}

/// Claims due payloads of an active webhook as `pacing` allows (see `store::pace`): up to
/// `limit`, oldest first, or for an ordered webhook only its head; with a `max_rate`, no
/// more than the webhook's in-memory bucket holds. Nothing is written; see `leases`.
pub fn claim(
    c: &Connection,
    leases: &Leases,
    buckets: &Buckets,
    pacing: Pacing,
    webhook: WebhookId,
    (now, until): (Millis, Millis),
    limit: usize,
) -> StoreResult<PacedClaim> {
    let limit = if pacing.ordered { limit.min(1) } else { limit };
    let bucket = pacing.max_rate.map(Bucket::for_rate);
    let tokens = bucket.map_or(limit, |b| buckets.take(webhook, b, now, limit));
    let mut paced = PacedClaim::default();
    if tokens > 0 {
        if pacing.ordered {
            (paced.claimed, paced.next_at) = claim_head(c, leases, webhook, (now, until))?;
        } else {
            paced.claimed = claim_oldest(c, leases, webhook, (now, until), tokens)?;
        }
    }
    if let Some(b) = bucket {
        let next_token = buckets.settle(webhook, b, now, tokens - paced.claimed.len());
        paced.next_at = paced.next_at.or(next_token);
    }
    Ok(paced)
}

/// Up to `limit` due payloads, oldest first: reads the due ids through the queue index alone
/// (with enough of them to skip what `leases` holds), holds what it takes until `until`,
/// then reads only the taken payloads' rows. Payloads in flight are the oldest due ones, so
/// most ids read are held: reading their bodies and traces every time would cost more than
/// the whole attempt.
fn claim_oldest(
    c: &Connection,
    leases: &Leases,
    webhook: WebhookId,
    (now, until): (Millis, Millis),
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut claimed = Vec::with_capacity(limit);
    // A read refused as stale (see `leases`) is done again, so that race never makes
    // a busy lane look empty.
    for _ in 0..3 {
        let want = limit - claimed.len();
        if want == 0 {
            break;
        }
        let seen = leases.epoch();
        // The ids and the taken rows in one read transaction: SQLite takes and drops its
        // read locks (fcntl) once per transaction, and an autocommit statement is one. A
        // round that was refused as stale reads again in a transaction of its own, so it
        // sees a newer snapshot.
        let (taken, refused_stale) = reads::in_snapshot(c, |c| {
            let candidates: Vec<DeliveryId> = c
                .prepare_cached(
                    "SELECT id FROM deliveries \
                     WHERE webhook_id = ?1 AND status IN ('pending', 'retrying') AND next_attempt_at <= ?2 \
                       AND EXISTS (SELECT 1 FROM webhooks WHERE id = ?1 AND is_active = 1) \
                     ORDER BY next_attempt_at, id LIMIT ?3",
                )?
                .query_map(params![webhook.0, now, (want + leases.held_for(webhook)) as i64], |r| {
                    Ok(DeliveryId(r.get(0)?))
                })?
                .collect::<Result<_, _>>()?;
            let (taken, refused_stale) = leases.take(webhook, seen, candidates, |id| *id, (now, until), want);
            Ok((taken_rows(c, leases, webhook, taken)?, refused_stale))
        })?;
        claimed.extend(taken);
        if !refused_stale {
            break;
        }
    }
    Ok(claimed)
}

/// The rows of payloads just taken, read in the snapshot their ids came from. One that is
/// not there (left the queue: canceled or purged) is let go all the same; on an error every
/// taken payload is let go, so none waits for its lease to run out.
fn taken_rows(
    c: &Connection,
    leases: &Leases,
    webhook: WebhookId,
    taken: Vec<DeliveryId>,
) -> StoreResult<Vec<ClaimedDelivery>> {
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let read = || -> StoreResult<(Vec<ClaimedDelivery>, Vec<DeliveryId>)> {
        let version: i64 = c
            .prepare_cached("SELECT version FROM webhooks WHERE id = ?1")?
            .query_row([webhook.0], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let mut row = c.prepare_cached(
            "SELECT increment_id, attempts, body, (SELECT traceparent FROM events WHERE id = deliveries.event_id) \
             FROM deliveries WHERE id = ?1 AND status IN ('pending', 'retrying')",
        )?;
        let (mut rows, mut gone) = (Vec::with_capacity(taken.len()), Vec::new());
        for &id in &taken {
            let found = row
                .query_row([id.0], |r| {
                    Ok(ClaimedDelivery {
                        id,
                        webhook_id: webhook,
                        increment_id: r.get(0)?,
                        attempts: r.get(1)?,
                        body: r.get(2)?,
                        webhook_version: version,
                        trace: r.get(3)?,
                    })
                })
                .optional()?;
            match found {
                Some(d) => rows.push(d),
                None => gone.push(id),
            }
        }
        Ok((rows, gone))
    };
    match read() {
        Ok((rows, gone)) => {
            if !gone.is_empty() {
                leases.release(gone);
            }
            Ok(rows)
        }
        Err(e) => {
            leases.release(taken);
            Err(e)
        }
    }
}

/// An ordered webhook's head (its queued payload with the lowest increment id, through the
/// `deliveries_head` index), if it is due and not held; else nothing, and when the head
/// waits for its retry time, that time. Never a later payload: they wait behind the head.
fn claim_head(
    c: &Connection,
    leases: &Leases,
    webhook: WebhookId,
    (now, until): (Millis, Millis),
) -> StoreResult<(Vec<ClaimedDelivery>, Option<Millis>)> {
    for _ in 0..3 {
        let seen = leases.epoch();
        let head = c
            .prepare_cached(
                "SELECT id, increment_id, attempts, body, (SELECT version FROM webhooks WHERE id = ?1), \
                   next_attempt_at, (SELECT traceparent FROM events WHERE id = deliveries.event_id) \
                 FROM deliveries \
                 WHERE webhook_id = ?1 AND status IN ('pending', 'retrying') \
                   AND EXISTS (SELECT 1 FROM webhooks WHERE id = ?1 AND is_active = 1) \
                 ORDER BY increment_id LIMIT 1",
            )?
            .query_row(params![webhook.0], |r| {
                Ok((claimed_row(webhook, r)?, r.get::<_, Millis>(5)?))
            })
            .optional()?;
        let Some((head, due)) = head else {
            return Ok((Vec::new(), None));
        };
        if due > now {
            return Ok((Vec::new(), Some(due)));
        }
        let (taken, refused_stale) = leases.take(webhook, seen, vec![head], |d| d.id, (now, until), 1);
        if !refused_stale {
            return Ok((taken, None));
        }
    }
    Ok((Vec::new(), None))
}

fn claimed_row(webhook: WebhookId, r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        id: DeliveryId(r.get(0)?),
        webhook_id: webhook,
        increment_id: r.get(1)?,
        attempts: r.get(2)?,
        body: r.get(3)?,
        webhook_version: r.get(4)?,
        trace: r.get(6)?,
    })
}

/// Outcomes of attempts. The payload's lease is in memory (see `leases`), so the update
/// only requires the payload to be still queued (a canceled one keeps its state) and to be
/// still at the attempt before this one: an attempt recorded again (its first write-back
/// committed but was not confirmed, and the recorder retried) changes nothing, and the log's
/// unique (payload, attempt number, request) key keeps its row from being added twice. A
/// second request with the same attempt number (sent once the first's lease ran out) is
/// logged too, but moves nothing.
pub fn record(c: &Connection, updates: &[DeliveryUpdate]) -> StoreResult<()> {
    let mut update = c.prepare_cached(
        "UPDATE deliveries SET status = ?1, attempts = ?7, next_attempt_at = ?2, \
           last_http_status = ?3, last_error = ?4, finished_at = ?5 \
         WHERE id = ?6 AND status IN ('pending', 'retrying') AND attempts = ?7 - 1",
    )?;
    let mut log = c.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, attempted_at, http_status, duration_ms, \
           response_prefix, error, request, webhook_id, sent_headers) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (delivery_id, attempt_no, request) DO NOTHING",
    )?;
    // A payload that was not updated may have been purged while its attempt was in flight:
    // it then gets no log row.
    let mut log_if_kept = c.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, attempted_at, http_status, duration_ms, \
           response_prefix, error, request, webhook_id, sent_headers) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?1) \
         ON CONFLICT (delivery_id, attempt_no, request) DO NOTHING",
    )?;
    for u in updates {
        let a = &u.attempt;
        let finished = matches!(u.status, DeliveryStatus::Success | DeliveryStatus::Failed).then_some(a.attempted_at);
        let updated = update.execute(params![
            u.status.as_str(),
            u.next_attempt_at,
            a.http_status,
            a.error,
            finished,
            u.delivery_id.0,
            u.attempt_no
        ])?;
        let log = if updated == 1 { &mut log } else { &mut log_if_kept };
        log.execute(params![
            u.delivery_id.0,
            u.attempt_no,
            a.attempted_at,
            a.http_status,
            a.duration_ms,
            a.response_prefix,
            a.error,
            u.request,
            u.webhook_id.0,
            a.sent_headers
        ])?;
    }
    Ok(())
}
