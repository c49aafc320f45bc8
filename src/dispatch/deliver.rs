//! One delivery attempt of a claimed payload, and what it means for the payload: success,
//! a retry at the next step of the schedule, or `failed` when the schedule is used up.

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::client::{AttemptOutcome, AttemptRequest};
use super::retry::RetrySchedule;
use super::Engine;
use crate::domain::{AttemptLog, ClaimedDelivery, DeliveryUpdate};
use crate::domain::{DeliveryStatus, ExtraHeaders, Webhook};
use crate::time::{format_timestamp_millis, now_millis, Millis};

/// Where and how a webhook's payloads are sent.
pub struct Target {
    pub url: String,
    pub secret: Vec<u8>,
    /// After a rotation: the previous key and until when it signs too.
    pub previous: Option<(Vec<u8>, Millis)>,
    pub headers: Vec<(String, String)>,
    /// The webhook's `version` this was loaded from (see `worker`).
    pub version: i64,
}

impl Target {
    pub fn of(hook: &Webhook) -> Arc<Self> {
        // Stored headers were validated when the webhook was created.
        let headers = ExtraHeaders::parse(&hook.extra_headers)
            .map(|h| h.pairs().to_vec())
            .unwrap_or_default();
        let previous = match (&hook.previous_secret_key, hook.previous_expires_at) {
            (Some(key), Some(until)) => Some((key.as_bytes().to_vec(), until)),
            _ => None,
        };
        Arc::new(Self {
            url: hook.url.clone(),
            secret: hook.secret_key.as_bytes().to_vec(),
            previous,
            headers,
            version: hook.version,
        })
    }

    /// The previous key while its overlap lasts at `now`.
    pub fn previous_secret(&self, now: Millis) -> Option<&[u8]> {
        self.previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(key, _)| key.as_slice())
    }
}

/// The `webhook-id` header: stable across the attempts of one payload.
pub fn message_id(claimed: &ClaimedDelivery) -> String {
    format!("msg_{}", claimed.id.0)
}

/// Sends the payload once and decides its next state.
pub async fn attempt(
    engine: &Engine,
    target: &Target,
    claimed: ClaimedDelivery,
    owner: &str,
) -> (DeliveryUpdate, AttemptOutcome) {
    let (client, schedule) = (&engine.client, &engine.settings.schedule);
    let started_at = now_millis();
    let msg_id = message_id(&claimed);
    let span = tracing::info_span!(
        "attempt",
        webhook = claimed.webhook_id.0,
        delivery_id = claimed.id.0,
        increment_id = claimed.increment_id,
        attempt = claimed.attempts + 1,
    );
    let outcome = client
        .attempt(&AttemptRequest {
            url: &target.url,
            body: Bytes::from(claimed.body),
            secret: &target.secret,
            previous_secret: target.previous_secret(started_at),
            msg_id: &msg_id,
            extra_headers: &target.headers,
        })
        .instrument(span.clone())
        .await;
    let (status, next_attempt_at) = next_state(schedule, &outcome, claimed.attempts + 1, now_millis());
    engine.metrics.attempt(outcome.success, outcome.duration.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            success = outcome.success,
            http_status = outcome.http_status,
            error = outcome.error.as_deref(),
            status = status.as_str(),
            next_attempt_at = %format_timestamp_millis(next_attempt_at),
            "attempt finished"
        );
        if status == DeliveryStatus::Failed {
            engine.metrics.payloads_failed.inc();
            let last_error = match (&outcome.error, outcome.http_status) {
                (Some(e), _) => e.clone(),
                (None, Some(code)) => format!("HTTP {code}"),
                (None, None) => "no answer".to_string(),
            };
            tracing::warn!(
                host = url_host(&target.url),
                last_error,
                "payload failed: its retry schedule is used up (delivery.retry queues it again)"
            );
        }
    });
    let update = DeliveryUpdate {
        delivery_id: claimed.id,
        attempt_no: claimed.attempts + 1,
        lease_owner: owner.to_string(),
        attempt: AttemptLog {
            attempted_at: started_at,
            http_status: outcome.http_status.map(i64::from),
            duration_ms: outcome.duration.as_millis() as i64,
            response_prefix: outcome.response_prefix.clone(),
            error: outcome.error.clone(),
        },
        status,
        next_attempt_at,
    };
    (update, outcome)
}

/// The host of a receiver URL, for log lines (the path and query may carry secrets).
fn url_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

fn next_state(
    schedule: &RetrySchedule,
    outcome: &AttemptOutcome,
    attempts_made: i64,
    now: Millis,
) -> (DeliveryStatus, Millis) {
    if outcome.success {
        return (DeliveryStatus::Success, now);
    }
    match schedule.delay_after(attempts_made as u32) {
        Some(delay) => (DeliveryStatus::Retrying, now + delay.as_millis() as i64),
        None => (DeliveryStatus::Failed, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(success: bool) -> AttemptOutcome {
        AttemptOutcome {
            success,
            http_status: Some(if success { 200 } else { 500 }),
            duration: Duration::ZERO,
            response_prefix: String::new(),
            error: None,
        }
    }

    #[test]
    fn the_previous_key_signs_only_until_its_overlap_ends() {
        let hook = Webhook {
            id: crate::domain::WebhookId(1),
            merchant_id: crate::domain::MerchantId(1),
            increment_id: 0,
            is_active: true,
            topics: "*".into(),
            url: "https://example.com".into(),
            extra_headers: "X-A: 1".into(),
            secret_key: "new".into(),
            merchant_code: "shop".into(),
            version: 3,
            previous_secret_key: Some("old".into()),
            previous_expires_at: Some(1000),
            disabled_reason: None,
            ordered: false,
            max_rate: None,
            filter: None,
        };
        let t = Target::of(&hook);
        assert_eq!((t.secret.as_slice(), t.version), (&b"new"[..], 3));
        assert_eq!(t.previous_secret(999), Some(&b"old"[..]));
        assert_eq!(t.previous_secret(1000), None);
        let never = Target::of(&Webhook {
            previous_secret_key: None,
            previous_expires_at: None,
            ..hook
        });
        assert_eq!(never.previous_secret(0), None);
    }

    #[test]
    fn failures_follow_the_schedule_then_fail() {
        let s = RetrySchedule::standard();
        assert_eq!(
            next_state(&s, &outcome(false), 1, 0),
            (DeliveryStatus::Retrying, 60_000)
        );
        assert_eq!(
            next_state(&s, &outcome(false), 14, 0),
            (DeliveryStatus::Retrying, 24 * 3600 * 1000)
        );
        assert_eq!(next_state(&s, &outcome(false), 15, 5), (DeliveryStatus::Failed, 5));
        assert_eq!(next_state(&s, &outcome(true), 3, 7), (DeliveryStatus::Success, 7));
    }
}
