//! Helpers for the store tests of both backends (`sqlite/tests.rs`, `postgres/tests/`):
//! webhooks, topics, merchants, publishes and attempt outcomes, through the `Store` trait.

use serde_json::json;

use crate::domain::{BodyTemplate, Catalog, DeliveryStatus, MerchantCode, MerchantId, NewWebhook, Topic, WebhookId};
use crate::store::{
    AttemptLog, ClaimedDelivery, DeliveryFilter, DeliveryRecord, DeliveryUpdate, PublishRequest, Published, Scope,
    Store, StoreResult,
};
use crate::time::{now_millis, Millis};

pub fn catalog() -> Catalog {
    Catalog::default_catalog()
}

pub fn new_hook(topics: &str, active: bool) -> NewWebhook {
    let value = json!({"topics": topics, "url": "https://receiver.example/hook?plugin=x", "is_active": active});
    NewWebhook::from_json(&value, &catalog(), false).expect("a valid webhook")
}

pub fn topic(s: &str) -> Topic {
    Topic::parse(s, &catalog()).expect("a catalog topic")
}

pub async fn merchant(store: &dyn Store, code: &str) -> MerchantId {
    store
        .merchant_ensure(&MerchantCode::parse(code).unwrap())
        .await
        .unwrap()
}

/// Publishes `{"n": 1}` on topic `t` as merchant `m`; the store's answer, error included.
pub async fn try_publish(
    store: &dyn Store,
    m: MerchantId,
    t: &str,
    key: Option<&str>,
    now: Millis,
) -> StoreResult<Published> {
    let topic = topic(t);
    let message = json!({"n": 1});
    let body = BodyTemplate::new(topic.as_str(), "shop", message.as_object().unwrap(), now);
    store
        .event_publish(&PublishRequest {
            merchant: m,
            topic: &topic,
            body: &body,
            idempotency_key: key,
            now,
        })
        .await
}

pub async fn publish_at(store: &dyn Store, m: MerchantId, t: &str, key: Option<&str>, now: Millis) -> Published {
    try_publish(store, m, t, key, now).await.expect("publishing")
}

pub async fn publish(store: &dyn Store, m: MerchantId, t: &str) -> Published {
    publish_at(store, m, t, None, now_millis()).await
}

/// Every payload of a webhook, oldest first.
pub async fn payloads(store: &dyn Store, w: WebhookId) -> Vec<DeliveryRecord> {
    let filter = DeliveryFilter {
        status: None,
        before: None,
        limit: 100_000,
    };
    let mut all = store.delivery_list(Scope::All, w, &filter).await.unwrap();
    all.reverse();
    all
}

pub fn outcome(
    c: &ClaimedDelivery,
    owner: &str,
    status: DeliveryStatus,
    http: Option<i64>,
    at: Millis,
) -> DeliveryUpdate {
    DeliveryUpdate {
        delivery_id: c.id,
        lease_owner: owner.to_string(),
        attempt: AttemptLog {
            attempted_at: at,
            http_status: http,
            duration_ms: 12,
            response_prefix: format!("answer {}", c.increment_id),
            error: (status != DeliveryStatus::Success).then(|| "HTTP 500".to_string()),
        },
        status,
        next_attempt_at: at + 60_000,
    }
}
