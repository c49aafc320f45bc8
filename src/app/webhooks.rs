//! The webhook resource: list, create, change status, delete (CONTRACT.md §3).

use serde_json::Value;

use super::{App, AppError, Caller};
use crate::domain::StatusTarget;
use crate::domain::{MerchantId, NewWebhook, Webhook, WebhookId};

impl App {
    pub async fn webhook_list(&self, caller: &Caller) -> Result<Vec<Webhook>, AppError> {
        Ok(self.store.webhook_list(caller.scope()).await?)
    }

    /// `webhook.create(data)`: validates the seed's webhook object and stores it.
    pub async fn webhook_create(&self, caller: &Caller, data: &Value) -> Result<WebhookId, AppError> {
        // Read afresh: a topic another node just defined is subscribable at once.
        let catalog = self.catalog_refresh().await?;
        let hook = NewWebhook::from_json(data, &catalog, self.settings.allow_private_targets)
            .map_err(|e| AppError::InvalidData(e.to_string()))?;
        let merchant = self
            .target_merchant(caller, hook.merchant_code.as_ref().map(|c| c.as_str()))
            .await?;
        let limit = self.settings.max_webhooks_per_merchant;
        self.store.webhook_create(merchant, &hook, limit).await?.ok_or_else(|| {
            AppError::NotCreated(format!(
                "the merchant already has {limit} webhooks, the configured limit"
            ))
        })
    }

    /// The merchant a new webhook belongs to: the caller's own, or for an admin the one
    /// named by `merchant_code` (or the only merchant there is).
    async fn target_merchant(&self, caller: &Caller, code: Option<&str>) -> Result<MerchantId, AppError> {
        if !caller.is_admin() {
            let own = caller.merchant().ok_or(AppError::AccessDenied)?;
            return match code {
                Some(c) if Some(c) != caller.user.merchant_code.as_deref() => Err(AppError::InvalidData(
                    "merchant_code: only an admin may create webhooks for another merchant".into(),
                )),
                _ => Ok(own),
            };
        }
        Ok(self.resolve_merchant(code).await?.0)
    }

    /// `webhook.update_status`: `target` None means every webhook of the caller.
    pub async fn webhook_update_status(
        &self,
        caller: &Caller,
        target: Option<StatusTarget>,
        active: bool,
    ) -> Result<(), AppError> {
        let target = target.unwrap_or(StatusTarget::All);
        let matched = self.store.webhook_set_active(caller.scope(), &target, active).await?;
        if active && matched > 0 {
            self.wake.rescan();
        }
        if !active && matched > 0 {
            // Their payloads wait now: the dispatcher drops their lanes at once.
            match &target {
                StatusTarget::Id(id) => self.wake.forget([*id]),
                _ => self.wake.forget_all(),
            }
        }
        if matched == 0 {
            let what = match target {
                StatusTarget::Id(id) => format!("no webhook with id {id}"),
                StatusTarget::Topic(t) => format!("no webhook subscribed to topic '{t}'"),
                StatusTarget::All => "there are no webhooks".to_string(),
            };
            return Err(AppError::StatusNotChanged(what));
        }
        Ok(())
    }

    pub async fn webhook_delete(&self, caller: &Caller, id: WebhookId) -> Result<(), AppError> {
        if self.store.webhook_delete(caller.scope(), id).await? {
            self.wake.forget([id]);
            Ok(())
        } else {
            Err(AppError::WebhookNotFound)
        }
    }

    pub fn topic_list(&self) -> Vec<String> {
        self.catalog().iter().map(str::to_string).collect()
    }
}
