//! The PostgreSQL store: several hookd nodes share one database.
//!
//! One idea to know: every guarantee that SQLite gets from its single writer is made here by
//! row locks taken in a fixed order. Publishers serialise per webhook on the webhook row (its
//! `increment_id` bump), always locking webhooks by ascending id so they cannot deadlock, and
//! each node gathers its concurrent publishes into one transaction (`publisher`), since the
//! row lock is held across the commit's fsync;
//! claimers never wait (`FOR UPDATE SKIP LOCKED`); outcomes only apply while their lease is
//! held. Wake-ups cross nodes by `NOTIFY hookd_wake` inside the writing transaction, so they
//! are delivered exactly when the rows they announce become visible (see `wakeups`).

mod batch;
mod catalog;
mod clock;
mod deliveries;
mod lifecycle;
mod migrations;
mod peers;
mod pools;
pub(crate) mod portal;
mod publish;
mod publisher;
mod queue;
mod secrets;
mod sharing;
mod users;
mod wakeups;
mod webhooks;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool};
use tokio::sync::watch;

use super::{
    failing, ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliverySearch, DeliveryUpdate,
    DisabledAnnouncement, Failing, Handoff, MerchantSummary, PacedClaim, Pacing, PayloadRecord, Peer, PoolSettings,
    PublishRequest, Published, Recovered, Requeue, Scope, StatusTarget, Store, StoreResult, StoredSecrets, UserRecord,
    WriteHealth,
};
use crate::domain::catalog::{CatalogEntry, CatalogWrite};
use crate::domain::portal::{NewPortalLink, Redeemed, SessionUser};
use crate::domain::{
    BodyTemplate, DeliveryId, KeyPair, MerchantCode, MerchantId, NewWebhook, Role, RotateOutcome, SecretKey, UserName,
    Webhook, WebhookChange, WebhookId,
};
use crate::sealing::Keyring;
use crate::time::{now_millis, Millis};
use crate::wake::Wake;

pub struct PostgresStore {
    /// API requests' connections (see `pools` for the split).
    pool: PgPool,
    /// The dispatcher's connections: scans, claims, outcomes, housekeeping.
    work: PgPool,
    /// Kept to open the wake-up listener's own connection.
    options: PgConnectOptions,
    settings: PoolSettings,
    /// Group commit of publishes (see `publisher`).
    publisher: publisher::Publisher,
    /// Whether the last write failed for want of storage (see `store::health`).
    health: WriteHealth,
    /// Where claims start reading each webhook's queue (see `queue::ClaimFloors`).
    floors: queue::ClaimFloors,
    /// Seals the secrets written, opens those read (see `sealing`).
    keyring: Arc<Keyring>,
}

impl PostgresStore {
    /// Connects the pools (failing at once when the server cannot be reached; see `pools`
    /// for how `max_connections` is shared). Later connection losses are not fatal: a query
    /// fails with `StoreError::Unavailable` (or `OutcomeUnknown` at a COMMIT) and the pool
    /// opens a fresh connection for the next one.
    pub async fn connect(url: &str, settings: &PoolSettings) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        if options.get_application_name().is_none() {
            options = options.application_name("hookd");
        }
        let pools = pools::Pools::connect(&options, settings).await?;
        Ok(Self {
            publisher: publisher::Publisher::start(pools.publish, settings.acquire_timeout),
            pool: pools.api,
            work: pools.work,
            options,
            settings: settings.clone(),
            health: WriteHealth::default(),
            floors: queue::ClaimFloors::default(),
            keyring: Arc::new(Keyring::off()),
        })
    }

    /// Seals secrets with `keyring` from now on (see `sealing`).
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = keyring;
        self
    }

    fn opened(&self, hooks: Vec<Webhook>) -> StoreResult<Vec<Webhook>> {
        Ok(self.keyring.open_webhooks(hooks)?)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        migrations::run(&self.pool).await?;
        Ok(())
    }

    /// Fails while the last write failed for want of storage; otherwise asks the server.
    async fn ping(&self) -> StoreResult<()> {
        self.health.check()?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn listen_wakeups(&self, wake: Arc<Wake>, stop: watch::Receiver<bool>) {
        let own = self.publisher.backends.clone();
        wakeups::listen(&self.options, &self.settings, wake, own, stop).await
    }

    fn accept_handoff(&self, handoff: Arc<Handoff>) {
        let _ = self.publisher.handoff.set(handoff);
    }

    async fn peers_beat(&self, node: &str, address: &str, fresh: Duration) -> StoreResult<Vec<Peer>> {
        peers::beat(&self.pool, node, address, fresh).await
    }

    async fn peers_leave(&self, node: &str) -> StoreResult<()> {
        peers::leave(&self.pool, node).await
    }

    async fn peer_secret(&self, fresh: [u8; 32]) -> StoreResult<Option<Vec<u8>>> {
        peers::secret(&self.pool, fresh).await.map(Some)
    }

    async fn merchant_ensure(&self, code: &MerchantCode) -> StoreResult<MerchantId> {
        self.health.observe(users::merchant_ensure(&self.pool, code).await)
    }

    async fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>> {
        users::merchant_by_code(&self.pool, code).await
    }

    async fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>> {
        users::merchant_list(&self.pool).await
    }

    async fn merchant_create(&self, code: &MerchantCode, name: Option<&str>) -> StoreResult<MerchantSummary> {
        self.health
            .observe(users::merchant_create(&self.pool, code, name).await)
    }

    async fn merchant_summaries(&self) -> StoreResult<Vec<MerchantSummary>> {
        users::merchant_summaries(&self.pool).await
    }

    async fn user_create_scoped(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        merchant_codes: &[String],
        key_hash: &str,
    ) -> StoreResult<UserRecord> {
        self.health
            .observe(users::user_create(&self.pool, name, role, merchant, merchant_codes, key_hash).await)
    }

    async fn user_rotate_key(&self, name: &str, key_hash: &str) -> StoreResult<bool> {
        self.health
            .observe(users::user_rotate_key(&self.pool, name, key_hash).await)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        users::user_by_name(&self.pool, name).await
    }

    async fn user_list(&self) -> StoreResult<Vec<UserRecord>> {
        users::user_list(&self.pool).await
    }

    async fn user_remove(&self, name: &str) -> StoreResult<bool> {
        self.health.observe(users::user_remove(&self.pool, name).await)
    }

    async fn session_create(&self, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()> {
        self.health
            .observe(users::session_create(&self.pool, id_hash, user, expires_at).await)
    }

    async fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionUser>> {
        users::session_user(&self.pool, id_hash, now).await
    }

    async fn portal_link_create(&self, link: &NewPortalLink) -> StoreResult<()> {
        self.health.observe(users::portal_link_create(&self.pool, link).await)
    }

    async fn portal_link_redeem(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: Millis,
        session_expires: Millis,
    ) -> StoreResult<Option<Redeemed>> {
        self.health
            .observe(users::portal_link_redeem(&self.pool, token_hash, session_hash, now, session_expires).await)
    }

    async fn session_delete(&self, id_hash: &str) -> StoreResult<bool> {
        self.health.observe(users::session_delete(&self.pool, id_hash).await)
    }

    async fn session_purge_expired(&self, now: Millis) -> StoreResult<u64> {
        self.health.observe(users::session_purge_expired(&self.work, now).await)
    }

    async fn webhook_create(
        &self,
        merchant: MerchantId,
        hook: &NewWebhook,
        limit: i64,
    ) -> StoreResult<Option<WebhookId>> {
        self.health
            .observe(webhooks::create(&self.pool, merchant, hook, limit, &self.keyring).await)
    }

    async fn webhook_count(&self, merchant: MerchantId) -> StoreResult<i64> {
        webhooks::count(&self.pool, merchant).await
    }

    async fn webhook_list(&self, scope: Scope) -> StoreResult<Vec<Webhook>> {
        self.opened(webhooks::list(&self.pool, scope).await?)
    }

    async fn webhook_page(&self, scope: Scope, after: Option<WebhookId>, limit: i64) -> StoreResult<Vec<Webhook>> {
        self.opened(webhooks::page(&self.pool, scope, after, limit).await?)
    }

    async fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
        let hook = webhooks::get(&self.pool, scope, id).await?;
        Ok(self.opened(hook.into_iter().collect())?.pop())
    }

    async fn webhook_set_active(&self, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
        self.health
            .observe(webhooks::set_active(&self.pool, scope, target, active).await)
    }

    async fn webhook_delete(&self, scope: Scope, id: WebhookId) -> StoreResult<bool> {
        self.health.observe(webhooks::delete(&self.pool, scope, id).await)
    }

    async fn webhook_disable(&self, id: WebhookId, reason: &str) -> StoreResult<bool> {
        self.health
            .observe(webhooks::disable(&self.work, id, reason, now_millis()).await)
    }

    async fn webhook_announcements_pending(&self, limit: i64) -> StoreResult<Vec<DisabledAnnouncement>> {
        webhooks::announcements_pending(&self.work, limit).await
    }

    async fn webhook_announcement_done(&self, id: WebhookId, disabled_at: Millis) -> StoreResult<()> {
        self.health
            .observe(webhooks::announcement_done(&self.work, id, disabled_at).await)
    }

    async fn webhook_update(&self, scope: Scope, id: WebhookId, change: &WebhookChange) -> StoreResult<bool> {
        let mut change = change.clone();
        if let Some(pair) = &mut change.key_pair {
            pair.private = self.keyring.seal(id.0, &pair.private);
        }
        self.health
            .observe(lifecycle::update(&self.pool, scope, id, &change).await)
    }

    async fn webhook_rotate_secret(
        &self,
        scope: Scope,
        id: WebhookId,
        secret: &SecretKey,
        key_pair: &KeyPair,
        now: Millis,
        previous_expires_at: Millis,
    ) -> StoreResult<RotateOutcome> {
        let secret = self.keyring.seal(id.0, secret.as_str());
        let key_pair = KeyPair {
            private: self.keyring.seal(id.0, &key_pair.private),
            public: key_pair.public.clone(),
        };
        self.health.observe(
            lifecycle::rotate_secret(&self.pool, scope, id, &secret, &key_pair, now, previous_expires_at).await,
        )
    }

    async fn secrets_key_samples(&self) -> StoreResult<Vec<(WebhookId, String)>> {
        secrets::key_samples(&self.pool).await
    }

    async fn secrets_page(&self, after: WebhookId, limit: i64) -> StoreResult<Vec<StoredSecrets>> {
        secrets::page(&self.pool, after, limit).await
    }

    async fn secrets_replace(&self, rows: Vec<(StoredSecrets, StoredSecrets)>) -> StoreResult<u64> {
        self.health.observe(secrets::replace(&self.pool, &rows).await)
    }

    async fn payload_range(
        &self,
        scope: Scope,
        id: WebhookId,
        from: i64,
        to: i64,
        limit: i64,
    ) -> StoreResult<Vec<PayloadRecord>> {
        lifecycle::payload_range(&self.pool, scope, id, from, to, limit).await
    }

    async fn delivery_recover(
        &self,
        scope: Scope,
        id: WebhookId,
        since: Millis,
        now: Millis,
        limit: u64,
    ) -> StoreResult<Option<Recovered>> {
        self.health
            .observe(lifecycle::recover(&self.pool, scope, id, since, now, limit).await)
    }

    async fn delivery_search(&self, scope: Scope, filter: &DeliverySearch) -> StoreResult<Vec<DeliveryRecord>> {
        lifecycle::search(&self.pool, scope, filter).await
    }

    async fn health_samples(
        &self,
        webhook: WebhookId,
        since: Millis,
        until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<crate::domain::health::HealthSample>> {
        portal::health_samples(&self.pool, webhook, since, until, limit).await
    }

    async fn catalog_seed(&self, entries: &[CatalogEntry]) -> StoreResult<()> {
        self.health.observe(catalog::seed(&self.pool, entries).await)
    }

    async fn catalog_list(&self) -> StoreResult<Vec<CatalogEntry>> {
        catalog::list(&self.pool).await
    }

    async fn catalog_topics(&self) -> StoreResult<Vec<String>> {
        catalog::topics(&self.pool).await
    }

    async fn catalog_get(&self, topic: &str) -> StoreResult<Option<CatalogEntry>> {
        catalog::get(&self.pool, topic).await
    }

    async fn catalog_version(&self, topic: &str) -> StoreResult<Option<i64>> {
        catalog::version(&self.pool, topic).await
    }

    /// Confirmed in the group commit's last statement (see `batch::insert`).
    fn publish_confirms_schema(&self) -> bool {
        true
    }

    async fn catalog_define(
        &self,
        entry: &CatalogEntry,
        expected: Option<i64>,
        max_topics: usize,
    ) -> StoreResult<CatalogWrite> {
        self.health
            .observe(catalog::define(&self.pool, entry, expected, max_topics).await)
    }

    async fn event_publish(&self, req: &PublishRequest<'_>) -> StoreResult<Published> {
        self.health.observe(self.publisher.publish(req).await)
    }

    async fn delivery_create_claimed(
        &self,
        scope: Scope,
        webhook: WebhookId,
        topic: &str,
        body: &BodyTemplate,
        owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>> {
        self.health
            .observe(publish::create_claimed(&self.pool, scope, webhook, topic, body, owner, lease_until).await)
    }

    async fn queue_scan(&self, now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
        // Forgotten before the scan reads, so nothing the scan finds is below a floor.
        self.floors.forget();
        queue::queue_scan(&self.work, now).await
    }

    /// The three pools (see `pools`); only the publisher's queue says how much waits (sqlx
    /// does not count the callers waiting for a connection).
    fn pool_stats(&self) -> Vec<crate::store::PoolStats> {
        let in_use = |p: &PgPool| Some(p.size() as i64 - p.num_idle() as i64);
        vec![
            crate::store::PoolStats {
                pool: "api",
                in_use: in_use(&self.pool),
                waiting: None,
            },
            crate::store::PoolStats {
                pool: "work",
                in_use: in_use(&self.work),
                waiting: None,
            },
            crate::store::PoolStats {
                pool: "publish",
                in_use: in_use(&self.publisher.pool),
                waiting: Some(self.publisher.queued() as i64),
            },
        ]
    }

    async fn queue_due_count(&self, now: Millis, cap: i64) -> StoreResult<i64> {
        queue::due_count(&self.work, now, cap).await
    }

    async fn delivery_release(&self, ids: &[DeliveryId], owner: &str) -> StoreResult<()> {
        self.health.observe(queue::release(&self.work, ids, owner).await)
    }

    async fn delivery_renew(
        &self,
        ids: &[DeliveryId],
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Vec<DeliveryId>> {
        self.health
            .observe(queue::renew(&self.work, ids, owner, now, lease_until).await)
    }

    async fn delivery_claim_paced(
        &self,
        webhook: WebhookId,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
        pacing: Pacing,
    ) -> StoreResult<PacedClaim> {
        self.health.observe(
            queue::claim_paced(
                &self.work,
                &self.floors,
                webhook,
                owner,
                (now, lease_until),
                limit,
                pacing,
            )
            .await,
        )
    }

    /// A batch that only ends webhooks' runs of failures (successes, the common case) does
    /// so in its outcome write: one statement. Otherwise `track_failing` follows the write.
    async fn delivery_record(&self, updates: &[DeliveryUpdate]) -> StoreResult<Vec<Failing>> {
        let changes = failing::changes(updates);
        if changes.iter().all(|(_, c)| *c == failing::Change::Clear) {
            let clear: Vec<i64> = changes.iter().map(|(w, _)| w.0).collect();
            self.health.observe(queue::record(&self.work, updates, &clear).await)?;
            return Ok(Vec::new());
        }
        self.health.observe(queue::record(&self.work, updates, &[]).await)?;
        self.health
            .observe(deliveries::track_failing(&self.work, &changes).await)
    }

    async fn delivery_list(
        &self,
        scope: Scope,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        deliveries::list(&self.pool, scope, webhook, filter).await
    }

    async fn delivery_latest(&self, scope: Scope, webhooks: &[WebhookId]) -> StoreResult<Vec<DeliveryRecord>> {
        deliveries::latest(&self.pool, scope, &super::latest_ids(webhooks)?).await
    }

    async fn delivery_get(&self, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
        deliveries::get(&self.pool, scope, id).await
    }

    async fn delivery_requeue(&self, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
        self.health
            .observe(deliveries::requeue(&self.pool, scope, id, now).await)
    }

    async fn purge_finished(&self, before: Millis) -> StoreResult<u64> {
        self.health.observe(deliveries::purge(&self.work, before).await)
    }
}
