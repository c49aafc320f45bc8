//! Persistence. `Store` is the boundary the rest of hookd talks to; `sqlite` (the embedded
//! default) and `postgres` implement it. Nothing above this module writes SQL.

mod error;
mod failing;
pub mod handoff;
mod health;
mod judge;
mod pace;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::domain::catalog::{CatalogEntry, CatalogWrite};
use crate::domain::portal::{NewPortalLink, Redeemed, SessionUser};
use crate::domain::{
    BodyTemplate, DeliveryId, KeyPair, MerchantCode, MerchantId, NewWebhook, Role, RotateOutcome, SecretKey, UserName,
    Webhook, WebhookChange, WebhookId,
};
use crate::time::Millis;
use crate::wake::Wake;

/// The time a deliveries page continues from, in SQL (both backends): that of the page's
/// cursor delivery `id` (a placeholder), or, when retention has purged that delivery since,
/// that of the nearest older one, so the next page is not empty.
pub(crate) fn cursor_time(id: &str) -> String {
    format!(
        "COALESCE((SELECT created_at FROM deliveries WHERE id = {id}), \
         (SELECT created_at FROM deliveries WHERE id < {id} ORDER BY id DESC LIMIT 1))"
    )
}

// The records passed across the boundary live in `domain`; re-exported for the backends.
pub use crate::domain::records::{
    AttemptLog, ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliverySearch, DeliveryUpdate,
    DisabledAnnouncement, Failing, MerchantSummary, PayloadRecord, PublishRequest, Published, Recovered, Requeue,
    Scope, StatusTarget, StoredSecrets, UserRecord,
};
pub use error::StoreError;
pub use handoff::Handoff;
pub use health::WriteHealth;
pub use judge::publish_judged;
pub use pace::{PacedClaim, Pacing};

pub type StoreResult<T> = Result<T, StoreError>;

/// Connection pool settings (PostgreSQL; SQLite uses one writer and a few readers).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a query waits for a free connection (or for the server) before failing.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// How many webhooks one `delivery_latest` call may ask about.
pub const LATEST_MAX_WEBHOOKS: usize = 50;

/// The ids `delivery_latest` asks about: sorted, without repeats, at most
/// `LATEST_MAX_WEBHOOKS` of them (shared by the backends).
fn latest_ids(webhooks: &[WebhookId]) -> StoreResult<Vec<i64>> {
    let mut ids: Vec<i64> = webhooks.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > LATEST_MAX_WEBHOOKS {
        return Err(StoreError::TooManyIds {
            given: ids.len(),
            max: LATEST_MAX_WEBHOOKS,
        });
    }
    Ok(ids)
}

/// Everything hookd keeps. Implementations must make each method atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// Succeeds when the database answers and the last write attempt did not fail for want
    /// of storage (for `/readyz`; see `health`).
    async fn ping(&self) -> StoreResult<()>;

    /// Forwards wake-ups published by other nodes to `wake` until `stop` turns true.
    /// Databases without cross-process notifications return at once (the poll covers it).
    async fn listen_wakeups(&self, _wake: Arc<Wake>, _stop: watch::Receiver<bool>) {}

    /// Where publishes hand this node's dispatcher the payloads they lease to it at insert
    /// (see `handoff`). Stores that do not lease at insert ignore it.
    fn accept_handoff(&self, _handoff: Arc<Handoff>) {}

    // --- nodes taking forwarded publishes (see `cluster`; PostgreSQL only) ---
    /// Records this node as live at `address`; every node seen within `fresh`, itself
    /// included, ordered by name. A store of one server has none.
    async fn peers_beat(&self, _node: &str, _address: &str, _fresh: Duration) -> StoreResult<Vec<Peer>> {
        Ok(Vec::new())
    }
    /// Takes `node` out of the choice of owners.
    async fn peers_leave(&self, _node: &str) -> StoreResult<()> {
        Ok(())
    }
    /// The secret peer links prove, stored as `fresh` by the first node to ask; None: the
    /// store has no peers.
    async fn peer_secret(&self, _fresh: [u8; 32]) -> StoreResult<Option<Vec<u8>>> {
        Ok(None)
    }

    // --- merchants and users ---
    /// The merchant with this code, created if missing.
    async fn merchant_ensure(&self, code: &MerchantCode) -> StoreResult<MerchantId>;
    async fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>>;
    /// Every merchant's (id, code), ordered by id.
    async fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>>;
    /// Creates a merchant; fails with `Conflict("merchant")` when the code is taken.
    async fn merchant_create(&self, code: &MerchantCode, name: Option<&str>) -> StoreResult<MerchantSummary>;
    /// Every merchant with its name and webhook count, ordered by id.
    async fn merchant_summaries(&self) -> StoreResult<Vec<MerchantSummary>>;
    /// Fails with `Conflict("user")` when the name is taken.
    async fn user_create(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        key_hash: &str,
    ) -> StoreResult<UserRecord> {
        self.user_create_scoped(name, role, merchant, &[], key_hash).await
    }
    /// `user_create` for a publisher limited to `merchant_codes` (empty: any merchant).
    async fn user_create_scoped(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        merchant_codes: &[String],
        key_hash: &str,
    ) -> StoreResult<UserRecord>;
    /// Replaces the user's key hash and ends every session of the user, in one transaction;
    /// false when there is no such user.
    async fn user_rotate_key(&self, name: &str, key_hash: &str) -> StoreResult<bool>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_list(&self) -> StoreResult<Vec<UserRecord>>;
    /// Removes the user and its sessions; false when there was no such user.
    async fn user_remove(&self, name: &str) -> StoreResult<bool>;

    // --- sessions (stored by the SHA-256 of their id) ---
    async fn session_create(&self, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()>;
    /// The session's user, if the session exists and has not expired at `now`.
    async fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionUser>>;
    /// Removes expired sessions (and expired portal links); the number of sessions removed.
    async fn session_purge_expired(&self, now: Millis) -> StoreResult<u64>;
    /// Ends the session at once (logout); false when there was none.
    async fn session_delete(&self, id_hash: &str) -> StoreResult<bool>;

    // --- portal links (stored by the SHA-256 of their token) ---
    async fn portal_link_create(&self, link: &NewPortalLink) -> StoreResult<()>;
    /// Opens a link once: deletes its row and, unless it expired by `now`, makes the portal
    /// session `session_hash` (valid until `session_expires`) in the same transaction.
    /// None when no such link exists (never made, or already used).
    async fn portal_link_redeem(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: Millis,
        session_expires: Millis,
    ) -> StoreResult<Option<Redeemed>>;

    // --- webhooks ---
    /// Creates the webhook unless the merchant already has `limit` webhooks (then None).
    /// The merchant's count is kept on its row and moved in the creating transaction, so the
    /// check costs the same however many webhooks there are, and concurrent creates respect it.
    async fn webhook_create(
        &self,
        merchant: MerchantId,
        hook: &NewWebhook,
        limit: i64,
    ) -> StoreResult<Option<WebhookId>>;
    async fn webhook_count(&self, merchant: MerchantId) -> StoreResult<i64>;
    /// The scope's webhooks ordered by id.
    async fn webhook_list(&self, scope: Scope) -> StoreResult<Vec<Webhook>>;
    /// A page of the scope's webhooks: those with an id above `after` (all when None),
    /// ordered by id, at most `limit`. Keyset paging, so a page costs the same however far
    /// into the list it is (the console's list; `webhook.list` still reads them all).
    async fn webhook_page(&self, scope: Scope, after: Option<WebhookId>, limit: i64) -> StoreResult<Vec<Webhook>>;
    async fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>>;
    /// Sets `is_active` on every matching webhook of the scope; returns how many matched.
    async fn webhook_set_active(&self, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64>;
    /// hookd turns the webhook off (receiver steering): `is_active` 0 with `reason`, and in
    /// the same write its `webhook:disabled` announcement pending, with the moment (see
    /// `webhook_announcements_pending`). True only for the call that turned it off (false
    /// when it was already off or is gone), so one node counts and logs it.
    async fn webhook_disable(&self, id: WebhookId, reason: &str) -> StoreResult<bool>;
    /// Webhooks whose `webhook:disabled` event is pending (turned off by hookd, the event not
    /// known to be published), lowest id first, at most `limit`. A status change by a
    /// caller (`webhook_set_active`, `webhook_update` with `is_active`) ends the pending
    /// announcement along with the reason.
    async fn webhook_announcements_pending(&self, limit: i64) -> StoreResult<Vec<DisabledAnnouncement>>;
    /// The announcement of the webhook's turn-off at `disabled_at` is made: no longer
    /// pending. Idempotent; a later turn-off (another `disabled_at`) stays pending.
    async fn webhook_announcement_done(&self, id: WebhookId, disabled_at: Millis) -> StoreResult<()>;
    /// Deletes the webhook and cancels its queued deliveries; false when it did not exist.
    async fn webhook_delete(&self, scope: Scope, id: WebhookId) -> StoreResult<bool>;

    // --- the webhook lifecycle (`lifecycle` in each backend) ---
    /// Applies the change (fields not given keep their value) and moves the webhook's
    /// `version`; false when it does not exist in the scope. Activating wakes every node.
    async fn webhook_update(&self, scope: Scope, id: WebhookId, change: &WebhookChange) -> StoreResult<bool>;
    /// Makes `secret` (and, with `hmac+ed25519`, `key_pair`) the webhook's keys; the current
    /// ones join the previous keys until `previous_expires_at`, which keep their own expiries
    /// (`domain::rotation::previous_after_rotation`, refused when too many still sign at
    /// `now`). Moves the `version`.
    async fn webhook_rotate_secret(
        &self,
        scope: Scope,
        id: WebhookId,
        secret: &SecretKey,
        key_pair: &KeyPair,
        now: Millis,
        previous_expires_at: Millis,
    ) -> StoreResult<RotateOutcome>;

    // --- secrets at rest (`sealing`; `secrets` in each backend) ---
    /// For each key id that sealed a stored secret (current, private or previous), one
    /// (webhook, stored value) sealed with it: what startup tries to open.
    async fn secrets_key_samples(&self) -> StoreResult<Vec<(WebhookId, String)>>;
    /// The stored secrets of the webhooks with an id above `after`, by id, at most `limit`.
    async fn secrets_page(&self, after: WebhookId, limit: i64) -> StoreResult<Vec<StoredSecrets>>;
    /// Writes each `(old, new)` pair's new values in one transaction, each only where the
    /// row still holds the old ones (a secret rotated meanwhile is kept); how many were
    /// written. The `version` does not move: the secrets in clear are the same.
    async fn secrets_replace(&self, rows: Vec<(StoredSecrets, StoredSecrets)>) -> StoreResult<u64>;
    /// The webhook's payloads with `from <= increment_id <= to`, in increment order, at most
    /// `limit`, whatever their status.
    async fn payload_range(
        &self,
        scope: Scope,
        id: WebhookId,
        from: i64,
        to: i64,
        limit: i64,
    ) -> StoreResult<Vec<PayloadRecord>>;
    /// Queues at most `limit` of the `failed` payloads of the webhook made at or after
    /// `since` again (oldest first), due at `now`; how many, and how many such are left, or
    /// None when the webhook does not exist in the scope. Wakes every node.
    async fn delivery_recover(
        &self,
        scope: Scope,
        id: WebhookId,
        since: Millis,
        now: Millis,
        limit: u64,
    ) -> StoreResult<Option<Recovered>>;
    /// Payloads across the scope's webhooks, newest first.
    async fn delivery_search(&self, scope: Scope, filter: &DeliverySearch) -> StoreResult<Vec<DeliveryRecord>>;
    /// Up to `limit` of a webhook's attempts in `[since, until)`, newest first, from the
    /// `delivery_attempts_health` index (CONTRACT §7.7 health). The caller checks the scope.
    async fn health_samples(
        &self,
        webhook: WebhookId,
        since: Millis,
        until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<crate::domain::health::HealthSample>>;

    // --- the event catalog (`catalog` in each backend; CONTRACT §7.4) ---
    /// Adds each entry whose topic is missing; topics already there keep what they have.
    async fn catalog_seed(&self, entries: &[CatalogEntry]) -> StoreResult<()>;
    /// Every entry, ordered by topic.
    async fn catalog_list(&self) -> StoreResult<Vec<CatalogEntry>>;
    /// Every topic's name, ordered.
    async fn catalog_topics(&self) -> StoreResult<Vec<String>>;
    async fn catalog_get(&self, topic: &str) -> StoreResult<Option<CatalogEntry>>;
    /// The topic's version (None: not in the catalog), a point read: whether a compiled
    /// schema is still the stored one.
    async fn catalog_version(&self, topic: &str) -> StoreResult<Option<i64>>;
    /// `catalog_version` when it can be read without waiting for a connection; None when
    /// every connection for it is busy (a publish burst), and the caller uses what it knows.
    async fn catalog_version_if_idle(&self, topic: &str) -> StoreResult<Option<Option<i64>>> {
        self.catalog_version(topic).await.map(Some)
    }
    /// Whether `event_publish` confirms `PublishRequest::schema` in its own transaction
    /// (answering `CatalogMoved`): then a publisher never reads the version beforehand.
    fn publish_confirms_schema(&self) -> bool {
        false
    }
    /// Writes `entry` when the stored version is still `expected` (None: the topic must be
    /// new, and the catalog hold fewer than `max_topics`); the version moves by one.
    async fn catalog_define(
        &self,
        entry: &CatalogEntry,
        expected: Option<i64>,
        max_topics: usize,
    ) -> StoreResult<CatalogWrite>;

    // --- events and deliveries ---
    /// Stores the event and one payload per matching active webhook, each taking that
    /// webhook's next increment id, in one transaction; returns after the commit is durable.
    async fn event_publish(&self, req: &PublishRequest<'_>) -> StoreResult<Published>;
    /// Makes one payload for one webhook (webhook.test) and claims it for `owner` at once.
    /// None when the webhook does not exist in the scope.
    async fn delivery_create_claimed(
        &self,
        scope: Scope,
        webhook: WebhookId,
        topic: &str,
        body: &BodyTemplate,
        owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>>;
    /// Active webhooks with unleased payloads to send, each with its earliest due time. (On
    /// SQLite leases live in memory, so leased payloads count too; the claim skips them.)
    /// It also resets where claims start reading (PostgreSQL's claim floors), so a payload
    /// that turned due below one (a lease run out, another node's late commit) is claimable
    /// once the scan has run.
    async fn queue_scan(&self, now: Millis) -> StoreResult<Vec<(WebhookId, Millis)>>;
    /// How many `max_rate` buckets are held in memory (the `hookd_rate_buckets` gauge): 0
    /// where they are rows of the database.
    /// Database connections in use and work waiting, by pool (the `hookd_db_*` gauges).
    fn pool_stats(&self) -> Vec<PoolStats> {
        Vec::new()
    }
    fn rate_buckets(&self) -> usize {
        0
    }
    /// How many payloads of active webhooks are due now (for the `hookd_queue_due` gauge),
    /// counting at most `cap` of them so a huge backlog costs a bounded read.
    async fn queue_due_count(&self, now: Millis, cap: i64) -> StoreResult<i64>;
    /// Leases up to `limit` due payloads of one active webhook to `owner`, oldest first
    /// (of those at or after the webhook's claim floor, see `queue_scan`).
    async fn delivery_claim(
        &self,
        webhook: WebhookId,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let claim = self
            .delivery_claim_paced(webhook, owner, now, lease_until, limit, Pacing::default())
            .await?;
        Ok(claim.claimed)
    }

    /// `delivery_claim` paced as the webhook's settings say (see `pace`): an ordered webhook
    /// gives only its head, when due and not leased (never two nodes at once); a `max_rate`
    /// takes a token per payload from the webhook's bucket (on PostgreSQL shared by nodes).
    async fn delivery_claim_paced(
        &self,
        webhook: WebhookId,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
        pacing: Pacing,
    ) -> StoreResult<PacedClaim>;
    /// Ends `owner`'s leases of these payloads unsent, so they can be claimed at once: those a
    /// publish leased to this node at insert (`handoff`) that its dispatcher will not send.
    /// Stores that do not lease at insert have none.
    async fn delivery_release(&self, _ids: &[DeliveryId], _owner: &str) -> StoreResult<()> {
        Ok(())
    }
    /// Confirms payloads a publish leased to `owner` at insert (`handoff`) that waited before
    /// being sent: those still queued, of an active webhook, and still leased to `owner` have
    /// their lease moved to `lease_until` and are returned; the others are not to be sent.
    /// Stores that do not lease at insert have none.
    async fn delivery_renew(
        &self,
        _ids: &[DeliveryId],
        _owner: &str,
        _now: Millis,
        _lease_until: Millis,
    ) -> StoreResult<Vec<DeliveryId>> {
        Ok(Vec::new())
    }
    /// Logs the attempts and moves each payload to its new state, in one transaction.
    /// A payload whose lease `owner` lost, or that was canceled meanwhile, keeps its state
    /// (its attempt is logged all the same: the request was sent).
    /// Idempotent per request (`attempt_no`, `request`): an attempt recorded again changes
    /// nothing, so a write-back retried after an unclear failure never counts an attempt twice.
    /// In the same transaction each webhook's `failing_since` follows its outcomes (set by
    /// the first failure after a success, cleared by a success; one UPDATE per webhook and
    /// batch at most, none while nothing changes). Returns the webhooks whose failures the
    /// batch logged and that have only failed since their `failing_since`.
    async fn delivery_record(&self, updates: &[DeliveryUpdate]) -> StoreResult<Vec<Failing>>;
    async fn delivery_list(
        &self,
        scope: Scope,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// The newest payload of each of `webhooks` that has one and is in the scope, in one
    /// query (a point read of `deliveries_by_webhook` per id), ordered by webhook id: what a
    /// list of webhooks shows as their last outcome. At most `LATEST_MAX_WEBHOOKS` ids (one
    /// page of the console's list); more are refused with `TooManyIds` rather than making the
    /// statement as long as the caller likes. Repeated ids count once.
    async fn delivery_latest(&self, scope: Scope, webhooks: &[WebhookId]) -> StoreResult<Vec<DeliveryRecord>>;
    async fn delivery_get(&self, scope: Scope, id: DeliveryId) -> StoreResult<Option<DeliveryDetail>>;
    /// Puts a failed payload back in the queue, due at `now`.
    async fn delivery_requeue(&self, scope: Scope, id: DeliveryId, now: Millis) -> StoreResult<Requeue>;
    /// Deletes finished (success, failed, canceled) payloads finished before `before`, and
    /// events older than it; returns how many payloads went.
    async fn purge_finished(&self, before: Millis) -> StoreResult<u64>;
}

/// Opens the store a database URL names (`sqlite://path` or `postgres://…`).
/// `keyring` seals the secrets written and opens those read (`Keyring::off()`: clear text).
pub async fn connect(
    database_url: &str,
    pool: &PoolSettings,
    keyring: Arc<crate::sealing::Keyring>,
) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(database_url).await?.with_keyring(keyring),
        ))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PostgresStore::connect(database_url, pool)
                .await?
                .with_keyring(keyring),
        ))
    } else {
        Err(StoreError::UnsupportedUrl(crate::redact::database_url(database_url)))
    }
}

/// A node taking forwarded publishes, as the store last saw it (see `cluster`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node's name (as on its leases).
    pub node: String,
    /// Where its peer listener takes links (HOST:PORT).
    pub address: String,
}

/// One pool's figures for `/metrics`: connections in use (None: not meaningful for it) and
/// work waiting for one (None: not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub pool: &'static str,
    pub in_use: Option<i64>,
    pub waiting: Option<i64>,
}
