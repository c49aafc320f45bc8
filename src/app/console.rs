//! Reads beyond the API's methods: one webhook by id (the API lists them all; the console's
//! pages and the per-webhook operations use it), a page of webhooks with their last outcome
//! (the console's list) and, for an admin, the merchants to choose from. All go through the
//! caller's scope, like every other operation, so a merchant never sees another's webhook.

use std::collections::HashMap;

use super::{App, AppError, Caller};
use crate::domain::{DeliveryRecord, Webhook, WebhookId};
use crate::store::{Scope, LATEST_MAX_WEBHOOKS};

/// One page of the console's webhook list.
pub struct WebhookPage {
    /// The webhooks in id order, each with its newest payload (None before the first).
    pub hooks: Vec<(Webhook, Option<DeliveryRecord>)>,
    /// Where the next page starts (its `after`), when there are more webhooks.
    pub next_after: Option<WebhookId>,
}

impl App {
    /// One of the caller's webhooks; `WebhookNotFound` for a missing or another merchant's one.
    pub async fn webhook_get(&self, caller: &Caller, id: WebhookId) -> Result<Webhook, AppError> {
        self.store
            .webhook_get(caller.scope(), id)
            .await?
            .ok_or(AppError::WebhookNotFound)
    }

    /// Up to `limit` (at most `LATEST_MAX_WEBHOOKS`) of the caller's webhooks with an id
    /// above `after`, each with its newest payload, optionally only those of the merchant
    /// `merchant` (an admin's filter; a merchant naming another merchant gets nothing).
    /// Three reads however many webhooks there are: the merchant's code (when filtering),
    /// the page, and the newest payloads of the page's webhooks.
    pub async fn webhook_page(
        &self,
        caller: &Caller,
        merchant: Option<&str>,
        after: Option<WebhookId>,
        limit: usize,
    ) -> Result<WebhookPage, AppError> {
        let empty = WebhookPage {
            hooks: Vec::new(),
            next_after: None,
        };
        let scope = match merchant {
            None => caller.scope(),
            Some(code) => match self.merchant_id(code).await? {
                Some(m) if caller.scope() == Scope::All || caller.scope() == Scope::Merchant(m) => Scope::Merchant(m),
                _ => return Ok(empty),
            },
        };
        let limit = limit.clamp(1, LATEST_MAX_WEBHOOKS);
        // One more than shown, to know whether a next page exists without a read of its own.
        let mut hooks = self.store.webhook_page(scope, after, limit as i64 + 1).await?;
        let next_after = if hooks.len() > limit {
            hooks.truncate(limit);
            hooks.last().map(|h| h.id)
        } else {
            None
        };
        let ids: Vec<WebhookId> = hooks.iter().map(|h| h.id).collect();
        let mut latest: HashMap<WebhookId, DeliveryRecord> = self
            .store
            .delivery_latest(caller.scope(), &ids)
            .await?
            .into_iter()
            .map(|d| (d.webhook_id, d))
            .collect();
        let hooks = hooks
            .into_iter()
            .map(|h| {
                let last = latest.remove(&h.id);
                (h, last)
            })
            .collect();
        Ok(WebhookPage { hooks, next_after })
    }

    /// Every merchant's code, in the store's order (admins only).
    pub async fn merchant_codes(&self, caller: &Caller) -> Result<Vec<String>, AppError> {
        caller.require_admin()?;
        let merchants = self.store.merchant_list().await?;
        Ok(merchants.into_iter().map(|(_, code)| code).collect())
    }
}
