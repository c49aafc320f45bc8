//! The delivery log: `webhook.deliveries`, `webhook.test`, `delivery.info`, `delivery.retry`.

use serde_json::{json, Value};

use crate::app::{App, Caller};
use crate::domain::{DeliveryFilter, DeliveryRecord};
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId};
use crate::rpc::error::RpcError;
use crate::rpc::params::{as_id, Args};
use crate::time::format_timestamp_millis;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub(super) fn record(r: &DeliveryRecord) -> Value {
    let queued = matches!(r.status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    json!({
        "delivery_id": r.id.0,
        "webhook_id": r.webhook_id.0,
        "event_id": r.event_id,
        "increment_id": r.increment_id,
        "topic": r.topic,
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "next_attempt_at": queued.then(|| format_timestamp_millis(r.next_attempt_at)),
        "last_http_status": r.last_http_status,
        "last_error": r.last_error,
        "created_at": format_timestamp_millis(r.created_at),
    })
}

fn invalid(detail: &str) -> RpcError {
    RpcError::invalid_data(detail)
}

/// `filter`: a status string, or `{"status", "limit", "before"}`.
fn parse_filter(value: Option<&Value>) -> Result<DeliveryFilter, RpcError> {
    let mut filter = DeliveryFilter {
        status: None,
        before: None,
        limit: DEFAULT_LIMIT,
    };
    let status = |v: &Value| -> Result<DeliveryStatus, RpcError> {
        v.as_str()
            .and_then(DeliveryStatus::parse)
            .ok_or_else(|| invalid("filter status must be one of pending, retrying, success, failed, canceled"))
    };
    match value {
        None => {}
        Some(v @ Value::String(_)) => filter.status = Some(status(v)?),
        Some(Value::Object(obj)) => {
            for (key, v) in obj {
                match key.as_str() {
                    "status" => filter.status = Some(status(v)?),
                    "before" => {
                        filter.before = Some(as_id(v).ok_or_else(|| invalid("filter before must be a delivery id"))?)
                    }
                    "limit" => {
                        filter.limit = as_id(v)
                            .filter(|n| (1..=MAX_LIMIT).contains(n))
                            .ok_or_else(|| invalid(&format!("filter limit must be 1 to {MAX_LIMIT}")))?
                    }
                    other => return Err(invalid(&format!("filter: unknown field '{other}'"))),
                }
            }
        }
        Some(_) => return Err(invalid("filter must be a status string or an object")),
    }
    Ok(filter)
}

pub(super) fn id_arg(args: &Args, name: &str) -> Result<i64, RpcError> {
    as_id(args.required(0, name)?).ok_or_else(|| args.wrong_type(name, "an integer"))
}

pub async fn deliveries(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(2)?;
    let webhook = WebhookId(id_arg(&args, "webhook_id")?);
    let filter = parse_filter(args.get(1))?;
    let list = app.deliveries(caller, webhook, &filter).await?;
    Ok(Value::Array(list.iter().map(record).collect()))
}

pub async fn info(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let id = DeliveryId(id_arg(&args, "delivery_id")?);
    let detail = app.delivery_info(caller, id).await?;
    let mut out = record(&detail.record);
    out["body"] = Value::String(String::from_utf8_lossy(&detail.body).into_owned());
    out["attempt_log"] = detail
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempted_at": format_timestamp_millis(a.attempted_at),
                "http_status": a.http_status,
                "duration_ms": a.duration_ms,
                "response_body": a.response_prefix,
                "error": a.error,
            })
        })
        .collect();
    Ok(out)
}

pub async fn retry(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let id = DeliveryId(id_arg(&args, "delivery_id")?);
    app.delivery_retry(caller, id).await?;
    Ok(Value::Bool(true))
}

pub async fn test(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let webhook = WebhookId(id_arg(&args, "webhook_id")?);
    let t = app.webhook_test(caller, webhook).await?;
    Ok(json!({
        "delivery_id": t.delivery_id.0,
        "increment_id": t.increment_id,
        "success": t.outcome.success,
        "status": t.status.as_str(),
        "http_status": t.outcome.http_status,
        "duration_ms": t.outcome.duration.as_millis() as i64,
        "response_body": t.outcome.response_prefix,
        "error": t.outcome.error,
    }))
}
