//! Persistence. `Store` is the boundary the rest of hookd talks to; `sqlite` (the embedded
//! default) and `postgres` implement it. Nothing above this module writes SQL.

mod records;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{MerchantCode, MerchantId, NewWebhook, Role, UserName, Webhook, WebhookId};
use crate::time::Millis;

pub use records::{Scope, StatusTarget, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("unsupported database url '{0}' (expected sqlite://… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything hookd keeps. Implementations must make each method atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;

    // --- merchants and users ---
    /// The merchant with this code, created if missing.
    async fn merchant_ensure(&self, code: &MerchantCode) -> StoreResult<MerchantId>;
    async fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>>;
    /// Every merchant's (id, code), ordered by id.
    async fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>>;
    /// Fails with `Conflict("user")` when the name is taken.
    async fn user_create(
        &self,
        name: &UserName,
        role: Role,
        merchant: Option<MerchantId>,
        key_hash: &str,
    ) -> StoreResult<UserRecord>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_list(&self) -> StoreResult<Vec<UserRecord>>;
    /// Removes the user and its sessions; false when there was no such user.
    async fn user_remove(&self, name: &str) -> StoreResult<bool>;

    // --- sessions (stored by the SHA-256 of their id) ---
    async fn session_create(&self, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()>;
    /// The session's user, if the session exists and has not expired at `now`.
    async fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<UserRecord>>;
    async fn session_purge_expired(&self, now: Millis) -> StoreResult<u64>;

    // --- webhooks ---
    async fn webhook_create(&self, merchant: MerchantId, hook: &NewWebhook) -> StoreResult<WebhookId>;
    async fn webhook_count(&self, merchant: MerchantId) -> StoreResult<i64>;
    /// The scope's webhooks ordered by id.
    async fn webhook_list(&self, scope: Scope) -> StoreResult<Vec<Webhook>>;
    async fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>>;
    /// Sets `is_active` on every matching webhook of the scope; returns how many matched.
    async fn webhook_set_active(&self, scope: Scope, target: &StatusTarget, active: bool) -> StoreResult<u64>;
    /// Deletes the webhook and cancels its queued deliveries; false when it did not exist.
    async fn webhook_delete(&self, scope: Scope, id: WebhookId) -> StoreResult<bool>;
}

/// Opens the store a database URL names (`sqlite://path` or `postgres://…`).
pub async fn connect(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(database_url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(database_url.to_string()))
    }
}
