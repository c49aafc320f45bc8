//! Delivery of payloads to receivers: one HTTP attempt (`client`), its signatures
//! (`signing`), when to try again (`retry`), what an attempt means for its payload
//! (`deliver`), turning a webhook off because of its receiver (`disable`), attempts in
//! flight per webhook (`slots`), the loop that claims due payloads and runs attempts
//! (`worker`), the write-back of their outcomes (`recorder`), and the purge of old
//! payloads (`retention`). `Engine` is what the worker and `webhook.test` share; publishers
//! wake the worker through its `Wake`.

pub mod client;
pub mod deliver;
pub mod disable;
pub mod recorder;
pub mod retention;
pub mod retry;
pub mod signing;
pub mod slots;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use client::{ClientBuildError, ClientConfig, DeliveryClient};
use retry::RetrySchedule;
use slots::Slots;

use crate::domain::WebhookId;
use crate::metrics::Metrics;
use crate::store::{Handoff, Store};
use crate::wake::Wake;

/// The delivery engine's shared parts: where payloads are kept, how they are sent, and
/// who may send how many at once. Cheap to share (`Arc`); the worker, `webhook.test` and
/// the publishers (through `wake`) use one.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub client: DeliveryClient,
    pub settings: DeliverySettings,
    /// Tells the worker about new payloads.
    pub wake: Arc<Wake>,
    /// Payloads publishes leased to this node at insert, for the worker (`store::handoff`).
    pub handoff: Arc<Handoff>,
    /// Attempts in flight per webhook, over every sender.
    pub slots: Slots,
    pub metrics: Arc<Metrics>,
    /// Webhooks this engine turned off, for the app to publish `webhook:disabled` events.
    pub announcements: disable::Announcements,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        settings: DeliverySettings,
        allow_private_targets: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ClientBuildError> {
        let mut client_config = settings.client.clone();
        client_config.allow_private_targets = allow_private_targets;
        client_config.max_idle_per_host = settings.max_in_flight;
        let handoff = Arc::new(Handoff::default());
        store.accept_handoff(handoff.clone());
        Ok(Arc::new(Self {
            store,
            client: DeliveryClient::new(client_config)?,
            slots: Slots::new(settings.per_webhook),
            settings,
            wake: Default::default(),
            handoff,
            metrics,
            announcements: Default::default(),
        }))
    }

    /// One of the webhook's slots for a `webhook.test` ping, waiting up to twice the
    /// request timeout (attempts in flight end by then); None when none came free.
    pub async fn slot_for_test(&self, webhook: WebhookId) -> Option<TestSlot<'_>> {
        let patience = self.settings.client.request_timeout * 2;
        self.slots
            .take_one(webhook, patience)
            .await
            .then_some(TestSlot { engine: self, webhook })
    }
}

/// A slot held by a test ping; given back (and the worker told) when dropped, however the
/// ping ends.
pub struct TestSlot<'a> {
    engine: &'a Engine,
    webhook: WebhookId,
}

impl Drop for TestSlot<'_> {
    fn drop(&mut self) {
        self.engine.slots.give(self.webhook, 1);
        // The worker's lane may have waited for this slot.
        self.engine.wake.webhooks([self.webhook]);
    }
}

/// How the dispatcher behaves; part of the resolved config.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub client: ClientConfig,
    pub schedule: RetrySchedule,
    /// Attempts in flight at once, over all webhooks.
    pub max_in_flight: usize,
    /// Attempts in flight at once for one webhook, so a slow receiver only slows itself.
    pub per_webhook: usize,
    /// How often the queue is scanned for work no wake-up announced (other processes,
    /// expired leases). New payloads of this process wake the dispatcher at once.
    pub poll_interval: Duration,
    /// How long a claimed payload stays reserved; after that another worker may take it.
    pub lease: Duration,
    /// How long finished payloads and their attempts are kept.
    pub retention: Duration,
    /// A webhook all of whose attempts have failed for this long is turned off; None: never.
    pub disable_after: Option<Duration>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            schedule: RetrySchedule::standard(),
            max_in_flight: 512,
            per_webhook: 16,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
            disable_after: Some(Duration::from_secs(5 * 24 * 3600)),
        }
    }
}
