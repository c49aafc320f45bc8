//! JSON-RPC error objects, and the one place where domain errors become codes.
//! Application error N travels as `-(32000 + N)` (CONTRACT.md §1).

use serde_json::{json, Value};

use crate::app::AppError;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// Details for the standard errors, whose message is the fixed JSON-RPC text.
    pub data: Option<String>,
}

impl RpcError {
    fn standard(code: i64, message: &str, detail: impl Into<String>) -> Self {
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
            format!("unknown method '{method}'; the methods are 'login' and 'call'"),
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
        Self::app(app_code::ACCESS_DENIED, with_detail("Access denied.", detail))
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

/// Maps a domain error to its JSON-RPC error. Internal causes are logged, never sent.
pub fn from_app(err: AppError, op: Operation) -> RpcError {
    use app_code::*;
    match err {
        AppError::AccessDenied => RpcError::access_denied(""),
        AppError::Throttled(why) => RpcError::access_denied(&why),
        AppError::SessionExpired => RpcError::app(SESSION_EXPIRED, "Session expired. Try to relogin."),
        AppError::InvalidData(d) => RpcError::app(INVALID_DATA, with_detail("Invalid data given.", &d)),
        AppError::NotCreated(d) => RpcError::app(NOT_CREATED, with_detail("Webhook not created.", &d)),
        AppError::StatusNotChanged(d) => RpcError::app(
            STATUS_NOT_CHANGED,
            with_detail("Error changing status for specified webhook.", &d),
        ),
        AppError::WebhookNotFound => RpcError::app(WEBHOOK_NOT_FOUND, "Webhook not exists."),
        AppError::DeliveryNotFound => RpcError::app(DELIVERY_NOT_FOUND, "Delivery not exists."),
        AppError::NotRetried(d) => RpcError::app(NOT_RETRIED, with_detail("Delivery not retried.", &d)),
        AppError::Store(e) => {
            tracing::error!(error = ?e, "store failure");
            match op {
                Operation::Create => RpcError::app(
                    CREATE_FAILED,
                    "An unexpected error occurred while creating the webhook.",
                ),
                Operation::Delete => RpcError::app(
                    DELETE_FAILED,
                    "An unexpected error occurred while deleting the webhook.",
                ),
                Operation::Other => RpcError::internal(),
            }
        }
    }
}
