//! The embedded SQLite store (WAL). Nothing is acknowledged before it is on disk.
//!
//! One idea to know: the hot writes (publish, record) go to one writer thread that commits
//! them in batches (`writer`, group commit, through rusqlite) and a sync thread that fsyncs
//! the WAL before the callers are answered (`syncer`), so commits and disk flushes overlap.
//! The hot reads run in place on rusqlite read connections (`reads`); claiming is such a
//! read, with leases held in memory (`leases`: one process serves one SQLite file). The
//! occasional writes (users, webhooks, sessions) use a one-connection sqlx pool with
//! synchronous=FULL, and the occasional reads a separate sqlx pool. Every writer starts with
//! BEGIN IMMEDIATE, so they queue on SQLite's lock, never deadlock.

mod deliveries;
mod leases;
mod reads;
mod syncer;
#[cfg(test)]
mod tests;
mod users;
mod webhooks;
mod writer;
mod writes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{
    ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliveryUpdate, PublishRequest, Published,
    Requeue, Scope, StatusTarget, Store, StoreError, StoreResult, UserRecord,
};
use crate::domain::{
    BodyTemplate, DeliveryId, MerchantCode, MerchantId, NewWebhook, Role, UserName, Webhook, WebhookId,
};
use crate::time::Millis;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    hot: writer::Writer,
    fast: reads::Readers,
    leases: Arc<leases::Leases>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let path = options.get_filename().to_string_lossy().into_owned();
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::UnsupportedUrl(format!(
                "{url} (an in-memory SQLite database cannot be shared)"
            )));
        }
        let leases = Arc::new(leases::Leases::default());
        let hot = writer::Writer::start(&path, leases.clone())?;
        let fast = reads::Readers::open(&path, 4)?;
        Ok(Self {
            writer,
            reader,
            hot,
            fast,
            leases,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn merchant_ensure(&self, code: &MerchantCode) -> StoreResult<MerchantId> {
        users::merchant_ensure(&self.writer, code).await
    }

    async fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>> {
        self.fast.merchant_by_code(code)
    }

    async fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>> {
        self.fast.merchant_list()
    }

    async fn user_create(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        key_hash: &str,
    ) -> StoreResult<UserRecord> {
        users::user_create(&self.writer, name, role, merchant, key_hash).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        self.fast.user_by_name(name)
    }

    async fn user_list(&self) -> StoreResult<Vec<UserRecord>> {
        users::user_list(&self.reader).await
    }

    async fn user_remove(&self, name: &str) -> StoreResult<bool> {
        users::user_remove(&self.writer, name).await
    }

    async fn session_create(&self, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()> {
        users::session_create(&self.writer, id_hash, user, expires_at).await
    }

    async fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<UserRecord>> {
        self.fast.session_user(id_hash, now)
    }

    async fn session_purge_expired(&self, now: Millis) -> StoreResult<u64> {
        users::session_purge_expired(&self.writer, now).await
    }

    async fn webhook_create(
        &self,
        merchant: MerchantId,
        hook: &NewWebhook,
        limit: i64,
    ) -> StoreResult<Option<WebhookId>> {
        webhooks::create(&self.writer, merchant, hook, limit).await
    }

    async fn webhook_count(&self, merchant: MerchantId) -> StoreResult<i64> {
        webhooks::count(&self.reader, merchant).await
    }

    async fn webhook_list(&self, scope: Scope) -> StoreResult<Vec<Webhook>> {
        webhooks::list(&self.reader, scope).await
    }

    async fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
        self.fast.webhook_get(scope, id)
    }

    async fn webhook_set_active(&self, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
        webhooks::set_active(&self.writer, scope, target, active).await
    }

    async fn webhook_delete(&self, scope: Scope, id: WebhookId) -> StoreResult<bool> {
        webhooks::delete(&self.writer, scope, id).await
    }

    async fn event_publish(&self, req: &PublishRequest<'_>) -> StoreResult<Published> {
        self.hot
            .publish(writes::PublishJob {
                merchant: req.merchant.0,
                topic: req.topic.as_str().to_string(),
                match_keys: req.topic.match_keys(),
                body: req.body.clone(),
                idempotency_key: req.idempotency_key.map(str::to_string),
                now: req.now,
            })
            .await
    }

    async fn delivery_create_claimed(
        &self,
        scope: Scope,
        webhook: WebhookId,
        topic: &str,
        body: &BodyTemplate,
        _owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>> {
        self.hot
            .create_claimed(writes::CreateClaimedJob {
                merchant_filter: scope.merchant_filter(),
                webhook,
                topic: topic.to_string(),
                body: body.clone(),
                lease_until,
            })
            .await
    }

    async fn queue_scan(&self, _now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
        self.fast.queue_scan()
    }

    async fn delivery_claim(
        &self,
        webhook: WebhookId,
        _owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let limit = usize::try_from(limit).unwrap_or(0);
        self.fast.claim(&self.leases, webhook, now, lease_until, limit)
    }

    async fn delivery_record(&self, updates: &[DeliveryUpdate]) -> StoreResult<()> {
        self.hot.record(updates.to_vec()).await?;
        // Committed: the payloads have left the queue (or wait for a retry), so their
        // leases can go.
        self.leases.release(updates.iter().map(|u| u.delivery_id));
        Ok(())
    }

    async fn delivery_list(
        &self,
        scope: Scope,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        deliveries::list(&self.reader, scope, webhook, filter).await
    }

    async fn delivery_get(&self, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
        deliveries::get(&self.reader, scope, id).await
    }

    async fn delivery_requeue(&self, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
        deliveries::requeue(&self.writer, scope, id, now).await
    }

    async fn purge_finished(&self, before: Millis) -> StoreResult<u64> {
        deliveries::purge(&self.writer, before).await
    }
}
