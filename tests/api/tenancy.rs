//! Tenant isolation (CONTRACT.md §2): a merchant user sees and touches only its own
//! merchant's webhooks, another merchant's webhook answers exactly like a missing one, and
//! an admin sees everything.

use serde_json::{json, Value};

use crate::helpers::*;

struct TwoMerchants {
    app: TestApp,
    alice: String,
    bob: String,
    bob_code: String,
    /// Bob's webhook, as Bob lists it.
    bobs_hook: Value,
}

async fn two_merchants() -> TwoMerchants {
    let app = TestApp::spawn().await;
    let alice = app.merchant_session(&unique("alice-shop")).await;
    let bob_code = unique("bob-shop");
    let bob = app.merchant_session(&bob_code).await;
    let hook = |url: &str| json!({"topics": "order:created", "url": url, "secret_key": "bobs-secret"});
    assert_ok(&app.create_webhook(&alice, hook("https://alice.example.com/")).await);
    assert_ok(&app.create_webhook(&bob, hook("https://bob.example.com/")).await);
    let bobs_hook = app.list_webhooks(&bob).await.remove(0);
    TwoMerchants {
        app,
        alice,
        bob,
        bob_code,
        bobs_hook,
    }
}

/// `message` with every word that is exactly `id` replaced by `<id>`.
fn mask_id(message: &str, id: i64) -> String {
    let id = id.to_string();
    message
        .split(' ')
        .map(|word| {
            if word.trim_end_matches(['.', ',', ':', '\'']).trim_start_matches('\'') == id {
                "<id>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn each_merchant_lists_only_its_own_webhooks() {
    let t = two_merchants().await;
    let alices = t.app.list_webhooks(&t.alice).await;
    let bobs = t.app.list_webhooks(&t.bob).await;
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0]["url"], "https://alice.example.com/");
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["url"], "https://bob.example.com/");
}

#[tokio::test]
async fn deleting_another_merchants_webhook_answers_exactly_like_a_missing_one() {
    let t = two_merchants().await;
    let bobs_id = t.bobs_hook["webhook_id"].as_i64().unwrap();
    let missing_id = bobs_id + 1000;
    let foreign = t.app.call(&t.alice, "webhook.delete", json!([bobs_id])).await;
    let missing = t.app.call(&t.alice, "webhook.delete", json!([missing_id])).await;
    assert_app_error(&foreign, 103);
    assert_eq!(foreign, missing);
    assert_eq!(
        t.app.list_webhooks(&t.bob).await,
        std::slice::from_ref(&t.bobs_hook),
        "Bob's webhook is untouched"
    );
}

#[tokio::test]
async fn changing_another_merchants_webhook_answers_exactly_like_a_missing_one() {
    let t = two_merchants().await;
    let bobs_id = t.bobs_hook["webhook_id"].as_i64().unwrap();
    let missing_id = bobs_id + 1000;
    for (foreign_args, missing_args) in [
        (json!([bobs_id, 0]), json!([missing_id, 0])),
        (
            json!([{"webhook_id": bobs_id, "status": 0}]),
            json!([{"webhook_id": missing_id, "status": 0}]),
        ),
    ] {
        let foreign = t.app.call(&t.alice, "webhook.update_status", foreign_args).await;
        let missing = t.app.call(&t.alice, "webhook.update_status", missing_args).await;
        let foreign_message = assert_app_error(&foreign, 100);
        let missing_message = assert_app_error(&missing, 100);
        // The messages may name the id given; with that masked they are the same.
        assert_eq!(
            mask_id(&foreign_message, bobs_id),
            mask_id(&missing_message, missing_id)
        );
        assert_eq!(
            foreign["error"].as_object().unwrap().len(),
            missing["error"].as_object().unwrap().len()
        );
    }
    assert_eq!(
        t.app.list_webhooks(&t.bob).await,
        std::slice::from_ref(&t.bobs_hook),
        "Bob's webhook is untouched"
    );
}

#[tokio::test]
async fn update_status_by_topic_touches_only_the_callers_webhooks() {
    let t = two_merchants().await;
    assert_ok(
        &t.app
            .call(&t.alice, "webhook.update_status", json!(["order:created", 0]))
            .await,
    );
    assert_eq!(t.app.list_webhooks(&t.alice).await[0]["is_active"], 0);
    assert_eq!(t.app.list_webhooks(&t.bob).await, std::slice::from_ref(&t.bobs_hook));
}

#[tokio::test]
async fn a_merchant_user_cannot_create_webhooks_for_another_merchant() {
    let t = two_merchants().await;
    let resp = t
        .app
        .create_webhook(
            &t.alice,
            json!({"topics": "*", "url": "https://evil.example.com/", "merchant_code": t.bob_code}),
        )
        .await;
    assert!(resp["error"].is_object(), "refused: {resp}");
    assert_eq!(t.app.list_webhooks(&t.bob).await, std::slice::from_ref(&t.bobs_hook));
    assert_eq!(t.app.list_webhooks(&t.alice).await.len(), 1);
}

#[tokio::test]
async fn an_admin_sees_every_merchants_webhooks() {
    let t = two_merchants().await;
    let admin = t.app.admin_session().await;
    let all = t.app.list_webhooks(&admin).await;
    let urls: Vec<&str> = all.iter().map(|w| w["url"].as_str().unwrap()).collect();
    assert_eq!(urls, ["https://alice.example.com/", "https://bob.example.com/"]);
    assert_eq!(all[1], t.bobs_hook, "the admin sees the same entity");
}
