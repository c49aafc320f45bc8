//! `webhook:disabled` events: each webhook hookd turned off (410 Gone, or failing for
//! `HOOKD_DISABLE_AFTER`; see `dispatch::disable`) is announced to its merchant through the
//! ordinary publish path, so the merchant's other webhooks subscribed to the topic hear of it
//! (the disabled one is inactive by then).
//!
//! The one idea to know: the announcement is made at least once and yields one event. The
//! write that turns a webhook off also marks its announcement pending (`announce_pending`,
//! with `disabled_at`); the announcer publishes each pending announcement, then clears the
//! mark. It sweeps the pending rows at start-up, whenever the engine nudges it (a webhook
//! was just turned off) and every minute, so an announcement a crashed process left pending
//! is made by the next one. Every publish of one announcement carries the same idempotency
//! key, made of the webhook's id and the moment it was turned off, so publishing it again
//! (after a crash between the publish and the clear, or because several PostgreSQL nodes
//! swept the same row at once, which they may: the sweep locks nothing) is answered as a
//! replay and makes no second event. That holds within the idempotency window (24 hours): a
//! process that published, died before clearing and had no successor for a day would
//! announce it twice. A publish that fails leaves the mark for the next sweep.
//!
//! A caller changing the webhook's status before the announcement is made ends it along
//! with the reason (the state it would report is over).

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::events::PublishOptions;
use super::App;
use crate::dispatch::disable::TOPIC;
use crate::domain::DisabledAnnouncement;

/// How often pending announcements are looked for when nothing nudges the announcer: what
/// an announcement left by a crashed node (PostgreSQL) waits at most, at start-up aside.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Pending announcements read at a time.
const SWEEP_PAGE: i64 = 100;

/// The idempotency key of an announcement: the same for every publish of it, another for
/// the same webhook's next turn-off.
pub fn idempotency_key(a: &DisabledAnnouncement) -> String {
    format!("hookd:webhook:disabled:{}:{}", a.webhook_id.0, a.disabled_at)
}

impl App {
    /// Publishes pending announcements at start-up, on the engine's nudges and every
    /// `SWEEP_EVERY`, until `stop` turns true; then once more if nudged meanwhile. Runs once
    /// per process (the engine hands its receiving end out once).
    pub async fn announce_disabled(self, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.engine.announcements.take_receiver() else {
            return;
        };
        // The first tick is at once: the start-up sweep.
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweeps.tick() => {}
                // One sweep serves every nudge already queued.
                Some(_) = rx.recv() => while rx.try_recv().is_ok() {},
                _ = stop.changed() => break,
            }
            self.sweep_announcements().await;
        }
        if rx.try_recv().is_ok() {
            self.sweep_announcements().await;
        }
    }

    /// Publishes every pending announcement, a page at a time; stops at a page that is not
    /// full or where none could be made (those wait for the next sweep).
    pub async fn sweep_announcements(&self) {
        loop {
            let pending = match self.store.webhook_announcements_pending(SWEEP_PAGE).await {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::warn!(error = ?e, "reading pending webhook:disabled announcements failed");
                    return;
                }
            };
            let full = pending.len() as i64 == SWEEP_PAGE;
            let mut made = 0;
            for a in pending {
                made += usize::from(self.announce(a).await);
            }
            if !full || made == 0 {
                return;
            }
        }
    }

    /// Publishes one announcement and clears its mark; true when both were done.
    async fn announce(&self, a: DisabledAnnouncement) -> bool {
        let message = json!({"webhook_id": a.webhook_id.0, "url": a.url, "reason": a.reason});
        let options = PublishOptions {
            merchant_code: Some(a.merchant_code.clone()),
            idempotency_key: Some(idempotency_key(&a)),
            ..Default::default()
        };
        if let Err(e) = self.publish(TOPIC, &message, &options).await {
            tracing::warn!(error = ?e, webhook = a.webhook_id.0, "publishing webhook:disabled failed");
            return false;
        }
        if let Err(e) = self.store.webhook_announcement_done(a.webhook_id, a.disabled_at).await {
            // Published: the next sweep publishes it again and is answered as a replay.
            tracing::warn!(error = ?e, webhook = a.webhook_id.0, "clearing a made webhook:disabled announcement failed");
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WebhookId;

    #[test]
    fn the_key_names_the_webhook_and_the_moment() {
        let a = DisabledAnnouncement {
            webhook_id: WebhookId(42),
            merchant_code: "shop".into(),
            url: "https://h.example/".into(),
            reason: "410 Gone".into(),
            disabled_at: 1_796_126_400_000,
        };
        assert_eq!(idempotency_key(&a), "hookd:webhook:disabled:42:1796126400000");
        let later = DisabledAnnouncement {
            disabled_at: a.disabled_at + 1,
            ..a.clone()
        };
        assert_ne!(idempotency_key(&a), idempotency_key(&later));
        assert!(idempotency_key(&a).len() <= crate::app::events::MAX_IDEMPOTENCY_KEY_LEN);
    }
}
