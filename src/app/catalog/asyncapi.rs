//! `GET /catalog/asyncapi.json`: the catalog as an AsyncAPI 3.0 document. hookd is the
//! application described: it *sends* each topic's deliveries (operation `send`) to the
//! receivers' URLs; a channel per topic, a message per channel with the delivery's body (the
//! envelope around the topic's schema), the signature headers and the example.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::domain::catalog::CatalogEntry;

/// The document for `entries` (ordered by topic).
pub fn asyncapi_document(entries: &[CatalogEntry]) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut taken = HashSet::new();
    for entry in entries {
        let id = unique_id(&entry.topic, &mut taken);
        channels.insert(
            id.clone(),
            json!({
                "address": entry.topic,
                "title": entry.topic,
                "description": description(entry),
                "messages": {id.clone(): {"$ref": format!("#/components/messages/{id}")}},
            }),
        );
        operations.insert(
            format!("send.{id}"),
            json!({
                "action": "send",
                "title": format!("Deliver {}", entry.topic),
                "summary": "hookd POSTs the delivery to every active webhook of the merchant subscribed to the topic",
                "channel": {"$ref": format!("#/channels/{id}")},
                "messages": [{"$ref": format!("#/channels/{id}/messages/{id}")}],
            }),
        );
        let mut message = json!({
            "name": entry.topic,
            "title": entry.topic,
            "summary": description(entry),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/DeliveryHeaders"},
            "payload": envelope(&entry.topic, entry.schema.as_ref()),
        });
        if let Some(example) = &entry.example {
            message["examples"] = json!([{"name": "example", "payload": example_body(&entry.topic, example)}]);
        }
        messages.insert(id, message);
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "hookd event catalog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The events hookd delivers to webhooks: one channel per catalog topic. Each delivery \
                is an HTTP POST of a JSON body {topic, merchant_code, message} to the webhook's URL, signed with the \
                webhook's secret_key. hookd adds webhook_increment_id and event_timestamp to every message \
                (replacing fields of those names); the topic's schema describes the rest of the message, \
                as the publisher sent it (event.publish checks it).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"DeliveryHeaders": headers_schema()},
        },
    })
}

/// A channel and message id from a topic (ids allow letters, digits, `_ . -`): `:` becomes
/// `.`, and a topic whose id is taken gets a suffix.
fn unique_id(topic: &str, taken: &mut HashSet<String>) -> String {
    let base = topic.replace(':', ".");
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

fn description(entry: &CatalogEntry) -> String {
    if entry.description.is_empty() {
        format!("The {} event.", entry.topic)
    } else {
        entry.description.clone()
    }
}

/// The delivered body: the topic's schema (if any) for the message, with hookd's fields.
fn envelope(topic: &str, schema: Option<&Value>) -> Value {
    let ours = json!({
        "type": "object",
        "required": ["webhook_increment_id", "event_timestamp"],
        "properties": {
            "webhook_increment_id": {
                "type": "integer", "minimum": 1,
                "description": "The webhook's own sequence: 1, 2, 3… per webhook, gap-free (a receiver detects a gap, then calls webhook.payloads)"
            },
            "event_timestamp": {
                "type": "string", "format": "date-time",
                "description": "When the event was published (ISO 8601 with offset)"
            }
        }
    });
    let message = match schema {
        // The `$schema` of the stored 2020-12 schema is left out: here it is an AsyncAPI
        // Schema object, which names its dialect by the document.
        Some(Value::Object(s)) => {
            let mut s = s.clone();
            s.remove("$schema");
            json!({"allOf": [Value::Object(s), ours]})
        }
        Some(other) => json!({"allOf": [other, ours]}),
        None => ours,
    };
    json!({
        "type": "object",
        "required": ["topic", "merchant_code", "message"],
        "properties": {
            "topic": {"type": "string", "const": topic},
            "merchant_code": {"type": "string", "description": "The merchant the event belongs to"},
            "message": message,
        }
    })
}

fn example_body(topic: &str, example: &Value) -> Value {
    let mut message = example.as_object().cloned().unwrap_or_default();
    message.insert("webhook_increment_id".into(), json!(1));
    message.insert("event_timestamp".into(), json!("2026-12-01T09:30:00+00:00"));
    json!({"topic": topic, "merchant_code": "acme", "message": message})
}

fn headers_schema() -> Value {
    json!({
        "type": "object",
        "required": ["content-type", "x-plugin-hmac-sha256", "webhook-id", "webhook-timestamp", "webhook-signature"],
        "properties": {
            "content-type": {"type": "string", "const": "application/json"},
            "x-plugin-hmac-sha256": {
                "type": "string",
                "description": "base64(HMAC-SHA256(secret_key, raw body))"
            },
            "x-plugin-hmac-sha256-previous": {
                "type": "string",
                "description": "The same with the previous secret_key, while a rotation's overlap lasts"
            },
            "webhook-id": {
                "type": "string",
                "description": "Standard Webhooks message id (msg_<delivery_id>), stable across the attempts of one payload"
            },
            "webhook-timestamp": {
                "type": "string",
                "description": "Standard Webhooks: Unix seconds of this attempt"
            },
            "webhook-signature": {
                "type": "string",
                "description": "Standard Webhooks: v1,base64(HMAC-SHA256(secret_key, id.timestamp.body)); space-separated, \
                    one per key while a rotation's overlap lasts"
            }
        },
        "additionalProperties": {"type": "string", "description": "The webhook's extra_headers"}
    })
}
