//! `event.publish(topic, message, options?)` (admin only).

use serde_json::{json, Value};

use crate::app::events::PublishOptions;
use crate::app::{App, AppError, Caller};
use crate::rpc::error::RpcError;
use crate::rpc::params::Args;

pub async fn publish(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    caller
        .require_admin()
        .map_err(|_| RpcError::access_denied("Only an admin may publish events."))?;
    args.at_most(3)?;
    let topic = args
        .required(0, "topic")?
        .as_str()
        .ok_or_else(|| args.wrong_type("topic", "a string"))?;
    let message = args.required(1, "message")?;
    let options = parse_options(args.get(2))?;
    let published = app.publish(topic, message, &options).await?;
    Ok(json!({"event_id": published.event_id.0, "payloads": published.payloads}))
}

fn parse_options(value: Option<&Value>) -> Result<PublishOptions, AppError> {
    let Some(value) = value else {
        return Ok(PublishOptions::default());
    };
    let obj = value
        .as_object()
        .ok_or_else(|| AppError::InvalidData("options must be a JSON object".into()))?;
    let mut options = PublishOptions::default();
    for (key, v) in obj {
        let text = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(AppError::InvalidData(format!("options.{key} must be a string"))),
        };
        match key.as_str() {
            "merchant_code" => options.merchant_code = text,
            "idempotency_key" => options.idempotency_key = text,
            other => return Err(AppError::InvalidData(format!("options: unknown field '{other}'"))),
        }
    }
    Ok(options)
}
