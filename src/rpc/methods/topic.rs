//! The event catalog (CONTRACT §7.4): `topic.list()` (the names webhooks can subscribe to),
//! `topic.describe(topic?)` and, for admins, `topic.define({topic, description?, schema?,
//! example?})`.

use serde_json::Value;

use crate::app::{App, Caller};
use crate::rpc::error::RpcError;
use crate::rpc::params::Args;

pub async fn list(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(0)?;
    Ok(Value::from(app.topic_list_fresh().await?))
}

pub async fn describe(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let topic = match args.get(0) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(args.wrong_type("topic", "a string")),
    };
    let entries = app.topic_describe(topic).await?;
    Ok(Value::Array(entries.iter().map(|e| e.to_json()).collect()))
}

pub async fn define(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    caller
        .require_admin()
        .map_err(|_| RpcError::access_denied("Only an admin may define topics."))?;
    args.at_most(1)?;
    let definition = args.required(0, "topic definition")?;
    app.topic_define(caller, definition).await?;
    Ok(Value::Bool(true))
}
