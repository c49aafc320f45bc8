//! The JSON-RPC 2.0 envelope: single requests, batches, notifications, and the exact
//! response shape of CONTRACT.md §1 (`"error": null` beside every `result`).
//!
//! The body is read as raw JSON (`raw`): the envelope is checked on slices of it, ids are
//! echoed as the very bytes the client sent (parsed, 123456789012345678901234567890 would
//! come back as 1.2345678901234568e+29), and a `call`'s caller is checked before its
//! `params` are built into a `Value`, so an unauthenticated request holds no more memory
//! than its body while it waits for the check.

use futures_util::future::join_all;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::call::{self, Credentials};
use super::callers::For;
use super::error::RpcError;
use super::methods;
use super::raw::{self, CallHead, Items, Kind, Shape};
use crate::app::App;

/// Most requests one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// A request that passed the envelope checks.
struct Request<'a> {
    /// None for a notification (no `id` member): it gets no response.
    id: Option<&'a RawValue>,
    method: String,
    params: Option<&'a RawValue>,
}

impl Request<'_> {
    /// Whether this is `call(…, "event.publish", …)` or `event.publish` called directly.
    fn is_publish(&self) -> bool {
        self.method == "event.publish"
            || self.method == "call"
                && CallHead::of(self.params).path.and_then(raw::string).as_deref() == Some("event.publish")
    }
}

/// A request that failed the envelope checks: the id to answer with (None: null), and why.
type Rejected<'a> = Box<(Option<&'a RawValue>, RpcError)>;

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

/// Handles a whole HTTP body; `None` when nothing is to be sent back (only notifications).
pub async fn handle_body(app: &App, creds: &Credentials, body: &[u8]) -> Option<Answer> {
    let refuse = |err: RpcError| Some(Answer::One(error_response(None, &err)));
    if body.iter().all(u8::is_ascii_whitespace) {
        return refuse(RpcError::invalid_request("the request body is empty"));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let detail = format!(
                "the body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            );
            return refuse(RpcError::parse_error(detail));
        }
    };
    let parsed: &RawValue = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return refuse(RpcError::parse_error(format!("the body is not valid JSON ({e})"))),
    };
    if raw::kind(parsed) != Kind::Array {
        return handle_one(app, creds, validate(parsed)).await.map(Answer::One);
    }
    let batch: Items<MAX_BATCH> = match serde_json::from_str(parsed.get()) {
        Ok(batch) => batch,
        Err(e) => return refuse(RpcError::parse_error(format!("the body is not valid JSON ({e})"))),
    };
    if batch.more {
        return refuse(RpcError::invalid_request(format!(
            "a batch may hold at most {MAX_BATCH} requests"
        )));
    }
    if batch.items.is_empty() {
        return refuse(RpcError::invalid_request("the batch is empty"));
    }
    let mut out = Vec::new();
    for run in runs(batch.items.into_iter().map(validate)) {
        // A run of publishes goes together so the events share commits; everything
        // else runs one after the other, in the batch's order.
        let answers = join_all(run.into_iter().map(|request| handle_one(app, creds, request))).await;
        out.extend(answers.into_iter().flatten());
    }
    (!out.is_empty()).then_some(Answer::Batch(out))
}

/// Splits a batch into runs: each maximal stretch of consecutive `event.publish` calls is
/// one run, every other request a run of its own.
fn runs<'a>(
    items: impl Iterator<Item = Result<Request<'a>, Rejected<'a>>>,
) -> Vec<Vec<Result<Request<'a>, Rejected<'a>>>> {
    let mut runs: Vec<Vec<_>> = Vec::new();
    let mut last_was_publish = false;
    for item in items {
        let publish = item.as_ref().is_ok_and(Request::is_publish);
        match runs.last_mut() {
            Some(run) if publish && last_was_publish => run.push(item),
            _ => runs.push(vec![item]),
        }
        last_was_publish = publish;
    }
    runs
}

/// One request object, already through `validate`.
async fn handle_one(app: &App, creds: &Credentials, request: Result<Request<'_>, Rejected<'_>>) -> Option<Reply> {
    let request = match request {
        Ok(r) => r,
        Err(rejected) => {
            let (id, err) = *rejected;
            return Some(error_response(id, &err));
        }
    };
    let wanted = if request.is_publish() { For::Publish } else { For::Other };
    let refused = request.method == "call" && !check_caller_first(app, creds, request.params, wanted).await;
    // A resource method called directly whose caller is refused gets no params built: it
    // is refused before they are read.
    let direct_refused = methods::find(&request.method).is_some() && !check_direct_caller(app, creds, wanted).await;
    let params = match request.params {
        None => Ok(None),
        Some(_) if direct_refused => Ok(None),
        Some(p) if refused => match without_args(p) {
            Some(params) => Ok(Some(params)),
            None => serde_json::from_str(p.get()).map(Some),
        },
        Some(p) => serde_json::from_str(p.get()).map(Some),
    };
    let outcome = match params {
        Ok(params) => call::dispatch(app, creds, &request.method, params).await,
        Err(e) => Err(RpcError::parse_error(format!("params could not be read ({e})"))),
    };
    let id = request.id?;
    Some(match outcome {
        Ok(result) => Reply::Success {
            jsonrpc: "2.0",
            id: echo(Some(id)),
            error: (),
            result,
        },
        Err(err) => error_response(Some(id), &err),
    })
}

/// Checks the caller a `call` names (its session, or the HTTP Basic credentials) while its
/// params are still raw text; `call` then finds the outcome in `creds.callers`. False when
/// the caller was refused; true when accepted, or when there was nothing to check.
async fn check_caller_first(app: &App, creds: &Credentials, params: Option<&RawValue>, wanted: For) -> bool {
    let session = CallHead::of(params).session;
    match session.map(raw::kind) {
        Some(Kind::String) => match session.and_then(raw::string) {
            Some(id) => creds.callers.session(app, &id).await.is_ok(),
            None => true,
        },
        None | Some(Kind::Null) => match &creds.basic {
            Some((name, key)) => creds.callers.basic(app, name, key, creds.client, wanted).await.is_ok(),
            None => true,
        },
        Some(_) => true,
    }
}

/// Checks the caller of a directly called resource method (Bearer session, or HTTP
/// Basic); the outcome is kept in `creds.callers` for the call itself.
async fn check_direct_caller(app: &App, creds: &Credentials, wanted: For) -> bool {
    match (&creds.bearer, &creds.basic) {
        (Some(session), _) => creds.callers.session(app, session).await.is_ok(),
        (None, Some((name, key))) => creds.callers.basic(app, name, key, creds.client, wanted).await.is_ok(),
        (None, None) => false,
    }
}

/// The params of a `call` whose caller was refused, with `args` as null: `call` reads the
/// session and the path, counts the params and checks their names before it refuses the
/// caller, and never gets to the args, so they are not built. None when the params are
/// not of the usual shape (then they are built whole, and refused for their shape).
fn without_args(params: &RawValue) -> Option<Value> {
    let head = CallHead::of(Some(params));
    let value = |raw: Option<&RawValue>| raw.map(|r| serde_json::from_str::<Value>(r.get())).transpose();
    let (session, path) = (value(head.session).ok()?, value(head.path).ok()?);
    match head.shape {
        Shape::Positional(len) if len <= 3 => {
            let mut items: Vec<Value> = [session, path].into_iter().flatten().collect();
            items.resize(len, Value::Null);
            Some(Value::Array(items))
        }
        Shape::Named { args, others: false } => {
            let mut members = serde_json::Map::new();
            for (name, v) in [
                ("session_id", session),
                ("path", path),
                ("args", args.then_some(Value::Null)),
            ] {
                if let Some(v) = v {
                    members.insert(name.to_string(), v);
                }
            }
            Some(Value::Object(members))
        }
        _ => None,
    }
}

fn error_response(id: Option<&RawValue>, err: &RpcError) -> Reply {
    Reply::Failure {
        jsonrpc: "2.0",
        id: echo(id),
        error: err.to_json(),
    }
}

/// The id to answer with, exactly as the request wrote it (None: null).
fn echo(id: Option<&RawValue>) -> Box<RawValue> {
    match id {
        Some(raw) => raw.to_owned(),
        None => RawValue::from_string("null".into()).expect("null is JSON"),
    }
}

/// Checks the request object's members. On failure, the id to answer with (the request's
/// own when it was readable, null otherwise) and the error.
fn validate(raw: &RawValue) -> Result<Request<'_>, Rejected<'_>> {
    let Some(mut members) = raw::members(raw) else {
        return Err(Box::new((
            None,
            RpcError::invalid_request("a request must be a JSON object"),
        )));
    };
    let id = match members.remove("id") {
        None => None,
        Some(id) if matches!(raw::kind(id), Kind::String | Kind::Number | Kind::Null) => Some(id),
        Some(_) => {
            return Err(Box::new((
                None,
                RpcError::invalid_request("id must be a string, a number or null"),
            )));
        }
    };
    let fail = |detail: String| Err(Box::new((id, RpcError::invalid_request(detail))));
    if let Some(unknown) = members
        .keys()
        .find(|k| !["jsonrpc", "method", "params"].contains(&k.as_str()))
    {
        return fail(format!("unknown member '{unknown}'"));
    }
    if !members.get("jsonrpc").is_some_and(|v| is_version_2(v)) {
        return fail("jsonrpc must be \"2.0\"".into());
    }
    let method = match members.get("method") {
        Some(m) => match raw::string(m) {
            Some(m) => m,
            None => return fail("method must be a string".into()),
        },
        None => return fail("method is missing".into()),
    };
    let params = match members.get("params") {
        None => None,
        Some(p) if matches!(raw::kind(p), Kind::Array | Kind::Object) => Some(*p),
        Some(_) => return fail("params must be an array or an object".into()),
    };
    Ok(Request { id, method, params })
}

/// `"2.0"`, or the number 2.0 that the seed document's examples send.
fn is_version_2(v: &RawValue) -> bool {
    match raw::kind(v) {
        Kind::String => raw::string(v).as_deref() == Some("2.0"),
        Kind::Number => serde_json::from_str::<f64>(v.get()).is_ok_and(|n| n == 2.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn without(params: &str) -> Option<Value> {
        without_args(serde_json::from_str(params).unwrap())
    }

    #[test]
    fn a_refused_callers_args_are_left_out_and_nothing_else_changes() {
        assert_eq!(
            without(r#"[null, "webhook.list", [1, 2, 3]]"#),
            Some(json!([null, "webhook.list", null]))
        );
        assert_eq!(without(r#"["s", "a.b"]"#), Some(json!(["s", "a.b"])));
        assert_eq!(without("[null]"), Some(json!([null])));
        assert_eq!(without("[]"), Some(json!([])));
        assert_eq!(
            without(r#"{"session_id": "s", "path": "a.b", "args": {"x": [1]}}"#),
            Some(json!({"session_id": "s", "path": "a.b", "args": null}))
        );
        assert_eq!(without(r#"{"path": 5}"#), Some(json!({"path": 5})));
    }

    #[test]
    fn params_of_another_shape_are_built_whole() {
        // Too many params, or unknown names: `call` refuses those for their shape.
        assert_eq!(without(r#"[null, "a.b", [], 4]"#), None);
        assert_eq!(without(r#"{"path": "a.b", "extra": 1}"#), None);
    }

    #[test]
    fn ids_are_checked_and_kept_as_written() {
        let raw: &RawValue = serde_json::from_str(r#"{"jsonrpc": "2.0", "id": 1.50, "method": "login"}"#).unwrap();
        let request = validate(raw).unwrap_or_else(|_| panic!("a valid request"));
        assert_eq!(request.id.unwrap().get(), "1.50");
        for bad in [r#"{"jsonrpc": "2.0", "id": [1], "method": "x"}"#, "[1]", "5"] {
            let raw: &RawValue = serde_json::from_str(bad).unwrap();
            let (id, err) = *validate(raw).err().expect("refused");
            assert!(id.is_none(), "{bad}");
            assert_eq!(err.code, super::super::error::INVALID_REQUEST);
        }
        let raw: &RawValue = serde_json::from_str(r#"{"jsonrpc": "1.0", "id": "x", "method": "x"}"#).unwrap();
        let (id, _) = *validate(raw).err().expect("refused");
        assert_eq!(id.unwrap().get(), r#""x""#);
    }
}
