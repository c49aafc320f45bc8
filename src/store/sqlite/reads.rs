//! The read connections of the SQLite store: a small pool of read-only rusqlite
//! connections. A read in WAL mode never waits for the writer. The point lookups every API
//! call makes (authentication, a merchant, a webhook) take microseconds and run in place on
//! the calling thread; every other read (lists, the delivery log, the dispatcher's queue
//! scan and claims) runs on tokio's blocking pool, so a slow one never holds up an async
//! worker thread. Those wait for one of `OFF_THREAD` permits first: a burst of claims then
//! waits without blocking a thread and leaves connections to the point lookups. More would
//! not read faster on a small machine but would cost memory: every thread that allocates
//! (the claims read payload bodies) gets a malloc arena of its own; the bench's backlog
//! drain peaked about 25 MB higher with three than with one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

/// How many reads may run on the blocking pool at once.
const OFF_THREAD: usize = 2;

pub struct Readers {
    free: Mutex<Vec<Connection>>,
    returned: Condvar,
    off_thread: Semaphore,
}

/// A connection taken from the pool; it goes back when dropped (even if the read panics).
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

impl Readers {
    /// Opens `n` read-only connections to the database at `path` (which must exist); `n`
    /// should exceed `OFF_THREAD`, so point lookups find a free one.
    pub fn open(path: &str, n: usize) -> StoreResult<Self> {
        let conns = (0..n)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(32);
                Ok(c)
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self {
            free: Mutex::new(conns),
            returned: Condvar::new(),
            off_thread: Semaphore::new(OFF_THREAD.min(n)),
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

    /// Runs `f` on a connection, on the blocking pool.
    pub async fn off_thread<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _permit = self.off_thread.acquire().await.expect("the semaphore is never closed");
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(StoreError::ReadAborted)?
    }
}
