//! `user.create`, `user.list`, `user.rotate_key`, `user.delete` (admins only, CONTRACT §7.1).
//! A key is shown once, in the answer that made it; `user.list` never shows a key or hash.

use serde_json::{json, Value};

use crate::app::provision::{self, UserRequest, MAX_MERCHANT_CODES};
use crate::app::{App, AppError, Caller};
use crate::rpc::error::RpcError;
use crate::rpc::params::{fields, opt_string, Args};
use crate::time::format_timestamp;

pub async fn create(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let obj = fields(
        args.required(0, "user")?,
        "user",
        &["username", "role", "merchant_code", "merchant_codes"],
    )?;
    let required = |name: &str| -> Result<String, AppError> {
        opt_string(obj, name)?.ok_or_else(|| AppError::InvalidData(format!("{name}: required")))
    };
    let merchant_codes = match obj.get("merchant_codes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() > MAX_MERCHANT_CODES => {
            return Err(AppError::InvalidData(format!(
                "merchant_codes: at most {MAX_MERCHANT_CODES} codes, {} given",
                items.len()
            ))
            .into())
        }
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AppError::InvalidData("merchant_codes: must be an array of strings".into()))?,
        ),
        Some(_) => return Err(AppError::InvalidData("merchant_codes: must be an array of strings".into()).into()),
    };
    let request = UserRequest {
        username: required("username")?,
        role: required("role")?,
        merchant_code: opt_string(obj, "merchant_code")?,
        merchant_codes,
    };
    let (user, key) = provision::user_create(&*app.store, request).await?;
    Ok(json!({"username": user.name, "role": user.role.as_str(), "api_key": key.expose()}))
}

pub async fn list(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(0)?;
    let users = app.store.user_list().await.map_err(AppError::from)?;
    Ok(Value::Array(
        users
            .iter()
            .map(|u| {
                json!({
                    "username": u.name,
                    "role": u.role.as_str(),
                    "merchant_code": u.merchant_code,
                    "merchant_codes": u.merchant_codes,
                    "created_at": format_timestamp(u.created_at),
                })
            })
            .collect(),
    ))
}

/// The one argument of `rotate_key` and `delete`: a user name.
fn username(args: &Args) -> Result<String, RpcError> {
    args.at_most(1)?;
    match args.required(0, "username")? {
        Value::String(s) => Ok(s.clone()),
        _ => Err(AppError::InvalidData("username: must be a string".into()).into()),
    }
}

pub async fn rotate_key(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    let name = username(&args)?;
    let key = provision::user_rotate_key(&*app.store, &name).await?;
    Ok(json!({"api_key": key.expose()}))
}

pub async fn delete(app: &App, caller: &Caller, args: Args) -> Result<Value, RpcError> {
    let name = username(&args)?;
    provision::user_delete(&*app.store, &name, Some(&caller.user)).await?;
    Ok(Value::Bool(true))
}
