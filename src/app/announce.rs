//! `webhook:disabled` events: the engine reports each webhook it turned off (410 Gone, or
//! failing for `HOOKD_DISABLE_AFTER`; see `dispatch::disable`), and this publishes an event
//! for that webhook's merchant through the ordinary publish path, so the merchant's other
//! webhooks subscribed to the topic hear of it (the disabled one is inactive by then).

use serde_json::json;
use tokio::sync::watch;

use super::events::PublishOptions;
use super::App;
use crate::dispatch::disable::{Disabled, TOPIC};

impl App {
    /// Publishes the engine's announcements until `stop` turns true, then those already
    /// queued. Runs once per process (the engine hands its receiving end out once).
    pub async fn announce_disabled(self, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.engine.announcements.take_receiver() else {
            return;
        };
        loop {
            tokio::select! {
                Some(disabled) = rx.recv() => self.announce(disabled).await,
                _ = stop.changed() => break,
            }
        }
        while let Ok(disabled) = rx.try_recv() {
            self.announce(disabled).await;
        }
    }

    async fn announce(&self, d: Disabled) {
        let message = json!({"webhook_id": d.webhook_id.0, "url": d.url, "reason": d.reason});
        let options = PublishOptions {
            merchant_code: Some(d.merchant_code),
            idempotency_key: None,
        };
        if let Err(e) = self.publish(TOPIC, &message, &options).await {
            tracing::warn!(error = ?e, webhook = d.webhook_id.0, "publishing webhook:disabled failed");
        }
    }
}
