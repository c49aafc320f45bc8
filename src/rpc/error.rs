//! JSON-RPC error objects, and the one place where domain errors become codes.
//! Application error N travels as `-(32000 + N)` (CONTRACT.md §1).

use serde_json::{json, Value};

use crate::app::{AppError, Interruption, StorageProblem};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// Application error numbers (the seed's table plus the contract's auth errors).
pub mod app_code {
    pub const ACCESS_DENIED: i64 = 2;
    pub const INVALID_API_PATH: i64 = 3;
    pub const NOT_CALLABLE: i64 = 4;
    pub const SESSION_EXPIRED: i64 = 5;
    pub const PARAM_MISSING: i64 = 6;
    pub const STATUS_NOT_CHANGED: i64 = 100;
    pub const INVALID_DATA: i64 = 101;
    pub const CREATE_FAILED: i64 = 102;
    pub const WEBHOOK_NOT_FOUND: i64 = 103;
    pub const DELETE_FAILED: i64 = 104;
    pub const NOT_CREATED: i64 = 106;
    /// Extension: `delivery.info` / `delivery.retry` of an unknown delivery.
    pub const DELIVERY_NOT_FOUND: i64 = 107;
    /// Extension: `delivery.retry` of a delivery that has not failed.
    pub const NOT_RETRIED: i64 = 108;
    /// Extension: `webhook.test` found every slot of the webhook taken for too long.
    pub const BUSY: i64 = 109;
    /// §7.1: the merchant or user to create already exists.
    pub const EXISTS: i64 = 110;
    /// §7.1: no merchant with that code.
    pub const NO_SUCH_MERCHANT: i64 = 111;
    /// §7.1: no user with that name.
    pub const NO_SUCH_USER: i64 = 112;
    /// CONTRACT §7: `event.publish` of a message its topic's schema refuses.
    pub const SCHEMA_MISMATCH: i64 = 113;
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// Details for the standard errors, whose message is the fixed JSON-RPC text.
    pub data: Option<String>,
}

impl RpcError {
    pub(crate) fn standard(code: i64, message: &str, detail: impl Into<String>) -> Self {
        Self {
            code,
            message: message.to_string(),
            data: Some(detail.into()),
        }
    }

    pub fn parse_error(detail: impl Into<String>) -> Self {
        Self::standard(PARSE_ERROR, "Parse error", detail)
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::standard(INVALID_REQUEST, "Invalid Request", detail)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::standard(
            METHOD_NOT_FOUND,
            "Method not found",
            format!(
                "unknown method '{}'; the methods are 'login', 'call', 'rpc.discover' and each resource method \
                 that rpc.discover lists (such as 'webhook.list')",
                super::params::clip(method)
            ),
        )
    }

    pub fn invalid_params(detail: impl Into<String>) -> Self {
        Self::standard(INVALID_PARAMS, "Invalid params", detail)
    }

    pub fn internal() -> Self {
        Self {
            code: INTERNAL_ERROR,
            message: "Internal error".into(),
            data: None,
        }
    }

    /// Application error `n` with its message.
    pub fn app(n: i64, message: impl Into<String>) -> Self {
        Self {
            code: -(32000 + n),
            message: message.into(),
            data: None,
        }
    }

    pub fn access_denied(detail: &str) -> Self {
        Self::app(app_code::ACCESS_DENIED, with_detail(message::ACCESS_DENIED, detail))
    }

    /// Error 101: the data given is invalid, and `detail` says how.
    pub fn invalid_data(detail: &str) -> Self {
        Self::app(app_code::INVALID_DATA, with_detail(message::INVALID_DATA, detail))
    }

    /// Error 100: `webhook.update_status` changed nothing, and `detail` says why.
    pub fn status_not_changed(detail: &str) -> Self {
        Self::app(
            app_code::STATUS_NOT_CHANGED,
            with_detail(message::STATUS_NOT_CHANGED, detail),
        )
    }

    pub fn missing(param: &str) -> Self {
        Self::app(
            app_code::PARAM_MISSING,
            format!("Required parameter is missing. Missing: {param}"),
        )
    }

    pub fn to_json(&self) -> Value {
        match &self.data {
            Some(data) => json!({"code": self.code, "message": self.message, "data": data}),
            None => json!({"code": self.code, "message": self.message}),
        }
    }
}

/// The fixed text of each application error; a detail may follow it.
pub mod message {
    pub const ACCESS_DENIED: &str = "Access denied.";
    pub const SESSION_EXPIRED: &str = "Session expired. Try to relogin.";
    pub const INVALID_DATA: &str = "Invalid data given.";
    pub const SCHEMA_MISMATCH: &str = "Message does not match its topic's schema.";
    pub const NOT_CREATED: &str = "Webhook not created.";
    pub const STATUS_NOT_CHANGED: &str = "Error changing status for specified webhook.";
    pub const WEBHOOK_NOT_FOUND: &str = "Webhook not exists.";
    pub const DELIVERY_NOT_FOUND: &str = "Delivery not exists.";
    pub const NOT_RETRIED: &str = "Delivery not retried.";
    pub const BUSY: &str =
        "Webhook busy. It has as many attempts in flight as it may (per-webhook concurrency); try again shortly.";
    pub const EXISTS: &str = "Already exists.";
    pub const NO_SUCH_MERCHANT: &str = "Merchant not exists.";
    pub const NO_SUCH_USER: &str = "User not exists.";
    pub const CREATE_FAILED: &str = "An unexpected error occurred while creating the webhook.";
    pub const DELETE_FAILED: &str = "An unexpected error occurred while deleting the webhook.";
    /// The detail of an answer refused for load (-32603, or 102/104).
    pub const OVERLOADED: &str = "The server is overloaded: nothing was stored. Retry shortly (a retry is safe).";
    /// The detail of an answer cut off before anything was committed.
    pub const UNAVAILABLE: &str = "The database is unavailable: nothing was stored. Retry shortly (a retry is safe).";
    /// The detail of an answer cut off while committing.
    pub const OUTCOME_UNKNOWN: &str = "The database connection broke while committing: the outcome is unknown. \
         Retry with the same idempotency key (event.publish then answers as it first did and stores nothing twice); \
         check other changes before repeating them.";
}

/// The fixed text of application error `n` (for the API's description).
pub fn app_message(n: i64) -> &'static str {
    use app_code::*;
    match n {
        ACCESS_DENIED => message::ACCESS_DENIED,
        INVALID_API_PATH => "Invalid api path.",
        NOT_CALLABLE => "Resource path is not callable.",
        SESSION_EXPIRED => message::SESSION_EXPIRED,
        PARAM_MISSING => "Required parameter is missing.",
        STATUS_NOT_CHANGED => message::STATUS_NOT_CHANGED,
        INVALID_DATA => message::INVALID_DATA,
        CREATE_FAILED => message::CREATE_FAILED,
        WEBHOOK_NOT_FOUND => message::WEBHOOK_NOT_FOUND,
        DELETE_FAILED => message::DELETE_FAILED,
        NOT_CREATED => message::NOT_CREATED,
        DELIVERY_NOT_FOUND => message::DELIVERY_NOT_FOUND,
        NOT_RETRIED => message::NOT_RETRIED,
        BUSY => message::BUSY,
        EXISTS => message::EXISTS,
        NO_SUCH_MERCHANT => message::NO_SUCH_MERCHANT,
        NO_SUCH_USER => message::NO_SUCH_USER,
        SCHEMA_MISMATCH => message::SCHEMA_MISMATCH,
        _ => "Application error.",
    }
}

fn with_detail(base: &str, detail: &str) -> String {
    if detail.is_empty() {
        base.to_string()
    } else {
        format!("{base} {detail}")
    }
}

/// Which operation failed, for the errors whose code depends on it (102 vs 104 vs -32603).
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    Create,
    Delete,
    Other,
}

impl From<AppError> for RpcError {
    fn from(err: AppError) -> Self {
        from_app(err, Operation::Other)
    }
}

/// What a client is told of a storage failure, or of load or a lost database connection
/// (whether anything was stored, and how to retry); None for other errors.
fn storage_failure_text(e: &AppError) -> Option<&'static str> {
    if let Some(cut) = e.interruption() {
        return Some(match cut {
            Interruption::Overloaded => message::OVERLOADED,
            Interruption::Unavailable => message::UNAVAILABLE,
            Interruption::OutcomeUnknown => message::OUTCOME_UNKNOWN,
        });
    }
    Some(match e.storage_problem()? {
        StorageProblem::Full => {
            "The server's storage is full: nothing was stored. Try again once an operator has made room."
        }
        StorageProblem::Failing => "The server's storage is failing: nothing was stored. Try again later.",
    })
}

/// Maps a domain error to its JSON-RPC error. Internal causes are logged, never sent.
/// Handlers use `?` (the `From` above); only create and delete name their operation.
pub fn from_app(err: AppError, op: Operation) -> RpcError {
    use app_code::*;
    match err {
        AppError::AccessDenied => RpcError::access_denied(""),
        AppError::Throttled(why) | AppError::Forbidden(why) => RpcError::access_denied(&why),
        AppError::SessionExpired => RpcError::app(SESSION_EXPIRED, message::SESSION_EXPIRED),
        AppError::InvalidData(d) => RpcError::invalid_data(&d),
        AppError::NotCreated(d) => RpcError::app(NOT_CREATED, with_detail(message::NOT_CREATED, &d)),
        AppError::StatusNotChanged(d) => RpcError::status_not_changed(&d),
        AppError::WebhookNotFound => RpcError::app(WEBHOOK_NOT_FOUND, message::WEBHOOK_NOT_FOUND),
        AppError::DeliveryNotFound => RpcError::app(DELIVERY_NOT_FOUND, message::DELIVERY_NOT_FOUND),
        AppError::NotRetried(d) => RpcError::app(NOT_RETRIED, with_detail(message::NOT_RETRIED, &d)),
        AppError::Busy => RpcError::app(BUSY, message::BUSY),
        AppError::SchemaMismatch(d) => RpcError::app(SCHEMA_MISMATCH, with_detail(message::SCHEMA_MISMATCH, &d)),
        AppError::RecoverLimited(d) => RpcError::app(BUSY, with_detail("Webhook busy.", &d)),
        AppError::Exists(d) => RpcError::app(EXISTS, with_detail(message::EXISTS, &d)),
        AppError::NoSuchMerchant(d) => RpcError::app(NO_SUCH_MERCHANT, with_detail(message::NO_SUCH_MERCHANT, &d)),
        AppError::NoSuchUser(d) => RpcError::app(NO_SUCH_USER, with_detail(message::NO_SUCH_USER, &d)),
        AppError::KeyHashing(_) => {
            tracing::error!(error = ?err, "hashing an API key");
            RpcError::internal()
        }
        AppError::Store(_) => {
            let why = storage_failure_text(&err);
            tracing::error!(error = ?err, "store failure");
            // A storage failure is said as such (the client can tell "try later" from a bug);
            // other causes stay in the log.
            match (op, why) {
                (Operation::Create, why) => {
                    RpcError::app(CREATE_FAILED, with_detail(message::CREATE_FAILED, why.unwrap_or("")))
                }
                (Operation::Delete, why) => {
                    RpcError::app(DELETE_FAILED, with_detail(message::DELETE_FAILED, why.unwrap_or("")))
                }
                (Operation::Other, Some(why)) => RpcError::standard(INTERNAL_ERROR, "Internal error", why),
                (Operation::Other, None) => RpcError::internal(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_full_disk_is_said_as_such_and_other_store_errors_stay_internal() {
        let full = StoreError::StorageFull(Arc::new(std::io::Error::from_raw_os_error(28)));
        let e = from_app(AppError::Store(full), Operation::Other);
        assert_eq!(e.code, INTERNAL_ERROR);
        assert!(e.data.as_deref().unwrap().contains("storage is full"), "{e:?}");
        let e = from_app(
            AppError::Store(StoreError::SyncFailed(Arc::new(std::io::Error::other("EIO")))),
            Operation::Create,
        );
        assert_eq!(e.code, -(32000 + app_code::CREATE_FAILED));
        assert!(e.message.contains("storage is failing"), "{e:?}");
        let e = from_app(AppError::Store(StoreError::WriterGone), Operation::Other);
        assert_eq!(e, RpcError::internal(), "no detail of other causes goes out");
    }

    #[test]
    fn load_and_lost_connections_say_whether_anything_was_stored() {
        let lost = || Arc::new(sqlx::Error::PoolTimedOut);
        for (err, said) in [
            (StoreError::Overloaded, "overloaded: nothing was stored"),
            (StoreError::Unavailable(lost()), "unavailable: nothing was stored"),
            (StoreError::OutcomeUnknown(lost()), "the outcome is unknown"),
        ] {
            let e = from_app(AppError::Store(err), Operation::Other);
            assert_eq!((e.code, e.message.as_str()), (INTERNAL_ERROR, "Internal error"));
            assert!(e.data.as_deref().unwrap().contains(said), "{e:?}");
        }
        let e = from_app(AppError::Store(StoreError::OutcomeUnknown(lost())), Operation::Other);
        assert!(e.data.unwrap().contains("Retry with the same idempotency key"));
    }
}
