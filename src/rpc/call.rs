//! The top-level methods: `login(username, api_key)`,
//! `call(session_id | null, "resource.method", args)` (a null session id means the caller
//! authenticates with HTTP Basic instead), `rpc.discover`, and every `resource.method`
//! called directly (CONTRACT §7.1): its arguments are the JSON-RPC `params`, by position or
//! by the names `rpc.discover` gives them, and its caller is named by HTTP Basic or
//! `Authorization: Bearer <session id>`. Both ways reach the same handler, so they answer
//! alike, errors included.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tracing::Instrument;

use super::callers::{CallerMemo, For};
use super::error::{RpcError, INTERNAL_ERROR};
use super::methods;
use super::params::Args;
use crate::app::{App, Caller};

/// Credentials that came with the HTTP request itself.
#[derive(Default)]
pub struct Credentials {
    pub basic: Option<(String, String)>,
    /// `Authorization: Bearer <session id>`.
    pub bearer: Option<String>,
    /// The client's address, for throttling failed logins (None when unknown).
    pub client: Option<IpAddr>,
    /// Callers already checked in this HTTP request.
    pub callers: CallerMemo,
}

/// Numbers the calls this process serves, so the log lines of one call can be told apart.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Runs one JSON-RPC request inside a span naming it (`req`, `method`, then `path` and
/// `user` once known, and `client`: the address, behind a trusted proxy the forwarded one), so every log line it causes says what it is about.
pub async fn dispatch(app: &App, creds: &Credentials, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
    let span = tracing::info_span!(
        "rpc",
        req = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
        method,
        path = tracing::field::Empty,
        user = tracing::field::Empty,
        client = tracing::field::Empty,
    );
    if let Some(client) = creds.client {
        span.record("client", tracing::field::display(client));
    }
    let label = method_label(method, params.as_ref());
    let exported = crate::telemetry::spans::rpc_call(label);
    let started = std::time::Instant::now();
    let outcome = async move {
        match method {
            "login" => login(app, creds, params).await,
            "call" => call(app, creds, params).await,
            "rpc.discover" => {
                // Without the catalog (the database unreachable) the document still describes the methods.
                let entries = app.topic_describe(None).await.unwrap_or_default();
                Ok(methods::discover::document_with_catalog(&entries))
            }
            other => match methods::find(other) {
                Some(method) => direct(app, creds, method, params).await,
                None => Err(RpcError::method_not_found(other)),
            },
        }
    }
    // The exported span inside the logged one, so it is the current span of the call (a
    // publish stores its context: `telemetry::spans::event_trace`).
    .instrument(exported.clone())
    .instrument(span)
    .await;
    app.metrics.api_call(label, started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        crate::telemetry::spans::rpc_failed(&exported, e.code);
    }
    outcome
}

/// The method a call is counted and traced under: a known name (a `call`'s resource path
/// when it names a method), else "unknown", so the label set stays bounded whatever callers send.
fn method_label(method: &str, params: Option<&Value>) -> &'static str {
    match method {
        "login" => "login",
        "rpc.discover" => "rpc.discover",
        "call" => {
            let path = match params {
                Some(Value::Array(p)) => p.get(1),
                Some(Value::Object(p)) => p.get("path"),
                _ => None,
            };
            path.and_then(Value::as_str)
                .and_then(methods::find)
                .map_or("call", |m| m.path)
        }
        other => methods::find(other).map_or("unknown", |m| m.path),
    }
}

/// Reads `params` given by position or by name into a fixed list of slots.
fn slots(params: Option<Value>, names: &[&str]) -> Result<Vec<Option<Value>>, RpcError> {
    match params {
        None => Ok(vec![None; names.len()]),
        Some(Value::Array(items)) => {
            if items.len() > names.len() {
                return Err(RpcError::invalid_params(format!(
                    "expected at most {} parameters ({}), got {}",
                    names.len(),
                    names.join(", "),
                    items.len()
                )));
            }
            let mut out: Vec<Option<Value>> = items.into_iter().map(Some).collect();
            out.resize(names.len(), None);
            Ok(out)
        }
        Some(Value::Object(mut obj)) => {
            let out = names.iter().map(|n| obj.remove(*n)).collect();
            match obj.keys().next() {
                Some(unknown) => Err(RpcError::invalid_params(format!("unknown parameter '{unknown}'"))),
                None => Ok(out),
            }
        }
        Some(_) => Err(RpcError::invalid_params("params must be an array or an object")),
    }
}

fn required_string(value: Option<Value>, name: &str) -> Result<String, RpcError> {
    match value {
        None | Some(Value::Null) => Err(RpcError::missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RpcError::invalid_params(format!("{name} must be a string"))),
    }
}

async fn login(app: &App, creds: &Credentials, params: Option<Value>) -> Result<Value, RpcError> {
    let mut p = slots(params, &["username", "api_key"])?.into_iter();
    let username = required_string(p.next().flatten(), "username")?;
    let api_key = required_string(p.next().flatten(), "api_key")?;
    tracing::Span::current().record("user", username.as_str());
    let session = app.login(&username, &api_key, creds.client).await?;
    Ok(Value::String(session))
}

async fn call(app: &App, creds: &Credentials, params: Option<Value>) -> Result<Value, RpcError> {
    let mut p = slots(params, &["session_id", "path", "args"])?.into_iter();
    let session = p.next().flatten();
    let path = required_string(p.next().flatten(), "resource path")?;
    let args = p.next().flatten();
    let span = tracing::Span::current();
    span.record("path", path.as_str());
    let caller = authenticate(app, creds, session, wanted_for(&path)).await?;
    span.record("user", caller.user.name.as_str());
    let args = Args::new(&path, args);
    let result = methods::invoke(app, &caller, &path, args).await;
    confirmed(app, creds, &caller, result).await
}

fn wanted_for(path: &str) -> For {
    if path == "event.publish" {
        For::Publish
    } else {
        For::Other
    }
}

/// `result` for `caller`; but when it is an error and the caller was taken from memory
/// (a publish's, see `callers`), only once its key is confirmed: a key revoked meanwhile gets
/// the refusal, not an error that would tell it what exists. Internal errors (load, storage)
/// tell nothing and go out as they are, without another read of a database in trouble.
async fn confirmed(
    app: &App,
    creds: &Credentials,
    caller: &Caller,
    result: Result<Value, RpcError>,
) -> Result<Value, RpcError> {
    match (&result, &creds.basic) {
        (Err(e), Some((name, key))) if caller.remembered && e.code != INTERNAL_ERROR => {
            creds.callers.basic(app, name, key, creds.client, For::Other).await?;
            result
        }
        _ => result,
    }
}

/// A `resource.method` called as the JSON-RPC method itself.
async fn direct(
    app: &App,
    creds: &Credentials,
    method: &methods::Method,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let span = tracing::Span::current();
    span.record("path", method.path);
    let caller = match (&creds.bearer, &creds.basic) {
        (Some(session), _) => creds.callers.session(app, session).await?,
        (None, Some((name, key))) => {
            (creds.callers)
                .basic(app, name, key, creds.client, wanted_for(method.path))
                .await?
        }
        (None, None) => {
            return Err(RpcError::access_denied(
                "Give HTTP Basic credentials, or Authorization: Bearer with a session id from login.",
            ))
        }
    };
    span.record("user", caller.user.name.as_str());
    let args = match params {
        Some(Value::Object(named)) => by_name(method, named)?,
        other => other,
    };
    let result = methods::invoke(
        app,
        &caller,
        method.path,
        Args::new(method.path, Some(args.unwrap_or(Value::Array(Vec::new())))),
    )
    .await;
    confirmed(app, creds, &caller, result).await
}

/// Named params in the method's positional order (absent ones null); an unknown name is
/// -32602.
fn by_name(method: &methods::Method, mut named: serde_json::Map<String, Value>) -> Result<Option<Value>, RpcError> {
    let mut items: Vec<Value> = method
        .params
        .iter()
        .map(|p| named.remove(p.name).unwrap_or(Value::Null))
        .collect();
    if let Some(unknown) = named.keys().next() {
        let known: Vec<&str> = method.params.iter().map(|p| p.name).collect();
        return Err(RpcError::invalid_params(format!(
            "{}: unknown parameter '{}' (the parameters are: {})",
            method.path,
            super::params::clip(unknown),
            known.join(", ")
        )));
    }
    while items.last().is_some_and(Value::is_null) {
        items.pop();
    }
    Ok(Some(Value::Array(items)))
}

async fn authenticate(app: &App, creds: &Credentials, session: Option<Value>, wanted: For) -> Result<Caller, RpcError> {
    match session {
        Some(Value::String(id)) => creds.callers.session(app, &id).await,
        None | Some(Value::Null) => match &creds.basic {
            Some((name, key)) => creds.callers.basic(app, name, key, creds.client, wanted).await,
            None => Err(RpcError::access_denied(
                "Give a session id from login, or HTTP Basic credentials.",
            )),
        },
        Some(_) => Err(RpcError::invalid_params("session_id must be a string or null")),
    }
}
