//! What can go wrong in the store, in its own terms: the rest of hookd matches on these,
//! never on a driver's error. The one idea: a storage failure (a full disk, a failed fsync,
//! a batch that would not commit) is named as such, whatever the backend, so it can be told
//! from a bad request and reported (`/readyz`, see `health`); the driver's error stays the
//! cause.

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("unsupported database url '{0}' (expected sqlite://… or postgres://…)")]
    UnsupportedUrl(String),
    /// A PostgreSQL error (connection, query) other than the storage failures below.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A SQLite error other than the storage failures below.
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
    /// A PostgreSQL failure shared by every publish of one group commit (its connection, its
    /// BEGIN or its COMMIT failed, so none of them can be told apart).
    #[error("the publish batch could not be committed")]
    BatchFailed(#[source] Arc<sqlx::Error>),
    /// A read asked about more rows by id than it takes in one statement (a caller's bug).
    #[error("{given} ids given where at most {max} are taken")]
    TooManyIds { given: usize, max: usize },
    /// A publish matched webhooks whose filters its request did not judge (these): nothing
    /// was stored; judge them and publish again (see `filter::Verdicts`).
    #[error("the publish needs the verdicts of {} more filter(s)", .0.len())]
    FiltersUnjudged(Vec<Arc<str>>),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("the database readers have stopped")]
    ReaderGone,
    #[error("the write batch could not be committed")]
    CommitFailed(#[source] Arc<rusqlite::Error>),
    /// The disk (or the database server's) is full: SQLITE_FULL, ENOSPC, SQLSTATE 53100.
    #[error("the database storage is full")]
    StorageFull(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Committed, but the fsync that would make it durable failed: not acknowledged.
    #[error("the write batch could not be made durable (fsync failed)")]
    SyncFailed(#[source] Arc<std::io::Error>),
    /// `ping` while the last write failed for want of storage (see `health`).
    #[error("the last write to the database failed")]
    WritesFailing(#[source] Arc<StoreError>),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the SQLite schema is at version {found}, newer than this hookd knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("migration {version} recorded by the old migrator {why}")]
    AdoptionRefused { version: i64, why: &'static str },
}

impl StoreError {
    /// Whether this failure says the storage itself cannot take writes now (so the store
    /// reports itself unready until a write succeeds again), not that one request was bad.
    pub fn is_storage_failure(&self) -> bool {
        self.storage_failure().is_some()
    }

    /// A copy of this error if it is a storage failure (their causes are shared).
    pub fn storage_failure(&self) -> Option<StoreError> {
        match self {
            StoreError::StorageFull(e) => Some(StoreError::StorageFull(e.clone())),
            StoreError::SyncFailed(e) => Some(StoreError::SyncFailed(e.clone())),
            StoreError::CommitFailed(e) => Some(StoreError::CommitFailed(e.clone())),
            StoreError::WritesFailing(cause) => cause.storage_failure(),
            _ => None,
        }
    }

    /// A failure of a PostgreSQL group commit, shared by its jobs: a full disk is named as such.
    pub fn from_batch(e: Arc<sqlx::Error>) -> Self {
        match &*e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(SQLSTATE_DISK_FULL) => StoreError::StorageFull(e),
            _ => StoreError::BatchFailed(e),
        }
    }

    /// An fsync failure: a full disk is named as such.
    pub fn from_sync(e: Arc<std::io::Error>) -> Self {
        if is_enospc(&e) {
            StoreError::StorageFull(e)
        } else {
            StoreError::SyncFailed(e)
        }
    }

    /// A failed COMMIT (or BEGIN) of a SQLite write batch, shared by the batch's jobs.
    pub fn from_commit(e: Arc<rusqlite::Error>) -> Self {
        if sqlite_full(&e) {
            StoreError::StorageFull(e)
        } else {
            StoreError::CommitFailed(e)
        }
    }
}

fn is_enospc(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn sqlite_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if sqlite_full(&e) {
            StoreError::StorageFull(Arc::new(e))
        } else {
            StoreError::Sqlite(e)
        }
    }
}

/// PostgreSQL's `disk_full` condition.
const SQLSTATE_DISK_FULL: &str = "53100";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(SQLSTATE_DISK_FULL) => {
                StoreError::StorageFull(Arc::new(e))
            }
            _ => StoreError::Database(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn a_full_disk_is_named_whichever_backend_says_so() {
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(matches!(StoreError::from(full), StoreError::StorageFull(_)));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(matches!(StoreError::from(busy), StoreError::Sqlite(_)));

        let enospc = Arc::new(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(StoreError::from_sync(enospc), StoreError::StorageFull(_)));
        let eio = Arc::new(std::io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(StoreError::from_sync(eio), StoreError::SyncFailed(_)));

        let commit = Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert!(matches!(StoreError::from_commit(commit), StoreError::StorageFull(_)));
        let commit = Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        ));
        assert!(matches!(StoreError::from_commit(commit), StoreError::CommitFailed(_)));

        assert!(matches!(
            StoreError::from(pg_error("53100")),
            StoreError::StorageFull(_)
        ));
        assert!(matches!(StoreError::from(pg_error("23505")), StoreError::Database(_)));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Database(_)
        ));
    }

    #[test]
    fn only_storage_failures_make_the_store_unready() {
        let full = StoreError::from_sync(Arc::new(std::io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(full.is_storage_failure());
        assert!(StoreError::from_sync(Arc::new(std::io::Error::other("x"))).is_storage_failure());
        assert!(!StoreError::Conflict("user").is_storage_failure());
        assert!(!StoreError::from(pg_error("23505")).is_storage_failure());
    }

    /// A PostgreSQL error with this SQLSTATE, as sqlx would report it.
    fn pg_error(code: &'static str) -> sqlx::Error {
        #[derive(Debug)]
        struct Pg(&'static str);
        impl std::fmt::Display for Pg {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "SQLSTATE {}", self.0)
            }
        }
        impl std::error::Error for Pg {}
        impl sqlx::error::DatabaseError for Pg {
            fn message(&self) -> &str {
                "a test error"
            }
            fn code(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Borrowed(self.0))
            }
            fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> sqlx::error::ErrorKind {
                sqlx::error::ErrorKind::Other
            }
        }
        sqlx::Error::Database(Box::new(Pg(code)))
    }
}
