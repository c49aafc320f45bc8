//! The operations behind the API, independent of JSON-RPC: who the caller is (`auth`),
//! and what each method does (`webhooks`, `events`, `deliveries`). The rpc layer unpacks
//! parameters, calls one function here and maps the `AppError` it may return to a code.

mod announce;
pub mod auth;
pub mod catalog;
mod console;
pub mod deliveries;
mod error;
pub mod events;
mod filters;
mod health;
mod in_flight;
pub mod lifecycle;
mod merchants;
pub mod portal;
pub mod provision;
mod recover_budget;
pub mod webhooks;

use std::sync::Arc;

pub use auth::{AuthSettings, Caller};
pub use console::WebhookPage;
pub use error::{AppError, Interruption, StorageProblem};

use crate::dispatch::client::ClientBuildError;
use crate::dispatch::{DeliverySettings, Engine};
use crate::domain::Catalog;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::wake::Wake;

/// Settings the operations need (a slice of the full config).
#[derive(Clone, Debug)]
pub struct AppSettings {
    pub allow_private_targets: bool,
    pub max_webhooks_per_merchant: i64,
    pub session_ttl: std::time::Duration,
    /// Largest `message` `event.publish` accepts, serialized.
    pub max_message_bytes: usize,
    pub delivery: DeliverySettings,
    /// Limits on checking API keys.
    pub auth: AuthSettings,
    /// Portal links and framing of the console.
    pub portal: portal::PortalSettings,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            max_webhooks_per_merchant: 1000,
            session_ttl: std::time::Duration::from_secs(24 * 3600),
            max_message_bytes: 256 * 1024,
            delivery: DeliverySettings::default(),
            auth: AuthSettings::default(),
            portal: portal::PortalSettings::default(),
        }
    }
}

/// Why `App::new` failed.
#[derive(Debug, thiserror::Error)]
pub enum AppBuildError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("could not start the API key check threads")]
    KeyCheckThreads(#[source] std::io::Error),
}

/// Shared state of a running hookd: cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    /// The event catalog as this node knows it (see `catalog`).
    catalog: Arc<catalog::CatalogCache>,
    pub settings: Arc<AppSettings>,
    /// The delivery engine (shared by the dispatcher and `webhook.test`).
    pub engine: Arc<Engine>,
    /// Tells the dispatcher about new payloads (the engine's).
    pub wake: Arc<Wake>,
    pub metrics: Arc<Metrics>,
    auth: Arc<auth::AuthState>,
    merchants: Arc<merchants::MerchantCache>,
    filters: Arc<filters::LearnedFilters>,
    /// What `webhook.recover` may still queue again, per webhook (per node).
    recover_budget: Arc<recover_budget::RecoverBudget>,
    /// The nodes publishes are forwarded to (None: this node stores every publish itself).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, settings: AppSettings) -> Result<Self, AppBuildError> {
        let auth = auth::AuthState::new(&settings.auth).map_err(AppBuildError::KeyCheckThreads)?;
        let metrics = Metrics::shared();
        let engine = Engine::new(
            store.clone(),
            settings.delivery.clone(),
            settings.allow_private_targets,
            metrics.clone(),
        )?;
        Ok(Self {
            store,
            catalog: Arc::new(catalog::CatalogCache::new(catalog)),
            wake: engine.wake.clone(),
            metrics,
            engine,
            settings: Arc::new(settings),
            auth: Arc::new(auth),
            merchants: Arc::default(),
            filters: Arc::default(),
            recover_budget: Arc::default(),
            cluster: None,
        })
    }
}
