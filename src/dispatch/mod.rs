//! Delivery of payloads to receivers: one HTTP attempt (`client`), its signatures
//! (`signing`), when to try again (`retry`), the loop that claims due payloads and runs
//! attempts (`worker`), how publishers wake it (`wake`), and the purge of old payloads
//! (`retention`).

pub mod client;
pub mod deliver;
pub mod retention;
pub mod retry;
pub mod signing;
pub mod worker;

use std::time::Duration;

use client::ClientConfig;
use retry::RetrySchedule;

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
        }
    }
}
