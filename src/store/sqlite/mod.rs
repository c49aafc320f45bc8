//! The embedded SQLite store (WAL), on rusqlite alone. Nothing is acknowledged before it is
//! on disk.
//!
//! One idea to know: one connection writes. Every write, hot (publish, record) or
//! occasional (users, webhooks, retention, migrations), is a job for the writer thread,
//! which commits whatever is queued in one transaction (`writer`, group commit), and a sync
//! thread fsyncs the WAL before the callers are answered (`syncer`), so commits and disk
//! flushes overlap and no two writers ever queue on SQLite's file lock. Reads run on a few
//! read-only connections (`reads`); claiming is such a read, with leases held in memory
//! (`leases`: one process serves one SQLite file). The SQL is kept by entity, as in
//! `postgres`: `users`, `webhooks`, `publish`, `queue`, `deliveries`; `migrate` keeps the
//! schema.

mod catalog;
mod deliveries;
mod leases;
mod lifecycle;
mod migrate;
pub(crate) mod portal;
mod publish;
mod queue;
mod reads;
mod secrets;
mod syncer;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_plans;
mod users;
mod webhooks;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use super::pace::Buckets;
use super::{
    ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliverySearch, DeliveryUpdate,
    DisabledAnnouncement, Failing, Handoff, MerchantSummary, PacedClaim, Pacing, PayloadRecord, PublishRequest,
    Published, Recovered, Requeue, Scope, StatusTarget, Store, StoreError, StoreResult, StoredSecrets, UserRecord,
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

/// Read connections for point lookups in place (as many as there were before the reader
/// threads: the async worker threads that authenticate every call share them).
const IN_PLACE_READERS: usize = 4;
/// Reader threads for every other read. More would not read faster on a small machine but
/// would cost memory (see `reads`).
const READER_THREADS: usize = 2;

pub struct SqliteStore {
    writer: writer::Writer,
    readers: reads::Readers,
    leases: Arc<leases::Leases>,
    /// `max_rate` token buckets, in memory like the leases (see `store::pace`).
    buckets: Arc<Buckets>,
    health: Arc<WriteHealth>,
    /// Seals the secrets written, opens those read (see `sealing`).
    keyring: Arc<Keyring>,
    /// Where publishes hand fresh payloads to the dispatcher, once one is given
    /// (`store::handoff`, `publish`).
    handoff: OnceLock<Arc<Handoff>>,
}

/// The file a `sqlite:` database url names (`sqlite://path`, `sqlite:path`, with or without
/// `?options`; `%20` and the like decoded); None for an in-memory database (`:memory:`,
/// `?mode=memory`), which a store cannot share across its connections.
pub fn file_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = query.split('&').any(|option| option == "mode=memory");
    if path.is_empty() || path == ":memory:" || in_memory {
        return None;
    }
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    Some(PathBuf::from(path.as_ref()))
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let Some(path) = file_path(url) else {
            return Err(StoreError::UnsupportedUrl(format!(
                "{} (an in-memory SQLite database cannot be shared)",
                crate::redact::database_url(url)
            )));
        };
        let path = path.to_string_lossy().into_owned();
        let leases = Arc::new(leases::Leases::default());
        let health = Arc::new(WriteHealth::default());
        // The writer first: it creates the file and turns WAL on, which the readers need.
        let writer = writer::Writer::start(&path, leases.clone(), health.clone())?;
        let readers = reads::Readers::open(&path, IN_PLACE_READERS, READER_THREADS)?;
        Ok(Self {
            writer,
            readers,
            leases,
            buckets: Default::default(),
            health,
            keyring: Arc::new(Keyring::off()),
            handoff: OnceLock::new(),
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

    /// Test-only fault hook: the next `n` fsyncs of the WAL fail.
    #[cfg(test)]
    pub fn testing_fail_next_syncs(&self, n: usize) {
        self.writer.fail_next_syncs(n);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        self.writer.write(|c, _| migrate::run(c)).await
    }

    /// Fails while the last write failed for want of storage; otherwise asks a reader.
    async fn ping(&self) -> StoreResult<()> {
        self.health.check()?;
        self.readers.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    async fn merchant_ensure(&self, code: &MerchantCode) -> StoreResult<MerchantId> {
        let code = code.as_str().to_string();
        self.writer.write(move |c, _| users::merchant_ensure(c, &code)).await
    }

    async fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>> {
        self.readers.with(|c| users::merchant_by_code(c, code))
    }

    async fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>> {
        self.readers.off_thread(users::merchant_list).await
    }

    async fn merchant_create(&self, code: &MerchantCode, name: Option<&str>) -> StoreResult<MerchantSummary> {
        let (code, name) = (code.as_str().to_string(), name.map(str::to_string));
        self.writer
            .write(move |c, _| users::merchant_create(c, &code, name.as_deref()))
            .await
    }

    async fn merchant_summaries(&self) -> StoreResult<Vec<MerchantSummary>> {
        self.readers.off_thread(users::merchant_summaries).await
    }

    async fn user_create_scoped(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        merchant_codes: &[String],
        key_hash: &str,
    ) -> StoreResult<UserRecord> {
        let (name, key_hash) = (name.as_str().to_string(), key_hash.to_string());
        let codes = merchant_codes.to_vec();
        self.writer
            .write(move |c, _| users::user_create(c, &name, role, merchant, &codes, &key_hash))
            .await
    }

    async fn user_rotate_key(&self, name: &str, key_hash: &str) -> StoreResult<bool> {
        let (name, key_hash) = (name.to_string(), key_hash.to_string());
        self.writer
            .write(move |c, _| users::user_rotate_key(c, &name, &key_hash))
            .await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        self.readers.with(|c| users::user_by_name(c, name))
    }

    async fn user_list(&self) -> StoreResult<Vec<UserRecord>> {
        self.readers.off_thread(users::user_list).await
    }

    async fn user_remove(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.writer.write(move |c, _| users::user_remove(c, &name)).await
    }

    async fn session_create(&self, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()> {
        let (id_hash, user) = (id_hash.to_string(), user.id);
        self.writer
            .write(move |c, _| users::session_create(c, &id_hash, user, expires_at))
            .await
    }

    async fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionUser>> {
        self.readers.with(|c| users::session_user(c, id_hash, now))
    }

    async fn portal_link_create(&self, link: &NewPortalLink) -> StoreResult<()> {
        let link = link.clone();
        self.writer.write(move |c, _| users::portal_link_create(c, &link)).await
    }

    async fn portal_link_redeem(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: Millis,
        session_expires: Millis,
    ) -> StoreResult<Option<Redeemed>> {
        let (token_hash, session_hash) = (token_hash.to_string(), session_hash.to_string());
        self.writer
            .write(move |c, _| users::portal_link_redeem(c, &token_hash, &session_hash, now, session_expires))
            .await
    }

    async fn session_delete(&self, id_hash: &str) -> StoreResult<bool> {
        let id_hash = id_hash.to_string();
        self.writer.write(move |c, _| users::session_delete(c, &id_hash)).await
    }

    async fn session_purge_expired(&self, now: Millis) -> StoreResult<u64> {
        self.writer
            .write(move |c, _| users::session_purge_expired(c, now))
            .await
    }

    async fn webhook_create(
        &self,
        merchant: MerchantId,
        hook: &NewWebhook,
        limit: i64,
    ) -> StoreResult<Option<WebhookId>> {
        let (hook, keyring) = (hook.clone(), self.keyring.clone());
        self.writer
            .write(move |c, _| webhooks::create(c, merchant, &hook, limit, &keyring))
            .await
    }

    async fn webhook_count(&self, merchant: MerchantId) -> StoreResult<i64> {
        self.readers.with(|c| webhooks::count(c, merchant))
    }

    async fn webhook_list(&self, scope: Scope) -> StoreResult<Vec<Webhook>> {
        let hooks = self.readers.off_thread(move |c| webhooks::list(c, scope)).await?;
        self.opened(hooks)
    }

    async fn webhook_page(&self, scope: Scope, after: Option<WebhookId>, limit: i64) -> StoreResult<Vec<Webhook>> {
        let hooks = self
            .readers
            .off_thread(move |c| webhooks::page(c, scope, after, limit))
            .await?;
        self.opened(hooks)
    }

    async fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
        let hook = self.readers.with(|c| webhooks::get(c, scope, id))?;
        Ok(self.opened(hook.into_iter().collect())?.pop())
    }

    async fn webhook_set_active(&self, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64> {
        let target = target.clone();
        self.writer
            .write(move |c, _| webhooks::set_active(c, scope, &target, active))
            .await
    }

    async fn webhook_delete(&self, scope: Scope, id: WebhookId) -> StoreResult<bool> {
        let deleted = self.writer.write(move |c, _| webhooks::delete(c, scope, id)).await?;
        if deleted {
            self.buckets.forget(id);
        }
        Ok(deleted)
    }

    fn rate_buckets(&self) -> usize {
        self.buckets.held()
    }

    /// SQLite has no connection pool to run short of: writes queue for the one writer
    /// thread (that queue is what waits), and reads run on their own connections.
    fn pool_stats(&self) -> Vec<crate::store::PoolStats> {
        vec![crate::store::PoolStats {
            pool: "writer",
            in_use: None,
            waiting: Some(self.writer.queued() as i64),
        }]
    }

    async fn webhook_disable(&self, id: WebhookId, reason: &str) -> StoreResult<bool> {
        let reason = reason.to_string();
        let now = now_millis();
        self.writer
            .write(move |c, _| webhooks::disable(c, id, &reason, now))
            .await
    }

    async fn webhook_announcements_pending(&self, limit: i64) -> StoreResult<Vec<DisabledAnnouncement>> {
        self.readers.with(|c| webhooks::announcements_pending(c, limit))
    }

    async fn webhook_announcement_done(&self, id: WebhookId, disabled_at: Millis) -> StoreResult<()> {
        self.writer
            .write(move |c, _| webhooks::announcement_done(c, id, disabled_at))
            .await
    }

    async fn webhook_update(&self, scope: Scope, id: WebhookId, change: &WebhookChange) -> StoreResult<bool> {
        let mut change = change.clone();
        if let Some(pair) = &mut change.key_pair {
            pair.private = self.keyring.seal(id.0, &pair.private);
        }
        self.writer
            .write(move |c, _| lifecycle::update(c, scope, id, &change))
            .await
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
        self.writer
            .write(move |c, _| lifecycle::rotate_secret(c, scope, id, &secret, &key_pair, now, previous_expires_at))
            .await
    }

    async fn secrets_key_samples(&self) -> StoreResult<Vec<(WebhookId, String)>> {
        self.readers.off_thread(secrets::key_samples).await
    }

    async fn secrets_page(&self, after: WebhookId, limit: i64) -> StoreResult<Vec<StoredSecrets>> {
        self.readers.off_thread(move |c| secrets::page(c, after, limit)).await
    }

    async fn secrets_replace(&self, rows: Vec<(StoredSecrets, StoredSecrets)>) -> StoreResult<u64> {
        self.writer.write(move |c, _| secrets::replace(c, &rows)).await
    }

    async fn payload_range(
        &self,
        scope: Scope,
        id: WebhookId,
        from: i64,
        to: i64,
        limit: i64,
    ) -> StoreResult<Vec<PayloadRecord>> {
        self.readers
            .off_thread(move |c| lifecycle::payload_range(c, scope, id, from, to, limit))
            .await
    }

    async fn delivery_recover(
        &self,
        scope: Scope,
        id: WebhookId,
        since: Millis,
        now: Millis,
        limit: u64,
    ) -> StoreResult<Option<Recovered>> {
        self.writer
            .write(move |c, _| lifecycle::recover(c, scope, id, since, now, limit))
            .await
    }

    async fn delivery_search(&self, scope: Scope, filter: &DeliverySearch) -> StoreResult<Vec<DeliveryRecord>> {
        let filter = filter.clone();
        self.readers
            .off_thread(move |c| lifecycle::search(c, scope, &filter))
            .await
    }

    async fn health_samples(
        &self,
        webhook: WebhookId,
        since: Millis,
        until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<crate::domain::health::HealthSample>> {
        self.readers
            .off_thread(move |c| portal::health_samples(c, webhook, since, until, limit))
            .await
    }

    async fn catalog_seed(&self, entries: &[CatalogEntry]) -> StoreResult<()> {
        let entries = entries.to_vec();
        self.writer.write(move |c, _| catalog::seed(c, &entries)).await
    }

    async fn catalog_list(&self) -> StoreResult<Vec<CatalogEntry>> {
        self.readers.off_thread(catalog::list).await
    }

    async fn catalog_topics(&self) -> StoreResult<Vec<String>> {
        self.readers.off_thread(catalog::topics).await
    }

    async fn catalog_get(&self, topic: &str) -> StoreResult<Option<CatalogEntry>> {
        self.readers.with(|c| catalog::get(c, topic))
    }

    async fn catalog_version(&self, topic: &str) -> StoreResult<Option<i64>> {
        self.readers.with(|c| catalog::version(c, topic))
    }

    /// Never read: one `hookd serve` owns a SQLite file, and its own `topic.define` updates
    /// the schema it compiled, so what it knows is the stored version (the read cost ~11 µs
    /// of CPU per publish).
    async fn catalog_version_if_idle(&self, _topic: &str) -> StoreResult<Option<Option<i64>>> {
        Ok(None)
    }

    async fn catalog_define(
        &self,
        entry: &CatalogEntry,
        expected: Option<i64>,
        max_topics: usize,
    ) -> StoreResult<CatalogWrite> {
        let entry = entry.clone();
        self.writer
            .write(move |c, _| catalog::define(c, &entry, expected, max_topics))
            .await
    }

    async fn event_publish(&self, req: &PublishRequest<'_>) -> StoreResult<Published> {
        let handoff = self.handoff.get();
        let offer = handoff.and_then(|h| h.offer(req.now));
        let job = publish::PublishJob {
            merchant: req.merchant.0,
            topic: req.topic.as_str().to_string(),
            match_keys: req.topic.match_keys(),
            body: req.body.clone(),
            idempotency_key: req.idempotency_key.map(str::to_string),
            now: req.now,
            verdicts: req.verdicts.clone(),
            trace: req.trace.map(|t| t.to_string()),
            key_check: req.key_check.cloned(),
            offer: offer.clone(),
        };
        let stored = self
            .writer
            .write_holding(
                move |c, leases| publish::publish(c, &job, leases),
                publish::Stored::held,
            )
            .await?;
        // Durable now: what the publish holds goes to the dispatcher. (Should the write
        // have failed after its commit, those leases run out by themselves.)
        stored.map(|s| {
            if let (Some(h), Some(offer)) = (handoff, &offer) {
                h.put(offer, s.handed);
            }
            s.published
        })
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
        let job = publish::CreateClaimedJob {
            merchant_filter: scope.merchant_filter(),
            webhook,
            topic: topic.to_string(),
            body: body.clone(),
            lease_until,
        };
        let held = |made: &Option<ClaimedDelivery>| made.iter().map(|d| d.id).collect();
        self.writer
            .write_holding(move |c, leases| publish::create_claimed(c, &job, leases), held)
            .await
    }

    fn accept_handoff(&self, handoff: Arc<Handoff>) {
        let _ = self.handoff.set(handoff);
    }

    /// Handed payloads given up: let go, so a claim takes them at once.
    async fn delivery_release(&self, ids: &[DeliveryId], _owner: &str) -> StoreResult<()> {
        self.leases.release(ids.iter().copied());
        Ok(())
    }

    /// Handed payloads that waited: those still queued, of an active webhook, and still held
    /// have their leases extended (leases are this process's alone, so `owner` is implied).
    async fn delivery_renew(
        &self,
        ids: &[DeliveryId],
        _owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Vec<DeliveryId>> {
        let ids = ids.to_vec();
        let queued = self.readers.off_thread(move |c| queue::still_queued(c, &ids)).await?;
        Ok(self.leases.extend(&queued, (now, lease_until)))
    }

    async fn queue_scan(&self, _now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>> {
        self.readers.off_thread(queue::queue_scan).await
    }

    async fn queue_due_count(&self, now: Millis, cap: i64) -> StoreResult<i64> {
        self.readers.off_thread(move |c| queue::due_count(c, now, cap)).await
    }

    async fn delivery_claim_paced(
        &self,
        webhook: WebhookId,
        _owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
        pacing: Pacing,
    ) -> StoreResult<PacedClaim> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let (leases, buckets) = (self.leases.clone(), self.buckets.clone());
        self.readers
            .off_thread(move |c| queue::claim(c, &leases, &buckets, pacing, webhook, (now, lease_until), limit))
            .await
    }

    async fn delivery_record(&self, updates: &[DeliveryUpdate]) -> StoreResult<Vec<Failing>> {
        let ids: Vec<DeliveryId> = updates.iter().map(|u| u.delivery_id).collect();
        let updates = updates.to_vec();
        let failing = self
            .writer
            .write(move |c, _| {
                queue::record(c, &updates)?;
                deliveries::track_failing(c, &updates)
            })
            .await?;
        // Committed: the payloads have left the queue (or wait for a retry), so their
        // leases can go.
        self.leases.release(ids);
        Ok(failing)
    }

    async fn delivery_list(
        &self,
        scope: Scope,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let filter = filter.clone();
        self.readers
            .off_thread(move |c| deliveries::list(c, scope, webhook, &filter))
            .await
    }

    async fn delivery_latest(&self, scope: Scope, webhooks: &[WebhookId]) -> StoreResult<Vec<DeliveryRecord>> {
        let ids = super::latest_ids(webhooks)?;
        self.readers
            .off_thread(move |c| deliveries::latest(c, scope, &ids))
            .await
    }

    async fn delivery_get(&self, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>> {
        self.readers.off_thread(move |c| deliveries::get(c, scope, id)).await
    }

    async fn delivery_requeue(&self, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue> {
        self.writer
            .write(move |c, _| deliveries::requeue(c, scope, id, now))
            .await
    }

    async fn purge_finished(&self, before: Millis) -> StoreResult<u64> {
        self.writer.write(move |c, _| deliveries::purge(c, before)).await
    }
}
