//! `rpc.discover`: an OpenRPC 1.x document of the API, built from `METHODS`.
//!
//! JSON-RPC has two real methods, `login` and `call`; every `resource.method` travels inside
//! `call(session_id, "resource.method", [args])`. The document lists `login`, `call` and
//! `rpc.discover` as they are, and each `resource.method` under its own name with its
//! positional arguments, so tools can show and check them; their descriptions say how they
//! are reached.

use serde_json::{json, Map, Value};

use super::{Method, METHODS};
use crate::domain::catalog::CatalogEntry;
use crate::domain::steering::{MAX_RATE_LIMIT, MIN_RATE_LIMIT};
use crate::rpc::error::{app_code, app_message, INTERNAL_ERROR, INVALID_PARAMS};

pub const OPENRPC_VERSION: &str = "1.2.6";

/// Errors any `call` may answer, whatever the method.
const CALL_ERRORS: &[i64] = &[
    app_code::ACCESS_DENIED,
    app_code::INVALID_API_PATH,
    app_code::NOT_CALLABLE,
    app_code::SESSION_EXPIRED,
    app_code::PARAM_MISSING,
];

pub fn document() -> Value {
    let mut methods = vec![login(), call(), discover()];
    methods.extend(METHODS.iter().map(resource_method));
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "hookd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhook delivery service. POST JSON-RPC 2.0 to /api/jsonrpc. Application error N \
                            is sent as code -(32000 + N).",
        },
        "methods": methods,
        "components": {"schemas": schemas()},
    })
}

fn schema(text: &str) -> Value {
    serde_json::from_str(text).expect("the method table's schemas are valid JSON")
}

fn error(code: i64, message: &str) -> Value {
    json!({"code": code, "message": message})
}

fn app_errors(numbers: &[i64]) -> Vec<Value> {
    numbers.iter().map(|&n| error(-(32000 + n), app_message(n))).collect()
}

fn login() -> Value {
    json!({
        "name": "login",
        "summary": "Turns a user name and API key into a session id valid 24 hours",
        "paramStructure": "either",
        "params": [
            {"name": "username", "required": true, "schema": {"type": "string"}},
            {"name": "api_key", "required": true, "schema": {"type": "string"}},
        ],
        "result": {"name": "session_id", "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
        "errors": app_errors(&[app_code::ACCESS_DENIED, app_code::PARAM_MISSING]),
    })
}

fn call() -> Value {
    let paths: Vec<&str> = METHODS.iter().map(|m| m.path).collect();
    json!({
        "name": "call",
        "summary": "Calls a resource method; session_id null means HTTP Basic credentials authenticate",
        "paramStructure": "either",
        "params": [
            {"name": "session_id", "required": true, "schema": {"type": ["string", "null"]}},
            {"name": "path", "required": true, "schema": {"type": "string", "enum": paths}},
            {"name": "args", "required": false, "schema": {"type": "array"}},
        ],
        "result": {"name": "result", "schema": {}},
        "errors": app_errors(CALL_ERRORS),
    })
}

fn discover() -> Value {
    json!({
        "name": "rpc.discover",
        "summary": "This document",
        "params": [],
        "result": {"name": "openrpc", "schema": {"type": "object"}},
    })
}

fn resource_method(m: &Method) -> Value {
    let mut errors = app_errors(m.errors);
    errors.push(error(INVALID_PARAMS, "Invalid params"));
    errors.push(error(INTERNAL_ERROR, "Internal error"));
    let who = if m.admin_only { " Admins only." } else { "" };
    json!({
        "name": m.path,
        "summary": m.summary,
        "description": format!(
            "Reached as call(session_id, \"{}\", [args…]); the params below are the args, by position.{who}",
            m.path
        ),
        "paramStructure": "by-position",
        "params": m.params.iter().map(|p| {
            let mut d = json!({"name": p.name, "required": p.required, "schema": schema(p.schema)});
            if !p.description.is_empty() {
                d["description"] = Value::from(p.description);
            }
            d
        }).collect::<Vec<_>>(),
        "result": {"name": "result", "schema": schema(m.result)},
        "errors": errors,
    })
}

fn schemas() -> Map<String, Value> {
    let topics = json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
    let mut s = Map::new();
    s.insert(
        "Webhook".into(),
        json!({"type": "object", "properties": {
            "webhook_id": {"type": "integer"}, "increment_id": {"type": "integer"},
            "is_active": {"enum": [0, 1]}, "topics": {"type": "string"}, "url": {"type": "string"},
            "extra_headers": {"type": "string"}, "secret_key": {"type": "string"},
            "merchant_code": {"type": "string"}, "disabled_reason": {"type": ["string", "null"]},
            "ordered": {"type": "boolean"}, "max_rate": {"type": ["number", "null"]},
            "filter": {"type": ["string", "null"]}}}),
    );
    // What create and update both take; create also takes the secret and (admins) the merchant.
    let writable = json!({
        "topics": topics, "url": {"type": "string", "format": "uri"},
        "is_active": {"oneOf": [{"enum": [0, 1, "0", "1"]}, {"type": "boolean"}]},
        "extra_headers": {"type": "string"},
        "ordered": {"oneOf": [{"enum": [0, 1, "0", "1"]}, {"type": "boolean"}],
            "description": "at most one attempt in flight, in increment order"},
        "max_rate": {"type": ["number", "null"], "minimum": MIN_RATE_LIMIT, "maximum": MAX_RATE_LIMIT,
            "description": "deliveries per second at most, from 1/3600 (one an hour); null: no limit"},
        "filter": {"type": ["string", "null"], "maxLength": 4096,
            "description": "a CEL expression over topic and message; null: every event"}});
    s.insert(
        "WebhookChange".into(),
        json!({"type": "object", "additionalProperties": false, "properties": writable.clone()}),
    );
    s.insert(
        "Payload".into(),
        json!({"type": "object", "properties": {
            "increment_id": {"type": "integer"}, "delivery_id": {"type": "integer"},
            "topic": {"type": "string"},
            "status": {"enum": ["pending", "retrying", "success", "failed", "canceled"]},
            "created_at": {"type": "string"}, "body": {"type": "string"}}}),
    );
    let mut creatable = writable;
    creatable["secret_key"] = json!({"type": "string"});
    creatable["merchant_code"] = json!({"type": "string", "description": "admins only: whose webhook it is"});
    s.insert(
        "NewWebhook".into(),
        json!({"type": "object", "required": ["topics", "url"], "additionalProperties": false,
            "properties": creatable}),
    );
    s.insert(
        "Delivery".into(),
        json!({"type": "object", "properties": {
            "delivery_id": {"type": "integer"}, "webhook_id": {"type": "integer"},
            "event_id": {"type": ["integer", "null"]}, "increment_id": {"type": "integer"},
            "topic": {"type": "string"},
            "status": {"enum": ["pending", "retrying", "success", "failed", "canceled"]},
            "attempts": {"type": "integer"}, "next_attempt_at": {"type": ["string", "null"]},
            "last_http_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string"}, "body": {"type": "string"},
            "attempt_log": {"type": "array", "items": {"type": "object"}}}}),
    );
    s.insert(
        "CatalogEntry".into(),
        json!({"type": "object", "properties": {
            "topic": {"$ref": "#/components/schemas/Topic"}, "description": {"type": "string"},
            "schema": {"type": ["object", "boolean", "null"]}, "example": {"type": ["object", "null"]}}}),
    );
    s.insert(
        "Topic".into(),
        json!({"type": "string", "description": "a catalog topic (topic.list, topic.describe)"}),
    );
    s
}

/// The document with the catalog's topics and their descriptions (the ones `topic.describe`
/// and the AsyncAPI document give) as the `Topic` schema.
pub fn document_with_catalog(entries: &[CatalogEntry]) -> Value {
    let mut doc = document();
    let topics: Vec<Value> = entries
        .iter()
        .map(|e| json!({"const": e.topic, "description": e.description}))
        .collect();
    if !topics.is_empty() {
        doc["components"]["schemas"]["Topic"] = json!({"type": "string", "oneOf": topics});
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_is_described_once_with_its_errors() {
        let doc = document();
        assert_eq!(doc["openrpc"], OPENRPC_VERSION);
        let names: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let mut expected = vec!["login", "call", "rpc.discover"];
        expected.extend(METHODS.iter().map(|m| m.path));
        assert_eq!(names, expected);
        for m in doc["methods"].as_array().unwrap() {
            assert!(m["result"]["schema"].is_object(), "{m}");
            for p in m["params"].as_array().unwrap() {
                assert!(p["name"].is_string() && p["schema"].is_object(), "{p}");
            }
            for e in m["errors"].as_array().into_iter().flatten() {
                assert!(e["code"].is_i64() && !e["message"].as_str().unwrap().is_empty(), "{e}");
            }
        }
        let create = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "webhook.create")
            .unwrap();
        assert!(create["errors"].as_array().unwrap().iter().any(|e| e["code"] == -32101));
    }
}
