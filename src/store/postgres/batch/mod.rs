//! The statements of one group commit of publishes (`publisher` runs them in a transaction):
//! at most six round trips, whatever the number of publishes, and every publish keeps the
//! semantics it had alone. Commonly one: when no job has an idempotency key and no matched
//! webhook has a filter, `unfiltered` does everything in one statement, which `publisher`
//! runs without a transaction around it.
//!
//! Lock order, the same on every node so batches cannot deadlock: the idempotency keys'
//! advisory locks first (ascending hash), then the matched webhooks without a filter
//! (ascending id, in the statement that also reads the filtered ones), then the filtered
//! webhooks some event of the batch passed (ascending id), and only those: a webhook whose
//! filter refuses everything in the batch is not locked, so it neither waits for nor holds up
//! other batches. (Only a filter set or removed while two batches run can reverse the order
//! for one webhook; PostgreSQL then aborts one of them, which runs again publish by publish.)
//! Each webhook's row lock is taken once per batch and the webhook is bumped once by the
//! number of its payloads, so its ids stay gap-free: the batch's payloads take the ids
//! `last + 1 ..= last + count` in publish order, and a rollback undoes the bump with them.
//!
//! Filters are never evaluated here: each job brings its event's verdicts (`Verdicts`), and
//! a job meeting a filter it did not judge makes the batch roll back (`BatchError::Unjudged`)
//! and run again without it, while its publisher judges the filter off this path.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{PgConnection, Row};

use super::clock::on_db_clock;
use super::wakeups;
use crate::domain::filter::Verdicts;
use crate::domain::records::IDEMPOTENCY_WINDOW_MS;
use crate::domain::{BodyTemplate, EventId, KeyCheck, SchemaChecked, Topic, WebhookId};
use crate::store::{Published, StoreError};
use crate::time::Millis;

mod unfiltered;

pub(super) use unfiltered::{store as store_unfiltered, Commit};

/// One publish, owned so it can wait in the queue.
pub(super) struct Job {
    pub merchant: i64,
    pub topic: Topic,
    pub body: BodyTemplate,
    pub key: Option<String>,
    pub now: Millis,
    /// The event judged by the filters it may meet: filters are looked up here, never
    /// evaluated in the batch (it holds every merchant's publishes and their row locks).
    pub verdicts: Verdicts,
    /// The catalog version its message was checked against, confirmed in `insert`.
    pub schema: SchemaChecked,
    /// The event's `traceparent` (CONTRACT §7.6), stored by the same insert.
    pub trace: Option<String>,
    /// The remembered caller's key, to find unchanged (`KeyCheck`, see `revoked`).
    pub key_check: Option<KeyCheck>,
}

/// Something held while the batch waits for its locks, let go once it holds them (or gives
/// up): the node's publish queue, so the node's other runner gathers its batch only then
/// (see `publisher`).
#[derive(Default)]
pub(super) struct Turn(Option<Box<dyn Send>>);

impl Turn {
    pub fn held(what: impl Send + 'static) -> Self {
        Turn(Some(Box::new(what)))
    }

    /// Lets go of what is held (again: nothing).
    pub fn pass(&mut self) {
        self.0 = None;
    }
}

/// Why a batch did not store.
#[derive(Debug)]
pub(super) enum BatchError {
    Sql(sqlx::Error),
    /// These jobs (indexes into the batch) matched webhooks whose filters they did not
    /// judge (these filters): the batch is rolled back and runs again without them.
    Unjudged(Vec<(usize, Vec<Arc<str>>)>),
    /// These jobs (indexes into the batch) were checked against a catalog version of their
    /// topic that is no longer the stored one: the batch is rolled back and runs again
    /// without them, and their publishers check again.
    Stale(Vec<usize>),
    /// These jobs' callers were remembered with a key that is no longer their user's
    /// (`KeyCheck`): the batch runs again without them, and they are refused.
    Revoked(Vec<usize>),
    /// A matched webhook changed while the batch waited for its lock, after the batch had
    /// written (see `unfiltered`): it is rolled back and runs again as it is.
    Raced,
}

impl BatchError {
    /// The jobs refused (indexes into the batch), each with its answer; or the error that
    /// broke the whole batch.
    pub(super) fn refusals(self) -> Result<Vec<(usize, StoreError)>, sqlx::Error> {
        Ok(match self {
            BatchError::Sql(e) => return Err(e),
            BatchError::Unjudged(u) => u
                .into_iter()
                .map(|(n, f)| (n, StoreError::FiltersUnjudged(f)))
                .collect(),
            BatchError::Stale(s) => s.into_iter().map(|n| (n, StoreError::CatalogMoved)).collect(),
            BatchError::Revoked(r) => r.into_iter().map(|n| (n, StoreError::KeyRevoked)).collect(),
            BatchError::Raced => Vec::new(),
        })
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        BatchError::Sql(e)
    }
}

/// What a job of the batch comes to before anything is inserted.
enum Plan {
    /// New: the index among the batch's new events.
    Fresh(usize),
    /// An earlier event with the same key, still in its window: replayed.
    Earlier { id: i64, payloads: i64 },
    /// The same key as an earlier job of this batch (its index in the batch).
    SameAs(usize),
}

/// Stores the jobs in the open transaction; one `Published` per job, in order.
/// `turn` is passed on once the webhooks are locked (or nothing is to be locked).
///
/// Remembered callers' keys (`KeyCheck`) are checked in the statement that inserts their
/// events (`insert`), not by a statement of their own: one round trip less per group
/// commit. Only a replay (an idempotency key seen before, which inserts nothing) has its
/// caller's key checked by `revoked`.
///
/// `filtered`: the batch is known to meet a filter (`unfiltered` said so), so it goes the
/// long way at once.
pub(super) async fn store(
    conn: &mut PgConnection,
    jobs: &[&Job],
    turn: &mut Turn,
    filtered: bool,
) -> Result<Vec<Published>, BatchError> {
    let plans = idempotency(conn, jobs).await;
    let plans = match plans {
        Ok(p) => p,
        Err(e) => {
            turn.pass();
            return Err(e.into());
        }
    };
    let fresh_at: Vec<usize> = (plans.iter().enumerate())
        .filter(|(_, p)| matches!(p, Plan::Fresh(_)))
        .map(|(i, _)| i)
        .collect();
    let replays: Vec<usize> = (plans.iter().enumerate())
        .filter(|(_, p)| !matches!(p, Plan::Fresh(_)))
        .map(|(i, _)| i)
        .collect();
    let replayed: Vec<&Job> = replays.iter().map(|&i| jobs[i]).collect();
    match revoked(conn, &replayed).await {
        Ok(none) if none.is_empty() => {}
        Ok(revoked) => {
            turn.pass();
            return Err(BatchError::Revoked(revoked.into_iter().map(|n| replays[n]).collect()));
        }
        Err(e) => {
            turn.pass();
            return Err(e.into());
        }
    }
    let fresh: Vec<&Job> = fresh_at.iter().map(|&i| jobs[i]).collect();
    let mut made: Vec<Option<Published>> = Vec::new();
    if !fresh.is_empty() {
        let stored = if filtered {
            Ok(None)
        } else {
            let stored = unfiltered::store(conn, &fresh, unfiltered::Commit::InTransaction, None).await;
            stored.map(|s| s.map(|s| s.published))
        };
        let stored = match stored {
            Ok(Some(published)) => Ok(published),
            Ok(None) => insert(conn, &fresh, turn).await,
            Err(e) => Err(e),
        };
        made = match stored {
            Ok(published) => published.into_iter().map(Some).collect(),
            // Indexes among the fresh jobs, back to indexes in the batch.
            Err(refused) => {
                return Err(match refused {
                    BatchError::Unjudged(u) => {
                        BatchError::Unjudged(u.into_iter().map(|(n, f)| (fresh_at[n], f)).collect())
                    }
                    BatchError::Stale(s) => BatchError::Stale(s.into_iter().map(|n| fresh_at[n]).collect()),
                    BatchError::Revoked(r) => BatchError::Revoked(r.into_iter().map(|n| fresh_at[n]).collect()),
                    other => other,
                })
            }
        };
    }
    turn.pass();
    let mut out: Vec<Published> = Vec::with_capacity(jobs.len());
    for plan in &plans {
        let published = match *plan {
            Plan::Fresh(n) => made[n].take().expect("each new event is answered once"),
            Plan::Earlier { id, payloads } => Published {
                event_id: EventId(id),
                payloads,
                webhooks: vec![],
                replayed: true,
                handed: vec![],
            },
            Plan::SameAs(first) => Published {
                event_id: out[first].event_id,
                payloads: out[first].payloads,
                webhooks: vec![],
                replayed: true,
                handed: vec![],
            },
        };
        out.push(published);
    }
    Ok(out)
}

/// The jobs (indexes) whose remembered caller's key is no longer its user's: one read of
/// the jobs' distinct callers, in the batch's transaction, so a key rotated or a user
/// removed before it began publishes nothing (see `app::auth`). No statement when no job
/// brings a `KeyCheck`. (The callers of new events are checked by `insert`'s statement.)
async fn revoked(conn: &mut PgConnection, jobs: &[&Job]) -> Result<Vec<usize>, sqlx::Error> {
    let mut callers: Vec<&KeyCheck> = jobs.iter().filter_map(|j| j.key_check.as_ref()).collect();
    if callers.is_empty() {
        return Ok(Vec::new());
    }
    callers.sort_unstable_by(|a, b| (a.user.0, &a.key_hash).cmp(&(b.user.0, &b.key_hash)));
    callers.dedup();
    let users: Vec<i64> = callers.iter().map(|c| c.user.0).collect();
    let hashes: Vec<&str> = callers.iter().map(|c| c.key_hash.as_str()).collect();
    let gone: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.u, t.h FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS t(u, h) \
         LEFT JOIN users ON users.id = t.u WHERE users.key_hash IS DISTINCT FROM t.h",
    )
    .bind(&users)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await?;
    Ok((jobs.iter().enumerate())
        .filter(|(_, j)| {
            j.key_check
                .as_ref()
                .is_some_and(|c| gone.iter().any(|(u, h)| *u == c.user.0 && *h == c.key_hash))
        })
        .map(|(i, _)| i)
        .collect())
}

/// Decides which jobs make new events. Two publishes with the same key make one event,
/// whichever node they reach: a transaction-scoped advisory lock per (merchant, key) makes
/// batches holding the same key take turns, and the lookup after it (a fresh snapshot, as
/// every statement gets under READ COMMITTED) finds what the batch waited for. Keys that
/// hash alike only wait for each other; the unique index remains the backstop.
async fn idempotency(conn: &mut PgConnection, jobs: &[&Job]) -> Result<Vec<Plan>, sqlx::Error> {
    let mut plans = Vec::with_capacity(jobs.len());
    let mut first: HashMap<(i64, &str), usize> = HashMap::new();
    let (mut merchants, mut keys, mut cutoffs) = (Vec::new(), Vec::new(), Vec::new());
    let mut fresh = 0;
    for (i, job) in jobs.iter().enumerate() {
        if let Some(key) = job.key.as_deref() {
            if let Some(&f) = first.get(&(job.merchant, key)) {
                plans.push(Plan::SameAs(f));
                continue;
            }
            first.insert((job.merchant, key), i);
            merchants.push(job.merchant);
            keys.push(key);
            cutoffs.push(job.now - IDEMPOTENCY_WINDOW_MS);
        }
        plans.push(Plan::Fresh(fresh));
        fresh += 1;
    }
    if keys.is_empty() {
        return Ok(plans);
    }
    // The subquery sorts the hashes before they are locked (OFFSET 0 keeps it a subquery).
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(h)) FROM ( \
           SELECT DISTINCT hashtextextended(k, m) AS h FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS t(m, k) \
           ORDER BY h OFFSET 0) s",
    )
    .bind(&merchants)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    // Earlier events with these keys; a key whose window has passed is freed for reuse.
    let rows = sqlx::query(
        "WITH k AS (SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) AS t(m, key, cutoff)), \
         found AS ( \
           SELECT e.id, e.merchant_id, e.idempotency_key, e.payloads, e.created_at, k.cutoff \
           FROM events e JOIN k ON e.merchant_id = k.m AND e.idempotency_key = k.key), \
         freed AS (UPDATE events SET idempotency_key = NULL \
           WHERE id IN (SELECT id FROM found WHERE created_at <= cutoff)) \
         SELECT merchant_id, idempotency_key, id, payloads FROM found WHERE created_at > cutoff",
    )
    .bind(&merchants)
    .bind(&keys)
    .bind(&cutoffs)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(plans);
    }
    let earlier: HashMap<(i64, String), (i64, i64)> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    // Renumber the fresh jobs, since some turned out to be replays.
    let mut fresh = 0;
    for (job, plan) in jobs.iter().zip(plans.iter_mut()) {
        if let Plan::Fresh(_) = plan {
            let found = job.key.as_ref().and_then(|k| earlier.get(&(job.merchant, k.clone())));
            *plan = match found {
                Some(&(id, payloads)) => Plan::Earlier { id, payloads },
                None => {
                    fresh += 1;
                    Plan::Fresh(fresh - 1)
                }
            };
        }
    }
    Ok(plans)
}

/// Makes the events and their payloads: locks the matched webhooks (see the lock order
/// above), decides in Rust which of them each event's verdicts let through and their
/// increment ids, then bumps them and inserts events and payloads and queues one wake-up
/// (one statement). Filters cost a round trip only when one of them lets an event through.
/// Payloads are due when their publish was made, on the database's clock (see `clock`).
///
/// The same statement confirms each job's catalog version (`SchemaChecked`) against
/// `topic_catalog` as its snapshot sees it: a job whose topic moved makes the batch roll
/// back (`BatchError::Stale`). A `topic.define` committed before the statement began is thus
/// never missed, without a read of the version per publish.
async fn insert(conn: &mut PgConnection, jobs: &[&Job], turn: &mut Turn) -> Result<Vec<Published>, BatchError> {
    let merchants: Vec<i64> = jobs.iter().map(|j| j.merchant).collect();
    let locked = lock_webhooks(conn, jobs, &merchants).await;
    turn.pass();
    let locked = match locked? {
        Ok(locked) => locked,
        Err(unjudged) => return Err(BatchError::Unjudged(unjudged)),
    };
    let Made {
        mut published,
        payloads: p,
        bumped: woken,
        last,
    } = match plan(jobs, &locked) {
        Ok(made) => made,
        Err(unjudged) => return Err(BatchError::Unjudged(unjudged)),
    };
    let topics: Vec<&str> = jobs.iter().map(|j| j.topic.as_str()).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.key.as_deref()).collect();
    let counts: Vec<i64> = published.iter().map(|p| p.webhooks.len() as i64).collect();
    let nows: Vec<Millis> = jobs.iter().map(|j| j.now).collect();
    let (confirm, versions) = schema_checks(jobs);
    let traces: Vec<Option<&str>> = jobs.iter().map(|j| j.trace.as_deref()).collect();
    let (callers, hashes) = key_checks(jobs);
    let clock = crate::time::now_millis();
    // The event ids are drawn first (`j`, evaluated once), so payloads can name their event
    // and the caller learns each job's id; the webhooks locked above that got payloads move
    // to their new last increment id (`bump`); the wake-up is queued only when something is due.
    // The last two columns name the jobs to refuse, whose refusal rolls everything back:
    // those checked against a catalog version that moved, and those whose remembered
    // caller's key is no longer the user's (the statement's snapshot is taken after the
    // batch began, so a key rotated before that publishes nothing).
    let (ids, stale, revoked): (Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>) = sqlx::query_as(concat!(
        "WITH j AS ( \
           SELECT t.*, nextval('events_id_seq'::regclass) AS id \
           FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $17::BOOL[], \
             $18::BIGINT[], $19::TEXT[], $20::BIGINT[], $21::TEXT[]) WITH ORDINALITY \
             AS t(m, topic, key, payloads, at, confirm, version, trace, caller, key_hash, n)), \
         bump AS (UPDATE webhooks wh SET increment_id = b.last \
           FROM UNNEST($14::BIGINT[], $15::BIGINT[]) AS b(id, last) WHERE wh.id = b.id), \
         ev AS ( \
           INSERT INTO events (id, merchant_id, topic, idempotency_key, payloads, created_at, traceparent) \
           OVERRIDING SYSTEM VALUE SELECT id, m, topic, key, payloads, at, trace FROM j), \
         made AS ( \
           INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, \
             status, next_attempt_at, created_at) \
           SELECT p.w, p.m, j.id, p.inc, j.topic, p.body, 'pending', ",
        on_db_clock!("j.at", "$16"),
        ", j.at \
           FROM UNNEST($6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BYTEA[]) \
             AS p(w, m, inc, n, body) JOIN j ON j.n = p.n) \
         SELECT (SELECT array_agg(id ORDER BY n) FROM j) \
           || CASE WHEN $11 THEN (SELECT ARRAY[]::BIGINT[] FROM pg_notify($12, $13) AS n) END, \
           (SELECT array_agg(j.n) FROM j LEFT JOIN topic_catalog c ON c.topic = j.topic \
            WHERE j.confirm AND c.version IS DISTINCT FROM j.version), \
           (SELECT array_agg(j.n) FROM j LEFT JOIN users u ON u.id = j.caller \
            WHERE j.caller IS NOT NULL AND u.key_hash IS DISTINCT FROM j.key_hash)",
    ))
    .bind(&merchants)
    .bind(&topics)
    .bind(&keys)
    .bind(&counts)
    .bind(&nows)
    .bind(&p.webhook)
    .bind(&p.merchant)
    .bind(&p.increment)
    .bind(&p.job)
    .bind(&p.body)
    .bind(!woken.is_empty())
    .bind(wakeups::CHANNEL)
    .bind(wakeups::payload(&woken))
    .bind(&woken)
    .bind(&last)
    .bind(clock)
    .bind(&confirm)
    .bind(&versions)
    .bind(&traces)
    .bind(&callers)
    .bind(&hashes)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(revoked) = revoked {
        return Err(BatchError::Revoked(
            revoked.into_iter().map(|n| (n - 1) as usize).collect(),
        ));
    }
    if let Some(stale) = stale {
        return Err(BatchError::Stale(stale.into_iter().map(|n| (n - 1) as usize).collect()));
    }
    for (published, id) in published.iter_mut().zip(ids) {
        published.event_id = EventId(id);
        published.payloads = published.webhooks.len() as i64;
    }
    Ok(published)
}

/// Per job, the keys a webhook's topic pattern may have to match its topic
/// (`Topic::match_keys`), one array per key: the topic, its resource's wildcard, `*`.
fn match_keys(jobs: &[&Job]) -> [Vec<String>; 3] {
    let mut out: [Vec<String>; 3] = Default::default();
    for job in jobs {
        for (keys, key) in out.iter_mut().zip(job.topic.match_keys()) {
            keys.push(key);
        }
    }
    out
}

/// Per job, whether its catalog version is to be confirmed, and the version.
fn schema_checks(jobs: &[&Job]) -> (Vec<bool>, Vec<Option<i64>>) {
    (jobs.iter())
        .map(|j| match j.schema {
            SchemaChecked::Version(v) => (true, v),
            SchemaChecked::Unconfirmed => (false, None),
        })
        .unzip()
}

/// Per job, its remembered caller and the key hash to find unchanged (`KeyCheck`), if any.
fn key_checks<'j>(jobs: &[&'j Job]) -> (Vec<Option<i64>>, Vec<Option<&'j str>>) {
    (jobs.iter())
        .map(|j| match &j.key_check {
            Some(c) => (Some(c.user.0), Some(c.key_hash.as_str())),
            None => (None, None),
        })
        .unzip()
}

/// Jobs (indexes into the jobs given) and the filters of their matched webhooks that they
/// did not judge.
type Unjudged = Vec<(usize, Vec<Arc<str>>)>;

/// Collects, per job, the filters `hooks` meet that the job's verdicts lack.
fn unjudged<'h>(jobs: &[&Job], hooks: impl IntoIterator<Item = (&'h str, &'h [i64])>) -> Unjudged {
    let mut out: Unjudged = Vec::new();
    for (filter, matched) in hooks {
        for &n in matched {
            let job = (n - 1) as usize;
            if jobs[job].verdicts.get(filter).is_some() {
                continue;
            }
            match out.iter_mut().find(|(j, _)| *j == job) {
                Some((_, filters)) if filters.iter().any(|f| &**f == filter) => {}
                Some((_, filters)) => filters.push(filter.into()),
                None => out.push((job, vec![filter.into()])),
            }
        }
    }
    out
}

/// The matched active webhooks that may get payloads, locked, in id order.
///
/// One statement locks those without a filter (ascending id) and reads the filtered ones
/// without locking them; a webhook whose row changed while the lock waited (deactivated,
/// filter set) is re-checked by PostgreSQL and comes back unlocked. The jobs' verdicts for
/// the filters decide here (a job without the verdict of a filter it meets goes back to its
/// publisher, `Unjudged`); only webhooks with an event passing are locked, by a second statement
/// that reads their filter again under the lock (a filter changed meanwhile is tried again
/// in `plan`). What is locked is read as the last committed transaction left it.
async fn lock_webhooks(
    conn: &mut PgConnection,
    jobs: &[&Job],
    merchants: &[i64],
) -> Result<Result<Vec<Locked>, Unjudged>, sqlx::Error> {
    let [k0, k1, k2] = match_keys(jobs);
    // `ns`: the (1-based) jobs each webhook matched.
    let rows = sqlx::query(
        "WITH j AS (SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) \
                    WITH ORDINALITY AS t(m, k0, k1, k2, n)), \
         matched AS ( \
           SELECT wt.webhook_id AS w, array_agg(DISTINCT j.n ORDER BY j.n) AS ns \
           FROM j JOIN webhook_topics wt ON wt.merchant_id = j.m AND wt.pattern IN (j.k0, j.k1, j.k2) \
           GROUP BY wt.webhook_id), \
         l AS (SELECT wh.id, wh.increment_id, wh.merchant_id, wh.filter, matched.ns \
               FROM webhooks wh JOIN matched ON matched.w = wh.id \
               WHERE wh.is_active AND wh.filter IS NULL ORDER BY wh.id FOR UPDATE OF wh) \
         SELECT id, increment_id, merchant_id, filter, ns, true FROM l \
         UNION ALL \
         SELECT wh.id, wh.increment_id, wh.merchant_id, wh.filter, matched.ns, false \
         FROM webhooks wh JOIN matched ON matched.w = wh.id \
         WHERE wh.is_active AND wh.id NOT IN (SELECT id FROM l)",
    )
    .bind(merchants)
    .bind(&k0)
    .bind(&k1)
    .bind(&k2)
    .fetch_all(&mut *conn)
    .await?;
    let mut locked = Vec::with_capacity(rows.len());
    let mut unlocked = Vec::new();
    for r in &rows {
        let hook = Locked {
            webhook: r.get(0),
            last: r.get(1),
            merchant: r.get(2),
            filter: r.get(3),
            jobs: r.get(4),
        };
        if r.get::<bool, _>(5) {
            locked.push(hook);
        } else {
            unlocked.push(hook);
        }
    }
    let missing = unjudged(
        jobs,
        (unlocked.iter()).filter_map(|h| Some((h.filter.as_deref()?, h.jobs.as_slice()))),
    );
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    let passing = passing(jobs, unlocked);
    if !passing.is_empty() {
        let ids: Vec<i64> = passing.iter().map(|(h, _)| h.webhook).collect();
        let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, increment_id, filter FROM webhooks WHERE id = ANY($1) AND is_active \
             ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let now: HashMap<i64, (i64, Option<String>)> = rows.into_iter().map(|(id, last, f)| (id, (last, f))).collect();
        for (mut hook, tried) in passing {
            // Gone or turned off meanwhile: nothing for it.
            let Some((last, filter)) = now.get(&hook.webhook) else {
                continue;
            };
            hook.last = *last;
            if *filter != tried.filter {
                // Changed meanwhile: every job it matched, tried against the filter as it
                // is now (in `plan`).
                hook.filter = filter.clone();
                hook.jobs = tried.jobs;
            }
            locked.push(hook);
        }
    }
    locked.sort_unstable_by_key(|l| l.webhook);
    Ok(Ok(locked))
}

/// What a filtered webhook read without its lock was tried with: its filter then, and
/// every job it matched.
struct Tried {
    filter: Option<String>,
    jobs: Vec<i64>,
}

/// The filtered webhooks with at least one job passing their filter, in id order, each with
/// no filter left and only the jobs that passed (every job judged each filter: see `unjudged`).
fn passing(jobs: &[&Job], unlocked: Vec<Locked>) -> Vec<(Locked, Tried)> {
    let mut out = Vec::new();
    for hook in unlocked {
        let Some(filter) = hook.filter else {
            // Without a filter yet not locked: its row changed while the lock waited (a
            // filter set, or turned off). Locked below and tried as it is then.
            let tried = Tried {
                filter: None,
                jobs: hook.jobs.clone(),
            };
            out.push((hook, tried));
            continue;
        };
        let passed: Vec<i64> = hook
            .jobs
            .iter()
            .copied()
            .filter(|&n| jobs[(n - 1) as usize].verdicts.get(&filter) == Some(true))
            .collect();
        if !passed.is_empty() {
            out.push((
                Locked {
                    filter: None,
                    jobs: passed,
                    ..hook
                },
                Tried {
                    filter: Some(filter),
                    jobs: hook.jobs,
                },
            ));
        }
    }
    out.sort_unstable_by_key(|(h, _)| h.webhook);
    out
}

/// A matched webhook as locked: its last increment id, its filter, the jobs it matched.
struct Locked {
    webhook: i64,
    last: i64,
    merchant: i64,
    filter: Option<String>,
    jobs: Vec<i64>,
}

/// What the batch makes, decided before anything is written.
struct Made {
    published: Vec<Published>,
    payloads: PayloadArrays,
    /// Webhooks that get payloads, with their new last increment id.
    bumped: Vec<i64>,
    last: Vec<i64>,
}

/// Gives each locked webhook a payload for every job it matched whose event passes its
/// filter, numbered on from its last increment id in job order, so the ids stay gap-free:
/// a job filtered out takes no id. A filter is left here only when it changed between the
/// read and the lock; a job that did not judge it goes back to its publisher (`Err`).
fn plan(jobs: &[&Job], locked: &[Locked]) -> Result<Made, Unjudged> {
    let missing = unjudged(
        jobs,
        (locked.iter()).filter_map(|h| Some((h.filter.as_deref()?, h.jobs.as_slice()))),
    );
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut out = Made {
        published: jobs
            .iter()
            .map(|_| Published {
                event_id: EventId(0),
                payloads: 0,
                webhooks: vec![],
                replayed: false,
                handed: vec![],
            })
            .collect(),
        payloads: PayloadArrays::default(),
        bumped: Vec::with_capacity(locked.len()),
        last: Vec::with_capacity(locked.len()),
    };
    let p = &mut out.payloads;
    for hook in locked {
        let mut increment = hook.last;
        for &n in &hook.jobs {
            let job = (n - 1) as usize;
            if let Some(filter) = &hook.filter {
                if jobs[job].verdicts.get(filter) != Some(true) {
                    continue;
                }
            }
            increment += 1;
            p.webhook.push(hook.webhook);
            p.merchant.push(hook.merchant);
            p.increment.push(increment);
            p.job.push(n);
            p.body.push(jobs[job].body.render(increment));
            out.published[job].webhooks.push(WebhookId(hook.webhook));
        }
        if increment > hook.last {
            out.bumped.push(hook.webhook);
            out.last.push(increment);
        }
    }
    Ok(out)
}

/// The batch's payloads as one array per column.
#[derive(Default)]
struct PayloadArrays {
    webhook: Vec<i64>,
    merchant: Vec<i64>,
    increment: Vec<i64>,
    job: Vec<i64>,
    body: Vec<Vec<u8>>,
}
