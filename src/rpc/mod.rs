//! The HTTP face of the management API: `POST /api/jsonrpc` (and `/api/jsonrpc/`), plus
//! `GET /healthz` (the process is up) and `GET /readyz` (and its database answers).
//! Every JSON-RPC answer is HTTP 200 with a JSON body, except an oversized body, which is
//! 413 with a JSON-RPC error body (CONTRACT.md §1).

mod call;
mod envelope;
pub mod error;
mod methods;
mod params;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::app::App;
use call::Credentials;
use error::RpcError;

#[derive(Clone)]
struct RpcState {
    app: App,
    max_body_bytes: usize,
}

pub fn router(app: App, max_body_bytes: usize) -> Router {
    let state = RpcState { app, max_body_bytes };
    Router::new()
        .route("/api/jsonrpc", post(jsonrpc))
        .route("/api/jsonrpc/", post(jsonrpc))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn jsonrpc(State(state): State<RpcState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let err = RpcError::invalid_request(format!(
                "the request body is larger than the {}-byte limit",
                state.max_body_bytes
            ));
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(error_body(&err))).into_response();
        }
        Err(rejection) => {
            let err = RpcError::parse_error(format!("the request body could not be read: {rejection}"));
            return Json(error_body(&err)).into_response();
        }
    };
    let creds = Credentials {
        basic: basic_auth(&headers),
    };
    match envelope::handle_body(&state.app, &creds, &body).await {
        Some(answer) => Json(answer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// How long `/readyz` waits for the database before calling the node unready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ready when the database answers within a second; 503 otherwise (the node keeps running
/// and recovers by itself).
async fn readyz(State(state): State<RpcState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.app.store.ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!("readiness check: database did not answer within {READY_TIMEOUT:?}");
            (StatusCode::SERVICE_UNAVAILABLE, "database not answering").into_response()
        }
    }
}

fn error_body(err: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": err.to_json()})
}

/// `Authorization: Basic base64(name:key)`; None when absent or malformed.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, key) = text.split_once(':')?;
    Some((name.to_string(), key.to_string()))
}
