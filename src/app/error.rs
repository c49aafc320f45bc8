//! What can go wrong in an operation, in domain terms. `rpc::error` maps each to a code.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad credentials, no credentials, or a role that may not do this (code 2).
    #[error("access denied")]
    AccessDenied,
    /// Refused before the key was checked: too many logins at once, or too many failures
    /// lately; the text says which and when to retry (also code 2).
    #[error("access denied: {0}")]
    Throttled(String),
    /// A role that may not do this, with the reason to show (code 2).
    #[error("access denied: {0}")]
    Forbidden(String),
    /// Unknown or expired session id (code 5).
    #[error("session expired")]
    SessionExpired,
    /// The data given is invalid; the text says exactly what (code 101).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The webhook cannot be created for a reason other than its data (code 106).
    #[error("webhook not created: {0}")]
    NotCreated(String),
    /// Nothing matched, or a bad status (code 100).
    #[error("status not changed: {0}")]
    StatusNotChanged(String),
    /// The message does not match its topic's schema; the text names the first failing
    /// path (code 113).
    #[error("message does not match the schema: {0}")]
    SchemaMismatch(String),
    /// No such webhook for this caller (code 103).
    #[error("webhook does not exist")]
    WebhookNotFound,
    /// No such delivery for this caller (code 107).
    #[error("delivery does not exist")]
    DeliveryNotFound,
    /// The delivery cannot be retried in its state (code 108).
    #[error("delivery not retried: {0}")]
    NotRetried(String),
    /// The webhook has as many attempts in flight as it may, for too long (code 109).
    #[error("webhook busy")]
    Busy,
    /// `webhook.recover` already queued as many of the webhook's payloads again as it may
    /// this minute; the text says how many remain and when to retry (also code 109).
    #[error("webhook busy: {0}")]
    RecoverLimited(String),
    /// The merchant or user to create already exists; the text says which (code 110).
    #[error("already exists: {0}")]
    Exists(String),
    /// No merchant with this code (code 111).
    #[error("no such merchant: {0}")]
    NoSuchMerchant(String),
    /// No user with this name (code 112).
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The thread hashing a new API key failed (a bug; -32603).
    #[error("hashing a new API key failed")]
    KeyHashing(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a failed operation is the storage's fault, when it is (a client may try again later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageProblem {
    /// The disk (or the database server's) is full.
    Full,
    /// Writes fail otherwise (a failed fsync or commit).
    Failing,
}

impl AppError {
    pub fn storage_problem(&self) -> Option<StorageProblem> {
        match self {
            AppError::Store(e) => match e.storage_failure()? {
                StoreError::StorageFull(_) => Some(StorageProblem::Full),
                _ => Some(StorageProblem::Failing),
            },
            _ => None,
        }
    }
}

/// Why a failed operation was cut short, when load or a lost database connection did it:
/// whether anything was stored decides how a client may retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// Refused for load: nothing was stored.
    Overloaded,
    /// The database could not be reached, or the connection broke before committing:
    /// nothing was stored.
    Unavailable,
    /// The connection broke while committing: stored or not, nobody can tell.
    OutcomeUnknown,
}

impl AppError {
    pub fn interruption(&self) -> Option<Interruption> {
        match self {
            // Filters that kept changing under a publish for every round it made (see
            // `store::publish_judged`): nothing was stored, and a retry is safe.
            AppError::Store(StoreError::Overloaded | StoreError::FiltersUnjudged(_) | StoreError::CatalogMoved) => {
                Some(Interruption::Overloaded)
            }
            AppError::Store(StoreError::Unavailable(_)) => Some(Interruption::Unavailable),
            AppError::Store(StoreError::OutcomeUnknown(_)) => Some(Interruption::OutcomeUnknown),
            _ => None,
        }
    }
}
