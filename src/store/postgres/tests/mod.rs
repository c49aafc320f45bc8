//! Store-level tests of what is PostgreSQL's own: leases on rows shared by several nodes,
//! and wake-ups across nodes. (The tests every backend passes are in `store/tests`.) They
//! run only when `HOOKD_TEST_POSTGRES_URL` is set; see `test_support::PgTestDb`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, MerchantId, WebhookId};
use crate::store::test_support::*;
use crate::store::{ClaimedDelivery, Scope, StatusTarget, Store};
use crate::time::{now_millis, Millis};
use crate::wake::Wake;

const HOUR: Millis = 3600 * 1000;

use crate::store::test_support::PgTestDb as TestDb;

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

mod claims;
mod handoff;
mod migrations;
mod plans;
mod publish_batches;
mod retention;
mod wakeups;
