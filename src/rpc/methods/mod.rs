//! The `resource.method` table of `call`. Each handler unpacks its arguments, calls one
//! `App` operation and converts the result; unknown resources answer 3, unknown methods of
//! a known resource answer 4.

mod delivery;
mod event;
mod topic;
mod webhook;

use serde_json::Value;

use super::error::{app_code, RpcError};
use super::params::Args;
use crate::app::{App, Caller};

const RESOURCES: &[&str] = &["webhook", "topic", "event", "delivery"];

pub async fn invoke(app: &App, caller: &Caller, path: &str, args: Args) -> Result<Value, RpcError> {
    let (resource, method) = path.split_once('.').unwrap_or((path, ""));
    match (resource, method) {
        ("webhook", "list") => webhook::list(app, caller, args).await,
        ("webhook", "create") => webhook::create(app, caller, args).await,
        ("webhook", "update_status") => webhook::update_status(app, caller, args).await,
        ("webhook", "delete") => webhook::delete(app, caller, args).await,
        ("webhook", "deliveries") => delivery::deliveries(app, caller, args).await,
        ("webhook", "test") => delivery::test(app, caller, args).await,
        ("delivery", "info") => delivery::info(app, caller, args).await,
        ("delivery", "retry") => delivery::retry(app, caller, args).await,
        ("event", "publish") => event::publish(app, caller, args).await,
        ("topic", "list") => topic::list(app, args),
        (r, _) if RESOURCES.contains(&r) => Err(RpcError::app(
            app_code::NOT_CALLABLE,
            format!("Resource path is not callable. '{path}' is not a method of '{r}'."),
        )),
        _ => Err(RpcError::app(
            app_code::INVALID_API_PATH,
            format!("Invalid api path. Unknown resource in '{path}'."),
        )),
    }
}
