//! Store-level tests against a real PostgreSQL. They run only when `HOOKD_TEST_POSTGRES_URL`
//! names a server where the user may create databases; each test works in a database of its
//! own (`hookd_t_<random>`), dropped at the end when the test passes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::watch;

use super::PostgresStore;
use crate::dispatch::wake::Wake;
use crate::domain::{
    BodyTemplate, Catalog, DeliveryId, DeliveryStatus, MerchantCode, MerchantId, NewWebhook, Role, Topic, UserName,
    WebhookId,
};
use crate::store::{
    AttemptLog, ClaimedDelivery, DeliveryFilter, DeliveryUpdate, PoolSettings, PublishRequest, Published, Requeue,
    Scope, StatusTarget, Store, StoreError,
};
use crate::time::{now_millis, Millis};

const HOUR: Millis = 3600 * 1000;

/// A database made for one test.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// None (with a note) when no test server is configured.
    async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
            eprintln!("note: HOOKD_TEST_POSTGRES_URL is not set; skipping this PostgreSQL test");
            return None;
        };
        let name = format!("hookd_t_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connecting to the test server");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating a database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("a database url");
        url.set_path(&name);
        Some(Self {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    async fn store(&self) -> PostgresStore {
        let store = PostgresStore::connect(&self.url, &PoolSettings::default())
            .await
            .expect("connecting");
        store.migrate().await.expect("migrating");
        store
    }

    async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connecting to the test server");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("dropping the database");
    }
}

/// A fresh database and a migrated store on it, or return from the test.
macro_rules! setup {
    () => {{
        let Some(db) = TestDb::create().await else {
            return;
        };
        let store = db.store().await;
        (db, store)
    }};
}

fn catalog() -> Catalog {
    Catalog::default_catalog()
}

fn new_hook(topics: &str, active: bool) -> NewWebhook {
    let value = json!({"topics": topics, "url": "https://receiver.example/hook?plugin=x", "is_active": active});
    NewWebhook::from_json(&value, &catalog(), false).expect("a valid webhook")
}

fn topic(s: &str) -> Topic {
    Topic::parse(s, &catalog()).expect("a catalog topic")
}

async fn merchant(store: &PostgresStore, code: &str) -> MerchantId {
    store
        .merchant_ensure(&MerchantCode::parse(code).unwrap())
        .await
        .unwrap()
}

async fn publish_at(store: &PostgresStore, m: MerchantId, t: &str, key: Option<&str>, now: Millis) -> Published {
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
        .expect("publishing")
}

async fn publish(store: &PostgresStore, m: MerchantId, t: &str) -> Published {
    publish_at(store, m, t, None, now_millis()).await
}

/// Every payload of a webhook, oldest first.
async fn payloads(store: &PostgresStore, w: WebhookId) -> Vec<crate::store::DeliveryRecord> {
    let filter = DeliveryFilter {
        status: None,
        before: None,
        limit: 100_000,
    };
    let mut all = store.delivery_list(Scope::All, w, &filter).await.unwrap();
    all.reverse();
    all
}

fn outcome(c: &ClaimedDelivery, owner: &str, status: DeliveryStatus, http: Option<i64>, at: Millis) -> DeliveryUpdate {
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

mod accounts;
mod claims;
mod outcomes;
mod publish;
mod wakeups;
mod webhooks;
