//! Webhook filters (CONTRACT §6.2 `filter`): a CEL expression over `topic` and `message`,
//! checked at create/update, evaluated at publish; through the API with a real receiver,
//! on either backend.

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().unwrap()
}

/// `payloads` of an `event.publish` answer.
async fn publish_payloads(w: &World, topic: &str, message: Value) -> i64 {
    w.publish_ok(topic, message).await["payloads"].as_i64().unwrap()
}

#[tokio::test]
async fn only_events_a_filter_accepts_are_delivered_and_their_ids_stay_gap_free() {
    let w = World::start().await;
    let filter = "message.total > 100 && topic == \"order:created\"";
    let big = w
        .hook(json!({"topics": "order:*", "url": w.receiver.url("/big"), "filter": filter}))
        .await;
    assert_eq!(big["filter"], filter, "webhook.list shows the filter");
    let all = w.hook_at("order:*", "/all").await;

    let events = [
        ("order:created", json!({"total": 150}), 2),
        ("order:created", json!({"total": 50}), 1),
        ("order:created", json!({"total": 200.5}), 2),
        ("order:created", json!({"total": "lots"}), 1), // a wrong type: false
        ("order:created", json!({"amount": 500}), 1),   // a missing field: false
        ("order:shipped", json!({"total": 999}), 1),    // another topic
        ("order:created", json!({"total": 300}), 2),
    ];
    for (topic, message, expected) in &events {
        assert_eq!(
            publish_payloads(&w, topic, message.clone()).await,
            *expected,
            "{message}"
        );
    }

    let got = w.receiver.wait_for("/big", 3, WAIT).await;
    let mut seen: Vec<(i64, Value)> = got
        .iter()
        .map(|r| (r.increment_id(), r.json()["message"]["total"].clone()))
        .collect();
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, vec![(1, json!(150)), (2, json!(200.5)), (3, json!(300))]);
    assert_eq!(
        w.receiver.wait_for("/all", events.len(), WAIT).await.len(),
        events.len()
    );
    // Payloads are made when the event is published, so nothing more can come.
    assert_eq!(w.deliveries(id_of(&big)).await.len(), 3);
    assert_eq!(w.increment_id(id_of(&big)).await, 3);
    assert_eq!(w.increment_id(id_of(&all)).await, events.len() as i64);
}

#[tokio::test]
async fn a_bad_filter_is_refused_with_the_parser_s_message_and_nothing_is_stored() {
    let w = World::start().await;
    let data = json!({"topics": "order:created", "url": w.receiver.url("/x"), "filter": "message.total >"});
    let resp = w.app.create_webhook(&w.shop, data).await;
    assert_invalid_data(&resp, "filter: line 1, column ");
    assert!(w.app.list_webhooks(&w.shop).await.is_empty(), "nothing stored");

    let hook = w
        .hook(json!({"topics": "order:created", "url": w.receiver.url("/x"), "filter": "true"}))
        .await;
    for bad in ["message.total >", "(topic", "topic == 'a' &&& true", "message.a.all(x,"] {
        let resp = w
            .as_shop("webhook.update", json!([id_of(&hook), {"filter": bad}]))
            .await;
        assert_invalid_data(&resp, "filter: line 1, column ");
    }
    assert_eq!(
        w.webhook(id_of(&hook)).await["filter"],
        "true",
        "a refused update changes nothing"
    );
}

#[tokio::test]
async fn an_updated_filter_applies_to_the_next_publish() {
    let w = World::start().await;
    let hook = w
        .hook(json!({"topics": "order:created", "url": w.receiver.url("/u"), "filter": "message.n == 1"}))
        .await;
    let id = id_of(&hook);
    assert_eq!(publish_payloads(&w, "order:created", json!({"n": 2})).await, 0);

    let resp = w
        .as_shop("webhook.update", json!([id, {"filter": "message.n == 2"}]))
        .await;
    assert_eq!(assert_ok(&resp), &json!(true));
    assert_eq!(publish_payloads(&w, "order:created", json!({"n": 2})).await, 1);
    let resp = w.as_shop("webhook.update", json!([id, {"filter": null}])).await;
    assert_eq!(assert_ok(&resp), &json!(true));
    assert_eq!(w.webhook(id).await["filter"], Value::Null);
    assert_eq!(publish_payloads(&w, "order:created", json!({"n": 3})).await, 1);

    let got = w.receiver.wait_for("/u", 2, WAIT).await;
    let mut seen: Vec<(i64, Value)> = got
        .iter()
        .map(|r| (r.increment_id(), r.json()["message"]["n"].clone()))
        .collect();
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, vec![(1, json!(2)), (2, json!(3))]);
}
