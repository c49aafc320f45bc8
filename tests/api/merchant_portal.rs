//! Issue 23, the merchant portal's API side (CONTRACT §7.7): a webhook's `description` on
//! create, update and list (at most 200 characters, default ""), with hostile input refused
//! with 101 and changing nothing; `delivery.retry` also sends a `success` payload again
//! (same body, same increment id, a new attempt) while a canceled one stays 108. Both
//! backends (`HOOKD_TEST_BACKEND=postgres`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

async fn descriptions(w: &World) -> Vec<Value> {
    w.app
        .list_webhooks(&w.shop)
        .await
        .iter()
        .map(|h| h["description"].clone())
        .collect()
}

#[tokio::test]
async fn a_description_is_kept_on_create_listed_and_changed_by_update() {
    let w = World::start().await;
    let named = w
        .hook(json!({"topics": "order:created", "url": "https://a.example/h",
                     "description": "Warehouse sync · Lager 3 ✓"}))
        .await;
    assert_eq!(named["description"], "Warehouse sync · Lager 3 ✓");
    let plain = w
        .hook(json!({"topics": "order:created", "url": "https://b.example/h"}))
        .await;
    assert_eq!(plain["description"], "", "the default is an empty string");

    let full = "é".repeat(200);
    let resp = w
        .as_shop("webhook.update", json!([id_of(&plain), {"description": full}]))
        .await;
    assert_ok(&resp);
    assert_eq!(
        descriptions(&w).await,
        [json!("Warehouse sync · Lager 3 ✓"), json!(full)]
    );
    // An update that does not name it keeps it.
    let resp = w
        .as_shop("webhook.update", json!([id_of(&named), {"url": "https://c.example/h"}]))
        .await;
    assert_ok(&resp);
    assert_eq!(descriptions(&w).await[0], "Warehouse sync · Lager 3 ✓");
    // "" clears it.
    let resp = w
        .as_shop("webhook.update", json!([id_of(&named), {"description": ""}]))
        .await;
    assert_ok(&resp);
    assert_eq!(descriptions(&w).await[0], "");
}

#[tokio::test]
async fn hostile_descriptions_are_refused_with_101_and_change_nothing() {
    let w = World::start().await;
    let hook = w
        .hook(json!({"topics": "order:created", "url": "https://a.example/h", "description": "kept"}))
        .await;
    let id = id_of(&hook);
    let bad = [
        (json!("a".repeat(201)), "at most 200 characters, not 201"),
        (json!("x".repeat(100_000)), "at most 200 characters"),
        (json!(42), "'description' must be a string"),
        (json!(["a"]), "'description' must be a string"),
        (json!({"a": 1}), "'description' must be a string"),
        (json!("two\nlines"), "control characters"),
        (json!("bell\u{7}"), "control characters"),
    ];
    for (value, what) in &bad {
        let resp = w
            .app
            .create_webhook(
                &w.shop,
                json!({"topics": "order:created", "url": "https://b.example/h", "description": value}),
            )
            .await;
        assert_invalid_data(&resp, what);
        let resp = w.as_shop("webhook.update", json!([id, {"description": value}])).await;
        assert_invalid_data(&resp, what);
    }
    assert_eq!(descriptions(&w).await, [json!("kept")], "nothing was made or changed");
}

#[tokio::test]
async fn another_merchant_cannot_rename_a_webhook() {
    let w = World::start().await;
    let hook = w
        .hook(json!({"topics": "order:created", "url": "https://a.example/h", "description": "mine"}))
        .await;
    let other = w.app.merchant_session(&unique("other")).await;
    let resp = w
        .app
        .call(
            &other,
            "webhook.update",
            json!([id_of(&hook), {"description": "theirs"}]),
        )
        .await;
    assert_app_error(&resp, 103);
    assert_eq!(descriptions(&w).await, [json!("mine")]);
    assert!(w.app.list_webhooks(&other).await.is_empty());
}

#[tokio::test]
async fn a_successful_payload_is_sent_again_with_the_same_body_and_increment_id() {
    let w = World::start().await;
    let hook = id_of(&w.hook_at("order:created", "/ok").await);
    w.publish_ok("order:created", json!({"id": 7})).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "success", WAIT).await;
    let first = w.receiver.wait_for("/ok", 1, WAIT).await;

    let resp = w.as_shop("delivery.retry", json!([delivery])).await;
    assert_eq!(assert_ok(&resp), &json!(true));
    let got = w.receiver.wait_for("/ok", 2, WAIT).await;
    assert_eq!(got[1].body, first[0].body, "the same bytes");
    assert_eq!(got[1].increment_id(), 1);
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    let info = w
        .wait_info(delivery, "a second attempt", WAIT, |i| {
            i["status"] == "success" && i["attempts"] == 2
        })
        .await;
    assert_eq!(attempt_log(&info).len(), 2, "{info:#}");
    assert_eq!(w.increment_id(hook).await, 1, "no new increment id");

    // Another merchant's retry of it answers like a missing one, and sends nothing.
    let other = w.app.merchant_session(&unique("other")).await;
    let resp = w.app.call(&other, "delivery.retry", json!([delivery])).await;
    assert_app_error(&resp, 107);
    // Wrong types are refused before anything happens.
    for bad in [json!(["x"]), json!([{"id": 1}]), json!([1.5]), json!([-1])] {
        let resp = w.as_shop("delivery.retry", bad.clone()).await;
        assert!(resp["error"].is_object(), "{bad} → {resp}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.receiver.received("/ok").len(), 2, "nothing more was sent");
}

#[tokio::test]
async fn a_canceled_payload_still_cannot_be_sent_again() {
    let w = World::start_with(|c| schedule(c, "1h")).await;
    w.receiver.set("/down", Behaviour::Status(500));
    let hook = id_of(&w.hook_at("order:created", "/down").await);
    w.publish_ok("order:created", json!({"id": 1})).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "retrying", WAIT).await;
    let resp = w.as_shop("webhook.delete", json!([hook])).await;
    assert_ok(&resp);
    w.wait_status(delivery, "canceled", WAIT).await;

    let resp = w.as_shop("delivery.retry", json!([delivery])).await;
    let message = assert_app_error(&resp, 108);
    assert!(message.contains("canceled"), "{message}");
    assert_eq!(w.info(delivery).await["status"], "canceled", "unchanged");
}
