//! The operations behind the API, independent of JSON-RPC: who the caller is (`auth`),
//! and what each method does (`webhooks`, …). The rpc layer unpacks parameters, calls one
//! function here and maps the `AppError` it may return to a JSON-RPC error code.

pub mod auth;
mod error;
pub mod webhooks;

use std::sync::Arc;

pub use auth::Caller;
pub use error::AppError;

use crate::domain::Catalog;
use crate::store::Store;

/// Settings the operations need (a slice of the full config).
#[derive(Clone, Debug)]
pub struct AppSettings {
    pub allow_private_targets: bool,
    pub max_webhooks_per_merchant: i64,
    pub session_ttl: std::time::Duration,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            max_webhooks_per_merchant: 1000,
            session_ttl: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// Shared state of a running hookd: cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub catalog: Catalog,
    pub settings: Arc<AppSettings>,
    auth_cache: Arc<auth::VerifiedKeys>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, settings: AppSettings) -> Self {
        Self { store, catalog, settings: Arc::new(settings), auth_cache: Default::default() }
    }
}
