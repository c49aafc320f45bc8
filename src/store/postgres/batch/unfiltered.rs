//! The common case of a group commit in one statement: when no webhook the batch's events
//! match has a filter, one statement checks the jobs (catalog versions, remembered keys),
//! locks the matched webhooks, draws their increment ids, bumps them, inserts the events and
//! their payloads, and queues the wake-up. The payload bodies are rendered there too, from
//! each event's bytes before and after its increment id (`BodyTemplate::around_increment`).
//!
//! So a batch holds its webhooks' row locks only for this statement and its COMMIT, with no
//! round trip and no work in the node between the lock and the insert; two nodes publishing
//! to one webhook wait that much less for each other (issue 28).
//!
//! Otherwise nothing is written and `batch` goes the long way (`lock_webhooks`, `insert`):
//! when a matched webhook has a filter (the jobs' verdicts decide in the node), and when a job
//! is refused (its catalog version moved, its remembered key changed: the batch runs again
//! without it). The lock order is `batch`'s: the unfiltered webhooks in ascending id. A
//! matched webhook that changed while its lock waited (turned off, deleted, or given a filter)
//! comes back from the lock without its row; the statement has then written, so it aborts
//! itself (`hookd_publish_raced()`, migration 0019) and the batch runs again
//! (`BatchError::Raced`): its next snapshot sees the change.
//!
//! Since the statement is all-or-nothing by itself, it needs no transaction around it:
//! `publisher` runs it alone, so it commits as it ends, and a batch is one round trip
//! (see `publisher::alone`).

use sqlx::PgConnection;

use super::{BatchError, Job};
use crate::domain::{EventId, WebhookId};
use crate::store::postgres::clock::on_db_clock;
use crate::store::postgres::wakeups;
use crate::store::Published;

/// The SQLSTATE of `hookd_publish_raced()`.
const RACED: &str = "HK001";

/// Stores the jobs (all new events), one `Published` per job in order; `None` when a matched
/// webhook has a filter (nothing was written). In a transaction or alone (then committed).
pub(in crate::store::postgres) async fn store(
    conn: &mut PgConnection,
    jobs: &[&Job],
) -> Result<Option<Vec<Published>>, BatchError> {
    let merchants: Vec<i64> = jobs.iter().map(|j| j.merchant).collect();
    let topics: Vec<&str> = jobs.iter().map(|j| j.topic.as_str()).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.key.as_deref()).collect();
    let nows: Vec<i64> = jobs.iter().map(|j| j.now).collect();
    let traces: Vec<Option<&str>> = jobs.iter().map(|j| j.trace.as_deref()).collect();
    let (confirm, versions) = super::schema_checks(jobs);
    let (callers, hashes) = super::key_checks(jobs);
    let [k0, k1, k2] = super::match_keys(jobs);
    let around: Vec<(Vec<u8>, &[u8])> = jobs.iter().map(|j| j.body.around_increment()).collect();
    let befores: Vec<&[u8]> = around.iter().map(|(b, _)| b.as_slice()).collect();
    let afters: Vec<&[u8]> = around.iter().map(|(_, a)| *a).collect();
    let clock = crate::time::now_millis();
    type Row = (
        bool,
        Vec<i64>,
        Option<Vec<i64>>,
        Option<Vec<i64>>,
        Option<Vec<i64>>,
        Option<Vec<i64>>,
        Option<i64>,
        Option<bool>,
    );
    let (ok, ids, stale, revoked, payload_jobs, payload_hooks, _raced, _woke): Row = sqlx::query_as(STATEMENT)
        .bind(&merchants)
        .bind(&topics)
        .bind(&keys)
        .bind(&nows)
        .bind(&confirm)
        .bind(&versions)
        .bind(&traces)
        .bind(&callers)
        .bind(&hashes)
        .bind(&k0)
        .bind(&k1)
        .bind(&k2)
        .bind(&befores)
        .bind(&afters)
        .bind(clock)
        .bind(wakeups::CHANNEL)
        .bind(wakeups::MAX_PAYLOAD as i32)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(RACED) => BatchError::Raced,
            e => BatchError::Sql(e),
        })?;
    let ordinals = |ns: Vec<i64>| ns.into_iter().map(|n| (n - 1) as usize).collect();
    if let Some(revoked) = revoked {
        return Err(BatchError::Revoked(ordinals(revoked)));
    }
    if let Some(stale) = stale {
        return Err(BatchError::Stale(ordinals(stale)));
    }
    if !ok {
        return Ok(None);
    }
    let mut published: Vec<Published> = (ids.into_iter())
        .map(|id| Published {
            event_id: EventId(id),
            payloads: 0,
            webhooks: vec![],
            replayed: false,
        })
        .collect();
    let pairs = payload_jobs.unwrap_or_default().into_iter();
    for (n, hook) in pairs.zip(payload_hooks.unwrap_or_default()) {
        let p = &mut published[(n - 1) as usize];
        p.webhooks.push(WebhookId(hook));
        p.payloads += 1;
    }
    Ok(Some(published))
}

/// The statement. Binds, one element per job: $1 merchant, $2 topic, $3 idempotency key,
/// $4 published at (node clock), $5 whether to confirm $6 its catalog version, $7 trace
/// context, $8 remembered caller and $9 its key hash, $10–$12 the topic's match keys, $13 the
/// body before and $14 after the increment id; then $15 the node's clock, $16 the wake-up
/// channel and $17 the longest wake-up payload.
///
/// `go` says whether to write at all: no job refused, no matched webhook filtered. `l` locks
/// the matched webhooks (ascending id), re-checked on their current row; `p` numbers each
/// webhook's payloads after its last increment id, in job order. The event ids are drawn
/// first (`j`, evaluated once). Returns: whether it wrote, the event ids, the refused jobs
/// (catalog, key) and each payload's job and webhook (by job, then webhook); or, when a
/// webhook changed while its lock waited, the error `RACED`.
const STATEMENT: &str = concat!(
    "WITH j AS ( \
       SELECT t.*, nextval(pg_get_serial_sequence('events', 'id')) AS id \
       FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOL[], $6::BIGINT[], \
         $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], \
         $13::BYTEA[], $14::BYTEA[]) WITH ORDINALITY \
         AS t(m, topic, key, at, confirm, version, trace, caller, key_hash, k0, k1, k2, \
              before, after, n)), \
     stale AS (SELECT array_agg(j.n ORDER BY j.n) AS ns FROM j \
       LEFT JOIN topic_catalog c ON c.topic = j.topic \
       WHERE j.confirm AND c.version IS DISTINCT FROM j.version), \
     revoked AS (SELECT array_agg(j.n ORDER BY j.n) AS ns FROM j LEFT JOIN users u ON u.id = j.caller \
       WHERE j.caller IS NOT NULL AND u.key_hash IS DISTINCT FROM j.key_hash), \
     matched AS (SELECT DISTINCT wt.webhook_id AS w, j.n FROM j \
       JOIN webhook_topics wt ON wt.merchant_id = j.m AND wt.pattern IN (j.k0, j.k1, j.k2)), \
     hooks AS (SELECT wh.id, wh.filter IS NOT NULL AS filtered FROM webhooks wh \
       WHERE wh.id IN (SELECT w FROM matched) AND wh.is_active), \
     go AS (SELECT NOT EXISTS (SELECT 1 FROM hooks WHERE filtered) \
       AND (SELECT ns FROM stale) IS NULL AND (SELECT ns FROM revoked) IS NULL AS ok), \
     l AS (SELECT wh.id, wh.increment_id, wh.merchant_id FROM webhooks wh \
       WHERE wh.id IN (SELECT id FROM hooks) AND wh.is_active AND wh.filter IS NULL \
         AND (SELECT ok FROM go) \
       ORDER BY wh.id FOR UPDATE), \
     p AS (SELECT l.id AS w, l.merchant_id AS m, matched.n, \
         l.increment_id + row_number() OVER (PARTITION BY l.id ORDER BY matched.n) AS inc \
       FROM l JOIN matched ON matched.w = l.id), \
     bump AS (UPDATE webhooks wh SET increment_id = b.last \
       FROM (SELECT w, max(inc) AS last FROM p GROUP BY w) b WHERE wh.id = b.w RETURNING wh.id), \
     counted AS (SELECT n, count(*) AS payloads FROM p GROUP BY n), \
     ev AS ( \
       INSERT INTO events (id, merchant_id, topic, idempotency_key, payloads, created_at, traceparent) \
       OVERRIDING SYSTEM VALUE \
       SELECT j.id, j.m, j.topic, j.key, coalesce(counted.payloads, 0), j.at, j.trace \
       FROM j LEFT JOIN counted ON counted.n = j.n WHERE (SELECT ok FROM go)), \
     made AS ( \
       INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, \
         status, next_attempt_at, created_at) \
       SELECT p.w, p.m, j.id, p.inc, j.topic, j.before || convert_to(p.inc::TEXT, 'UTF8') || j.after, \
         'pending', ",
    on_db_clock!("j.at", "$15"),
    ", j.at FROM p JOIN j ON j.n = p.n), \
     woken AS (SELECT string_agg(id::TEXT, ',' ORDER BY id) AS ids FROM bump) \
     SELECT (SELECT ok FROM go), (SELECT array_agg(id ORDER BY n) FROM j), \
       (SELECT ns FROM stale), (SELECT ns FROM revoked), \
       (SELECT array_agg(n ORDER BY n, w) FROM p), (SELECT array_agg(w ORDER BY n, w) FROM p), \
       (SELECT hookd_publish_raced() \
        WHERE (SELECT ok FROM go) AND (SELECT count(*) FROM l) < (SELECT count(*) FROM hooks)), \
       (SELECT count(pg_notify($16, CASE WHEN length(ids) > $17 THEN '' ELSE ids END)) \
        FROM woken WHERE ids IS NOT NULL) > 0",
);
