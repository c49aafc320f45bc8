//! Store-level tests of what is SQLite's own: claiming as a read with leases in memory,
//! and the writer's batches, where a failing job is undone alone.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::SqliteStore;
use crate::domain::{BodyTemplate, DeliveryStatus, MerchantId, WebhookId};
use crate::store::test_support::{merchant, new_hook, publish, try_publish};
use crate::store::{ClaimedDelivery, DeliveryUpdate, Scope, StatusTarget, Store};
use crate::time::{now_millis, Millis};

const HOUR: Millis = 3600 * 1000;
const TOPIC: &str = "order:created";

struct TestStore {
    store: Arc<SqliteStore>,
    merchant: MerchantId,
    _dir: tempfile::TempDir,
}

async fn setup() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let merchant = merchant(&store, "shop").await;
    TestStore {
        store: Arc::new(store),
        merchant,
        _dir: dir,
    }
}

impl TestStore {
    async fn webhook(&self, active: bool) -> WebhookId {
        self.store
            .webhook_create(self.merchant, &new_hook(TOPIC, active), i64::MAX)
            .await
            .unwrap()
            .unwrap()
    }

    async fn publish(&self, n: usize) {
        for _ in 0..n {
            publish(&*self.store, self.merchant, TOPIC).await;
        }
    }

    async fn claim(&self, hook: WebhookId, now: Millis, limit: i64) -> Vec<ClaimedDelivery> {
        self.store
            .delivery_claim(hook, "me", now, now + HOUR, limit)
            .await
            .unwrap()
    }
}

fn outcome(c: &ClaimedDelivery, status: DeliveryStatus, at: Millis) -> DeliveryUpdate {
    let http = if status == DeliveryStatus::Success { 200 } else { 500 };
    crate::store::test_support::outcome(c, "me", status, Some(http), at)
}

fn increments(claimed: &[ClaimedDelivery]) -> Vec<i64> {
    claimed.iter().map(|c| c.increment_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_never_share_a_payload_and_leases_expire() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    t.publish(200).await;
    let now = now_millis();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.delivery_claim(hook, "me", now, now + HOUR, 7).await.unwrap();
                if batch.is_empty() {
                    break got;
                }
                got.extend(batch);
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for c in task.await.unwrap() {
            assert!(seen.insert(c.id), "payload {} handed out twice", c.id.0);
        }
    }
    assert_eq!(seen.len(), 200);
    assert!(t.claim(hook, now, 10).await.is_empty(), "all are leased");
    // Once the leases run out, the oldest come back first.
    assert_eq!(increments(&t.claim(hook, now + 2 * HOUR, 3).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn an_outcome_takes_the_payload_out_of_the_queue_or_back_at_its_retry_time() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    t.publish(3).await;
    let now = now_millis();
    let claimed = t.claim(hook, now, 10).await;
    assert_eq!(increments(&claimed), vec![1, 2, 3]);
    t.store
        .delivery_record(&[
            outcome(&claimed[0], DeliveryStatus::Success, now),
            outcome(&claimed[1], DeliveryStatus::Retrying, now),
        ])
        .await
        .unwrap();
    // The lease of the third is still held; the second waits for its retry time.
    assert!(t.claim(hook, now + 1000, 10).await.is_empty());
    let retried = t.claim(hook, now + 60_000, 10).await;
    assert_eq!(increments(&retried), vec![2]);
    assert_eq!(retried[0].attempts, 1);
    // A success is never claimed again, even after every lease has run out.
    let late = t.claim(hook, now + 2 * HOUR, 10).await;
    assert_eq!(increments(&late), vec![3, 2], "oldest due first");
}

#[tokio::test]
async fn inactive_or_deleted_webhooks_have_nothing_to_claim() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    t.publish(2).await;
    let now = now_millis();
    t.store
        .webhook_set_active(Scope::All, &StatusTarget::Id(hook), false)
        .await
        .unwrap();
    assert!(t.claim(hook, now, 10).await.is_empty());
    t.store
        .webhook_set_active(Scope::All, &StatusTarget::Id(hook), true)
        .await
        .unwrap();
    assert_eq!(t.claim(hook, now, 1).await.len(), 1);
    assert!(t.store.webhook_delete(Scope::All, hook).await.unwrap());
    assert!(t.claim(hook, now + 2 * HOUR, 10).await.is_empty());
}

#[tokio::test]
async fn a_test_payload_is_held_from_the_start() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    let now = now_millis();
    let message = json!({"test": true});
    let body = BodyTemplate::new("test:ping", "shop", message.as_object().unwrap(), now);
    let made = t
        .store
        .delivery_create_claimed(Scope::Merchant(t.merchant), hook, "test:ping", &body, "me", now + HOUR)
        .await
        .unwrap()
        .expect("the webhook exists");
    assert_eq!(made.increment_id, 1);
    assert!(t.claim(hook, now + 1000, 10).await.is_empty());
    t.store
        .delivery_record(&[outcome(&made, DeliveryStatus::Retrying, now)])
        .await
        .unwrap();
    assert_eq!(increments(&t.claim(hook, now + 60_000, 10).await), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_publish_is_undone_alone_in_its_batch() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    // Sent at once, so they share writer batches; the unknown merchant breaks a foreign key.
    let mut calls = Vec::new();
    for i in 0..60 {
        let (store, merchant) = (t.store.clone(), if i % 20 == 7 { MerchantId(999) } else { t.merchant });
        calls.push(tokio::spawn(async move {
            try_publish(&*store, merchant, TOPIC, None, now_millis()).await
        }));
    }
    let mut ok = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let result = call.await.unwrap();
        assert_eq!(result.is_err(), i % 20 == 7, "publish {i}: {result:?}");
        ok += result.is_ok() as usize;
    }
    assert_eq!(ok, 57);
    let claimed = t.claim(hook, now_millis(), 100).await;
    let mut incs = increments(&claimed);
    incs.sort_unstable();
    assert_eq!(incs, (1..=57).collect::<Vec<_>>(), "no gap left by the failed ones");
}
