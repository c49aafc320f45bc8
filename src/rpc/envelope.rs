//! The JSON-RPC 2.0 envelope: single requests, batches, notifications, and the exact
//! response shape of CONTRACT.md §1 (`"error": null` beside every `result`).
//!
//! Ids are echoed as the very bytes the client sent (`RawValue`): parsed into a `Value`, a
//! number like 123456789012345678901234567890 would come back as 1.2345678901234568e+29.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

/// What is sent back for a body: one answer, or a batch's answers in order.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    One(Reply),
    Batch(Vec<Reply>),
}

/// One JSON-RPC response.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Success {
        jsonrpc: &'static str,
        id: Box<RawValue>,
        /// Always null (the seed's examples show it; clients test for it).
        error: (),
        result: Value,
    },
    Failure {
        jsonrpc: &'static str,
        id: Box<RawValue>,
        error: Value,
    },
}

/// The `id` member of a request object, exactly as it was written.
#[derive(Deserialize)]
struct RawId<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Handles a whole HTTP body; `None` when nothing is to be sent back (only notifications).
pub async fn handle_body(app: &App, creds: &Credentials, body: &[u8]) -> Option<Answer> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Answer::One(error_response(
            Value::Null,
            None,
            &RpcError::invalid_request("the request body is empty"),
        )));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let detail = format!(
                "the body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            );
            return Some(Answer::One(error_response(
                Value::Null,
                None,
                &RpcError::parse_error(detail),
            )));
        }
    };
    let parsed: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let detail = format!("the body is not valid JSON ({e})");
            return Some(Answer::One(error_response(
                Value::Null,
                None,
                &RpcError::parse_error(detail),
            )));
        }
    };
    match parsed {
        Value::Array(items) if items.is_empty() => Some(Answer::One(error_response(
            Value::Null,
            None,
            &RpcError::invalid_request("the batch is empty"),
        ))),
        Value::Array(items) if items.len() > MAX_BATCH => Some(Answer::One(error_response(
            Value::Null,
            None,
            &RpcError::invalid_request(format!("a batch may hold at most {MAX_BATCH} requests")),
        ))),
        Value::Array(items) => {
            // The same text again, each item kept as written, for its id.
            let raw_items: Vec<&RawValue> = serde_json::from_str(text).unwrap_or_default();
            let items = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (item, raw_items.get(i).and_then(|raw| raw_id(raw.get()))));
            let mut out = Vec::new();
            for run in runs(items) {
                // A run of publishes goes together so the events share commits; everything
                // else runs one after the other, in the batch's order.
                let answers = join_all(run.into_iter().map(|(item, id)| handle_one(app, creds, item, id))).await;
                out.extend(answers.into_iter().flatten());
            }
            (!out.is_empty()).then_some(Answer::Batch(out))
        }
        single => handle_one(app, creds, single, raw_id(text)).await.map(Answer::One),
    }
}

/// The `id` of a request object as written; None when absent, null, or not readable so
/// (e.g. a repeated `id` member: then the parsed value is echoed).
fn raw_id(request: &str) -> Option<&RawValue> {
    serde_json::from_str::<RawId>(request).ok().and_then(|r| r.id)
}

/// Splits a batch into runs: each maximal stretch of consecutive `event.publish` calls is
/// one run, every other request a run of its own.
fn runs<T>(items: impl Iterator<Item = (Value, T)>) -> Vec<Vec<(Value, T)>> {
    let mut runs: Vec<Vec<(Value, T)>> = Vec::new();
    let mut last_was_publish = false;
    for item in items {
        let (request, _) = &item;
        let publish = request["method"] == "call" && request["params"][1] == "event.publish";
        match runs.last_mut() {
            Some(run) if publish && last_was_publish => run.push(item),
            _ => runs.push(vec![item]),
        }
        last_was_publish = publish;
    }
    runs
}

/// One request object; `raw_id` is its `id` as written (see `raw_id`).
async fn handle_one(app: &App, creds: &Credentials, request: Value, raw_id: Option<&RawValue>) -> Option<Reply> {
    let request = match validate(request) {
        Ok(r) => r,
        Err(rejected) => {
            let (id, err) = *rejected;
            return Some(error_response(id, raw_id, &err));
        }
    };
    let outcome = call::dispatch(app, creds, &request.method, request.params).await;
    let id = request.id?;
    Some(match outcome {
        Ok(result) => Reply::Success {
            jsonrpc: "2.0",
            id: echo(id, raw_id),
            error: (),
            result,
        },
        Err(err) => error_response(id, raw_id, &err),
    })
}

fn error_response(id: Value, raw_id: Option<&RawValue>, err: &RpcError) -> Reply {
    Reply::Failure {
        jsonrpc: "2.0",
        id: echo(id, raw_id),
        error: err.to_json(),
    }
}

/// The id to answer with: null when the answer's id is null (none could be read, or it was
/// not a string, number or null), else the id exactly as the request wrote it.
fn echo(id: Value, raw: Option<&RawValue>) -> Box<RawValue> {
    match (id, raw) {
        (Value::Null, _) => null_id(),
        (_, Some(raw)) => raw.to_owned(),
        (id, None) => serde_json::value::to_raw_value(&id).unwrap_or_else(|_| null_id()),
    }
}

fn null_id() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
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
