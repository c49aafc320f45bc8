//! `rpc.discover`: an OpenRPC 1.x document of the API, built from `METHODS`.
//!
//! Every `resource.method` is reached two ways: directly, as the JSON-RPC method itself
//! with its arguments as `params` (by position, or by the names given here) and the caller
//! named by HTTP Basic or `Authorization: Bearer <session id>`; or inside the seed's
//! `call(session_id, "resource.method", [args])`. The document lists `login`, `call` and
//! `rpc.discover` as they are, and each `resource.method` under its own name with its
//! arguments, so a client generated from it (e.g. by `@open-rpc/generator`) calls the
//! methods directly.

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
    let mut doc = json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "hookd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhook delivery service. POST JSON-RPC 2.0 to /api/jsonrpc. Every resource method \
                            is callable directly (params by position or by name; authenticate with HTTP Basic \
                            username:api_key, or Authorization: Bearer <session id from login>), or through \
                            call(session_id, path, args). Application error N is sent as code -(32000 + N).",
        },
        "methods": methods,
        "components": {"schemas": schemas()},
    });
    plain_types(&mut doc);
    doc
}

/// Rewrites every schema in the document into the forms code generators handle: a list of
/// types (`{"type": ["string", "null"]}`) becomes a `oneOf` of single types, and an array
/// with no `items` gets `"items": {}` (same meaning). `@open-rpc/generator` crashes on the
/// second and names types it never defines for the first.
fn plain_types(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(plain_types),
        Value::Object(obj) => {
            if obj.get("type") == Some(&Value::from("array")) && !obj.contains_key("items") {
                obj.insert("items".into(), json!({}));
            }
            if let Some(Value::Array(types)) = obj.get("type").cloned() {
                obj.remove("type");
                let description = obj.remove("description");
                let rest = std::mem::take(obj);
                let branches: Vec<Value> = types
                    .into_iter()
                    .map(|t| {
                        let mut branch = if t == "null" { Map::new() } else { rest.clone() };
                        branch.insert("type".into(), t);
                        Value::Object(branch)
                    })
                    .collect();
                obj.insert("oneOf".into(), Value::Array(branches));
                if let Some(d) = description {
                    obj.insert("description".into(), d);
                }
            }
            obj.values_mut().for_each(plain_types);
        }
        _ => {}
    }
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

/// Errors any directly called resource method may answer, whatever it is.
const DIRECT_ERRORS: &[i64] = &[
    app_code::ACCESS_DENIED,
    app_code::SESSION_EXPIRED,
    app_code::PARAM_MISSING,
];

fn resource_method(m: &Method) -> Value {
    let mut errors = app_errors(m.errors);
    errors.extend(app_errors(DIRECT_ERRORS));
    errors.push(error(INVALID_PARAMS, "Invalid params"));
    errors.push(error(INTERNAL_ERROR, "Internal error"));
    let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
    let who = format!(" Roles: {}.", roles.join(", "));
    json!({
        "name": m.path,
        "summary": m.summary,
        "description": format!(
            "Call it directly as \"{path}\" with these params, authenticated by HTTP Basic or Authorization: \
             Bearer <session id> (params by name are accepted too); or as call(session_id, \"{path}\", [params]).{who}",
            path = m.path
        ),
        // By position: what `call` takes, and what generated clients send. ("either" makes
        // @open-rpc/schema-utils-js look an omitted param up by name on the params array,
        // where `filter` is a function.)
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
            "description": {"type": "string", "maxLength": 200}, "is_active": {"enum": [0, 1]}, "topics": {"type": "string"}, "url": {"type": "string"},
            "extra_headers": {"type": "string"}, "secret_key": {"type": "string"},
            "merchant_code": {"type": "string"}, "disabled_reason": {"type": ["string", "null"]},
            "ordered": {"type": "boolean"}, "max_rate": {"type": ["number", "null"]},
            "filter": {"type": ["string", "null"]},
            "signature_scheme": {"enum": ["hmac", "hmac+ed25519"]},
            "public_key": {"type": ["string", "null"], "pattern": "^whpk_",
                "description": "the Ed25519 public key with hmac+ed25519, else null"}}}),
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
            "description": "a CEL expression over topic and message; null: every event"},
        "signature_scheme": {"enum": ["hmac", "hmac+ed25519"],
            "description": "hmac+ed25519 adds v1a (Ed25519) signatures; default hmac"},
        "description": {"type": "string", "maxLength": 200,
            "description": "free text shown as the webhook's name; default \"\""}});
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
    let code = json!({"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"});
    s.insert(
        "NewMerchant".into(),
        json!({"type": "object", "required": ["merchant_code"], "additionalProperties": false, "properties": {
            "merchant_code": code, "name": {"type": "string", "minLength": 1, "maxLength": 200}}}),
    );
    s.insert(
        "Merchant".into(),
        json!({"type": "object", "properties": {
            "merchant_code": {"type": "string"}, "name": {"type": ["string", "null"]},
            "created_at": {"type": "string"}, "webhooks": {"type": "integer"}}}),
    );
    s.insert(
        "NewUser".into(),
        json!({"type": "object", "required": ["username", "role"], "additionalProperties": false, "properties": {
            "username": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"},
            "role": {"enum": ["admin", "merchant", "publisher"]},
            "merchant_code": {"type": "string", "description": "required for (and only for) role merchant"},
            "merchant_codes": {"type": "array", "items": code, "maxItems": 100,
                "description": "role publisher only: the merchants it may publish for (none: any)"}}}),
    );
    s.insert(
        "User".into(),
        json!({"type": "object", "properties": {
            "username": {"type": "string"}, "role": {"enum": ["admin", "merchant", "publisher"]},
            "merchant_code": {"type": ["string", "null"]},
            "merchant_codes": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"}}}),
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
        let text = doc.to_string();
        assert!(!text.contains(r#""type":["#), "no list of types: {text}");
        let create = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "webhook.create")
            .unwrap();
        assert!(create["errors"].as_array().unwrap().iter().any(|e| e["code"] == -32101));
    }
}
