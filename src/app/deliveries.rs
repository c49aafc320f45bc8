//! The delivery log and its controls: `webhook.deliveries`, `delivery.info`,
//! `delivery.retry`, and `webhook.test` (a `test:ping` payload sent at once, whose message is
//! the example of the webhook's first topic when the catalog has one).

use serde_json::{Map, Value};

use super::{App, AppError, Caller};
use crate::dispatch::client::AttemptOutcome;
use crate::dispatch::deliver::{attempt, Target};
use crate::domain::{BodyTemplate, DeliveryId, DeliveryStatus, Webhook, WebhookId};
use crate::domain::{DeliveryDetail, DeliveryFilter, DeliveryRecord, Requeue};
use crate::time::now_millis;

pub const TEST_TOPIC: &str = "test:ping";

/// What `webhook.test` reports: the payload made and its first attempt.
pub struct TestResult {
    pub delivery_id: DeliveryId,
    pub increment_id: i64,
    pub status: DeliveryStatus,
    pub outcome: AttemptOutcome,
}

impl App {
    pub async fn deliveries(
        &self,
        caller: &Caller,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, AppError> {
        self.webhook_get(caller, webhook).await?;
        Ok(self.store.delivery_list(caller.scope(), webhook, filter).await?)
    }

    pub async fn delivery_info(&self, caller: &Caller, id: DeliveryId) -> Result<DeliveryDetail, AppError> {
        self.store
            .delivery_get(caller.scope(), id)
            .await?
            .ok_or(AppError::DeliveryNotFound)
    }

    pub async fn delivery_retry(&self, caller: &Caller, id: DeliveryId) -> Result<(), AppError> {
        match self.store.delivery_requeue(caller.scope(), id, now_millis()).await? {
            Requeue::Requeued(webhook) => {
                self.wake.webhooks([webhook]);
                Ok(())
            }
            Requeue::NotFound => Err(AppError::DeliveryNotFound),
            Requeue::NotFailed(status) => Err(AppError::NotRetried(format!(
                "only a failed or successful delivery can be sent again; this one is {}",
                status.as_str()
            ))),
        }
    }

    /// Makes a `test:ping` payload (it takes the next increment id) and sends it now; a
    /// failed first attempt is retried on the schedule like any other.
    pub async fn webhook_test(&self, caller: &Caller, webhook: WebhookId) -> Result<TestResult, AppError> {
        let hook = self.webhook_get(caller, webhook).await?;
        let owner = format!("test-{}", caller.user.name);
        // A ping takes one of the webhook's slots like any attempt, so pings cannot open
        // more requests to a receiver than the dispatcher would.
        let _slot = self.engine.slot_for_test(webhook).await.ok_or(AppError::Busy)?;
        self.send_test(caller, &hook, &owner).await
    }

    /// The ping's message: the catalog's example of the webhook's first topic when that is a
    /// concrete topic with one (CONTRACT §7.4), else empty. The topic stays `test:ping`, so
    /// a receiver never takes a ping for a real event (a realistic order:created with a
    /// made-up order would be booked as one); the message shows the shape it will get.
    async fn test_message(&self, hook: &Webhook) -> Result<Map<String, Value>, AppError> {
        let first = hook.topics.split(',').next().unwrap_or_default();
        if !first.is_empty() && !first.contains('*') {
            if let Some(Value::Object(example)) = self.topic_example(first).await? {
                return Ok(example);
            }
        }
        Ok(Map::new())
    }

    async fn send_test(&self, caller: &Caller, hook: &Webhook, owner: &str) -> Result<TestResult, AppError> {
        let webhook = hook.id;
        let message = self.test_message(hook).await?;
        let now = now_millis();
        let body = BodyTemplate::new(TEST_TOPIC, &hook.merchant_code, &message, now);
        let lease_until = now + self.settings.delivery.lease.as_millis() as i64;
        let claimed = self
            .store
            .delivery_create_claimed(caller.scope(), webhook, TEST_TOPIC, &body, owner, lease_until)
            .await?
            .ok_or(AppError::WebhookNotFound)?;
        self.metrics.payloads_created.inc();
        let (delivery_id, increment_id) = (claimed.id, claimed.increment_id);
        let (update, outcome) = attempt(&self.engine, &Target::of(hook), claimed, owner).await;
        self.engine.record_outcomes(std::slice::from_ref(&update)).await?;
        if update.status == DeliveryStatus::Retrying {
            self.wake.rescan();
        }
        Ok(TestResult {
            delivery_id,
            increment_id,
            status: update.status,
            outcome,
        })
    }
}
