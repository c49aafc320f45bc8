//! The HTTP face of the management API: `POST /api/jsonrpc` (and `/api/jsonrpc/`), plus
//! `GET /healthz` (the process is up), `GET /readyz` (and its database answers) and
//! `GET /metrics` (Prometheus text format; `metrics_router`, on the API's listener or its own).
//! Every JSON-RPC answer is HTTP 200 with a JSON body, except an oversized body, which is
//! 413 with a JSON-RPC error body (CONTRACT.md §1). A body that does not arrive within the
//! body read timeout is answered like any error (200, -32600, so clients read why); after
//! either the connection is closed.

mod call;
mod callers;
mod envelope;
pub mod error;
mod methods;
mod params;
mod raw;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::app::App;
use crate::server::Client;
use call::Credentials;
use error::RpcError;

/// How the handler reads a request body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes (413 beyond it).
    pub max_bytes: usize,
    /// Time allowed to receive the whole body, from the end of the request head.
    pub read_timeout: Duration,
}

#[derive(Clone)]
struct RpcState {
    app: App,
    body: BodyLimits,
}

pub fn router(app: App, body: BodyLimits) -> Router {
    let state = RpcState { app, body };
    Router::new()
        .route("/api/jsonrpc", post(jsonrpc))
        .route("/api/jsonrpc/", post(jsonrpc))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/catalog/asyncapi.json", get(asyncapi))
        .with_state(state)
}

/// `GET /metrics` alone: merged into the API's router, or served on a listener of its own.
pub fn metrics_router(app: App) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(app)
}

async fn jsonrpc(State(state): State<RpcState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers, state.body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let err = RpcError::invalid_request(format!(
                "the request body is larger than the {}-byte limit",
                state.body.max_bytes
            ));
            return closing(StatusCode::PAYLOAD_TOO_LARGE, &err);
        }
        Err(BodyError::TimedOut) => {
            let err = RpcError::invalid_request(format!(
                "the request body did not arrive within {:?}",
                state.body.read_timeout
            ));
            return closing(StatusCode::OK, &err);
        }
        Err(BodyError::Broken(e)) => {
            let err = RpcError::parse_error(format!("the request body could not be read: {e}"));
            return closing(StatusCode::OK, &err);
        }
    };
    let creds = Credentials {
        basic: basic_auth(&parts.headers),
        bearer: bearer_token(&parts.headers),
        // The peer's address, or the client's behind a trusted proxy (`server::Client`).
        client: parts.extensions.get::<Client>().and_then(|c| c.ip),
        callers: Default::default(),
    };
    let base = host_base(&parts.headers);
    let trace = incoming_trace(&parts.headers);
    let span = crate::telemetry::spans::api_request(parts.uri.path_route(), creds.client, trace);
    let answered = REQUEST_TRACE.scope(
        trace,
        REQUEST_BASE.scope(base, envelope::handle_body(&state.app, &creds, &body)),
    );
    let response = match answered.instrument(span.clone()).await {
        Some(answer) => Json(answer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    // As an i64: tracing-opentelemetry exports unsigned values as strings.
    span.record("http.response.status_code", i64::from(response.status().as_u16()));
    response
}

/// The routes `jsonrpc` serves, as a span names them.
trait PathRoute {
    fn path_route(&self) -> &'static str;
}

impl PathRoute for axum::http::Uri {
    fn path_route(&self) -> &'static str {
        if self.path().ends_with('/') {
            "/api/jsonrpc/"
        } else {
            "/api/jsonrpc"
        }
    }
}

/// The request's `traceparent` header, when it is valid W3C Trace Context (an invalid one is
/// ignored, not an error: CONTRACT §7.6).
fn incoming_trace(headers: &HeaderMap) -> Option<crate::domain::TraceParent> {
    let mut values = headers.get_all("traceparent").iter();
    let first = values.next()?;
    // Two traceparent headers: which one is meant cannot be known, so neither is used.
    if values.next().is_some() {
        return None;
    }
    crate::domain::TraceParent::parse(first.to_str().ok()?)
}

tokio::task_local! {
    /// The valid `traceparent` of the JSON-RPC request being served: `event.publish`
    /// stores it with the event (see `telemetry::spans::event_trace`).
    static REQUEST_TRACE: Option<crate::domain::TraceParent>;
}

/// The `traceparent` the current JSON-RPC request came with (see `REQUEST_TRACE`).
pub(crate) fn request_trace() -> Option<crate::domain::TraceParent> {
    REQUEST_TRACE.try_with(|t| *t).ok().flatten()
}

tokio::task_local! {
    /// `http://` + the Host header of the JSON-RPC request being served (None when it has
    /// no usable one): the base of `portal.link`'s URLs when `HOOKD_PUBLIC_URL` is unset.
    static REQUEST_BASE: Option<String>;
}

/// The base URL the current JSON-RPC request came to (see `REQUEST_BASE`).
pub(crate) fn request_base() -> Option<String> {
    REQUEST_BASE.try_with(Clone::clone).ok().flatten()
}

/// `http://HOST[:PORT]` from a Host header made only of the characters a host and port
/// may have (a hostile header cannot put a path, userinfo or markup into a link).
fn host_base(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| format!("http://{}", host.to_ascii_lowercase()))
}

/// Why a body was not read whole.
pub(crate) enum BodyError {
    /// Over the limit: by its Content-Length (nothing is read) or by what arrived.
    TooLarge,
    /// Not complete within the body read timeout.
    TimedOut,
    /// The connection failed, or the framing was broken.
    Broken(axum::Error),
}

/// Reads a body chunk by chunk against the size limit and the read deadline, so a body
/// over the limit is refused as soon as that is known and no more of it is held.
pub(crate) async fn read_body(body: Body, headers: &HeaderMap, limits: BodyLimits) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let deadline = tokio::time::Instant::now() + limits.read_timeout;
    let mut chunks = body.into_data_stream();
    // Room for the announced length is reserved once, at the first bytes: a large block is
    // mapped, not touched, so memory is only used as bytes arrive (a client announcing a
    // megabyte and sending a byte holds a page), and the buffer never grows to twice the body.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if buf.len() + chunk.len() > limits.max_bytes {
            return Err(BodyError::TooLarge);
        }
        if buf.is_empty() && declared.is_some_and(|n| n == chunk.len() as u64) {
            return Ok(chunk); // the whole body in one piece: no copy
        }
        if buf.capacity() == 0 {
            buf.reserve_exact(declared.map_or(chunk.len(), |n| n as usize));
        }
        buf.extend_from_slice(&chunk);
    }
}

/// A JSON-RPC error answer on a connection that is closed after it, because the rest of
/// the request body was not (and will not be) read.
fn closing(status: StatusCode, err: &RpcError) -> Response {
    let mut response = (status, Json(error_body(err))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How long `/readyz` waits for the database before calling the node unready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ready when the database answers within a second; 503 otherwise (the node keeps running
/// and recovers by itself).
/// `GET /catalog/asyncapi.json`: the event catalog as AsyncAPI 3.0 (CONTRACT §7.4). Public,
/// as `rpc.discover` is: it says what receivers get, and holds no merchant's data.
async fn asyncapi(State(state): State<RpcState>) -> Response {
    match state.app.topic_describe(None).await {
        Ok(entries) => axum::Json(crate::app::catalog::asyncapi_document(&entries)).into_response(),
        Err(e) => {
            tracing::warn!(error = ?e, "the AsyncAPI document: reading the catalog failed");
            (StatusCode::SERVICE_UNAVAILABLE, "the catalog could not be read").into_response()
        }
    }
}

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

/// `hookd_queue_due` counts at most this many (a bounded read however large the backlog).
const QUEUE_DUE_CAP: i64 = 1_000_000;

/// Every metric, in the text exposition format (the due count read at the scrape).
async fn metrics(State(app): State<App>) -> Response {
    match app
        .store
        .queue_due_count(crate::time::now_millis(), QUEUE_DUE_CAP)
        .await
    {
        Ok(n) => {
            app.metrics.queue_due.set(n);
        }
        Err(e) => tracing::warn!(error = ?e, "counting the due payloads for /metrics failed"),
    }
    for stats in app.store.pool_stats() {
        app.metrics.pool(&stats);
    }
    let buckets = app.store.rate_buckets();
    app.metrics.rate_buckets.set(buckets as i64);
    let text = app.metrics.render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

fn error_body(err: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": err.to_json()})
}

/// `Authorization: Bearer <session id>`; None when absent or another scheme.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
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
