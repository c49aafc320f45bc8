//! `event.publish(topic, message, options?)`: admins, and publishers for their merchants.

use serde_json::{json, Value};

use crate::app::events::PublishOptions;
use crate::app::{App, AppError, Caller};
use crate::domain::Role;
use crate::rpc::error::RpcError;
use crate::rpc::params::{clip, Args};

pub async fn publish(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(3)?;
    let topic = args
        .required(0, "topic")?
        .as_str()
        .ok_or_else(|| args.wrong_type("topic", "a string"))?;
    let message = args.required(1, "message")?;
    let mut options = parse_options(args.get(2))?;
    options.trace = crate::rpc::request_trace();
    options.key_check = caller.key_check();
    limit_to_caller(app, caller, &mut options).await?;
    let published = app.publish(topic, message, &options).await?;
    Ok(json!({"event_id": published.event_id.0, "payloads": published.payloads}))
}

/// A publisher limited to some merchants publishes only for them (2 otherwise); naming
/// none means its only one, if it has one. A merchant it may not publish for is refused
/// before it is looked up, so the answer does not tell which merchants exist.
async fn limit_to_caller(app: &App, caller: &Caller, options: &mut PublishOptions) -> Result<(), RpcError> {
    let codes = &caller.user.merchant_codes;
    if caller.role() != Role::Publisher || codes.is_empty() {
        return Ok(());
    }
    if options.merchant_code.is_none() && codes.len() == 1 {
        options.merchant_code = Some(codes[0].clone());
    }
    let code = match &options.merchant_code {
        Some(code) => code.clone(),
        None => app.resolve_merchant(None).await?.1,
    };
    if !caller.may_publish_for(&code) {
        return Err(RpcError::access_denied(&format!(
            "This key may not publish for merchant '{}'.",
            clip(&code)
        )));
    }
    options.merchant_code = Some(code);
    Ok(())
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
