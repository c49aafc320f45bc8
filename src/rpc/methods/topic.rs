//! `topic.list()`: the catalog of topics webhooks can subscribe to.

use serde_json::Value;

use crate::app::{App, Caller};
use crate::rpc::error::RpcError;
use crate::rpc::params::Args;

pub async fn list(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(0)?;
    Ok(Value::from(app.topic_list()))
}
