//! Helpers for the store tests: a database per test on either backend (`TestDb`), the
//! `store_test!` macro that runs one test body on both, and webhooks, topics, merchants,
//! publishes and attempt outcomes through the `Store` trait.
//!
//! PostgreSQL tests run only when `HOOKD_TEST_POSTGRES_URL` names a server where the user may
//! create databases; each works in a database of its own (`hookd_t_<random>`), dropped at
//! the end when the test passes. Without it they pass at once, saying so on stderr.

use std::sync::Arc;

// The skip recorder every test binary shares, so `./test` counts these skips too.
#[path = "../../tests/common/skip.rs"]
mod skip;

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::PoolSettings;

use crate::domain::filter::Verdicts;
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

/// A webhook of merchant `m` on `topics`, made with no per-merchant limit.
pub async fn create_hook(store: &dyn Store, m: MerchantId, topics: &str, active: bool) -> WebhookId {
    store
        .webhook_create(m, &new_hook(topics, active), i64::MAX)
        .await
        .unwrap()
        .expect("no webhook limit")
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
    try_publish_message(store, m, t, json!({"n": 1}), key, now).await
}

/// Publishes `message` on topic `t` as merchant `m`, its filters judged as `event.publish`
/// judges them; the store's answer, error included.
pub async fn try_publish_message(
    store: &dyn Store,
    m: MerchantId,
    t: &str,
    message: serde_json::Value,
    key: Option<&str>,
    now: Millis,
) -> StoreResult<Published> {
    let topic = topic(t);
    let body = BodyTemplate::new(topic.as_str(), "shop", message.as_object().unwrap(), now);
    let verdicts = Verdicts::default();
    let req = request(m, &topic, &body, &verdicts, key, now);
    crate::store::publish_judged(store, None, &req, &mut Vec::new()).await
}

/// A publish of `body` as merchant `m` with these verdicts, unconfirmed against the catalog,
/// with no trace and no key check; a test sets what else it needs.
pub fn request<'a>(
    m: MerchantId,
    topic: &'a Topic,
    body: &'a BodyTemplate,
    verdicts: &'a Verdicts,
    key: Option<&'a str>,
    now: Millis,
) -> PublishRequest<'a> {
    PublishRequest {
        merchant: m,
        topic,
        body,
        idempotency_key: key,
        now,
        verdicts,
        schema: crate::domain::SchemaChecked::Unconfirmed,
        trace: None,
        key_check: None,
    }
}

pub async fn publish_at(store: &dyn Store, m: MerchantId, t: &str, key: Option<&str>, now: Millis) -> Published {
    try_publish(store, m, t, key, now).await.expect("publishing")
}

pub async fn publish(store: &dyn Store, m: MerchantId, t: &str) -> Published {
    publish_at(store, m, t, None, now_millis()).await
}

/// A webhook of merchant `m` on `topics` with the filter `filter` (a valid CEL expression).
pub async fn filtered_hook(store: &dyn Store, m: MerchantId, topics: &str, filter: &str) -> WebhookId {
    let value = json!({"topics": topics, "url": "https://receiver.example/hook", "filter": filter});
    let hook = NewWebhook::from_json(&value, &catalog(), false).expect("a valid webhook");
    store
        .webhook_create(m, &hook, i64::MAX)
        .await
        .unwrap()
        .expect("no webhook limit")
}

/// Publishes `message` on topic `t` as merchant `m`.
pub async fn publish_message(
    store: &dyn Store,
    m: MerchantId,
    t: &str,
    message: serde_json::Value,
    key: Option<&str>,
) -> Published {
    try_publish_message(store, m, t, message, key, now_millis())
        .await
        .expect("publishing")
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
        webhook_id: c.webhook_id,
        attempt_no: c.attempts + 1,
        // One request per owner and attempt: recording it again is the same request.
        request: owner
            .bytes()
            .fold(0, |h: i64, b| h.wrapping_mul(31).wrapping_add(i64::from(b))),
        lease_owner: owner.to_string(),
        attempt: AttemptLog {
            attempted_at: at,
            http_status: http,
            duration_ms: 12,
            response_prefix: format!("answer {}", c.increment_id),
            error: (status != DeliveryStatus::Success).then(|| "HTTP 500".to_string()),
            sent_headers: Some(String::new()),
        },
        status,
        next_attempt_at: at + 60_000,
    }
}

/// The backends a `store_test!` runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test, on either backend.
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir, url: String },
    Postgres(PgTestDb),
}

impl TestDb {
    /// None (with a note) when the backend is PostgreSQL and no test server is configured.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("hookd.db").display());
                Some(TestDb::Sqlite { _dir: dir, url })
            }
            Backend::Postgres => PgTestDb::create().await.map(TestDb::Postgres),
        }
    }

    /// A store on this database, migrated. Called again, another store on the same database
    /// (another node on PostgreSQL; on SQLite, a second process's store).
    pub async fn store(&self) -> Arc<dyn Store> {
        match self {
            TestDb::Sqlite { url, .. } => {
                let store = SqliteStore::connect(url).await.expect("opening");
                store.migrate().await.expect("migrating");
                Arc::new(store)
            }
            TestDb::Postgres(db) => Arc::new(db.store().await),
        }
    }

    /// Drops a PostgreSQL test database (a SQLite one goes with its directory).
    pub async fn finish(self) {
        if let TestDb::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}

/// Defines a store test run once per backend, as `<name>::sqlite` and `<name>::postgres`:
/// `store_test!(async fn name(db, store) { … })`, with `db` the `TestDb` and `store` a
/// migrated `Arc<dyn Store>` on it.
macro_rules! store_test {
    ($(#[doc = $doc:literal])* async fn $name:ident($db:ident, $store:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run($crate::store::test_support::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                run($crate::store::test_support::Backend::Postgres).await
            }

            async fn run(backend: $crate::store::test_support::Backend) {
                let Some($db) = $crate::store::test_support::TestDb::create(backend).await else {
                    return;
                };
                #[allow(unused_variables)]
                let $store = $db.store().await;
                $body
                $db.finish().await;
            }
        }
    };
}
pub(crate) use store_test;

/// A PostgreSQL database made for one test.
pub struct PgTestDb {
    pub admin_url: String,
    pub name: String,
    url: String,
}

impl PgTestDb {
    /// None (with a note) when no test server is configured.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
            skip::skipped("a PostgreSQL store test", "set HOOKD_TEST_POSTGRES_URL to run it");
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

    pub async fn store(&self) -> PostgresStore {
        let store = PostgresStore::connect(&self.url, &PoolSettings::default())
            .await
            .expect("connecting");
        store.migrate().await.expect("migrating");
        store
    }

    /// The test database's own URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connecting to the test server");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("dropping the database");
    }
}

/// The deliveries page's time-range filters a plan test checks (both backends load the same
/// 60 days): a week 43–50 days back, a later page of it, and the same range open at its end.
pub fn old_week_filters(now: crate::time::Millis) -> [crate::domain::DeliverySearch; 3] {
    const DAY: i64 = 86_400_000;
    let old_week = crate::domain::DeliverySearch {
        since: Some(now - 50 * DAY),
        until: Some(now - 43 * DAY),
        limit: 51,
        ..Default::default()
    };
    let later_page = crate::domain::DeliverySearch {
        before: Some(500),
        ..old_week.clone()
    };
    let since_only = crate::domain::DeliverySearch {
        until: None,
        ..old_week.clone()
    };
    [old_week, later_page, since_only]
}
