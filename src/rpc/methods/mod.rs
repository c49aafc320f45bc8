//! The `resource.method` table of `call`. Each handler unpacks its arguments, calls one
//! `App` operation and converts the result; unknown resources answer 3, unknown methods of
//! a known resource answer 4.
//!
//! The one idea to know: `METHODS` is the only list of methods. `call` dispatches through
//! it and `rpc.discover` describes it (`discover.rs`), so the description cannot drift from
//! what is served.

mod delivery;
pub mod discover;
mod event;
mod lifecycle;
mod merchant;
mod portal;
mod topic;
mod user;
mod webhook;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::error::{app_code, RpcError};
use super::params::Args;
use crate::app::{App, Caller};
use crate::domain::Role;

type Handler = for<'a> fn(&'a App, &'a Caller, Args) -> BoxFuture<'a, Result<Value, RpcError>>;

/// One `resource.method`: how to call it, and how `rpc.discover` describes it.
pub struct Method {
    pub path: &'static str,
    pub summary: &'static str,
    /// Positional arguments, in order.
    pub params: &'static [Param],
    /// JSON Schema of the result, as JSON text.
    pub result: &'static str,
    /// Application error numbers it may answer (besides the ones every `call` may).
    pub errors: &'static [i64],
    /// The roles that may call it; anyone else gets 2.
    pub roles: &'static [Role],
    handler: Handler,
}

pub struct Param {
    pub name: &'static str,
    pub required: bool,
    /// JSON Schema, as JSON text.
    pub schema: &'static str,
    pub description: &'static str,
}

/// `handler!(module::function)`: the table's boxed form of an async handler.
macro_rules! handler {
    ($f:path) => {{
        fn boxed<'a>(app: &'a App, caller: &'a Caller, args: Args) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin($f(app, caller, args))
        }
        boxed as Handler
    }};
}

/// Who may call what (`Method::roles`).
const ADMIN: &[Role] = &[Role::Admin];
/// Webhooks and deliveries: admins, and merchant users for their own merchant.
const MANAGE: &[Role] = &[Role::Admin, Role::Merchant];
const PUBLISH: &[Role] = &[Role::Admin, Role::Publisher];
const ANYONE: &[Role] = &[Role::Admin, Role::Merchant, Role::Publisher];

const ID: &str = r#"{"type": "integer", "minimum": 1}"#;
const TRUE: &str = r#"{"type": "boolean", "const": true}"#;
const STATUS: &str = r#"{"oneOf": [{"enum": [0, 1, "0", "1"]}, {"type": "boolean"}]}"#;

pub static METHODS: &[Method] = &[
    Method {
        path: "webhook.list",
        summary: "The caller's webhooks (an admin's: every merchant's), ordered by webhook_id",
        params: &[],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}"##,
        errors: &[],
        roles: MANAGE,
        handler: handler!(webhook::list),
    },
    Method {
        path: "webhook.create",
        summary: "Registers a webhook",
        params: &[Param {
            name: "webhook",
            required: true,
            schema: r##"{"$ref": "#/components/schemas/NewWebhook"}"##,
            description: "topics and url are required; is_active, extra_headers and secret_key optional",
        }],
        result: TRUE,
        errors: &[app_code::INVALID_DATA, app_code::NOT_CREATED, app_code::CREATE_FAILED],
        roles: MANAGE,
        handler: handler!(webhook::create),
    },
    Method {
        path: "webhook.update_status",
        summary: "Activates or deactivates webhooks by id or by topic entry",
        params: &[
            Param {
                name: "target",
                required: true,
                schema: r#"{"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "object", "properties": {"webhook_id": {"type": "integer"}, "topic": {"type": "string"}, "status": {}}}]}"#,
                description: "a webhook id, a topic entry, or {webhook_id|topic, status}",
            },
            Param {
                name: "status",
                required: false,
                schema: STATUS,
                description: "1 (active) or 0; required unless target is the object form",
            },
        ],
        result: TRUE,
        errors: &[app_code::STATUS_NOT_CHANGED],
        roles: MANAGE,
        handler: handler!(webhook::update_status),
    },
    Method {
        path: "webhook.delete",
        summary: "Deletes a webhook and cancels its queued deliveries",
        params: &[Param {
            name: "webhook_id",
            required: true,
            schema: ID,
            description: "",
        }],
        result: TRUE,
        errors: &[app_code::WEBHOOK_NOT_FOUND, app_code::DELETE_FAILED],
        roles: MANAGE,
        handler: handler!(webhook::delete),
    },
    Method {
        path: "webhook.update",
        summary: "Changes a webhook; it keeps its id, increment_id sequence and delivery log, and queued payloads go to the new URL",
        params: &[
            Param {
                name: "webhook_id",
                required: true,
                schema: ID,
                description: "",
            },
            Param {
                name: "webhook",
                required: true,
                schema: r##"{"$ref": "#/components/schemas/WebhookChange"}"##,
                description: "the fields to change, validated as in webhook.create",
            },
        ],
        result: TRUE,
        errors: &[app_code::INVALID_DATA, app_code::WEBHOOK_NOT_FOUND],
        roles: MANAGE,
        handler: handler!(lifecycle::update),
    },
    Method {
        path: "webhook.rotate_secret",
        summary: "Replaces the secret key; the previous one keeps signing alongside it until previous_expires_at",
        params: &[
            Param {
                name: "webhook_id",
                required: true,
                schema: ID,
                description: "",
            },
            Param {
                name: "options",
                required: false,
                schema: r#"{"type": "object", "properties": {"secret_key": {"type": "string"}, "overlap": {"type": "string", "description": "a duration such as 24h (default), 30m or 0s; at most 30 days"}}, "additionalProperties": false}"#,
                description: "secret_key (generated when absent) and overlap",
            },
        ],
        result: r#"{"type": "object", "properties": {"secret_key": {"type": "string"}, "previous_expires_at": {"type": "string", "format": "date-time"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::WEBHOOK_NOT_FOUND],
        roles: MANAGE,
        handler: handler!(lifecycle::rotate_secret),
    },
    Method {
        path: "webhook.payloads",
        summary: "A webhook's payloads by increment_id range, in increment order, with the exact bodies sent (for receivers catching up on a gap)",
        params: &[
            Param {
                name: "webhook_id",
                required: true,
                schema: ID,
                description: "",
            },
            Param {
                name: "range",
                required: true,
                schema: r#"{"type": "object", "required": ["from_increment_id"], "properties": {"from_increment_id": {"type": "integer", "minimum": 0}, "to_increment_id": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}, "additionalProperties": false}"#,
                description: "from_increment_id <= increment_id <= to_increment_id (default: no upper bound)",
            },
        ],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/Payload"}}"##,
        errors: &[app_code::INVALID_DATA, app_code::WEBHOOK_NOT_FOUND],
        roles: MANAGE,
        handler: handler!(lifecycle::payloads),
    },
    Method {
        path: "webhook.recover",
        summary: "Queues the failed payloads of the webhook made at or after since again now (oldest first, at most 1000 a call and 5000 a minute), same bodies and ids; remaining: how many are still failed",
        params: &[
            Param {
                name: "webhook_id",
                required: true,
                schema: ID,
                description: "",
            },
            Param {
                name: "options",
                required: true,
                schema: r#"{"type": "object", "required": ["since"], "properties": {"since": {"type": "string", "format": "date-time"}}, "additionalProperties": false}"#,
                description: "since: an ISO-8601 time with an offset",
            },
        ],
        result: r#"{"type": "object", "properties": {"requeued": {"type": "integer"}, "remaining": {"type": "integer"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::WEBHOOK_NOT_FOUND, app_code::BUSY],
        roles: MANAGE,
        handler: handler!(lifecycle::recover),
    },
    Method {
        path: "webhook.deliveries",
        summary: "A webhook's payloads, newest first",
        params: &[
            Param {
                name: "webhook_id",
                required: true,
                schema: ID,
                description: "",
            },
            Param {
                name: "filter",
                required: false,
                schema: r#"{"oneOf": [{"type": "string"}, {"type": "object", "properties": {"status": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "before": {"type": "integer"}}, "additionalProperties": false}]}"#,
                description: "a status, or {status, limit, before}",
            },
        ],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}"##,
        errors: &[app_code::WEBHOOK_NOT_FOUND, app_code::INVALID_DATA],
        roles: MANAGE,
        handler: handler!(delivery::deliveries),
    },
    Method {
        path: "webhook.test",
        summary: "Makes a test:ping payload for the webhook (its message: the example of the webhook's first topic, when the catalog has one) and reports its first attempt",
        params: &[Param {
            name: "webhook_id",
            required: true,
            schema: ID,
            description: "",
        }],
        result: r#"{"type": "object", "properties": {"delivery_id": {"type": "integer"}, "increment_id": {"type": "integer"}, "success": {"type": "boolean"}, "status": {"type": "string"}, "http_status": {"type": ["integer", "null"]}, "duration_ms": {"type": "integer"}, "response_body": {"type": "string"}, "error": {"type": ["string", "null"]}}}"#,
        errors: &[app_code::WEBHOOK_NOT_FOUND, app_code::BUSY],
        roles: MANAGE,
        handler: handler!(delivery::test),
    },
    Method {
        path: "delivery.info",
        summary: "One payload with its body and every attempt",
        params: &[Param {
            name: "delivery_id",
            required: true,
            schema: ID,
            description: "",
        }],
        result: r##"{"$ref": "#/components/schemas/Delivery"}"##,
        errors: &[app_code::DELIVERY_NOT_FOUND],
        roles: MANAGE,
        handler: handler!(delivery::info),
    },
    Method {
        path: "delivery.list",
        summary: "Payloads across all of the caller's webhooks (an admin's: every merchant's), newest first",
        params: &[Param {
            name: "filter",
            required: false,
            schema: r#"{"type": "object", "properties": {"status": {"enum": ["pending", "retrying", "success", "failed", "canceled"]}, "topic": {"type": "string"}, "event_id": {"type": "integer"}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "before": {"type": "integer", "description": "only payloads with a smaller delivery_id (paging)"}}, "additionalProperties": false}"#,
            description: "",
        }],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}"##,
        errors: &[app_code::INVALID_DATA],
        roles: MANAGE,
        handler: handler!(lifecycle::list),
    },
    Method {
        path: "delivery.retry",
        summary: "Queues a failed payload again now, same body and increment id",
        params: &[Param {
            name: "delivery_id",
            required: true,
            schema: ID,
            description: "",
        }],
        result: TRUE,
        errors: &[app_code::DELIVERY_NOT_FOUND, app_code::NOT_RETRIED],
        roles: MANAGE,
        handler: handler!(delivery::retry),
    },
    Method {
        path: "event.publish",
        summary: "Publishes an event: one payload per matching active webhook of the merchant",
        params: &[
            Param {
                name: "topic",
                required: true,
                schema: r##"{"$ref": "#/components/schemas/Topic"}"##,
                description: "a catalog topic, e.g. order:created",
            },
            Param {
                name: "message",
                required: true,
                schema: r#"{"type": "object"}"#,
                description: "",
            },
            Param {
                name: "options",
                required: false,
                schema: r#"{"type": "object", "properties": {"merchant_code": {"type": "string"}, "idempotency_key": {"type": "string", "maxLength": 255}}, "additionalProperties": false}"#,
                description: "merchant_code is required when more than one merchant exists",
            },
        ],
        result: r#"{"type": "object", "properties": {"event_id": {"type": "integer"}, "payloads": {"type": "integer"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::SCHEMA_MISMATCH],
        roles: PUBLISH,
        handler: handler!(event::publish),
    },
    Method {
        path: "portal.link",
        summary: "A single-use URL that logs whoever opens it into the web console as the merchant (read-only if asked), until ttl passes",
        params: &[Param {
            name: "options",
            required: true,
            schema: r#"{"type": "object", "required": ["merchant_code"], "properties": {"merchant_code": {"type": "string", "minLength": 1, "maxLength": 64}, "ttl": {"type": "string", "default": "15m", "description": "a duration from 1m to 24h"}, "read_only": {"type": "boolean", "default": false}}, "additionalProperties": false}"#,
            description: "merchant_code, ttl (default 15m) and read_only (default false)",
        }],
        result: r#"{"type": "object", "properties": {"url": {"type": "string", "format": "uri"}, "expires_at": {"type": "string", "format": "date-time"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::NO_SUCH_MERCHANT],
        roles: ADMIN,
        handler: handler!(portal::link),
    },
    Method {
        path: "topic.list",
        summary: "The topic catalog",
        params: &[],
        result: r#"{"type": "array", "items": {"type": "string"}}"#,
        errors: &[],
        roles: ANYONE,
        handler: handler!(topic::list),
    },
    Method {
        path: "merchant.create",
        summary: "Creates a merchant (admins only)",
        params: &[Param {
            name: "merchant",
            required: true,
            schema: r##"{"$ref": "#/components/schemas/NewMerchant"}"##,
            description: "merchant_code (1 to 64 of letters, digits, '.', '_', '-', '@') and an optional name",
        }],
        result: r##"{"$ref": "#/components/schemas/Merchant"}"##,
        errors: &[app_code::INVALID_DATA, app_code::EXISTS],
        roles: ADMIN,
        handler: handler!(merchant::create),
    },
    Method {
        path: "merchant.list",
        summary: "Every merchant, with its name and webhook count, in the order they were made (admins only)",
        params: &[],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/Merchant"}}"##,
        errors: &[],
        roles: ADMIN,
        handler: handler!(merchant::list),
    },
    Method {
        path: "user.create",
        summary: "Creates a user and returns its API key, shown this once (admins only)",
        params: &[Param {
            name: "user",
            required: true,
            schema: r##"{"$ref": "#/components/schemas/NewUser"}"##,
            description: "username, role; merchant_code for a merchant user; merchant_codes (optional) for a publisher",
        }],
        result: r#"{"type": "object", "properties": {"username": {"type": "string"}, "role": {"type": "string"}, "api_key": {"type": "string"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::EXISTS, app_code::NO_SUCH_MERCHANT],
        roles: ADMIN,
        handler: handler!(user::create),
    },
    Method {
        path: "user.list",
        summary: "Every user, without keys (admins only)",
        params: &[],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/User"}}"##,
        errors: &[],
        roles: ADMIN,
        handler: handler!(user::list),
    },
    Method {
        path: "user.rotate_key",
        summary: "Gives the user a new API key; the old key and every session of the user stop at once (admins only)",
        params: &[USERNAME],
        result: r#"{"type": "object", "properties": {"api_key": {"type": "string"}}}"#,
        errors: &[app_code::INVALID_DATA, app_code::NO_SUCH_USER],
        roles: ADMIN,
        handler: handler!(user::rotate_key),
    },
    Method {
        path: "user.delete",
        summary: "Deletes a user; its sessions end (admins only; not yourself, not the last admin)",
        params: &[USERNAME],
        result: TRUE,
        errors: &[app_code::INVALID_DATA, app_code::NO_SUCH_USER],
        roles: ADMIN,
        handler: handler!(user::delete),
    },
    Method {
        path: "topic.describe",
        summary: "The event catalog with each topic's description, message schema (JSON Schema 2020-12, or null) and example (or null)",
        params: &[Param {
            name: "topic",
            required: false,
            schema: r#"{"type": ["string", "null"]}"#,
            description: "one topic (101 when it is not in the catalog); all of them when absent",
        }],
        result: r##"{"type": "array", "items": {"$ref": "#/components/schemas/CatalogEntry"}}"##,
        errors: &[app_code::INVALID_DATA],
        roles: ANYONE,
        handler: handler!(topic::describe),
    },
    Method {
        path: "topic.define",
        summary: "Adds a topic to the catalog or changes one (fields absent keep their value, null clears); with a schema, event.publish refuses messages that do not match it (113)",
        params: &[Param {
            name: "definition",
            required: true,
            schema: r#"{"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string", "maxLength": 100, "pattern": "^[a-z0-9_.-]+:[a-z0-9_.-]+$"}, "description": {"type": ["string", "null"], "maxLength": 1000}, "schema": {"type": ["object", "boolean", "null"], "description": "JSON Schema 2020-12 of the message, at most 64 KiB and 32 levels deep; $refs only within it"}, "example": {"type": ["object", "null"], "description": "an example message (at most 64 KiB), matching the schema"}}, "additionalProperties": false}"#,
            description: "{topic, description?, schema?, example?}",
        }],
        result: TRUE,
        errors: &[app_code::INVALID_DATA, app_code::BUSY],
        roles: ADMIN,
        handler: handler!(topic::define),
    },
];

const USERNAME: Param = Param {
    name: "username",
    required: true,
    schema: r#"{"type": "string", "minLength": 1, "maxLength": 64}"#,
    description: "",
};

/// The method at `path`, if there is one.
pub fn find(path: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.path == path)
}

pub async fn invoke(app: &App, caller: &Caller, path: &str, args: Args) -> Result<Value, RpcError> {
    if let Some(method) = find(path) {
        if !method.roles.contains(&caller.role()) {
            return Err(RpcError::access_denied(&format!(
                "A {} user may not call {path}.",
                caller.role().as_str()
            )));
        }
        return (method.handler)(app, caller, args).await;
    }
    let (resource, _) = path.split_once('.').unwrap_or((path, ""));
    if METHODS
        .iter()
        .any(|m| m.path.split_once('.').map(|(r, _)| r) == Some(resource))
    {
        Err(RpcError::app(
            app_code::NOT_CALLABLE,
            format!("Resource path is not callable. '{path}' is not a method of '{resource}'."),
        ))
    } else {
        Err(RpcError::app(
            app_code::INVALID_API_PATH,
            format!("Invalid api path. Unknown resource in '{path}'."),
        ))
    }
}
