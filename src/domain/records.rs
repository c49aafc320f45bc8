//! Plain records and selectors: what the operations hand the store and get back from it
//! (the API layer reads them too, so they live here, below both).

use crate::domain::{MerchantId, Role, UserId, WebhookId};
use crate::time::Millis;

/// A user as stored (the key itself is never stored, only its hash).
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    pub merchant_code: Option<String>,
    /// A publisher's merchants (empty: it may publish for any).
    pub merchant_codes: Vec<String>,
    pub key_hash: String,
    pub created_at: Millis,
}

/// The merchant codes a publisher is limited to, as stored: comma-separated ('' = any).
/// Codes cannot hold a comma (see `MerchantCode`).
pub fn merchant_codes_from_column(text: &str) -> Vec<String> {
    text.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// A merchant as `merchant.list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantSummary {
    pub code: String,
    pub name: Option<String>,
    pub created_at: Millis,
    /// How many webhooks it has.
    pub webhooks: i64,
}

/// Whose data a query may see: an admin sees all, a merchant user only its merchant's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Merchant(MerchantId),
}

impl Scope {
    /// The merchant filter as an SQL parameter: None means no filter.
    pub fn merchant_filter(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::Merchant(m) => Some(m.0),
        }
    }
}

/// A webhook hookd turned off whose `webhook:disabled` event is not known to be published
/// yet (`announce_pending`): what the event says, and when it was turned off, which makes the
/// event's idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisabledAnnouncement {
    pub webhook_id: WebhookId,
    pub merchant_code: String,
    pub url: String,
    pub reason: String,
    pub disabled_at: Millis,
}

/// Which webhooks `webhook.update_status` changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusTarget {
    Id(WebhookId),
    /// Every webhook whose topic list contains this exact entry.
    Topic(String),
    /// Every webhook of the scope (the seed's `{"status": 1}` with no target).
    All,
}

/// How long an idempotency key is remembered: a publish repeating a key used within this
/// window returns the first answer and makes nothing.
pub const IDEMPOTENCY_WINDOW_MS: Millis = 24 * 3600 * 1000;

/// What `event.publish` asks the store to do, in one transaction.
pub struct PublishRequest<'a> {
    pub merchant: crate::domain::MerchantId,
    pub topic: &'a crate::domain::Topic,
    pub body: &'a crate::domain::BodyTemplate,
    pub idempotency_key: Option<&'a str>,
    pub now: Millis,
    /// The event judged by the filters of the webhooks it may reach (see `filter::Verdicts`).
    pub verdicts: &'a crate::domain::filter::Verdicts,
    /// Stored with the event; its payloads' attempts are sent in this trace (CONTRACT §7.6).
    pub trace: Option<crate::domain::TraceParent>,
    /// Which catalog version of the topic the message was checked against, for a store that
    /// confirms it in the publish's own transaction (see `SchemaChecked`).
    pub schema: SchemaChecked,
    /// For a caller whose key was not read for this request: the store stores nothing unless
    /// the user's stored key hash is still this one (`StoreError::KeyRevoked`).
    pub key_check: Option<&'a KeyCheck>,
}

/// The user and stored key hash a remembered API key was verified against (see
/// `app::auth`): a publish made with it is stored only if the hash is still the user's, read
/// inside the publish's transaction, so a rotated key or a removed user publishes nothing
/// more, on any node, without a read of the user per publish.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyCheck {
    pub user: UserId,
    pub key_hash: String,
}

/// The catalog version a publish's message was checked against. A store whose catalog other
/// servers may change (PostgreSQL) compares it with the stored version inside the publish's
/// transaction, and stores nothing when it moved (`StoreError::CatalogMoved`): the publisher
/// checks again against the new schema and publishes again. So a node never reads the version
/// before each publish, yet a `topic.define` made on another node applies at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaChecked {
    /// Nothing to confirm (SQLite, whose one server makes every change; tests).
    Unconfirmed,
    /// Checked against this version of the topic's catalog entry (None: it had none).
    Version(Option<i64>),
}

/// The answer to a publish. `replayed` is true when an earlier publish with the same
/// idempotency key is being returned (and nothing new was made).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub event_id: crate::domain::EventId,
    pub payloads: i64,
    pub webhooks: Vec<WebhookId>,
    pub replayed: bool,
    /// Of `webhooks` (in their order), those whose payload was leased at insert and handed
    /// to this node's dispatcher (`store::handoff`): no claim is needed for them.
    pub handed: Vec<WebhookId>,
}

/// A payload claimed for one attempt (the caller holds its lease).
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub id: crate::domain::DeliveryId,
    pub webhook_id: WebhookId,
    pub increment_id: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    pub body: Vec<u8>,
    /// The webhook's `version` when claimed: a dispatcher holding an older target reloads it.
    /// (0 from `delivery_create_claimed`: `webhook.test` loads its target itself.)
    pub webhook_version: i64,
    /// The event's `traceparent` as stored (None: a test ping, or an event from before
    /// traces were stored): the attempt is sent in that trace.
    pub trace: Option<String>,
}

/// One attempt as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptLog {
    pub attempted_at: Millis,
    pub http_status: Option<i64>,
    pub duration_ms: i64,
    pub response_prefix: String,
    pub error: Option<String>,
    /// What the request carried beyond the derivable, in `SentHeaders`' stored form; `None`
    /// for attempts logged before hookd kept it.
    pub sent_headers: Option<String>,
}

/// The outcome of an attempt to write back: the attempt row and the payload's new state.
#[derive(Clone, Debug)]
pub struct DeliveryUpdate {
    pub delivery_id: crate::domain::DeliveryId,
    /// The payload's webhook (its `failing_since` follows the outcome).
    pub webhook_id: WebhookId,
    /// Which attempt this is (1-based: the claimed `attempts` plus one). Recording the same
    /// attempt again changes nothing, so a write-back retried after an unclear failure
    /// never counts an attempt twice.
    pub attempt_no: i64,
    /// Which request this was: random, drawn once per HTTP request sent. The log keeps a row
    /// per (attempt number, request): two requests with one number (another node sent the
    /// payload once this one's lease ran out) are both logged, one recorded again is not.
    pub request: i64,
    pub lease_owner: String,
    pub attempt: AttemptLog,
    pub status: crate::domain::DeliveryStatus,
    pub next_attempt_at: Millis,
}

/// A webhook an outcome batch logged failures for, and that has had nothing but failures
/// since `since` (its `failing_since`): what auto-disable (`HOOKD_DISABLE_AFTER`) looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failing {
    pub webhook: WebhookId,
    pub since: Millis,
}

/// A payload as `webhook.deliveries` lists it.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub id: crate::domain::DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: Option<i64>,
    pub increment_id: i64,
    pub topic: String,
    pub status: crate::domain::DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_http_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Millis,
}

/// `delivery.info`: the record, the body as sent, and every attempt, oldest first.
#[derive(Clone, Debug)]
pub struct DeliveryDetail {
    pub record: DeliveryRecord,
    pub body: Vec<u8>,
    pub attempts: Vec<AttemptLog>,
}

/// Which payloads `webhook.deliveries` returns, newest first.
#[derive(Clone, Debug)]
pub struct DeliveryFilter {
    pub status: Option<crate::domain::DeliveryStatus>,
    /// Only payloads with a smaller id (paging backwards).
    pub before: Option<i64>,
    pub limit: i64,
}

/// What `webhook.recover` did: how many failed payloads it queued again, and how many of
/// those it was asked for are still failed (a call requeues a bounded number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: u64,
    pub remaining: u64,
}

/// What `delivery.retry` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requeue {
    Requeued(WebhookId),
    NotFound,
    NotFailed(crate::domain::DeliveryStatus),
}

/// One entry of `webhook.payloads`: a payload with the exact body sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadRecord {
    pub increment_id: i64,
    pub delivery_id: crate::domain::DeliveryId,
    pub topic: String,
    pub status: crate::domain::DeliveryStatus,
    pub created_at: Millis,
    pub body: Vec<u8>,
}

/// Which payloads `delivery.list` returns, across the scope's webhooks, newest first.
#[derive(Clone, Debug, Default)]
pub struct DeliverySearch {
    pub status: Option<crate::domain::DeliveryStatus>,
    pub topic: Option<String>,
    pub event_id: Option<i64>,
    /// One webhook's payloads (the console's deliveries page).
    pub webhook_id: Option<i64>,
    /// Made at or after / before these times (the console's time range).
    pub since: Option<crate::time::Millis>,
    pub until: Option<crate::time::Millis>,
    /// Only payloads after this one in the page order (paging backwards): a smaller id, or
    /// with `by_time` a smaller `(created_at, id)`.
    pub before: Option<i64>,
    pub limit: i64,
}

impl DeliverySearch {
    /// Whether the page is ordered by `(created_at, id)` rather than by id: a time range
    /// within one merchant, which then is one range of the index `deliveries_by_merchant_time`
    /// however old it is (by id, the planner walks the merchant's newest payloads back to the
    /// range). Both orders are newest first; ids and times of one merchant rise together
    /// except within a moment, so the pages read the same.
    pub fn by_time(&self, scope: Scope) -> bool {
        scope.merchant_filter().is_some() && (self.since.is_some() || self.until.is_some())
    }
}

/// A webhook's secrets as stored (clear or sealed, see `sealing`), for `hookd secrets
/// reencrypt`: read a page, rewrite each value, write back only where nothing changed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecrets {
    pub webhook: WebhookId,
    pub secret_key: String,
    pub signing_key: Option<String>,
    /// The `previous_keys` column as stored (a JSON array or NULL).
    pub previous_keys: Option<String>,
}

impl std::fmt::Debug for StoredSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredSecrets({}, ..)", self.webhook.0)
    }
}
