//! The hot write path of the SQLite store: one thread owns a write connection and runs
//! queued writes (publish, claim, record) in batches, one transaction and one fsync per
//! batch (group commit). Each job runs in its own savepoint, so a failing job is undone
//! alone; no caller gets its answer before the batch's commit has returned, so an
//! acknowledged write is durable (WAL, synchronous=FULL).

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::writes::{self, ClaimJob, CreateClaimedJob, PublishJob};
use crate::store::{ClaimedDelivery, DeliveryUpdate, Published, StoreError, StoreResult};

/// Most jobs in one transaction.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<StoreResult<T>>;

enum Job {
    Publish(PublishJob, Reply<Published>),
    Claim(ClaimJob, Reply<Vec<ClaimedDelivery>>),
    Record(Vec<DeliveryUpdate>, Reply<()>),
    CreateClaimed(CreateClaimedJob, Reply<Option<ClaimedDelivery>>),
}

/// Sends the answer once the batch's fate is known (the commit error, if any).
type Finish = Box<dyn FnOnce(Option<&Arc<rusqlite::Error>>) + Send>;

pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the write connection at `path` and starts the writer thread.
    pub fn start(path: &str) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, rx) = mpsc::channel();
        thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || serve(conn, rx))
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

    pub async fn claim(&self, job: ClaimJob) -> StoreResult<Vec<ClaimedDelivery>> {
        self.submit(|r| Job::Claim(job, r)).await
    }

    pub async fn record(&self, updates: Vec<DeliveryUpdate>) -> StoreResult<()> {
        self.submit(|r| Job::Record(updates, r)).await
    }

    pub async fn create_claimed(&self, job: CreateClaimedJob) -> StoreResult<Option<ClaimedDelivery>> {
        self.submit(|r| Job::CreateClaimed(job, r)).await
    }
}

fn serve(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
}

fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut s| s.execute([])) {
        let e = Arc::new(e);
        for job in batch {
            match job {
                Job::Publish(_, r) => fail(r, &e),
                Job::Claim(_, r) => fail(r, &e),
                Job::Record(_, r) => fail(r, &e),
                Job::CreateClaimed(_, r) => fail(r, &e),
            }
        }
        return;
    }
    let finishers: Vec<Finish> = batch.into_iter().map(|job| execute(conn, job)).collect();
    let commit_error = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .err()
        .map(Arc::new);
    if commit_error.is_some() {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = ?commit_error, "SQLite write batch failed to commit");
    }
    for f in finishers {
        f(commit_error.as_ref());
    }
}

/// Runs one job in its own savepoint and returns how to answer it after the commit.
fn execute(conn: &Connection, job: Job) -> Finish {
    match job {
        Job::Publish(j, reply) => answer(reply, in_savepoint(conn, |c| writes::publish(c, &j))),
        Job::Claim(j, reply) => answer(reply, in_savepoint(conn, |c| writes::claim(c, &j))),
        Job::Record(u, reply) => answer(reply, in_savepoint(conn, |c| writes::record(c, &u))),
        Job::CreateClaimed(j, reply) => answer(reply, in_savepoint(conn, |c| writes::create_claimed(c, &j))),
    }
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

fn answer<T: Send + 'static>(reply: Reply<T>, result: StoreResult<T>) -> Finish {
    Box::new(move |commit_error| {
        let _ = reply.send(match commit_error {
            Some(e) => Err(StoreError::CommitFailed(e.clone())),
            None => result,
        });
    })
}

/// For a batch that could not even begin.
fn fail<T>(reply: Reply<T>, e: &Arc<rusqlite::Error>) {
    let _ = reply.send(Err(StoreError::CommitFailed(e.clone())));
}
