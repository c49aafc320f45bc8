//! Every write of the SQLite store: one thread owns the only write connection and runs
//! queued writes in batches, one transaction per batch (group commit). The hot writes
//! (publish, record) and the occasional ones (users, webhooks, retention, migrations) take
//! the same path, so they never queue on SQLite's file lock behind each other, and each is
//! durable before it answers: `syncer` fsyncs the WAL after the commit and answers then,
//! while this thread already runs the next batch.
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
use crate::domain::DeliveryId;
use crate::store::{StoreError, StoreResult, WriteHealth};

/// Most jobs in one transaction.
const MAX_BATCH: usize = 512;

/// One queued write, as the writer thread sees it (`Job` is the only kind).
trait Task: Send {
    /// Runs the write in the open transaction. It may run twice: if another job of the
    /// batch fails, the batch is rolled back (after `abandon`) and run again job by job.
    fn run(&mut self, c: &Connection, leases: &Leases) -> StoreResult<()>;
    /// Lets go of what the last `run` held in memory, since its writes were rolled back.
    fn abandon(&mut self, leases: &Leases);
    /// Answers the caller: with the output when `result` is Ok.
    fn answer(self: Box<Self>, result: StoreResult<()>);
}

/// A write and where its answer goes. `held` names the payloads a run holds in `leases`
/// before its insert commits (`webhook.test`'s payload, and those a publish hands to the
/// dispatcher, see `store::handoff`).
struct Job<T, F> {
    work: F,
    held: fn(&T) -> Vec<DeliveryId>,
    output: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Task for Job<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection, &Leases) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, c: &Connection, leases: &Leases) -> StoreResult<()> {
        self.output = Some((self.work)(c, leases)?);
        Ok(())
    }

    fn abandon(&mut self, leases: &Leases) {
        if let Some(ids) = self.output.take().as_ref().map(self.held).filter(|ids| !ids.is_empty()) {
            leases.release(ids);
        }
    }

    fn answer(self: Box<Self>, result: StoreResult<()>) {
        let Job { output, reply, .. } = *self;
        let _ = reply.send(result.and_then(|()| output.ok_or(StoreError::WriterGone)));
    }
}

pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Task>>,
    /// Jobs sent and not yet taken into a batch (the `hookd_db_waiting` gauge).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    #[cfg(test)]
    sync_faults: Arc<std::sync::atomic::AtomicUsize>,
}

impl Writer {
    /// Opens (creating if missing) the database at `path` and starts the writer thread.
    /// `leases` is where `webhook.test` payloads are held before their insert commits;
    /// `health` hears how each batch ended.
    pub fn start(path: &str, leases: Arc<Leases>, health: Arc<WriteHealth>) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // NORMAL: a commit does not fsync; the syncer does, before anyone is answered.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let syncer = Syncer::start(path).map_err(|_| StoreError::WriterGone)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, rx) = mpsc::channel();
        #[cfg(test)]
        let sync_faults = syncer.faults.clone();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let batches = Batches {
            conn,
            leases,
            syncer,
            health,
            queued: queued.clone(),
        };
        thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || batches.serve(rx))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Self {
            jobs,
            queued,
            #[cfg(test)]
            sync_faults,
        })
    }

    /// Runs `work` in a batch transaction; answers once it has committed and is durable.
    pub async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &Leases) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, |_| Vec::new()).await
    }

    /// As `write`, for a job that holds the payloads `held` names in `leases` while it runs.
    pub async fn write_holding<T, F>(&self, work: F, held: fn(&T) -> Vec<DeliveryId>) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &Leases) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, held).await
    }

    async fn submit<T, F>(&self, work: F, held: fn(&T) -> Vec<DeliveryId>) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &Leases) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work,
            held,
            output: None,
            reply,
        };
        self.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.jobs.send(Box::new(job)).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Test-only: the next `n` fsyncs fail, as a full or broken disk would make them.
    #[cfg(test)]
    pub fn fail_next_syncs(&self, n: usize) {
        self.sync_faults.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What the writer thread owns.
struct Batches {
    conn: Connection,
    leases: Arc<Leases>,
    syncer: Syncer,
    health: Arc<WriteHealth>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Writer {
    /// Jobs waiting for the writer thread.
    pub fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Batches {
    fn serve(self, rx: mpsc::Receiver<Box<dyn Task>>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // Saturating: a send that failed (writer gone) was counted but never taken.
            let taken = batch.len();
            let _ = (self.queued).fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| Some(n.saturating_sub(taken)),
            );
            self.run_batch(batch);
        }
    }

    fn run_batch(&self, mut batch: Vec<Box<dyn Task>>) {
        let conn = &self.conn;
        super::publish::PUBLISHED_IN_BATCH.set(0);
        let results = match begin(conn).and_then(|()| self.run_jobs(&mut batch)) {
            Ok(results) => results,
            Err(e) => return self.fail_batch(batch, Arc::new(e)),
        };
        let committed = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        if let Err(e) = committed {
            tracing::error!(error = ?e, "SQLite write batch failed to commit");
            return self.fail_batch(batch, Arc::new(e));
        }
        let published = super::publish::PUBLISHED_IN_BATCH.get();
        if published > 0 {
            crate::metrics::PUBLISH_BATCH.observe(published as f64);
        }
        // A job that failed for want of storage keeps the store unready even though the
        // rest of its batch committed.
        let storage_failure = results.iter().find_map(|r| r.as_ref().err()?.storage_failure());
        let health = self.health.clone();
        self.syncer.after_sync(Box::new(move |synced| {
            match (&synced, storage_failure) {
                (Err(e), _) => health.failed(Arc::new(StoreError::from_sync(e.clone()))),
                (Ok(()), Some(failure)) => health.failed(Arc::new(failure)),
                (Ok(()), None) => health.succeeded(),
            }
            for (job, result) in batch.into_iter().zip(results) {
                match &synced {
                    Ok(()) => job.answer(result),
                    Err(e) => job.answer(Err(StoreError::from_sync(e.clone()))),
                }
            }
        }));
    }

    /// Fails every job of a batch that did not commit, and lets go of what they held. The
    /// transaction, if still open, is rolled back so the next batch can begin.
    fn fail_batch(&self, batch: Vec<Box<dyn Task>>, e: Arc<rusqlite::Error>) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.health.failed(Arc::new(StoreError::from_commit(e.clone())));
        for mut job in batch {
            job.abandon(&self.leases);
            job.answer(Err(StoreError::from_commit(e.clone())));
        }
    }

    /// Runs the jobs in the open transaction, all together; if one fails, rolls back and runs
    /// them again each in its own savepoint. Errs only when the transaction itself broke.
    fn run_jobs(&self, batch: &mut [Box<dyn Task>]) -> rusqlite::Result<Vec<StoreResult<()>>> {
        let (conn, leases) = (&self.conn, &*self.leases);
        for i in 0..batch.len() {
            if let Err(e) = batch[i].run(conn, leases) {
                tracing::warn!(error = ?e, "a write failed; running its batch again job by job");
                batch[..i].iter_mut().for_each(|job| job.abandon(leases));
                conn.execute_batch("ROLLBACK")?;
                begin(conn)?;
                return batch
                    .iter_mut()
                    .map(|job| in_savepoint(conn, |c| job.run(c, leases)))
                    .collect();
            }
        }
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

fn begin(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]).map(drop)
}

/// Runs `f` in a savepoint, undone if `f` fails. Errs (outside) only when the savepoint
/// itself cannot be made or undone, which breaks the whole transaction.
fn in_savepoint(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<()>,
) -> rusqlite::Result<StoreResult<()>> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(()) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(Ok(()))
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Ok(Err(e))
        }
    }
}
