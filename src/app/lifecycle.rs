//! The webhook lifecycle (CONTRACT §6.1): update, secret rotation, catching up on payloads,
//! recovering failed ones, and the delivery log across a merchant's webhooks.
//!
//! The one idea to know: a webhook keeps its id, its increment sequence and its log through
//! every change; what changes is where and how its payloads are sent, which the store
//! versions so that every node's dispatcher picks the change up (see `dispatch::worker`).

use serde_json::Value;

use super::recover_budget::{Exhausted, PER_MINUTE};
use super::{App, AppError, Caller};
use crate::domain::rotation::{TooManyPrevious, MAX_PREVIOUS_KEYS};
use crate::domain::{
    DeliveryRecord, DeliverySearch, KeyPair, PayloadRecord, Recovered, RotateOutcome, SecretRotation, WebhookChange,
    WebhookId,
};
use crate::time::{format_timestamp, now_millis, Millis};

/// What `webhook.rotate_secret` answers.
pub struct Rotated {
    pub secret_key: String,
    pub previous_expires_at: Millis,
}

impl App {
    /// `webhook.update`: validated like create. This node's dispatcher forgets what it holds
    /// of the webhook: its target and pacing (reloaded at the next claim), and the payloads
    /// its publishes handed it (`store::handoff`), whose leases end so they are claimed again
    /// under the new settings (a new URL, `ordered`, `max_rate`) rather than sent as handed.
    /// Unless the webhook was turned off, its lane is woken to claim them.
    pub async fn webhook_update(&self, caller: &Caller, id: WebhookId, data: &Value) -> Result<(), AppError> {
        let catalog = self.catalog_refresh().await?;
        let change = WebhookChange::from_json(data, &catalog, self.settings.allow_private_targets)
            .map_err(|e| AppError::InvalidData(e.to_string()))?;
        if !self.store.webhook_update(caller.scope(), id, &change).await? {
            return Err(AppError::WebhookNotFound);
        }
        self.wake.forget([id]);
        if change.is_active != Some(false) {
            self.wake.webhooks([id]);
        }
        Ok(())
    }

    pub async fn webhook_rotate_secret(
        &self,
        caller: &Caller,
        id: WebhookId,
        options: Option<&Value>,
    ) -> Result<Rotated, AppError> {
        let rotation = SecretRotation::from_json(options).map_err(|e| AppError::InvalidData(e.to_string()))?;
        let now = now_millis();
        let previous_expires_at = now + rotation.overlap.as_millis() as i64;
        let key_pair = KeyPair::generate();
        match self
            .store
            .webhook_rotate_secret(
                caller.scope(),
                id,
                &rotation.secret_key,
                &key_pair,
                now,
                previous_expires_at,
            )
            .await?
        {
            RotateOutcome::Rotated => {}
            RotateOutcome::NotFound => return Err(AppError::WebhookNotFound),
            RotateOutcome::Refused(TooManyPrevious { oldest_expires_at }) => {
                return Err(AppError::InvalidData(format!(
                    "overlap: {MAX_PREVIOUS_KEYS} previous keys still sign; the oldest expires at {}: \
                     rotate again after that (a rotation with \"overlap\": \"0s\", which keeps no \
                     previous key, is accepted now).",
                    format_timestamp(oldest_expires_at)
                )))
            }
        }
        Ok(Rotated {
            secret_key: rotation.secret_key.as_str().to_string(),
            previous_expires_at,
        })
    }

    /// `webhook.payloads`: `from <= increment_id <= to`, in increment order.
    pub async fn webhook_payloads(
        &self,
        caller: &Caller,
        id: WebhookId,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<PayloadRecord>, AppError> {
        self.webhook_get(caller, id).await?;
        Ok(self.store.payload_range(caller.scope(), id, from, to, limit).await?)
    }

    /// `webhook.recover`: the failed payloads made at or after `since`, oldest first, queued
    /// again now; at most `PER_CALL` a call and `PER_MINUTE` a webhook in a minute (see
    /// `recover_budget`), the answer saying how many remain. A call with the minute's budget
    /// spent is refused (109, saying when to retry) unless nothing remains anyway.
    pub async fn webhook_recover(&self, caller: &Caller, id: WebhookId, since: Millis) -> Result<Recovered, AppError> {
        let now = now_millis();
        let granted = match self.recover_budget.reserve(id, now) {
            Ok(granted) => granted,
            Err(Exhausted { retry_in }) => {
                let left = self
                    .store
                    .delivery_recover(caller.scope(), id, since, now, 0)
                    .await?
                    .ok_or(AppError::WebhookNotFound)?;
                if left.remaining == 0 {
                    return Ok(left);
                }
                return Err(AppError::RecoverLimited(format!(
                    "webhook.recover queues at most {PER_MINUTE} of a webhook's payloads again a minute, \
                     and this one's are spent; {} failed payload(s) remain: retry in {} s.",
                    left.remaining,
                    (retry_in + 999) / 1000
                )));
            }
        };
        let recovered = self
            .store
            .delivery_recover(caller.scope(), id, since, now, granted)
            .await;
        let requeued = match &recovered {
            Ok(Some(r)) => r.requeued,
            _ => 0,
        };
        self.recover_budget.refund(id, granted - requeued);
        let recovered = recovered?.ok_or(AppError::WebhookNotFound)?;
        if recovered.requeued > 0 {
            self.wake.webhooks([id]);
        }
        Ok(recovered)
    }

    /// `delivery.list`: payloads across the caller's webhooks (an admin's: all), newest first.
    pub async fn delivery_search(
        &self,
        caller: &Caller,
        filter: &DeliverySearch,
    ) -> Result<Vec<DeliveryRecord>, AppError> {
        Ok(self.store.delivery_search(caller.scope(), filter).await?)
    }
}
