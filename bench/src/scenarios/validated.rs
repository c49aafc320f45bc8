//! `publish-validated`: what checking each message against its topic's JSON Schema (issue
//! 24, CONTRACT §7.4) costs at publish. Two cases on fresh servers, each 32 single-event
//! publishes in flight as in `publish`, both publishing the same realistic order message
//! (customer, address, three lines): without a schema on the topic, then with `ORDER_SCHEMA`
//! (required fields, types, nested objects and arrays, an enum and bounds). The scenario's own
//! figures are the validated case's; the other's are notes beside them, with the ratio.

use anyhow::Context;
use serde_json::{json, Value};

use super::{fold_baseline, phase_seconds, PHASE};
use crate::harness::{Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount, PublishRun};
use crate::metrics::UsageMeter;
use crate::report::{Check, ScenarioResult};

/// The message fields every publish carries besides the bench's `seq` and `t_us`.
const ORDER_FIELDS: &str = r#""order_id":100042,"unique_id":"100100042","order_ref":"WEB-58211","store_id":1,"status":"new","created_at":"2026-12-01T09:30:00+00:00","customer":{"email":"ana@example.com","firstname":"Ana","lastname":"Silva"},"shipping_address":{"street":["12 Rua Augusta"],"city":"Lisboa","postcode":"1100-053","country":"PT"},"items":[{"sku":"MUG-RED","qty":2,"price":9.5},{"sku":"TEE-L","qty":1,"price":19.0},{"sku":"CAP-BLK","qty":1,"price":14.5}],"grand_total":52.5"#;

fn order_schema() -> Value {
    let address = json!({"type": "object", "required": ["street", "city", "postcode", "country"], "properties": {
        "street": {"type": "array", "items": {"type": "string", "maxLength": 200}, "minItems": 1},
        "city": {"type": "string", "minLength": 1}, "postcode": {"type": "string", "maxLength": 20},
        "country": {"type": "string", "minLength": 2, "maxLength": 2}}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["order_id", "unique_id", "status", "customer", "shipping_address", "items", "grand_total"],
        "properties": {
            "seq": {"type": "integer"}, "t_us": {"type": "integer"},
            "order_id": {"type": "integer", "minimum": 1},
            "unique_id": {"type": "string", "minLength": 1, "maxLength": 50},
            "order_ref": {"type": ["string", "null"]},
            "store_id": {"type": "integer"},
            "status": {"enum": ["new", "processing", "complete", "canceled", "holded"]},
            "created_at": {"type": "string", "format": "date-time"},
            "customer": {"type": "object", "required": ["email"], "properties": {
                "email": {"type": "string", "format": "email"}, "firstname": {"type": "string"},
                "lastname": {"type": "string"}}},
            "shipping_address": address,
            "items": {"type": "array", "minItems": 1, "maxItems": 500, "items": {"type": "object",
                "required": ["sku", "qty"], "properties": {
                    "sku": {"type": "string", "minLength": 1, "maxLength": 64},
                    "qty": {"type": "number", "exclusiveMinimum": 0},
                    "price": {"type": "number", "minimum": 0}}}},
            "grand_total": {"type": "number", "minimum": 0}
        }
    })
}

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let amount = ctx.amount(PHASE, 300);
    let (plain_run, plain) = case(ctx, name, false, amount).await?;
    let (checked_run, mut r) = case(ctx, name, true, amount).await?;
    let ratio = checked_run.events_per_s() / plain_run.events_per_s().max(1e-9);
    r.params = json!({"webhooks": 1, "events": checked_run.events, "events_unvalidated": plain_run.events,
        "concurrency": 32, "publish_for_s": phase_seconds(amount), "message_bytes": ORDER_FIELDS.len() + 40});
    fold_baseline(&mut r, &plain, "unvalidated", "with a schema", "without a schema");
    r.checks.push(Check::at_least(
        "publish rate with a schema ÷ without (same realistic order message)",
        ratio,
        0.85,
        "×",
    ));
    Ok(r)
}

/// One server with one webhook on the topic, whose schema is `ORDER_SCHEMA` or none (the
/// shipped example schema cleared), measured with 32 single-event publishes in flight.
async fn case(ctx: &Ctx, name: &str, validated: bool, amount: Amount) -> anyhow::Result<(PublishRun, ScenarioResult)> {
    let setup = Setup::start(ctx, 1, None, |_| {}).await?;
    setup.create_webhooks(0..1, TOPIC).await?;
    let schema = if validated { order_schema() } else { Value::Null };
    // The example goes with the schema (a shipped example may not match this stricter one).
    let example: Value = serde_json::from_str(&format!("{{{ORDER_FIELDS}}}")).context("the bench's order")?;
    setup
        .admin
        .call(
            "topic.define",
            json!([{"topic": TOPIC, "schema": schema, "example": example}]),
        )
        .await
        .context("defining the topic's schema")?;
    let phase = if validated {
        "published (schema)"
    } else {
        "published (none)"
    };
    let publisher = setup.publisher(ctx.bar(name, phase, amount.events()));
    publisher.set_fields(ORDER_FIELDS.to_string());
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let run = closed_loop(&publisher, amount, 32, 1).await;
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    watch.stop().await;
    let mut r = setup.result(run, &publisher, usage, run.events);
    r.set_cpu_per_event();
    setup.server.stop().await;
    Ok((run, r))
}
