//! `portal.link({merchant_code, ttl?, read_only?})` (admin only): a single-use console link.

use serde_json::{json, Value};

use crate::app::{App, AppError, Caller};
use crate::domain::portal::{parse_ttl, DEFAULT_TTL};
use crate::rpc::error::RpcError;
use crate::rpc::params::Args;

/// Longest merchant code looked up (longer ones cannot exist).
const MAX_CODE: usize = 64;

pub async fn link(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    caller
        .require_admin()
        .map_err(|_| RpcError::access_denied("Only an admin may make portal links."))?;
    args.at_most(1)?;
    let options = args.required(0, "options")?.as_object().ok_or_else(|| {
        AppError::InvalidData("portal.link takes one object {merchant_code, ttl?, read_only?}".into())
    })?;
    let mut code = None;
    let mut ttl = DEFAULT_TTL;
    let mut read_only = false;
    for (key, v) in options {
        match key.as_str() {
            "merchant_code" => match v {
                Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_CODE => code = Some(s.as_str()),
                _ => {
                    return Err(invalid(format!(
                        "merchant_code must be a string of 1 to {MAX_CODE} characters"
                    )))
                }
            },
            "ttl" => match v {
                Value::Null => {}
                Value::String(s) => ttl = parse_ttl(s).map_err(invalid)?,
                _ => {
                    return Err(invalid(
                        "ttl must be a duration string from 1m to 24h such as \"15m\"".into(),
                    ))
                }
            },
            "read_only" => match v {
                Value::Null => {}
                Value::Bool(b) => read_only = *b,
                _ => return Err(invalid("read_only must be true or false".into())),
            },
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(invalid(format!(
                    "unknown field '{shown}' (the fields are merchant_code, ttl, read_only)"
                )));
            }
        }
    }
    let code = code.ok_or_else(|| invalid("merchant_code is required".into()))?;
    let base = crate::rpc::request_base();
    let link = app.portal_link(caller, code, ttl, read_only, base.as_deref()).await?;
    Ok(json!({"url": link.url, "expires_at": link.expires_at_text()}))
}

fn invalid(why: String) -> RpcError {
    AppError::InvalidData(why).into()
}
