//! The store tests every backend passes, written once through the `Store` trait and run on
//! SQLite and on PostgreSQL (`store_test!`; PostgreSQL needs `HOOKD_TEST_POSTGRES_URL`).
//! What only one backend does is tested beside it: `sqlite/tests.rs` (leases in memory, the
//! writer's batches, migrations from sqlx, failed syncs), `postgres/tests/` (leases on rows
//! shared by nodes, wake-ups).

use std::collections::HashSet;

use serde_json::json;

use crate::domain::{DeliveryId, DeliveryStatus, NewWebhook, Role, UserName};
use crate::store::test_support::*;
use crate::store::{DeliveryFilter, Published, Requeue, Scope, StatusTarget, StoreError};
use crate::time::{now_millis, Millis};

const HOUR: Millis = 3600 * 1000;

mod accounts;
mod handoff;
mod lifecycle;
mod outcomes;
mod publish;
mod queue;
mod webhooks;
