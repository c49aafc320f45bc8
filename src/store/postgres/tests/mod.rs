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
use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, MerchantId, NewWebhook, Role, UserName, WebhookId};
use crate::store::test_support::*;
use crate::store::{
    ClaimedDelivery, DeliveryFilter, PoolSettings, Published, Requeue, Scope, StatusTarget, Store, StoreError,
};
use crate::time::{now_millis, Millis};
use crate::wake::Wake;

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

mod accounts;
mod claims;
mod outcomes;
mod publish;
mod wakeups;
mod webhooks;
