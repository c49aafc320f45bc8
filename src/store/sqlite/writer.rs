//! The hot write path of the SQLite store: one thread owns a write connection and runs
//! queued writes (publish, record) in batches, one transaction per batch (group commit).
//! No caller gets its answer before the batch is on disk: `syncer` fsyncs the WAL after
//! the commit and answers then, while this thread already runs the next batch.
//!
//! A job that fails is undone alone: the batch then rolls back and runs again with each job
//! in its own savepoint. Jobs rarely fail (a full disk, a bug), so the common path pays for
//! no savepoints, whose page copies cost about a fifth of the writer's time.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::leases::Leases;
use super::syncer::Syncer;
use super::writes::{self, CreateClaimedJob, PublishJob};
use crate::domain::DeliveryId;
use crate::store::{ClaimedDelivery, DeliveryUpdate, Published, StoreError, StoreResult};

/// Most jobs in one transaction.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<StoreResult<T>>;

enum Job {
    Publish(PublishJob, Reply<Published>),
    Record(Vec<DeliveryUpdate>, Reply<()>),
    CreateClaimed(CreateClaimedJob, Reply<Option<ClaimedDelivery>>),
}

/// What a job produced, kept until the batch's fate is known.
enum Output {
    Published(Published),
    Recorded,
    Created(Option<ClaimedDelivery>),
}

impl Output {
    /// The payload `webhook.test` made and held; to let go if the batch does not commit.
    fn held(&self) -> Option<DeliveryId> {
        match self {
            Output::Created(Some(d)) => Some(d.id),
            _ => None,
        }
    }
}

impl Job {
    fn run(&self, c: &Connection, leases: &Leases) -> rusqlite::Result<Output> {
        match self {
            Job::Publish(j, _) => writes::publish(c, j).map(Output::Published),
            Job::Record(u, _) => writes::record(c, u).map(|()| Output::Recorded),
            Job::CreateClaimed(j, _) => writes::create_claimed(c, j, leases).map(Output::Created),
        }
    }

    fn answer(self, result: StoreResult<Output>) {
        match (self, result) {
            (Job::Publish(_, r), Ok(Output::Published(p))) => send(r, Ok(p)),
            (Job::Record(_, r), Ok(Output::Recorded)) => send(r, Ok(())),
            (Job::CreateClaimed(_, r), Ok(Output::Created(d))) => send(r, Ok(d)),
            (job, Err(e)) => job.fail(e),
            (job, Ok(_)) => job.fail(StoreError::WriterGone),
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            Job::Publish(_, r) => send(r, Err(e)),
            Job::Record(_, r) => send(r, Err(e)),
            Job::CreateClaimed(_, r) => send(r, Err(e)),
        }
    }
}

fn send<T>(reply: Reply<T>, result: StoreResult<T>) {
    let _ = reply.send(result);
}

pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the write connection at `path` and starts the writer thread. `leases` is
    /// where `webhook.test` payloads are held before their insert commits.
    pub fn start(path: &str, leases: Arc<Leases>) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // NORMAL: a commit does not fsync; the syncer does, before anyone is answered.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let syncer = Syncer::start(path).map_err(|_| StoreError::WriterGone)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, rx) = mpsc::channel();
        thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || serve(conn, rx, &leases, &syncer))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Self { jobs })
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub async fn publish(&self, job: PublishJob) -> StoreResult<Published> {
        self.submit(|r| Job::Publish(job, r)).await
    }

    pub async fn record(&self, updates: Vec<DeliveryUpdate>) -> StoreResult<()> {
        self.submit(|r| Job::Record(updates, r)).await
    }

    pub async fn create_claimed(&self, job: CreateClaimedJob) -> StoreResult<Option<ClaimedDelivery>> {
        self.submit(|r| Job::CreateClaimed(job, r)).await
    }
}

fn serve(conn: Connection, rx: mpsc::Receiver<Job>, leases: &Leases, syncer: &Syncer) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, leases, syncer);
    }
}

fn run_batch(conn: &Connection, batch: Vec<Job>, leases: &Leases, syncer: &Syncer) {
    let outputs = match begin(conn).and_then(|()| run_jobs(conn, &batch, leases)) {
        Ok(outputs) => outputs,
        Err(e) => {
            let e = Arc::new(e);
            batch
                .into_iter()
                .for_each(|job| job.fail(StoreError::CommitFailed(e.clone())));
            return;
        }
    };
    let commit_error = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .err()
        .map(Arc::new);
    if let Some(e) = commit_error {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = ?e, "SQLite write batch failed to commit");
        leases.release(outputs.iter().filter_map(|o| o.as_ref().ok()?.held()));
        batch
            .into_iter()
            .for_each(|job| job.fail(StoreError::CommitFailed(e.clone())));
        return;
    }
    syncer.after_sync(Box::new(move |synced| match synced {
        Ok(()) => {
            for (job, output) in batch.into_iter().zip(outputs) {
                job.answer(output);
            }
        }
        Err(e) => batch
            .into_iter()
            .for_each(|job| job.fail(StoreError::SyncFailed(e.clone()))),
    }));
}

fn begin(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]).map(drop)
}

/// Runs the jobs in the open transaction, all together; if one fails, rolls back and runs
/// them again each in its own savepoint. Errs only when the transaction itself broke.
fn run_jobs(conn: &Connection, batch: &[Job], leases: &Leases) -> rusqlite::Result<Vec<StoreResult<Output>>> {
    let mut outputs = Vec::with_capacity(batch.len());
    for job in batch {
        match job.run(conn, leases) {
            Ok(output) => outputs.push(Ok(output)),
            Err(e) => {
                tracing::warn!(error = ?e, "a write failed; running its batch again job by job");
                leases.release(
                    outputs
                        .iter()
                        .filter_map(|o: &StoreResult<Output>| o.as_ref().ok()?.held()),
                );
                conn.execute_batch("ROLLBACK")?;
                begin(conn)?;
                return Ok(batch
                    .iter()
                    .map(|job| in_savepoint(conn, |c| job.run(c, leases)))
                    .collect());
            }
        }
    }
    Ok(outputs)
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e.into())
        }
    }
}
