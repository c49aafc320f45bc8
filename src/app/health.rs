//! The merchant portal's reads (CONTRACT §7.7): a webhook's health over the last 24 hours,
//! and the merchant-wide delivery log with an admin's merchant filter. Both go through the
//! caller's scope like every other operation: a merchant never sees another's webhook.

use super::{App, AppError, Caller};
use crate::domain::health::{Health, MAX_SAMPLES, WINDOW_MS};
use crate::domain::{DeliveryRecord, DeliverySearch, WebhookId};
use crate::store::Scope;
use crate::time::now_millis;

impl App {
    /// Webhook `id`'s health over the 24 hours up to now (`WebhookNotFound` outside the scope).
    pub async fn webhook_health(&self, caller: &Caller, id: WebhookId) -> Result<Health, AppError> {
        self.webhook_get(caller, id).await?;
        let end = now_millis() + 1;
        let samples = self.store.health_samples(id, end - WINDOW_MS, end, MAX_SAMPLES).await?;
        let capped = samples.len() as i64 >= MAX_SAMPLES;
        Ok(Health::compute(&samples, end, capped))
    }

    /// Payloads across the caller's webhooks, newest first; `merchant` (an admin's filter,
    /// a merchant code) keeps to one merchant; a merchant naming another gets nothing.
    pub async fn delivery_log(
        &self,
        caller: &Caller,
        merchant: Option<&str>,
        filter: &DeliverySearch,
    ) -> Result<Vec<DeliveryRecord>, AppError> {
        let scope = match merchant {
            None => caller.scope(),
            Some(code) => match self.merchant_id(code).await? {
                Some(m) if caller.scope() == Scope::All || caller.scope() == Scope::Merchant(m) => Scope::Merchant(m),
                _ => return Ok(Vec::new()),
            },
        };
        Ok(self.store.delivery_search(scope, filter).await?)
    }
}
