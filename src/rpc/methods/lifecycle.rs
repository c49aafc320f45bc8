//! The webhook lifecycle (CONTRACT §6.1): `webhook.update`, `webhook.rotate_secret`,
//! `webhook.payloads`, `webhook.recover`, `delivery.list`.

use serde_json::{json, Map, Value};

use super::delivery::{id_arg, record};
use crate::app::{App, Caller};
use crate::domain::{DeliverySearch, DeliveryStatus, WebhookId};
use crate::rpc::error::{from_app, Operation, RpcError};
use crate::rpc::params::{as_id, Args};
use crate::time::{format_timestamp, format_timestamp_millis, parse_timestamp};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

fn invalid(detail: &str) -> RpcError {
    RpcError::invalid_data(detail)
}

/// The options object at `i`: absent or null is empty; any other non-object is 101.
fn options<'a>(args: &'a Args, i: usize, name: &str) -> Result<Option<&'a Map<String, Value>>, RpcError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(obj)) => Ok(Some(obj)),
        Some(_) => Err(invalid(&format!("{name} must be an object"))),
    }
}

fn unknown_keys(obj: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), RpcError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(&format!("{what}: unknown field '{k}'"))),
        None => Ok(()),
    }
}

fn limit(v: Option<&Value>) -> Result<i64, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_LIMIT),
        Some(v) => as_id(v)
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| invalid(&format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

/// A non-negative integer field.
fn count(v: &Value, field: &str) -> Result<i64, RpcError> {
    as_id(v)
        .filter(|n| *n >= 0)
        .ok_or_else(|| invalid(&format!("{field} must be a non-negative integer")))
}

pub async fn update(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let id = WebhookId(id_arg(&args, "webhook_id")?);
    let data = args.get(1).ok_or_else(|| RpcError::missing("webhook data"))?;
    app.webhook_update(caller, id, data)
        .await
        .map_err(|e| from_app(e, Operation::Other))?;
    Ok(Value::Bool(true))
}

pub async fn rotate_secret(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let id = WebhookId(id_arg(&args, "webhook_id")?);
    let rotated = app.webhook_rotate_secret(caller, id, args.get(1)).await?;
    Ok(json!({
        "secret_key": rotated.secret_key,
        "previous_expires_at": format_timestamp(rotated.previous_expires_at),
    }))
}

pub async fn payloads(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let id = WebhookId(id_arg(&args, "webhook_id")?);
    let range = options(&args, 1, "range")?.ok_or_else(|| RpcError::missing("range"))?;
    unknown_keys(range, &["from_increment_id", "to_increment_id", "limit"], "range")?;
    let from = match range.get("from_increment_id") {
        None | Some(Value::Null) => return Err(invalid("from_increment_id is required")),
        Some(v) => count(v, "from_increment_id")?,
    };
    let to = match range.get("to_increment_id") {
        None | Some(Value::Null) => i64::MAX,
        Some(v) => count(v, "to_increment_id")?,
    };
    if to < from {
        return Err(invalid("to_increment_id must not be below from_increment_id"));
    }
    let limit = limit(range.get("limit"))?;
    let found = app.webhook_payloads(caller, id, from, to, limit).await?;
    Ok(found
        .iter()
        .map(|p| {
            json!({
                "increment_id": p.increment_id,
                "delivery_id": p.delivery_id.0,
                "topic": p.topic,
                "status": p.status.as_str(),
                "created_at": format_timestamp_millis(p.created_at),
                "body": String::from_utf8_lossy(&p.body),
            })
        })
        .collect())
}

pub async fn recover(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let id = WebhookId(id_arg(&args, "webhook_id")?);
    let opts = options(&args, 1, "options")?.ok_or_else(|| RpcError::missing("options"))?;
    unknown_keys(opts, &["since"], "options")?;
    let since = match opts.get("since") {
        None | Some(Value::Null) => return Err(invalid("since is required")),
        Some(v) => v
            .as_str()
            .and_then(parse_timestamp)
            .ok_or_else(|| invalid("since must be an ISO-8601 time with an offset, e.g. 2021-12-07T16:08:15+00:00"))?,
    };
    let recovered = app.webhook_recover(caller, id, since).await?;
    Ok(json!({ "requeued": recovered.requeued, "remaining": recovered.remaining }))
}

pub async fn list(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let mut filter = DeliverySearch {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    if let Some(obj) = options(&args, 0, "filter")? {
        unknown_keys(obj, &["status", "topic", "event_id", "limit", "before"], "filter")?;
        for (key, v) in obj.iter().filter(|(_, v)| !v.is_null()) {
            match key.as_str() {
                "status" => {
                    filter.status = Some(v.as_str().and_then(DeliveryStatus::parse).ok_or_else(|| {
                        invalid("filter status must be one of pending, retrying, success, failed, canceled")
                    })?)
                }
                "topic" => {
                    filter.topic = Some(
                        v.as_str()
                            .ok_or_else(|| invalid("filter topic must be a string"))?
                            .to_string(),
                    )
                }
                "event_id" => {
                    filter.event_id = Some(as_id(v).ok_or_else(|| invalid("filter event_id must be an integer"))?)
                }
                "before" => {
                    filter.before = Some(as_id(v).ok_or_else(|| invalid("filter before must be a delivery id"))?)
                }
                _ => filter.limit = limit(Some(v))?,
            }
        }
    }
    let list = app.delivery_search(caller, &filter).await?;
    Ok(Value::Array(list.iter().map(record).collect()))
}
