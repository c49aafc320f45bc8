//! The exported spans (CONTRACT §7.6) and the trace each event's attempts are sent in.
//!
//! - `POST /api/jsonrpc` (server): one per API request, the child of the request's
//!   `traceparent` when it has a valid one; each JSON-RPC call in it (a batch has several)
//!   is a child named after its method (`event.publish`).
//! - `POST` (client): one per delivery attempt, the child of the event's stored trace
//!   context, so an event's attempts, retries included, are all in one trace.
//!
//! Attributes follow the OpenTelemetry HTTP semantic conventions, without secrets, query
//! strings or bodies. With no exporter (`exporting()` false) nothing here builds an
//! OpenTelemetry context: the spans are disabled callsites, and the trace an attempt is sent
//! in comes from the stored `traceparent` alone.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::TraceParent;

static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(super) fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Whether spans are exported (an OTLP endpoint is set and its exporter started).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The span of one API request (`route` is the path it was routed by, never the query).
pub fn api_request(route: &'static str, client: Option<std::net::IpAddr>, parent: Option<TraceParent>) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::trace_span!(
        target: "hookd::otel",
        "http request",
        otel.name = format!("POST {route}"),
        otel.kind = "server",
        http.request.method = "POST",
        http.route = route,
        url.path = route,
        url.scheme = "http",
        client.address = client.map(|c| c.to_string()),
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(remote(parent));
    }
    span
}

/// The span of one JSON-RPC call, named after its method (one of the known names).
pub fn rpc_call(method: &'static str) -> Span {
    if !exporting() {
        return Span::none();
    }
    tracing::trace_span!(
        target: "hookd::otel",
        "rpc call",
        otel.name = method,
        otel.kind = "internal",
        rpc.system = "jsonrpc",
        rpc.method = method,
        rpc.jsonrpc.version = "2.0",
        rpc.jsonrpc.error_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records a JSON-RPC error code on a call's span.
pub fn rpc_failed(span: &Span, code: i64) {
    span.record("rpc.jsonrpc.error_code", code);
    span.record("otel.status_code", "ERROR");
}

/// The trace stored with a new event: the current span's (the publish call's, a child of the
/// caller's `traceparent`) when spans are exported, else the caller's, else a fresh one.
pub fn event_trace(incoming: Option<TraceParent>) -> TraceParent {
    if exporting() {
        if let Some(current) = of_span(&Span::current()) {
            return current;
        }
    }
    incoming.unwrap_or_else(TraceParent::fresh)
}

/// A delivery attempt's span and the `traceparent` its request carries: the event's trace
/// (a fresh one for a payload without any, e.g. a test ping), with the attempt's span as the
/// parent when it is exported, else a random span id. `url`: the target's, parsed (None
/// when it does not parse).
pub fn attempt(url: Option<&url::Url>, delivery: i64, attempt: i64, stored: Option<&str>) -> (Span, TraceParent) {
    let event = stored.and_then(TraceParent::parse).unwrap_or_else(TraceParent::fresh);
    if !exporting() {
        return (Span::none(), event.random_child());
    }
    let (address, port, full) = match url {
        Some(u) => (
            u.host_str().unwrap_or_default().to_string(),
            u.port_or_known_default(),
            format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or_default(), port_part(u)) + u.path(),
        ),
        None => (String::new(), None, String::new()),
    };
    let span = tracing::trace_span!(
        target: "hookd::otel",
        "delivery attempt",
        otel.name = "POST",
        otel.kind = "client",
        http.request.method = "POST",
        server.address = address,
        server.port = port.map(i64::from),
        url.full = full,
        http.request.resend_count = attempt - 1,
        hookd.delivery_id = delivery,
        http.response.status_code = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(remote(event));
    let header = of_span(&span).unwrap_or_else(|| event.random_child());
    (span, header)
}

/// Records an attempt's answer (or why there was none) on its span.
pub fn attempt_ended(span: &Span, status: Option<u16>, failed: bool) {
    if let Some(status) = status {
        // As an i64: tracing-opentelemetry exports unsigned values as strings.
        span.record("http.response.status_code", i64::from(status));
    }
    if failed {
        let kind = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
        span.record("error.type", kind);
        span.record("otel.status_code", "ERROR");
    }
}

fn port_part(u: &url::Url) -> String {
    u.port().map(|p| format!(":{p}")).unwrap_or_default()
}

/// An OpenTelemetry context whose parent is the given remote span.
fn remote(t: TraceParent) -> opentelemetry::Context {
    let parent = SpanContext::new(
        TraceId::from_bytes(t.trace_id),
        SpanId::from_bytes(t.span_id),
        TraceFlags::new(t.flags),
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(parent)
}

/// The span's own trace context, when it has a valid one.
fn of_span(span: &Span) -> Option<TraceParent> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}
