//! `merchant.create({merchant_code, name?})` and `merchant.list()` (admins only, CONTRACT §7.1).

use serde_json::{json, Value};

use crate::app::{provision, App, AppError, Caller};
use crate::domain::MerchantSummary;
use crate::rpc::error::RpcError;
use crate::rpc::params::{fields, opt_string, Args};
use crate::time::format_timestamp;

fn entity(m: &MerchantSummary) -> Value {
    json!({
        "merchant_code": m.code,
        "name": m.name,
        "created_at": format_timestamp(m.created_at),
        "webhooks": m.webhooks,
    })
}

pub async fn create(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(1)?;
    let obj = fields(args.required(0, "merchant")?, "merchant", &["merchant_code", "name"])?;
    let code =
        opt_string(obj, "merchant_code")?.ok_or_else(|| AppError::InvalidData("merchant_code: required".into()))?;
    let name = opt_string(obj, "name")?;
    let made = provision::merchant_create(&*app.store, &code, name.as_deref()).await?;
    Ok(json!({"merchant_code": made.code, "name": made.name}))
}

pub async fn list(app: &App, _caller: &Caller, args: Args) -> Result<Value, RpcError> {
    args.at_most(0)?;
    let merchants = app.store.merchant_summaries().await.map_err(AppError::from)?;
    Ok(Value::Array(merchants.iter().map(entity).collect()))
}
