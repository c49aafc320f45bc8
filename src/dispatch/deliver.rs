//! One delivery attempt of a claimed payload, and what it means for the payload: success,
//! a retry at the next step of the schedule (jittered), or `failed` when the schedule is
//! used up. The receiver can steer this:
//! - 429/503 with `Retry-After`: the next attempt waits that long (1 s … 24 h) instead of
//!   the schedule's step; it still counts as an attempt, so a used-up schedule still fails.
//! - 410 Gone: the webhook is turned off (see `disable`) before the outcome is written, and
//!   the payload goes back to waiting, due at once, whatever its attempt count: it is never
//!   `failed` by a 410. The attempt is logged and counted like any other, so once the
//!   webhook is on again the payload continues its schedule from there (a payload whose
//!   schedule was used up gets one more attempt). Later payloads simply wait, unclaimed,
//!   while the webhook is off.

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::client::{AttemptOutcome, AttemptRequest};
use super::disable::{gone_reason, url_host};
use super::retry::RetrySchedule;
use super::signing::Signer;
use super::Engine;
use crate::domain::signing_keys::signing_key;
use crate::domain::{AttemptLog, ClaimedDelivery, DeliveryUpdate};
use crate::domain::{DeliveryStatus, ExtraHeaders, SentHeaders, Webhook};
use crate::time::{format_timestamp_millis, now_millis, Millis};

/// Where and how a webhook's payloads are sent.
pub struct Target {
    pub url: String,
    /// `url` parsed once, for every attempt (None if it does not parse: each attempt then
    /// says why).
    pub parsed: Option<url::Url>,
    /// The current keys.
    pub current: Signer,
    /// After rotations: the previous keys (newest first) and until when each signs too.
    pub previous: Vec<(Signer, Millis)>,
    pub headers: Vec<(String, String)>,
    /// What an attempt's log keeps of its headers (`SentHeaders`), rendered once: without,
    /// then with a previous key signing.
    pub sent_headers: [String; 2],
    /// The webhook's `version` this was loaded from (see `worker`).
    pub version: i64,
}

impl Target {
    pub fn of(hook: &Webhook) -> Arc<Self> {
        // Stored headers were validated when the webhook was created.
        let headers = ExtraHeaders::parse(&hook.extra_headers)
            .map(|h| h.pairs().to_vec())
            .unwrap_or_default();
        // With "hmac" no v1a is sent, not even by previous keys that had a pair.
        let ed25519 = |stored: Option<&String>| {
            stored
                .filter(|_| hook.signature_scheme.has_key_pair())
                .and_then(|k| signing_key(k))
        };
        let previous = hook
            .previous_keys
            .iter()
            .map(|k| {
                let signer = Signer::new(k.secret_key.as_bytes(), ed25519(k.signing_key.as_ref()));
                (signer, k.expires_at)
            })
            .collect();
        Arc::new(Self {
            url: hook.url.clone(),
            parsed: url::Url::parse(&hook.url).ok(),
            current: Signer::new(hook.secret_key.as_bytes(), ed25519(hook.signing_key.as_ref())),
            previous,
            sent_headers: [false, true].map(|previous| SentHeaders::encode(previous, &headers)),
            headers,
            version: hook.version,
        })
    }

    /// The keys that sign at `now`: the current ones, then every previous one whose overlap
    /// lasts.
    pub fn signers(&self, now: Millis) -> Vec<&Signer> {
        let previous = self
            .previous
            .iter()
            .filter(|(_, until)| now < *until)
            .map(|(signer, _)| signer);
        std::iter::once(&self.current).chain(previous).collect()
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
    // In the event's trace (CONTRACT §7.6); exported as a span of its own when traces are.
    let (traced, traceparent) = crate::telemetry::spans::attempt(
        target.parsed.as_ref(),
        claimed.id.0,
        claimed.attempts + 1,
        claimed.trace.as_deref(),
    );
    let traceparent = traceparent.to_string();
    let signers = target.signers(started_at);
    // The header shows the first previous key's signature only (see `client`).
    let sent_headers = target.sent_headers[usize::from(signers.len() > 1)].clone();
    let outcome = client
        .attempt(&AttemptRequest {
            url: &target.url,
            parsed: target.parsed.as_ref(),
            body: Bytes::from(claimed.body),
            signers: &signers,
            msg_id: &msg_id,
            timestamp: started_at.div_euclid(1000),
            extra_headers: &target.headers,
            traceparent: Some(&traceparent),
        })
        .instrument(span.clone())
        .instrument(traced.clone())
        .await;
    crate::telemetry::spans::attempt_ended(&traced, outcome.http_status, !outcome.success);
    drop(traced);
    engine.metrics.attempt_status(outcome.http_status);
    let now = now_millis();
    // Turned off before the outcome is written, so the payload (due at once) is not claimed
    // again meanwhile. Should the write fail, the 410 counts as an ordinary failure.
    let parked = outcome.gone()
        && match engine
            .disable(claimed.webhook_id, gone_reason(now))
            .instrument(span.clone())
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(parent: &span, error = ?e, "turning off a webhook after 410 Gone failed");
                false
            }
        };
    let (status, next_attempt_at) = next_state(schedule, &outcome, parked, claimed.attempts + 1, now);
    engine.metrics.attempt(outcome.success, outcome.duration.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            success = outcome.success,
            http_status = outcome.http_status,
            error = outcome.error.as_deref(),
            retry_after_ms = outcome.retry_after.map(|d| d.as_millis() as u64),
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
        webhook_id: claimed.webhook_id,
        attempt_no: claimed.attempts + 1,
        request: rand::random(),
        lease_owner: owner.to_string(),
        attempt: AttemptLog {
            attempted_at: started_at,
            http_status: outcome.http_status.map(i64::from),
            duration_ms: outcome.duration.as_millis() as i64,
            response_prefix: outcome.response_prefix.clone(),
            error: outcome.error.clone(),
            sent_headers: Some(sent_headers),
        },
        status,
        next_attempt_at,
    };
    (update, outcome)
}

/// The payload's next state: `parked` (the webhook was turned off by this 410) waits due
/// at once; a failure waits the receiver's Retry-After, else the schedule's jittered step,
/// unless the schedule is used up.
fn next_state(
    schedule: &RetrySchedule,
    outcome: &AttemptOutcome,
    parked: bool,
    attempts_made: i64,
    now: Millis,
) -> (DeliveryStatus, Millis) {
    if outcome.success {
        return (DeliveryStatus::Success, now);
    }
    if parked {
        return (DeliveryStatus::Retrying, now);
    }
    match schedule.delay_after(attempts_made as u32) {
        Some(step) => {
            let delay = outcome.retry_after.unwrap_or(step);
            (DeliveryStatus::Retrying, now + delay.as_millis() as i64)
        }
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
            retry_after: None,
        }
    }

    fn answered(status: u16, retry_after: Option<u64>) -> AttemptOutcome {
        AttemptOutcome {
            http_status: Some(status),
            retry_after: retry_after.map(Duration::from_secs),
            ..outcome(false)
        }
    }

    /// `at` is `now + step` give or take 10 %.
    fn jittered(at: Millis, now: Millis, step_ms: i64) -> bool {
        (now + step_ms * 9 / 10..=now + step_ms * 11 / 10).contains(&at)
    }

    fn previous(secret: &str, signing_key: Option<&str>, expires_at: Millis) -> crate::domain::PreviousKey {
        crate::domain::PreviousKey {
            secret_key: secret.into(),
            signing_key: signing_key.map(str::to_string),
            expires_at,
        }
    }

    #[test]
    fn previous_keys_sign_only_until_their_own_overlaps_end() {
        let (new_pair, old_pair) = (crate::domain::KeyPair::generate(), crate::domain::KeyPair::generate());
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
            previous_keys: vec![
                previous("mid", None, 500),
                previous("old", Some(&old_pair.private), 1000),
            ],
            signature_scheme: crate::domain::SignatureScheme::HmacEd25519,
            signing_key: Some(new_pair.private.clone()),
            public_key: Some(new_pair.public.clone()),
            disabled_reason: None,
            ordered: false,
            max_rate: None,
            filter: None,
            description: String::new(),
            failing_since: None,
        };
        let t = Target::of(&hook);
        let secrets = |now| -> Vec<Vec<u8>> { t.signers(now).iter().map(|s| s.secret.clone()).collect() };
        assert_eq!(t.version, 3);
        assert_eq!(secrets(499), [&b"new"[..], b"mid", b"old"]);
        assert_eq!(secrets(500), [&b"new"[..], b"old"]);
        assert_eq!(secrets(1000), [&b"new"[..]]);
        let keys: Vec<Option<String>> = t
            .signers(0)
            .iter()
            .map(|s| {
                s.ed25519
                    .as_ref()
                    .map(|k| crate::domain::signing_keys::public_key_text(&k.verifying_key()))
            })
            .collect();
        assert_eq!(
            keys,
            [Some(new_pair.public.clone()), None, Some(old_pair.public.clone())]
        );
        let hmac = Target::of(&Webhook {
            signature_scheme: crate::domain::SignatureScheme::Hmac,
            ..hook
        });
        assert!(
            hmac.signers(0).iter().all(|s| s.ed25519.is_none()),
            "no v1a with \"hmac\""
        );
    }

    #[test]
    fn failures_follow_the_jittered_schedule_then_fail() {
        let s = RetrySchedule::standard();
        let (status, at) = next_state(&s, &outcome(false), false, 1, 1000);
        assert!(status == DeliveryStatus::Retrying && jittered(at, 1000, 60_000), "{at}");
        let (status, at) = next_state(&s, &outcome(false), false, 14, 0);
        assert!(
            status == DeliveryStatus::Retrying && jittered(at, 0, 24 * 3600 * 1000),
            "{at}"
        );
        assert_eq!(
            next_state(&s, &outcome(false), false, 15, 5),
            (DeliveryStatus::Failed, 5)
        );
        assert_eq!(
            next_state(&s, &outcome(true), false, 3, 7),
            (DeliveryStatus::Success, 7)
        );
    }

    #[test]
    fn a_retry_after_replaces_the_step_exactly_but_not_a_used_up_schedule() {
        let s = RetrySchedule::parse("100ms,100ms").unwrap();
        for status in [429, 503] {
            assert_eq!(
                next_state(&s, &answered(status, Some(2)), false, 1, 1000),
                (DeliveryStatus::Retrying, 3000)
            );
        }
        // Still an attempt: the schedule's end fails the payload as before.
        assert_eq!(
            next_state(&s, &answered(429, Some(2)), false, 3, 1000),
            (DeliveryStatus::Failed, 1000)
        );
        // No (usable) Retry-After: the schedule's step.
        let (_, at) = next_state(&s, &answered(503, None), false, 1, 1000);
        assert!(jittered(at, 1000, 100), "{at}");
    }

    #[test]
    fn a_payload_parked_by_410_waits_due_at_once_even_at_the_end_of_its_schedule() {
        let s = RetrySchedule::parse("100ms").unwrap();
        for attempts_made in [1, 2, 50] {
            assert_eq!(
                next_state(&s, &answered(410, None), true, attempts_made, 1000),
                (DeliveryStatus::Retrying, 1000)
            );
        }
        // Not parked (the webhook could not be turned off): an ordinary failure.
        assert_eq!(
            next_state(&s, &answered(410, None), false, 2, 1000),
            (DeliveryStatus::Failed, 1000)
        );
    }
}
