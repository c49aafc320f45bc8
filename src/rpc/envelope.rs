//! The JSON-RPC 2.0 envelope: single requests, batches, notifications, and the exact
//! response shape of CONTRACT.md §1 (`"error": null` beside every `result`).

use futures_util::future::join_all;
use serde_json::{json, Map, Value};

use super::call::{self, Credentials};
use super::error::RpcError;
use crate::app::App;

/// Most requests one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// A request that passed the envelope checks.
struct Request {
    /// None for a notification (no `id` member): it gets no response.
    id: Option<Value>,
    method: String,
    params: Option<Value>,
}

/// Handles a whole HTTP body; `None` when nothing is to be sent back (only notifications).
pub async fn handle_body(app: &App, creds: &Credentials, body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(error_response(
            Value::Null,
            &RpcError::invalid_request("the request body is empty"),
        ));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let detail = format!(
                "the body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            );
            return Some(error_response(Value::Null, &RpcError::parse_error(detail)));
        }
    };
    let parsed: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let detail = format!("the body is not valid JSON ({e})");
            return Some(error_response(Value::Null, &RpcError::parse_error(detail)));
        }
    };
    match parsed {
        Value::Array(items) if items.is_empty() => Some(error_response(
            Value::Null,
            &RpcError::invalid_request("the batch is empty"),
        )),
        Value::Array(items) if items.len() > MAX_BATCH => Some(error_response(
            Value::Null,
            &RpcError::invalid_request(format!("a batch may hold at most {MAX_BATCH} requests")),
        )),
        Value::Array(items) => {
            let mut out = Vec::new();
            for run in runs(items) {
                // A run of publishes goes together so the events share commits; everything
                // else runs one after the other, in the batch's order.
                let answers = join_all(run.into_iter().map(|item| handle_one(app, creds, item))).await;
                out.extend(answers.into_iter().flatten());
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        single => handle_one(app, creds, single).await,
    }
}

/// Splits a batch into runs: each maximal stretch of consecutive `event.publish` calls is
/// one run, every other request a run of its own.
fn runs(items: Vec<Value>) -> Vec<Vec<Value>> {
    let mut runs: Vec<Vec<Value>> = Vec::new();
    let mut last_was_publish = false;
    for item in items {
        let publish = item["method"] == "call" && item["params"][1] == "event.publish";
        match runs.last_mut() {
            Some(run) if publish && last_was_publish => run.push(item),
            _ => runs.push(vec![item]),
        }
        last_was_publish = publish;
    }
    runs
}

async fn handle_one(app: &App, creds: &Credentials, raw: Value) -> Option<Value> {
    let request = match validate(raw) {
        Ok(r) => r,
        Err(rejected) => {
            let (id, err) = *rejected;
            return Some(error_response(id, &err));
        }
    };
    let outcome = call::dispatch(app, creds, &request.method, request.params).await;
    let id = request.id?;
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "error": null, "result": result}),
        Err(err) => error_response(id, &err),
    })
}

fn error_response(id: Value, err: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": err.to_json()})
}

/// Checks the request object's members. On failure, the id to answer with (the request's
/// own when it was readable, null otherwise) and the error.
fn validate(raw: Value) -> Result<Request, Box<(Value, RpcError)>> {
    let Value::Object(mut obj) = raw else {
        return Err(Box::new((
            Value::Null,
            RpcError::invalid_request("a request must be a JSON object"),
        )));
    };
    let id = match obj.remove("id") {
        None => None,
        Some(v @ (Value::Null | Value::String(_) | Value::Number(_))) => Some(v),
        Some(_) => {
            return Err(Box::new((
                Value::Null,
                RpcError::invalid_request("id must be a string, a number or null"),
            )));
        }
    };
    let fail = |detail: String| {
        Err(Box::new((
            id.clone().unwrap_or(Value::Null),
            RpcError::invalid_request(detail),
        )))
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["jsonrpc", "method", "params"].contains(&k.as_str()))
    {
        return fail(format!("unknown member '{unknown}'"));
    }
    if !is_version_2(&obj) {
        return fail("jsonrpc must be \"2.0\"".into());
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return fail("method must be a string".into()),
        None => return fail("method is missing".into()),
    };
    let params = match obj.remove("params") {
        None => None,
        Some(p @ (Value::Array(_) | Value::Object(_))) => Some(p),
        Some(_) => return fail("params must be an array or an object".into()),
    };
    Ok(Request { id, method, params })
}

/// `"2.0"`, or the number 2.0 that the seed document's examples send.
fn is_version_2(obj: &Map<String, Value>) -> bool {
    match obj.get("jsonrpc") {
        Some(Value::String(s)) => s == "2.0",
        Some(Value::Number(n)) => n.as_f64() == Some(2.0),
        _ => false,
    }
}
