//! Group commit of publishes on one node: concurrent `event.publish` calls are queued to a
//! couple of runner tasks, and a runner takes whatever is queued and stores it in one
//! transaction, answering every caller only once that commit is flushed to disk: an
//! acknowledged event is on disk.
//!
//! The one idea: the commit's fsync is the cost, and a synchronous commit pays it *while
//! holding the row locks of the webhooks bumped* (the increment ids must stay gap-free across
//! nodes). One transaction per publish therefore lets one webhook take at most one publish
//! per fsync; one transaction per batch lets it take a whole batch per fsync. Everything a
//! batch does is a fixed number of round trips, whatever its size (arrays and `UNNEST`, see
//! `batch`); in the common case one: a statement that commits by itself (`alone`,
//! `batch::unfiltered`), so no BEGIN or COMMIT of its own, waiting for its WAL flush as it
//! commits. When another node publishes to the same webhooks (the runner tells by the
//! increment ids it draws, see `sharing`), two: the statement commits without waiting for
//! its flush, then `flush` waits for it. So a shared webhook's row lock is held only while
//! that statement runs, not through the flush, and the other node's batch for the same
//! webhook runs meanwhile (two nodes published 6 % more per second, issue 28), while a node
//! alone on its webhooks saves the second round trip (4–5 % less CPU per event, 0.1 ms less
//! from publish to receipt at 500 events/s). Either way nothing is told before the flush:
//! the callers are answered and the hand-off given its payloads after it; a claim that takes
//! a payload never attempted waits for its own flush, which covers the publish
//! (`queue::sync_if_fresh`); and WAL is flushed in order, so a later batch's flush covers an
//! earlier one, and a crash before the flush loses the batch whole, increment ids with it,
//! with no one told. Only reads (`webhook.deliveries`, `delivery.list`) can see a batch
//! committed the second way for that moment.
//!
//! One runner per connection of the publisher's pool, and `pools` gives it one. Two took
//! turns (while one waited for its COMMIT, the other gathered the next batch and did
//! everything up to the webhook locks; a runner gathered only once the other held its locks,
//! the queue staying with a runner until then, see `batch::Turn`), but on a disk that syncs
//! in 0.1 ms the work is CPU-bound, and two runners halved the batches: one runner published
//! 8 % more per second on one node and 18 % more on two, for less CPU per event (issue 28,
//! docs/performance.md). Nodes sharing a webhook take its lock in turns, each batch holding
//! what queued on its node meanwhile. Each runner keeps a connection of the publisher's own
//! pool (see `pools`), so a publish never waits for a connection behind other work; it waits in a
//! bounded queue, and when even that stays full it is refused as `Overloaded` (nothing
//! stored). A batch whose connection breaks says whether its COMMIT had been sent: before,
//! nothing was stored (`Unavailable`); during, the outcome is unknown (`OutcomeUnknown`).
//! A failing publish does not fail its batch: the batch is rolled back and run again with
//! each publish in its own savepoint (as `sqlite/writer.rs` does), so the common path pays
//! for no savepoints.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{Acquire, PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch::{self, BatchError, Job, Turn};
use super::sharing::Sharing;
use crate::store::{Handoff, PublishRequest, Published, StoreError, StoreResult};

/// Most publishes in one transaction (a JSON-RPC batch holds at most 1000).
const MAX_BATCH: usize = 1000;

/// Publishes waiting for a runner, at most: beyond, a publish waits for room (up to the
/// acquire timeout) and is then refused, rather than queue without bound.
const MAX_QUEUED: usize = 4 * MAX_BATCH;

/// A held connection that answered within this is taken to be alive: a batch may then run
/// without a transaction (`alone`). One idle longer has its batch begin with BEGIN, which
/// finds a connection the server dropped meanwhile before anything was sent to commit.
const WARM: Duration = Duration::from_secs(1);

pub(super) struct Publisher {
    jobs: mpsc::Sender<Queued>,
    /// The runners' server processes, so this node's listener can pass over the wake-ups of
    /// its own publishes (`App::publish` wakes its dispatcher directly; see `wakeups`).
    pub backends: Arc<Backends>,
    /// The runners' own pool (its figures go to `/metrics`).
    pub pool: PgPool,
    /// How long a publish waits for room in a full queue.
    queue_wait: Duration,
    /// Where the runners hand this node's dispatcher what they lease to it at insert, once
    /// it is set (see `store::handoff`).
    pub handoff: Arc<OnceLock<Arc<Handoff>>>,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<StoreResult<Published>>,
}

impl Publisher {
    /// Starts one runner per connection of `pool` (the publisher's own) on the current tokio
    /// runtime; they end when the publisher is dropped.
    pub(super) fn start(pool: PgPool, queue_wait: Duration) -> Self {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        let rx = Arc::new(Mutex::new(rx));
        let runners = pool.options().get_max_connections() as usize;
        let backends = Arc::new(Backends(std::sync::Mutex::new(vec![None; runners])));
        let handoff = Arc::new(OnceLock::new());
        for runner in 0..runners {
            let me = (backends.clone(), runner);
            tokio::spawn(run(pool.clone(), rx.clone(), me, handoff.clone()));
        }
        Self {
            jobs,
            backends,
            pool,
            queue_wait,
            handoff,
        }
    }

    /// Publishes waiting for a runner.
    pub(super) fn queued(&self) -> usize {
        MAX_QUEUED.saturating_sub(self.jobs.capacity())
    }

    /// Stores the publish in the next batch; answers once that batch has committed.
    pub(super) async fn publish(&self, req: &PublishRequest<'_>) -> StoreResult<Published> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            merchant: req.merchant.0,
            topic: req.topic.clone(),
            body: req.body.clone(),
            key: req.idempotency_key.map(str::to_owned),
            now: req.now,
            verdicts: req.verdicts.clone(),
            schema: req.schema,
            trace: req.trace.map(|t| t.to_string()),
            key_check: req.key_check.cloned(),
        };
        match tokio::time::timeout(self.queue_wait, self.jobs.send(Queued { job, reply })).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::WriterGone),
            Err(_) => return Err(StoreError::Overloaded),
        }
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// The server process id of each runner's connection (None before its first batch).
#[derive(Default)]
pub(super) struct Backends(std::sync::Mutex<Vec<Option<u32>>>);

impl Backends {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<u32>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `pid` is one of this node's runners' connections right now.
    pub(super) fn contains(&self, pid: u32) -> bool {
        self.lock().contains(&Some(pid))
    }

    fn set(&self, runner: usize, pid: Option<u32>) {
        if let Some(slot) = self.lock().get_mut(runner) {
            *slot = pid;
        }
    }
}

/// Which runner this is, and where it says which server process serves it.
type Runner = (Arc<Backends>, usize);

/// One runner: takes what is queued (waiting for the first), runs it, answers, again.
async fn run(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Queued>>>, me: Runner, handoff: Arc<OnceLock<Arc<Handoff>>>) {
    let mut held: Option<Held> = None;
    let mut sharing = Sharing::default();
    loop {
        let mut queued = Vec::new();
        let mut queue = rx.clone().lock_owned().await;
        if queue.recv_many(&mut queued, MAX_BATCH).await == 0 {
            return;
        }
        gather_more(&mut queue, &mut queued).await;
        // The queue is passed on once this batch holds its locks (or is done).
        let mut turn = Turn::held(queue);
        let (jobs, replies): (Vec<Job>, Vec<_>) = queued.into_iter().map(|q| (q.job, q.reply)).unzip();
        let handoff = handoff.get().map(|h| &**h);
        let ran = run_on(&pool, &mut held, &me, &jobs, (&mut turn, &mut sharing), handoff).await;
        turn.pass();
        match ran {
            Ok(results) => {
                let stored = results.iter().filter(|r| r.as_ref().is_ok_and(|p| !p.replayed)).count();
                if stored > 0 {
                    crate::metrics::PUBLISH_BATCH.observe(stored as f64);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(broke) => {
                let (e, committing) = (Arc::new(broke.error), broke.committing);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::from_batch(e.clone(), committing)));
                }
            }
        }
    }
}

/// Rounds of `gather_more`, at most.
const GATHER_ROUNDS: usize = 3;

/// When more than one publish was queued (the node is busy), lets the tasks that are ready
/// run before the batch starts, and takes what they queue meanwhile, for as long as each
/// round brings more: a batch's statement costs about as much to set up as its first
/// publishes to store (issue 28), so on a busy node fewer, larger batches cost less CPU
/// per event. A lone publish (a quiet node) goes at once.
async fn gather_more<T>(queue: &mut mpsc::Receiver<T>, queued: &mut Vec<T>) {
    if queued.len() < 2 {
        return;
    }
    for _ in 0..GATHER_ROUNDS {
        tokio::task::yield_now().await;
        let before = queued.len();
        while queued.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(q) => queued.push(q),
                Err(_) => break,
            }
        }
        if queued.len() == before {
            return;
        }
    }
}

/// A runner's connection, and when it last answered.
type Held = (PoolConnection<Postgres>, Instant);

/// Runs the batch on the runner's held connection, or a fresh one from the pool.
///
/// Each runner keeps its connection between batches (no pool check, one round trip less per
/// batch). A held connection the server dropped meanwhile (a restart, a terminated backend)
/// is found by the batch's first statement, before anything was sent to commit: the batch
/// runs once more on a fresh, checked connection. So only a connection that answered a
/// moment ago (`WARM`) runs a batch without a transaction, whose one statement commits.
async fn run_on(
    pool: &PgPool,
    held: &mut Option<Held>,
    (backends, runner): &Runner,
    jobs: &[Job],
    (turn, sharing): (&mut Turn, &mut Sharing),
    handoff: Option<&Handoff>,
) -> Result<Vec<StoreResult<Published>>, Broke> {
    loop {
        let was_held = held.is_some();
        let (mut conn, warm) = match held.take() {
            Some((c, answered)) => (c, answered.elapsed() < WARM),
            None => {
                backends.set(*runner, None);
                let mut conn = pool.acquire().await.map_err(Broke::before_commit)?;
                // One round trip per connection, not per batch.
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(Broke::before_commit)?;
                backends.set(*runner, u32::try_from(pid).ok());
                (conn, true)
            }
        };
        match run_batch_in_turn(&mut conn, jobs, (turn, sharing), warm, handoff).await {
            Ok(results) => {
                *held = Some((conn, Instant::now()));
                return Ok(results);
            }
            Err(broke) => {
                sharing.forget();
                conn.close_on_drop();
                if !(was_held && !broke.committing && StoreError::is_connection_lost(&broke.error)) {
                    return Err(broke);
                }
            }
        }
    }
}

/// Why a batch's transaction broke, and whether its COMMIT had been sent (then the batch
/// may have been stored: its outcome is unknown).
#[derive(Debug)]
pub(super) struct Broke {
    pub error: sqlx::Error,
    pub committing: bool,
}

impl Broke {
    fn before_commit(error: sqlx::Error) -> Self {
        Broke {
            error,
            committing: false,
        }
    }

    fn at_commit(error: sqlx::Error) -> Self {
        Broke {
            error,
            committing: true,
        }
    }
}

impl From<sqlx::Error> for Broke {
    fn from(error: sqlx::Error) -> Self {
        Broke::before_commit(error)
    }
}

/// Runs the batch in one transaction; if it fails, again with a savepoint per job. Jobs
/// that did not judge a filter they meet are answered `FiltersUnjudged`, jobs checked against
/// a catalog version that moved `CatalogMoved`, jobs whose remembered key was revoked
/// `KeyRevoked`, and the rest run again without them. Errs only when the transaction itself broke (BEGIN, COMMIT, the
/// connection): then nothing committed that anyone is told about, and every job fails.
#[cfg(test)]
pub(super) async fn run_batch(conn: &mut PgConnection, jobs: &[Job]) -> Result<Vec<StoreResult<Published>>, Broke> {
    run_batch_with(conn, jobs, &mut Sharing::default()).await
}

/// `run_batch` by a runner that knows what `sharing` holds of the ids it drew before.
#[cfg(test)]
pub(super) async fn run_batch_with(
    conn: &mut PgConnection,
    jobs: &[Job],
    sharing: &mut Sharing,
) -> Result<Vec<StoreResult<Published>>, Broke> {
    run_batch_in_turn(conn, jobs, (&mut Turn::default(), sharing), true, None).await
}

/// `run_batch`, passing `turn` on once the batch holds its locks. `warm`: the connection
/// answered a moment ago, so the batch may run `alone`, which leases fresh payloads to this
/// node's dispatcher through `handoff` (the transactional way leases none).
async fn run_batch_in_turn(
    conn: &mut PgConnection,
    jobs: &[Job],
    (turn, sharing): (&mut Turn, &mut Sharing),
    warm: bool,
    handoff: Option<&Handoff>,
) -> Result<Vec<StoreResult<Published>>, Broke> {
    let mut results: Vec<Option<StoreResult<Published>>> = jobs.iter().map(|_| None).collect();
    let mut todo: Vec<usize> = (0..jobs.len()).collect();
    let mut filtered = false;
    if warm && jobs.iter().all(|j| j.key.is_none()) {
        match alone(conn, jobs, &mut results, &mut todo, (turn, sharing), handoff).await? {
            Alone::Answered => return Ok(answered(results)),
            Alone::Filtered => filtered = true,
            Alone::Failed => {}
        }
    }
    // The ids this way draws would read, to the next batch run alone, as another writer's.
    sharing.forget();
    let failed = loop {
        let all: Vec<&Job> = todo.iter().map(|&i| &jobs[i]).collect();
        let mut tx = conn.begin().await?;
        match batch::store(&mut tx, &all, turn, filtered).await {
            Ok(published) => {
                tx.commit().await.map_err(Broke::at_commit)?;
                for (&i, p) in todo.iter().zip(published) {
                    results[i] = Some(Ok(p));
                }
                return Ok(answered(results));
            }
            Err(refused) => {
                tx.rollback().await?;
                let refusals = match refused.refusals() {
                    Ok(refusals) => refusals,
                    Err(e) => break e,
                };
                for (n, error) in refusals {
                    results[todo[n]] = Some(Err(error));
                }
                todo.retain(|&i| results[i].is_none());
                if todo.is_empty() {
                    return Ok(answered(results));
                }
            }
        }
    };
    if todo.len() == 1 {
        results[todo[0]] = Some(Err(StoreError::from(failed)));
        return Ok(answered(results));
    }
    turn.pass();
    tracing::warn!(error = ?failed, jobs = todo.len(), "a publish failed; running its batch again job by job");
    let mut tx = conn.begin().await?;
    for &i in &todo {
        // A race (`BatchError::Raced`) runs the job again; its next statement's snapshot
        // sees what changed.
        let result = loop {
            let mut savepoint = tx.begin().await?;
            match batch::store(&mut savepoint, &[&jobs[i]], &mut Turn::default(), filtered).await {
                Ok(mut published) => {
                    savepoint.commit().await?;
                    break Ok(published.remove(0));
                }
                Err(BatchError::Raced) => savepoint.rollback().await?,
                Err(e) => {
                    savepoint.rollback().await?;
                    break Err(match e.refusals() {
                        Ok(refusals) => refusals
                            .into_iter()
                            .next()
                            .map(|(_, error)| error)
                            .expect("a refusal names its job"),
                        Err(e) => StoreError::from(e),
                    });
                }
            }
        };
        results[i] = Some(result);
    }
    tx.commit().await.map_err(Broke::at_commit)?;
    Ok(answered(results))
}

/// Runs the batch without a transaction: `batch::store_unfiltered`'s one statement commits
/// as it ends, waiting for its flush, so the batch is one round trip; or, while `sharing`
/// says another node publishes to this runner's webhooks, without waiting, and `flush`
/// follows. Its refusals write nothing (the batch runs again without the refused jobs) and
/// a race aborts it (the batch runs again). Whether every job is answered; if not, the jobs
/// left in `todo` go the transactional way. Jobs with an idempotency key never come here:
/// their key is locked and looked up first, in the batch's transaction.
///
/// A connection lost while the statement ran leaves its outcome unknown, as at COMMIT.
async fn alone(
    conn: &mut PgConnection,
    jobs: &[Job],
    results: &mut [Option<StoreResult<Published>>],
    todo: &mut Vec<usize>,
    (turn, sharing): (&mut Turn, &mut Sharing),
    handoff: Option<&Handoff>,
) -> Result<Alone, Broke> {
    loop {
        let all: Vec<&Job> = todo.iter().map(|&i| &jobs[i]).collect();
        let commit = if sharing.shared(Instant::now()) {
            batch::Commit::AloneUnflushed
        } else {
            batch::Commit::AloneFlushed
        };
        let stored = batch::store_unfiltered(conn, &all, commit, handoff).await;
        turn.pass();
        match stored {
            Ok(Some(stored)) => {
                if commit == batch::Commit::AloneUnflushed {
                    flush(conn).await.map_err(Broke::at_commit)?;
                }
                sharing.saw(&stored.spans, Instant::now());
                if let (Some(h), Some((offer, handed))) = (handoff, stored.handed) {
                    h.put(&offer, handed);
                }
                for (&i, p) in todo.iter().zip(stored.published) {
                    results[i] = Some(Ok(p));
                }
                return Ok(Alone::Answered);
            }
            Ok(None) => return Ok(Alone::Filtered),
            Err(BatchError::Sql(e)) if rolled_back(&e) => return Ok(Alone::Failed),
            Err(BatchError::Sql(e)) => return Err(Broke::at_commit(e)),
            Err(refused) => {
                for (n, error) in refused.refusals().map_err(Broke::at_commit)? {
                    results[todo[n]] = Some(Err(error));
                }
                todo.retain(|&i| results[i].is_none());
                if todo.is_empty() {
                    return Ok(Alone::Answered);
                }
            }
        }
    }
}

/// Waits until the WAL is flushed past everything this connection committed so far: a
/// transaction of its own that writes one small WAL record (a transactional logical message,
/// which logical decoders that do not know the `hookd` prefix skip), so that its commit,
/// with the session's `synchronous_commit`, waits for the flush. WAL is flushed in order, so
/// this covers the commit before it.
///
/// It must write WAL: PostgreSQL commits a transaction that wrote none asynchronously even
/// when it holds a transaction id, so `SELECT pg_current_xact_id()` returned before the
/// flush, and a crash could lose a batch already answered and sent (found by
/// `tests/pg_restart.rs` in CI; see the store test `flush_waits_for_the_commit_before_it`).
pub(super) async fn flush(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_logical_emit_message(true, 'hookd', '')")
        .execute(conn)
        .await
        .map(drop)
}

/// How far `alone` got.
enum Alone {
    /// Every job is answered.
    Answered,
    /// A matched webhook has a filter (nothing written): the long way, in a transaction.
    Filtered,
    /// The statement failed and wrote nothing: the transactional way, which answers each
    /// job (one by one if need be).
    Failed,
}

/// Whether the server answered a statement with an error that aborted it (so a statement
/// run alone committed nothing), rather than dropping the connection or shutting down.
fn rolled_back(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    let aborted = (d.try_downcast_ref::<PgDatabaseError>()).is_some_and(|p| matches!(p.severity(), PgSeverity::Error));
    aborted && !StoreError::is_connection_lost(e)
}

/// The batch's answers, one per job, once every job has one.
fn answered(results: Vec<Option<StoreResult<Published>>>) -> Vec<StoreResult<Published>> {
    results.into_iter().map(|r| r.expect("every job answered")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue holding `held`, and a ready task that queues 100 once it runs.
    fn queue_with(held: &[u32]) -> (mpsc::Receiver<u32>, Vec<u32>) {
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        for &n in held {
            tx.try_send(n).unwrap();
        }
        tokio::spawn(async move { tx.send(100).await.unwrap() });
        (rx, Vec::new())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_queue_takes_what_ready_tasks_queue_and_a_lone_publish_goes_at_once() {
        let (mut rx, mut queued) = queue_with(&[1, 2]);
        rx.recv_many(&mut queued, MAX_BATCH).await;
        gather_more(&mut rx, &mut queued).await;
        assert_eq!(queued, vec![1, 2, 100]);

        let (mut rx, mut queued) = queue_with(&[1]);
        rx.recv_many(&mut queued, MAX_BATCH).await;
        gather_more(&mut rx, &mut queued).await;
        assert_eq!(queued, vec![1], "one publish waits for nothing");
    }
}
