//! Makes the writer's commits durable without making the writer wait for the disk.
//!
//! The write connection runs with `synchronous = NORMAL`: a commit writes its frames to the
//! WAL file and returns, without an fsync. The writer hands the batch's answers here and
//! goes on with the next batch; this thread fsyncs the WAL file and only then answers. An
//! fsync makes durable everything written to the file before it began, so one fsync covers
//! every batch that committed before it: the commits of the next batches overlap with the
//! disk flush of the last ones, and no caller hears "done" before its data is on disk.
//!
//! Other connections (readers, the dispatcher's claims) may see a batch a moment before it
//! is durable; if the machine lost power in that moment, a payload might be sent whose
//! publish was never acknowledged, which the publisher's retry turns into an at-least-once
//! duplicate, never a loss.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread;

/// Answers a batch's callers: with `Ok` once the batch is durable.
pub type Answer = Box<dyn FnOnce(Result<(), Arc<io::Error>>) + Send>;

pub struct Syncer {
    batches: mpsc::Sender<Answer>,
    /// Test-only fault hook: how many of the next fsyncs are to fail.
    #[cfg(test)]
    pub faults: Arc<std::sync::atomic::AtomicUsize>,
}

impl Syncer {
    /// Starts the thread that syncs the WAL of the database at `db_path`.
    pub fn start(db_path: &str) -> io::Result<Self> {
        let (batches, rx) = mpsc::channel::<Answer>();
        let files = Files {
            wal: PathBuf::from(format!("{db_path}-wal")),
            db: PathBuf::from(db_path),
            #[cfg(test)]
            faults: Default::default(),
        };
        #[cfg(test)]
        let faults = files.faults.clone();
        thread::Builder::new()
            .name("hookd-sqlite-sync".into())
            .spawn(move || serve(&files, rx))?;
        Ok(Self {
            batches,
            #[cfg(test)]
            faults,
        })
    }

    /// Queues a committed batch's answers; they run after the next fsync.
    pub fn after_sync(&self, answer: Answer) {
        if let Err(mpsc::SendError(answer)) = self.batches.send(answer) {
            answer(Err(Arc::new(io::Error::other("the sync thread has stopped"))));
        }
    }
}

struct Files {
    wal: PathBuf,
    db: PathBuf,
    #[cfg(test)]
    faults: Arc<std::sync::atomic::AtomicUsize>,
}

impl Files {
    /// fsyncs the WAL (opened anew each time, so a recreated file is never missed); with no
    /// WAL file, everything is in the database file, which is synced instead.
    fn sync(&self) -> io::Result<()> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let take = |n: usize| n.checked_sub(1);
            if self
                .faults
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                .is_ok()
            {
                return Err(io::Error::other("fsync failed (injected by a test)"));
            }
        }
        match File::open(&self.wal) {
            Ok(wal) => wal.sync_data(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => File::open(&self.db)?.sync_data(),
            Err(e) => Err(e),
        }
    }
}

fn serve(files: &Files, rx: mpsc::Receiver<Answer>) {
    while let Ok(first) = rx.recv() {
        // Everything queued so far committed before this fsync starts: one covers them all.
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = files.sync().map_err(Arc::new);
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync of the SQLite WAL failed");
        }
        for answer in waiting {
            answer(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_come_after_a_sync_and_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"data").unwrap();
        let syncer = Syncer::start(db.to_str().unwrap()).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            syncer.after_sync(Box::new(move |r| tx.send((i, r.is_ok())).unwrap()));
        }
        let mut got: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, vec![(0, true), (1, true), (2, true)]);

        let gone = Syncer::start(dir.path().join("missing.db").to_str().unwrap()).unwrap();
        let tx2 = tx.clone();
        gone.after_sync(Box::new(move |r| tx2.send((9, r.is_ok())).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (9, false));
    }
}
