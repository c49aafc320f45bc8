//! The common case of a group commit in one round trip: when no webhook the batch's events
//! match has a filter, one call of the function `hookd_publish` (migration 0023) checks the
//! jobs (catalog versions, remembered keys), locks the matched webhooks, draws their
//! increment ids, bumps them, inserts the events and their payloads, and queues the wake-up.
//! The payload bodies are rendered there too, from each event's bytes before and after its
//! increment id (`BodyTemplate::around_increment`).
//!
//! So a batch holds its webhooks' row locks only for this call and its COMMIT, with no round
//! trip and no work in the node between the lock and the insert; two nodes publishing to one
//! webhook wait that much less for each other (issue 28). The function runs the work as a few
//! small statements with cached plans and a loop of its own, and skips the checks a batch
//! does not need: the one statement of twenty CTEs it replaces had its whole plan (about
//! ninety nodes) set up and torn down on every call. Each webhook is locked by a small
//! UPDATE of its own: a statement that waited for a row lock re-checks the row once it is
//! free, after setting up its plan again, so the statement that waits is kept small.
//!
//! Otherwise nothing is written and `batch` goes the long way (`lock_webhooks`, `insert`):
//! when a matched webhook has a filter (the jobs' verdicts decide in the node), and when a job
//! is refused (its catalog version moved, its remembered key changed: the batch runs again
//! without it). The lock order is `batch`'s: the unfiltered webhooks in ascending id. A
//! matched webhook that changed while its lock waited (turned off, deleted, or given a filter)
//! comes back from the lock without its row; the call then aborts itself, undoing what it
//! wrote (`hookd_publish_raced()`, migration 0019), and the batch runs again
//! (`BatchError::Raced`): its next snapshot sees the change.
//!
//! Since the statement is all-or-nothing by itself, it needs no transaction around it:
//! `publisher` runs it alone, so it commits as it ends, waiting for its WAL flush
//! (`Commit::AloneFlushed`); or, when another node publishes to the same webhooks, without
//! waiting (`Commit::AloneUnflushed`), and then waits for the flush itself before it tells
//! anyone (see `publisher::alone`). So the hand-off's payloads come back in `Stored`, and
//! `publisher` puts them there once the commit is flushed. `Stored` also gives each webhook's
//! first and last increment id drawn, by which the runner tells another node's publishes
//! (`sharing`).

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{BatchError, Job};
use crate::domain::{ClaimedDelivery, DeliveryId, EventId, WebhookId};
use crate::store::handoff::Offer;
use crate::store::postgres::clock::db_offset;
use crate::store::postgres::wakeups;
use crate::store::{Handoff, Published};

/// The SQLSTATE of `hookd_publish_raced()`.
const RACED: &str = "HK001";

/// What one run of the statement stored.
pub(in crate::store::postgres) struct Stored {
    /// One per job, in order.
    pub published: Vec<Published>,
    /// The payloads leased to this node at insert, for the hand-off once the commit is
    /// flushed, with the offer they were leased under (`None`: no offer, nothing leased).
    pub handed: Option<(Offer, Vec<ClaimedDelivery>)>,
    /// Each webhook given payloads: the first and last increment id drawn for it.
    pub spans: HashMap<WebhookId, (i64, i64)>,
}

/// How the statement's work reaches the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::store::postgres) enum Commit {
    /// In the caller's transaction, which commits it.
    InTransaction,
    /// By itself as it ends, without waiting for its WAL flush: the caller waits for it
    /// (`publisher::flush`) before it tells anyone, so the webhooks' row locks are not held
    /// through the flush (see `publisher`).
    AloneUnflushed,
    /// By itself as it ends, waiting for its WAL flush (the session's `synchronous_commit`),
    /// so one round trip stores the batch durably; its webhooks' row locks are held through
    /// the flush.
    AloneFlushed,
}

/// Stores the jobs (all new events); `None` when a matched webhook has a filter (nothing was
/// written). Leases payloads to this node only when `handoff` offers room.
pub(in crate::store::postgres) async fn store(
    conn: &mut PgConnection,
    jobs: &[&Job],
    commit: Commit,
    handoff: Option<&Handoff>,
) -> Result<Option<Stored>, BatchError> {
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
    let offer = handoff.and_then(|h| h.offer(clock));
    let (room_hooks, rooms): (Vec<i64>, Vec<i64>) = offer.iter().flat_map(|o| o.rooms.iter().copied()).unzip();
    let row: Row = sqlx::query_as(STATEMENT)
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
        .bind(offer.as_ref().map(|o| o.owner.as_str()))
        .bind(offer.as_ref().map_or(clock, |o| o.lease_until))
        .bind(offer.as_ref().map_or(0, |o| o.room))
        .bind(&room_hooks)
        .bind(&rooms)
        .bind(commit == Commit::AloneUnflushed)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(RACED) => BatchError::Raced,
            e => BatchError::Sql(e),
        })?;
    let ordinals = |ns: Vec<i64>| ns.into_iter().map(|n| (n - 1) as usize).collect();
    if let Some(revoked) = row.revoked {
        return Err(BatchError::Revoked(ordinals(revoked)));
    }
    if let Some(stale) = row.stale {
        return Err(BatchError::Stale(ordinals(stale)));
    }
    if !row.ok {
        return Ok(None);
    }
    let mut published: Vec<Published> = (row.ids.iter())
        .map(|&id| Published {
            event_id: EventId(id),
            payloads: 0,
            webhooks: vec![],
            replayed: false,
            handed: vec![],
        })
        .collect();
    let mut handed_ids = row.handed.unwrap_or_default().into_iter();
    let versions: HashMap<i64, i64> = (row.locked.unwrap_or_default().into_iter())
        .zip(row.versions.unwrap_or_default())
        .collect();
    let mut handed = Vec::new();
    let mut spans: HashMap<WebhookId, (i64, i64)> = HashMap::new();
    let payloads = (row.payload_jobs.unwrap_or_default().into_iter())
        .zip(row.payload_hooks.unwrap_or_default())
        .zip(row.payload_hand.unwrap_or_default())
        .zip(row.payload_incs.unwrap_or_default());
    for (((n, hook), hand), inc) in payloads {
        let job = (n - 1) as usize;
        let p = &mut published[job];
        p.webhooks.push(WebhookId(hook));
        p.payloads += 1;
        let (first, last) = spans.entry(WebhookId(hook)).or_insert((inc, inc));
        (*first, *last) = ((*first).min(inc), (*last).max(inc));
        if !hand {
            continue;
        }
        let Some(id) = handed_ids.next() else { break };
        p.handed.push(WebhookId(hook));
        handed.push(ClaimedDelivery {
            id: DeliveryId(id),
            webhook_id: WebhookId(hook),
            increment_id: inc,
            attempts: 0,
            body: jobs[job].body.render(inc),
            webhook_version: versions.get(&hook).copied().unwrap_or_default(),
            trace: jobs[job].trace.clone(),
        });
    }
    Ok(Some(Stored {
        published,
        handed: offer.map(|o| (o, handed)),
        spans,
    }))
}

/// The statement's answer (see `STATEMENT`).
#[derive(sqlx::FromRow)]
struct Row {
    ok: bool,
    ids: Vec<i64>,
    stale: Option<Vec<i64>>,
    revoked: Option<Vec<i64>>,
    payload_jobs: Option<Vec<i64>>,
    payload_hooks: Option<Vec<i64>>,
    payload_hand: Option<Vec<bool>>,
    payload_incs: Option<Vec<i64>>,
    handed: Option<Vec<i64>>,
    locked: Option<Vec<i64>>,
    versions: Option<Vec<i64>>,
}

/// The statement: a call of `hookd_publish` (migration 0023), which does the work in a few
/// small statements of its own. Binds, one element per job: $1 merchant, $2 topic, $3
/// idempotency key, $4 published at (node clock), $5 whether to confirm $6 its catalog
/// version, $7 trace context, $8 remembered caller and $9 its key hash, $10–$12 the topic's
/// match keys, $13 the body before and $14 after the increment id; then $15 the node's clock
/// (the function is given how far the database's clock is ahead of it, `db_offset`), $16 the
/// wake-up channel and $17 the longest wake-up payload; then the hand-off's offer
/// (`handoff::Offer`): $18 the lease's owner (NULL: lease nothing), $19 its end (node
/// clock), $20 the room of a webhook not in $21, and $21 webhooks with their own room $22;
/// $23 whether its commit skips the WAL flush (`Commit::AloneUnflushed`:
/// `synchronous_commit` off for this statement's transaction only).
///
/// Returns (`Row`): whether it wrote (no job refused, no matched webhook filtered), the event
/// ids, the refused jobs (catalog, key), each payload's job, webhook, `hand` (leased at
/// insert) and increment id (by webhook, then job), the ids of the payloads leased at insert
/// (in the same order), and the locked webhooks with their versions; or, when a webhook
/// changed while its lock waited, the error `RACED`.
const STATEMENT: &str = concat!(
    "SELECT * FROM hookd_publish($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], \
       $5::BOOL[], $6::BIGINT[], $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], \
       $12::TEXT[], $13::BYTEA[], $14::BYTEA[], ",
    db_offset!("$15::BIGINT"),
    ", $16::TEXT, $17::INT, $18::TEXT, $19::BIGINT, $20::BIGINT, $21::BIGINT[], $22::BIGINT[], \
       $23::BOOL)",
);
