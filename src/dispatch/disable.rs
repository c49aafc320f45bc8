//! hookd turning a webhook off because of its receiver: at once on 410 Gone, or once every
//! attempt has failed for `HOOKD_DISABLE_AFTER` (the outcome write keeps `failing_since`).
//!
//! The one idea to know: turning off is a store write that only one caller wins
//! (`webhook_disable` is true for the call that flipped `is_active`), and only the winner
//! counts it and logs it. The same write marks the webhook's `webhook:disabled` event
//! pending (with the moment it was turned off), so the announcement is stored before anyone
//! is told: the app's announcer (`app::announce`) publishes pending announcements and clears
//! the mark, at once when this nudges it over a channel (dispatch cannot call the app:
//! layering), and at start-up and every minute otherwise. A crash right after the write
//! therefore delays the event until the next sweep (another PostgreSQL node's, or the next
//! process's start-up); it does not lose it. The webhook is inactive by then, so it gets no
//! payload of its own announcement.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Engine;
use crate::domain::{DeliveryUpdate, Scope, WebhookId};
use crate::store::StoreResult;
use crate::time::{format_timestamp, now_millis, Millis};

/// The catalog topic of the announcement.
pub const TOPIC: &str = "webhook:disabled";

/// The channel that tells the announcer a webhook was just turned off (the announcement
/// itself is in the store); the app takes the receiving end once.
pub struct Announcements {
    tx: mpsc::UnboundedSender<WebhookId>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<WebhookId>>>,
}

impl Default for Announcements {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Announcements {
    /// The receiving end; None after the first call.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<WebhookId>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Why a webhook was turned off after a 410 at `at`.
pub fn gone_reason(at: Millis) -> String {
    format!("410 Gone from the receiver at {}", format_timestamp(at))
}

/// Why a webhook was turned off at `now` after failing since `since` for longer than `after`.
pub fn failing_reason(since: Millis, now: Millis, after: Duration) -> String {
    format!(
        "every delivery attempt failed from {} to {} (HOOKD_DISABLE_AFTER is {})",
        format_timestamp(since),
        format_timestamp(now),
        humantime::format_duration(after)
    )
}

impl Engine {
    /// Turns the webhook off with `reason`, its announcement pending in the same write. True
    /// when this call did it: it is then counted (`hookd_webhooks_disabled_total`), logged
    /// (one WARN line, the receiver's host only) and the announcer is nudged. False when it
    /// was off already or is gone.
    pub async fn disable(&self, webhook: WebhookId, reason: String) -> StoreResult<bool> {
        if !self.store.webhook_disable(webhook, &reason).await? {
            return Ok(false);
        }
        self.metrics.webhooks_disabled.inc();
        // Its payloads wait now: the dispatcher drops the lane rather than pace it on.
        self.wake.forget([webhook]);
        // The announcement is stored: a nudge lost here (no announcer running) only waits
        // for the next sweep.
        let _ = self.announcements.tx.send(webhook);
        // For the log line; it was just turned off, so it exists unless deleted this very
        // moment.
        let hook = self.store.webhook_get(Scope::All, webhook).await?;
        let host = hook.as_ref().map(|h| url_host(&h.url)).unwrap_or_default();
        tracing::warn!(
            webhook = webhook.0,
            host,
            reason,
            "webhook turned off because of its receiver (webhook.update_status turns it on again)"
        );
        Ok(true)
    }

    /// Writes an outcome batch back, then turns off the webhooks it shows failing for longer
    /// than `disable_after` (none when that is off). Costs nothing more while all is well:
    /// the store reports only webhooks the batch saw fail.
    pub async fn record_outcomes(&self, updates: &[DeliveryUpdate]) -> StoreResult<()> {
        let failing = self.store.delivery_record(updates).await?;
        let Some(after) = self.settings.disable_after else {
            return Ok(());
        };
        let now = now_millis();
        let cutoff = now - after.as_millis() as i64;
        for f in failing.into_iter().filter(|f| f.since <= cutoff) {
            // The outcomes are written; a failure here is tried again at the next failure.
            if let Err(e) = self.disable(f.webhook, failing_reason(f.since, now, after)).await {
                tracing::warn!(error = ?e, webhook = f.webhook.0, "turning off a failing webhook failed");
            }
        }
        Ok(())
    }
}

/// The host of a receiver URL, for log lines (the path and query may carry secrets).
pub fn url_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_why_and_when() {
        let at = 1_796_126_400_000; // 2026-12-01T12:00:00Z
        assert_eq!(
            gone_reason(at),
            "410 Gone from the receiver at 2026-12-01T12:00:00+00:00"
        );
        assert_eq!(
            failing_reason(at - 5 * 86_400_000, at, Duration::from_secs(5 * 86_400)),
            "every delivery attempt failed from 2026-11-26T12:00:00+00:00 to 2026-12-01T12:00:00+00:00 \
             (HOOKD_DISABLE_AFTER is 5days)"
        );
    }

    #[test]
    fn log_lines_name_the_host_only() {
        assert_eq!(
            url_host("https://hooks.example.com:8443/in?token=secret"),
            "hooks.example.com"
        );
        assert_eq!(url_host("not a url"), "");
    }

    #[test]
    fn the_receiving_end_is_taken_once() {
        let a = Announcements::default();
        assert!(a.take_receiver().is_some());
        assert!(a.take_receiver().is_none());
    }
}
