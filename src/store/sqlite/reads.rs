//! The read connections of the SQLite store, all read-only (a read in WAL mode never waits
//! for the writer). The point lookups every API call makes (authentication, a merchant, a
//! webhook) take microseconds and run in place on the calling thread, on a small pool of
//! connections. Every other read (lists, the delivery log, the dispatcher's queue scan and
//! claims) is handed to a few reader threads of our own, each owning a connection, so a slow
//! one never holds up an async worker thread.
//!
//! Why threads of our own rather than tokio's blocking pool: that pool starts a new thread
//! whenever none is idle at the moment of the call, and every thread that allocates (the
//! claims read payload bodies) gets a malloc arena of its own; draining a backlog through it
//! peaked at 90–150 MB where a fixed pair of threads stays near what in-place reads used.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// A read handed to the reader threads.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub struct Readers {
    free: Mutex<Vec<Connection>>,
    returned: Condvar,
    jobs: mpsc::Sender<ReadJob>,
}

/// A connection taken from the in-place pool; it goes back when dropped (even if the read
/// panics).
struct Taken<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.lock().push(conn);
            self.readers.returned.notify_one();
        }
    }
}

fn open_read_only(path: &str) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

impl Readers {
    /// Opens `in_place` connections for point lookups and starts `threads` reader threads
    /// with a connection each, on the database at `path` (which must exist).
    pub fn open(path: &str, in_place: usize, threads: usize) -> StoreResult<Self> {
        let conns = (0..in_place.max(1))
            .map(|_| open_read_only(path))
            .collect::<rusqlite::Result<_>>()?;
        let (jobs, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let (conn, rx) = (open_read_only(path)?, rx.clone());
            thread::Builder::new()
                .name("hookd-sqlite-read".into())
                .spawn(move || serve(&conn, &rx))
                .map_err(|_| StoreError::ReaderGone)?;
        }
        Ok(Self {
            free: Mutex::new(conns),
            returned: Condvar::new(),
            jobs,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in place on a free connection (waiting for one if all are busy).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut free = self.lock();
        let conn = loop {
            match free.pop() {
                Some(conn) => break conn,
                None => free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner()),
            }
        };
        drop(free);
        let taken = Taken {
            readers: self,
            conn: Some(conn),
        };
        f(taken.conn.as_ref().expect("taken"))
    }

    /// Runs `f` on a reader thread; the caller awaits the answer without blocking.
    pub async fn off_thread<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |c| {
            let _ = answer.send(f(c));
        });
        self.jobs.send(job).map_err(|_| StoreError::ReaderGone)?;
        rx.await.map_err(|_| StoreError::ReaderGone)?
    }
}

/// Runs `f` in one read transaction (one snapshot of the database, and one pair of read
/// locks rather than one per statement). The transaction ends whether `f` fails, or even
/// panics (the connection is used again, and an open read would keep the WAL from being
/// checkpointed).
pub fn in_snapshot<T>(c: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    struct Ends<'a>(&'a Connection);
    impl Drop for Ends<'_> {
        fn drop(&mut self) {
            if !self.0.is_autocommit() {
                // Ending a read cannot fail for want of anything; should it, the next
                // BEGIN reports it.
                let _ = self.0.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
            }
        }
    }
    c.prepare_cached("BEGIN")?.execute([])?;
    let _ends = Ends(c);
    f(c)
}

/// A reader thread: runs the queued reads on its connection until the store is dropped. A
/// read that panics loses only its own answer.
fn serve(conn: &Connection, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if catch_unwind(AssertUnwindSafe(|| job(conn))).is_err() {
            tracing::error!("a SQLite read panicked");
        }
    }
}
