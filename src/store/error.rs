//! What can go wrong in the store, in its own terms: the rest of hookd matches on these,
//! never on a driver's error. The one idea: a storage failure (a full disk, a failed fsync,
//! a batch that would not commit) is named as such, whatever the backend, so it can be told
//! from a bad request and reported (`/readyz`, see `health`); the driver's error stays the
//! cause. Likewise a request refused for load, or cut off by a broken database connection,
//! says whether anything was stored (`Overloaded`, `Unavailable`: nothing; `OutcomeUnknown`:
//! the connection broke while COMMIT was in flight), so a client knows how to retry.

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
    /// Refused for load before anything was stored: the publish queue stayed full.
    #[error("the server is overloaded: nothing was stored")]
    Overloaded,
    /// No database connection could be had, or it broke before COMMIT was sent: nothing was
    /// stored.
    #[error("the database is unavailable: nothing was stored")]
    Unavailable(#[source] Arc<sqlx::Error>),
    /// The connection broke while COMMIT was in flight: the write may or may not be stored.
    #[error("the database connection broke while committing: the outcome is unknown")]
    OutcomeUnknown(#[source] Arc<sqlx::Error>),
    /// A read asked about more rows by id than it takes in one statement (a caller's bug).
    #[error("{given} ids given where at most {max} are taken")]
    TooManyIds { given: usize, max: usize },
    /// A publish matched webhooks whose filters its request did not judge (these): nothing
    /// was stored; judge them and publish again (see `filter::Verdicts`).
    #[error("the publish needs the verdicts of {} more filter(s)", .0.len())]
    FiltersUnjudged(Vec<Arc<str>>),
    /// The topic's catalog entry is no longer the version the message was checked against
    /// (`SchemaChecked`): nothing was stored; check the message again and publish again.
    #[error("the topic's catalog entry changed since the message was checked: nothing was stored")]
    CatalogMoved,
    /// The publish's caller was taken from memory (`KeyCheck`), and its user's stored key
    /// hash is no longer the one it was verified against: nothing was stored.
    #[error("the caller's API key is no longer valid: nothing was stored")]
    KeyRevoked,
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
    /// A stored secret that the configured keys do not open (see `sealing`).
    #[error(transparent)]
    Sealing(#[from] crate::sealing::OpenError),
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

    /// A failure of a PostgreSQL group commit, shared by its jobs: a full disk is named as
    /// such, and a lost connection by whether the COMMIT had been sent (`committing`).
    pub fn from_batch(e: Arc<sqlx::Error>, committing: bool) -> Self {
        match &*e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(SQLSTATE_DISK_FULL) => StoreError::StorageFull(e),
            lost if Self::is_connection_lost(lost) => {
                if committing {
                    StoreError::OutcomeUnknown(e)
                } else {
                    StoreError::Unavailable(e)
                }
            }
            _ => StoreError::BatchFailed(e),
        }
    }

    /// A failed PostgreSQL COMMIT outside the publisher: a lost connection leaves the
    /// outcome unknown; any other error means the transaction was rolled back.
    pub fn from_commit_pg(e: sqlx::Error) -> Self {
        if Self::is_connection_lost(&e) {
            StoreError::OutcomeUnknown(Arc::new(e))
        } else {
            StoreError::from(e)
        }
    }

    /// Whether the error says no connection could be had or the one in use broke (the
    /// server went away, terminated the backend, or cannot take connections now), rather
    /// than that a statement failed.
    pub fn is_connection_lost(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|code| {
                // Class 08: connection exception; 57P01-03: the server shut the backend
                // down or cannot take connections now; 53300: too many connections.
                code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
            }),
            _ => false,
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
            lost if Self::is_connection_lost(lost) => StoreError::Unavailable(Arc::new(e)),
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
    }

    #[test]
    fn a_lost_connection_says_whether_the_commit_was_sent() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(pg_error("57P01")),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(pg_error("08006")),
            StoreError::Unavailable(_)
        ));
        let reset = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            StoreError::from_batch(Arc::new(reset()), false),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from_batch(Arc::new(reset()), true),
            StoreError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            StoreError::from_commit_pg(reset()),
            StoreError::OutcomeUnknown(_)
        ));
        // A COMMIT the server refused (a deferred constraint) was rolled back: not unknown.
        assert!(matches!(
            StoreError::from_commit_pg(pg_error("23505")),
            StoreError::Database(_)
        ));
        assert!(matches!(
            StoreError::from_batch(Arc::new(pg_error("23505")), true),
            StoreError::BatchFailed(_)
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
