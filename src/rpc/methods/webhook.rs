//! `webhook.list`, `webhook.create`, `webhook.update_status`, `webhook.delete`.

use serde_json::{json, Value};

use crate::app::{App, Caller};
use crate::domain::StatusTarget;
use crate::domain::{parse_flag, Webhook, WebhookId};
use crate::rpc::error::{from_app, Operation, RpcError};
use crate::rpc::params::{as_id, Args};

fn entity(w: &Webhook) -> Value {
    json!({
        "webhook_id": w.id.0,
        "description": w.description,
        "increment_id": w.increment_id,
        "is_active": w.is_active as i64,
        "topics": w.topics,
        "url": w.url,
        "extra_headers": w.extra_headers,
        "secret_key": w.secret_key,
        "merchant_code": w.merchant_code,
        "disabled_reason": w.disabled_reason,
        "ordered": w.ordered,
        "max_rate": w.max_rate,
        "filter": w.filter,
        "signature_scheme": w.signature_scheme.as_str(),
        // null with "hmac"; never the private key.
        "public_key": w.public_key.as_deref().filter(|_| w.signature_scheme.has_key_pair()),
    })
}

pub async fn list(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(0)?;
    let hooks = app.webhook_list(caller).await?;
    Ok(Value::Array(hooks.iter().map(entity).collect()))
}

pub async fn create(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let data = args.required(0, "webhook data")?;
    app.webhook_create(caller, data)
        .await
        .map_err(|e| from_app(e, Operation::Create))?;
    Ok(Value::Bool(true))
}

fn status_error(detail: &str) -> RpcError {
    RpcError::status_not_changed(detail)
}

/// A webhook id (integer or digits) or a topic entry.
fn target(v: &Value) -> Result<StatusTarget, RpcError> {
    if let Some(id) = as_id(v) {
        return Ok(StatusTarget::Id(WebhookId(id)));
    }
    match v {
        Value::String(topic) => Ok(StatusTarget::Topic(topic.trim().to_string())),
        _ => Err(status_error("The target must be a webhook id or a topic.")),
    }
}

/// `(target, status)`, or `({"webhook_id"|"topic": …, "status": …})`. Without a target
/// (the seed's own example sends only `{"status": 1}`) every webhook of the caller changes.
pub async fn update_status(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let first = args.required(0, "topic or webhook_id")?;
    let (target, status) = match first {
        Value::Object(obj) => {
            args.at_most(1)?;
            if let Some(unknown) = obj
                .keys()
                .find(|k| !["webhook_id", "topic", "status"].contains(&k.as_str()))
            {
                return Err(status_error(&format!("Unknown field '{unknown}'.")));
            }
            let target = match (obj.get("webhook_id"), obj.get("topic")) {
                (Some(_), Some(_)) => return Err(status_error("Give webhook_id or topic, not both.")),
                (Some(id), None) => Some(StatusTarget::Id(WebhookId(
                    as_id(id).ok_or_else(|| status_error("webhook_id must be an integer."))?,
                ))),
                (None, Some(Value::String(t))) => Some(StatusTarget::Topic(t.trim().to_string())),
                (None, Some(_)) => return Err(status_error("topic must be a string.")),
                (None, None) => None,
            };
            (target, obj.get("status").ok_or_else(|| RpcError::missing("status"))?)
        }
        other => (Some(target(other)?), args.required(1, "status")?),
    };
    let active =
        parse_flag(status).ok_or_else(|| status_error("Status must be 0 or 1 (or \"0\", \"1\", true, false)."))?;
    app.webhook_update_status(caller, target, active).await?;
    Ok(Value::Bool(true))
}

pub async fn delete(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let id = as_id(args.required(0, "webhook_id")?).ok_or_else(|| args.wrong_type("webhook_id", "an integer"))?;
    app.webhook_delete(caller, WebhookId(id))
        .await
        .map_err(|e| from_app(e, Operation::Delete))?;
    Ok(Value::Bool(true))
}
