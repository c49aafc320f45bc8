//! The leased work queue in PostgreSQL: the scan for webhooks with work, claims (leases
//! written onto the rows, so several nodes can share the queue) and recording outcomes.
//! Every time here is judged by the database's clock (see `clock`).

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::clock::{self, db_offset, on_db_clock};
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::pace::Bucket;
use crate::store::{ClaimedDelivery, DeliveryUpdate, PacedClaim, Pacing, StoreResult};
use crate::time::Millis;

/// Each webhook with work and when its earliest unleased payload is due, on the node's clock.
pub async fn queue_scan(pool: &PgPool, now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
    let (mut conn, clock) = clock::clocked(pool).await?;
    // Hops from one webhook id to the next through the queue index (a "loose index scan"),
    // so the cost grows with the number of webhooks that have work, not with the number of
    // queued payloads; then one index probe per such webhook for its earliest unleased payload.
    let rows: Vec<(i64, Millis)> = sqlx::query_as(concat!(
        "WITH RECURSIVE hop(w) AS ( \
           (SELECT webhook_id FROM deliveries WHERE status IN ('pending', 'retrying') \
            ORDER BY webhook_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT webhook_id FROM deliveries \
                   WHERE status IN ('pending', 'retrying') AND webhook_id > hop.w \
                   ORDER BY webhook_id LIMIT 1) \
           FROM hop WHERE hop.w IS NOT NULL) \
         SELECT hop.w, due.next_attempt_at - ",
        db_offset!("$2"),
        " \
         FROM hop JOIN webhooks wh ON wh.id = hop.w AND wh.is_active \
         CROSS JOIN LATERAL ( \
           SELECT next_attempt_at FROM deliveries \
           WHERE webhook_id = hop.w AND status IN ('pending', 'retrying') \
             AND (lease_until IS NULL OR lease_until <= ",
        on_db_clock!("$1", "$2"),
        ") \
           ORDER BY next_attempt_at LIMIT 1) due \
         ORDER BY hop.w",
    ))
    .bind(now)
    .bind(clock)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(w, due)| (WebhookId(w), due)).collect())
}

/// Where this node's next claim of each webhook starts reading the queue index.
///
/// A claim reads a webhook's due payloads oldest first. Every payload finished since the
/// last VACUUM leaves a dead entry at the front of that range, and each claim walked all of
/// them again: at 5,000 deliveries/s, ~300,000 dead entries before autovacuum came by,
/// 0.86 ms per claim on average, half of PostgreSQL's CPU per delivery. A claim takes a
/// prefix of what is free in that order, so nothing free and unlocked is left below the
/// latest `next_attempt_at` it took, save what commits later with an earlier time: a
/// publish takes its time before its batch commits, and batches (of this node's two
/// publish runners, or of other nodes) commit out of order. (Every node's payloads are due
/// by the database's clock, see `clock`, so no node's clock running behind adds to that.)
/// So the next claim starts `FLOOR_SLACK` before that time, which covers a publish's commit
/// many times over and leaves only that much of the dead front to walk. What can still turn
/// up below (a publish that took longer, another node's expired lease or a row another
/// claim had locked) is found when the queue scan, every poll interval, forgets the floors.
#[derive(Default)]
pub struct ClaimFloors(std::sync::Mutex<HashMap<WebhookId, Millis>>);

/// How far below the latest payload time it took a claim's floor is set (see `ClaimFloors`).
const FLOOR_SLACK: Millis = 1_000;

impl ClaimFloors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Millis>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, webhook: WebhookId) -> Millis {
        self.lock().get(&webhook).copied().unwrap_or(Millis::MIN)
    }

    fn raise(&self, webhook: WebhookId, to: Millis) {
        let mut floors = self.lock();
        let floor = floors.entry(webhook).or_insert(to);
        *floor = (*floor).max(to);
    }

    pub fn forget(&self) {
        self.lock().clear();
    }
}

/// How a claim commits, as a column of its statement over its `claimed` rows: without
/// waiting for its WAL flush (`synchronous_commit` off for the statement's transaction only)
/// unless it claimed a payload never attempted.
///
/// A claim lost in a PostgreSQL crash only leaves its payloads claimable again, so they are
/// sent again (at-least-once); and since WAL is flushed in order, the durable outcome write
/// that ends an attempt flushes its claim with it. That saves an fsync per claim of retries.
///
/// A payload never attempted may have been published by a statement that committed without
/// waiting for its flush (`batch::Commit::AloneUnflushed`: its publisher waits for the flush
/// before answering, after the webhooks' locks are let go). Visible is not yet durable then,
/// so a claim that takes one waits for its own flush, which covers that publish's commit
/// record (written before the payload became visible): no payload is sent before it is on
/// disk. The subquery reads `claimed` once, whatever the order the rows come in.
macro_rules! sync_if_fresh {
    () => {
        "set_config('synchronous_commit', \
           (SELECT CASE WHEN bool_or(attempts = 0) THEN 'on' ELSE 'off' END FROM claimed), true)"
    };
}

#[allow(clippy::too_many_arguments)]
pub async fn claim(
    pool: &PgPool,
    floors: &ClaimFloors,
    webhook: WebhookId,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    // SKIP LOCKED: rows another node is claiming right now are passed over, never waited
    // for, and never handed out twice (a row updated meanwhile is re-checked once locked).
    //
    // How the claim commits: see `sync_if_fresh`.
    let (mut conn, clock) = clock::clocked(pool).await?;
    let rows = sqlx::query(concat!(
        "WITH claimed AS (UPDATE deliveries SET lease_owner = $1, lease_until = ",
        on_db_clock!("$2", "$7"),
        " WHERE id IN ( \
           SELECT id FROM deliveries WHERE webhook_id = $3 AND status IN ('pending', 'retrying') \
             AND next_attempt_at >= $6 AND next_attempt_at <= ",
        on_db_clock!("$4", "$7"),
        " AND (lease_until IS NULL OR lease_until <= ",
        on_db_clock!("$4", "$7"),
        ") AND EXISTS (SELECT 1 FROM webhooks WHERE id = $3 AND is_active) \
           ORDER BY next_attempt_at, id LIMIT $5 \
           FOR UPDATE SKIP LOCKED) \
         RETURNING id, increment_id, attempts, body, next_attempt_at, event_id) \
         SELECT c.id, c.increment_id, c.attempts, c.body, \
           (SELECT version FROM webhooks WHERE id = $3), ",
        sync_if_fresh!(),
        ", c.next_attempt_at, \
           (SELECT traceparent FROM events WHERE id = c.event_id) AS trace \
         FROM claimed c",
    ))
    .bind(owner)
    .bind(lease_until)
    .bind(webhook.0)
    .bind(now)
    .bind(limit)
    .bind(floors.get(webhook))
    .bind(clock)
    .fetch_all(&mut *conn)
    .await?;
    if let Some(latest) = rows.iter().map(|r| r.get::<Millis, _>(6)).max() {
        floors.raise(webhook, latest - FLOOR_SLACK);
    }
    let mut claimed: Vec<ClaimedDelivery> = rows.iter().map(|r| claimed_row(webhook, r)).collect();
    claimed.sort_by_key(|c| c.increment_id);
    Ok(claimed)
}

/// Ends `owner`'s leases of these payloads (still queued), unsent.
pub async fn release(pool: &PgPool, ids: &[DeliveryId], owner: &str) -> StoreResult<()> {
    let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
    sqlx::query(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE id = ANY($1::BIGINT[]) AND lease_owner = $2 AND status IN ('pending', 'retrying')",
    )
    .bind(&ids)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Of these payloads, those still queued, of an active webhook and leased to `owner` (a
/// lease not yet run out) are leased until `lease_until`; their ids.
pub async fn renew(
    pool: &PgPool,
    ids: &[DeliveryId],
    owner: &str,
    now: Millis,
    lease_until: Millis,
) -> StoreResult<Vec<DeliveryId>> {
    let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
    let (mut conn, clock) = clock::clocked(pool).await?;
    let renewed: Vec<i64> = sqlx::query_scalar(concat!(
        "UPDATE deliveries d SET lease_until = ",
        on_db_clock!("$3", "$5"),
        " WHERE d.id = ANY($1::BIGINT[]) AND d.lease_owner = $2 AND d.lease_until > ",
        on_db_clock!("$4", "$5"),
        " AND d.status IN ('pending', 'retrying') \
           AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.is_active) \
         RETURNING d.id",
    ))
    .bind(&ids)
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(clock)
    .fetch_all(&mut *conn)
    .await?;
    Ok(renewed.into_iter().map(DeliveryId).collect())
}

fn claimed_row(webhook: WebhookId, r: &PgRow) -> ClaimedDelivery {
    ClaimedDelivery {
        id: DeliveryId(r.get(0)),
        webhook_id: webhook,
        increment_id: r.get(1),
        attempts: r.get(2),
        body: r.get(3),
        webhook_version: r.get(4),
        trace: r.get("trace"),
    }
}

/// A claim paced by the webhook's settings (see `store::pace`), in one statement like the
/// plain claim (and committed the same way, without waiting for its WAL flush).
///
/// Ordered: the head, the webhook's queued payload with the lowest increment id, is locked
/// `FOR UPDATE` and taken only if due and unleased. No SKIP LOCKED here, on purpose: a node
/// that skipped a head another node is locking would take the payload after it, out of
/// order. Waiting instead (a claim holds the lock for microseconds) and then re-reading the
/// head's lease as committed means two nodes can never both claim it.
///
/// `max_rate`: the webhook's `webhook_pace` row is locked first, so nodes take tokens one
/// after the other; the claim takes at most the tokens held, and the bucket is charged only
/// for what was claimed. A webhook's first paced claim makes its row.
pub async fn claim_paced(
    pool: &PgPool,
    floors: &ClaimFloors,
    webhook: WebhookId,
    owner: &str,
    (now, lease_until): (Millis, Millis),
    limit: i64,
    pacing: Pacing,
) -> StoreResult<PacedClaim> {
    if pacing == Pacing::default() {
        let claimed = claim(pool, floors, webhook, owner, now, lease_until, limit).await?;
        return Ok(PacedClaim { claimed, next_at: None });
    }
    let bucket = pacing.max_rate.map(Bucket::for_rate);
    let sql = paced_sql(pacing.ordered, bucket.is_some());
    for _ in 0..2 {
        let (mut conn, clock) = clock::clocked(pool).await?;
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(webhook.0)
            .bind(now)
            .bind(if pacing.ordered { limit.min(1) } else { limit })
            .bind(bucket.map_or(1.0, |b| b.interval))
            .bind(bucket.map_or(1.0, |b| b.burst))
            .bind(clock)
            .fetch_all(&mut *conn)
            .await?;
        // Every variant answers at least one row (claimed or not), except a rated claim
        // whose webhook has no bucket yet.
        let Some(first) = rows.first() else {
            sqlx::query(
                "INSERT INTO webhook_pace (webhook_id, pace_at) \
                 SELECT id, '-Infinity' FROM webhooks WHERE id = $1 ON CONFLICT DO NOTHING",
            )
            .bind(webhook.0)
            .execute(&mut *conn)
            .await?;
            continue;
        };
        let head_due: Option<Millis> = first.get(5);
        let pace_at: Option<f64> = first.get(6);
        // The claim's `now` on the database's clock, which the head's due time and the
        // bucket are on; what the node is told is moved back onto its clock.
        let now_on_db: Millis = first.get(8);
        // A webhook turned off or deleted has nothing held back, whatever its bucket says:
        // no time to come back at (its lane then goes, rather than waiting for a token).
        if !first.get::<bool, _>(9) {
            return Ok(PacedClaim::default());
        }
        let on_node_clock = |t: Millis| t - now_on_db + now;
        let mut claimed: Vec<ClaimedDelivery> = rows
            .iter()
            .filter(|r| r.get::<Option<i64>, _>(0).is_some())
            .map(|r| claimed_row(webhook, r))
            .collect();
        claimed.sort_by_key(|c| c.increment_id);
        let waiting_head = head_due.filter(|&due| due > now_on_db).map(on_node_clock);
        let next_token = bucket.zip(pace_at).and_then(|(b, pace_at)| {
            let base = b.base(pace_at, now_on_db);
            (b.tokens(base, now_on_db) == 0).then(|| on_node_clock(b.next_token(base)))
        });
        return Ok(PacedClaim {
            claimed,
            next_at: waiting_head.or(next_token),
        });
    }
    Ok(PacedClaim::default())
}

/// The paced claim statement. Binds: $1 owner, $2 lease until, $3 webhook, $4 now, $5 limit,
/// $6 milliseconds per token, $7 burst (the last two unused without a rate), $8 the node's
/// clock (see `clock`: `now` and the lease's end are placed on the database's clock, as
/// the bucket's `pace_at` is).
fn paced_sql(ordered: bool, rated: bool) -> String {
    const NOW: &str = on_db_clock!("$4", "$8");
    const LEASE_UNTIL: &str = on_db_clock!("$2", "$8");
    const QUEUED: &str = "webhook_id = $3 AND status IN ('pending', 'retrying')";
    let free = format!(
        "next_attempt_at <= {NOW} AND (lease_until IS NULL OR lease_until <= {NOW}) \
         AND EXISTS (SELECT 1 FROM webhooks WHERE id = $3 AND is_active)"
    );
    let mut sql = String::from("WITH ");
    let limit = if rated {
        sql.push_str(&format!(
            "bucket AS (SELECT greatest(pace_at, {NOW} - $7 * $6) AS base FROM webhook_pace \
               WHERE webhook_id = $3 FOR UPDATE), "
        ));
        format!("coalesce((SELECT greatest(0, least($5, floor(({NOW} - base) / $6)::bigint)) FROM bucket), 0)")
    } else {
        "$5".to_string()
    };
    if ordered {
        sql.push_str(&format!(
            "head AS (SELECT id, next_attempt_at, lease_until FROM deliveries WHERE {QUEUED} \
               ORDER BY increment_id LIMIT 1 FOR UPDATE), \
             picked AS (SELECT id FROM head WHERE {free} LIMIT {limit}), "
        ));
    } else {
        sql.push_str(&format!(
            "picked AS (SELECT id FROM deliveries WHERE {QUEUED} AND {free} \
               ORDER BY next_attempt_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED), "
        ));
    }
    sql.push_str(&format!(
        "claimed AS (UPDATE deliveries SET lease_owner = $1, lease_until = {LEASE_UNTIL} \
           WHERE id IN (SELECT id FROM picked) RETURNING id, increment_id, attempts, body, \
           (SELECT traceparent FROM events WHERE id = deliveries.event_id) AS trace)"
    ));
    let from = if rated {
        sql.push_str(
            ", moved AS (UPDATE webhook_pace \
               SET pace_at = (SELECT base FROM bucket) + (SELECT count(*) FROM claimed) * $6 \
               WHERE webhook_id = $3 RETURNING pace_at) ",
        );
        "moved m LEFT JOIN claimed c ON true"
    } else {
        "(SELECT NULL::float8 AS pace_at) m LEFT JOIN claimed c ON true"
    };
    let head_due = if ordered {
        "(SELECT next_attempt_at FROM head)"
    } else {
        "NULL::bigint"
    };
    sql.push_str(&format!(
        " SELECT c.id, c.increment_id, c.attempts, c.body, (SELECT version FROM webhooks WHERE id = $3), \
           {head_due}, m.pace_at, {sync}, {NOW}, \
           coalesce((SELECT is_active FROM webhooks WHERE id = $3), false), c.trace FROM {from}",
        sync = sync_if_fresh!(),
    ));
    sql
}

/// The whole batch in one statement (so one transaction and one round trip): the outcomes
/// travel as parallel arrays, a CTE logs every attempt, and the UPDATE moves each payload
/// whose lease is still held by the attempt's owner and that is still at the attempt before
/// this one. An attempt whose lease was lost is logged all the same (its request was sent)
/// but moves nothing. An attempt recorded again (its first write-back committed but was not
/// confirmed, and the recorder retried) changes nothing: the payload has moved on, and the
/// log's unique (payload, attempt number, request) key turns the second log row away. The
/// next attempt's due time is placed on the database's clock (see `clock`).
///
/// `clear`: webhooks whose `failing_since` the batch ends (`store::failing`), cleared by
/// the same statement when the batch has nothing else to move there (see
/// `PostgresStore::delivery_record`). Only a webhook that is failing is written and locked,
/// so a batch of successes for healthy webhooks takes no webhook row lock.
pub async fn record(pool: &PgPool, updates: &[DeliveryUpdate], clear: &[i64]) -> StoreResult<()> {
    if updates.is_empty() {
        return Ok(());
    }
    // Ascending ids, so batches lock rows in the order webhook deletion does. (A deadlock
    // would still only abort one side; the recorder retries.)
    let mut sorted: Vec<&DeliveryUpdate> = updates.iter().collect();
    sorted.sort_by_key(|u| u.delivery_id.0);
    let (mut conn, clock) = clock::clocked(pool).await?;
    let mut a = Arrays::default();
    for u in sorted {
        let finished =
            matches!(u.status, DeliveryStatus::Success | DeliveryStatus::Failed).then_some(u.attempt.attempted_at);
        a.id.push(u.delivery_id.0);
        a.attempt_no.push(u.attempt_no);
        a.request.push(u.request);
        a.owner.push(u.lease_owner.as_str());
        a.status.push(u.status.as_str());
        a.next_attempt_at.push(u.next_attempt_at);
        a.finished_at.push(finished);
        a.attempted_at.push(u.attempt.attempted_at);
        a.http_status.push(u.attempt.http_status);
        a.duration_ms.push(u.attempt.duration_ms);
        a.response_prefix.push(u.attempt.response_prefix.as_str());
        a.error.push(u.attempt.error.as_deref());
        a.sent_headers.push(u.attempt.sent_headers.as_deref());
    }
    sqlx::query(RECORD_SQL)
        .bind(&a.id)
        .bind(&a.owner)
        .bind(&a.status)
        .bind(&a.next_attempt_at)
        .bind(&a.finished_at)
        .bind(&a.attempted_at)
        .bind(&a.http_status)
        .bind(&a.duration_ms)
        .bind(&a.response_prefix)
        .bind(&a.error)
        .bind(&a.attempt_no)
        .bind(&a.request)
        .bind(clock)
        .bind(&a.sent_headers)
        .bind(clear)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `record`'s statement: each attempt logged, and its payload's outcome written.
/// Attempts of payloads purged meanwhile are dropped rather than failing the batch.
/// The plan must look the batch's few payloads up by primary key. With the join alone, on a
/// table as small as a new database's, PostgreSQL read the whole queue (`deliveries_queue`
/// or `deliveries_head`, whose predicate the status condition matches) and hash-joined it,
/// on every call: 1,194 buffers a call on two nodes under load. So the status is compared as
/// an expression (`|| ''`) that no partial index's predicate matches, and the attempt log's
/// join also says `d.id = ANY($1)`. The outcome's UPDATE does not: it runs on the
/// dispatcher's connections (`pools::hot_path`: one plan for every call, no sequential
/// scans), where each outcome then finds its payload by primary key. With `d.id = ANY($1)`
/// there too, that plan, which guesses ten rows a side, read the payloads first and compared
/// each with every outcome: 69,000 comparisons and 46 ms for a batch of 263 (issue 28).
/// `tests/plans.rs` checks both ways of planning.
pub(super) const RECORD_SQL: &str = concat!(
    "WITH u AS ( \
       SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], \
         $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[], \
         $12::BIGINT[], $14::TEXT[]) \
         WITH ORDINALITY AS t(id, owner, status, next_attempt_at, finished_at, attempted_at, \
              http_status, duration_ms, response_prefix, error, attempt_no, request, sent_headers, n)), \
     logged AS ( \
       INSERT INTO delivery_attempts (delivery_id, attempt_no, request, attempted_at, http_status, \
         duration_ms, response_prefix, error, webhook_id, sent_headers) \
       SELECT u.id, u.attempt_no, u.request, u.attempted_at, u.http_status, u.duration_ms, \
         u.response_prefix, u.error, d.webhook_id, u.sent_headers \
       FROM u JOIN deliveries d ON d.id = u.id WHERE d.id = ANY($1::BIGINT[]) ORDER BY u.n \
       ON CONFLICT (delivery_id, attempt_no, request) DO NOTHING), \
     cleared AS (UPDATE webhooks SET failing_since = NULL \
       WHERE id = ANY($15::BIGINT[]) AND failing_since IS NOT NULL) \
     UPDATE deliveries d SET status = u.status, attempts = u.attempt_no, \
       next_attempt_at = ",
    on_db_clock!("u.next_attempt_at", "$13"),
    ", lease_owner = NULL, lease_until = NULL, \
       last_http_status = u.http_status, last_error = u.error, finished_at = u.finished_at \
     FROM u WHERE d.id = u.id AND d.lease_owner = u.owner \
       AND (d.status || '') IN ('pending', 'retrying') AND d.attempts = u.attempt_no - 1",
);

/// `record`'s batch as one array per column.
#[derive(Default)]
struct Arrays<'a> {
    id: Vec<i64>,
    attempt_no: Vec<i64>,
    request: Vec<i64>,
    owner: Vec<&'a str>,
    status: Vec<&'static str>,
    next_attempt_at: Vec<Millis>,
    finished_at: Vec<Option<Millis>>,
    attempted_at: Vec<Millis>,
    http_status: Vec<Option<i64>>,
    duration_ms: Vec<i64>,
    response_prefix: Vec<&'a str>,
    error: Vec<Option<&'a str>>,
    sent_headers: Vec<Option<&'a str>>,
}

/// Payloads of active webhooks due at `now`, at most `cap` counted.
pub async fn due_count(pool: &PgPool, now: Millis, cap: i64) -> StoreResult<i64> {
    let (mut conn, clock) = clock::clocked(pool).await?;
    let n: i64 = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM (SELECT 1 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ",
        on_db_clock!("$1", "$3"),
        " AND w.is_active LIMIT $2) due",
    ))
    .bind(now)
    .bind(cap)
    .bind(clock)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}
