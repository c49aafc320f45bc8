//! Reads beyond the API's methods: one webhook by id (the API lists them all; the console's
//! pages and the per-webhook operations use it) and, for an admin, the merchants to choose
//! from. Both go through the caller's
//! scope, like every other operation, so a merchant never sees another's webhook.

use super::{App, AppError, Caller};
use crate::domain::{Webhook, WebhookId};

impl App {
    /// One of the caller's webhooks; `WebhookNotFound` for a missing or another merchant's one.
    pub async fn webhook_get(&self, caller: &Caller, id: WebhookId) -> Result<Webhook, AppError> {
        self.store
            .webhook_get(caller.scope(), id)
            .await?
            .ok_or(AppError::WebhookNotFound)
    }

    /// Every merchant's code, in the store's order (admins only).
    pub async fn merchant_codes(&self, caller: &Caller) -> Result<Vec<String>, AppError> {
        caller.require_admin()?;
        let merchants = self.store.merchant_list().await?;
        Ok(merchants.into_iter().map(|(_, code)| code).collect())
    }
}
