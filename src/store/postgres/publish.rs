//! `webhook.test`'s payload in PostgreSQL (publishes go through `publisher` and `batch`).
//!
//! Increment ids are gap-free because a payload's id is taken by bumping its webhook's row
//! inside the transaction that stores the payload: the row lock makes concurrent writers
//! (on any node) take turns per webhook, and a rollback undoes the bump with the payload.

use sqlx::{Acquire, PgPool};

use super::clock::{self, on_db_clock};
use crate::domain::{BodyTemplate, DeliveryId, WebhookId};
use crate::store::{ClaimedDelivery, Scope, StoreError, StoreResult};
use crate::time::Millis;

/// webhook.test's payload: takes the webhook's next increment id (any webhook of the
/// scope, active or not) and is stored already leased to `owner`, so no dispatcher takes it.
/// Its due time and lease are on the database's clock (see `clock`).
pub async fn create_claimed(
    pool: &PgPool,
    scope: Scope,
    webhook: WebhookId,
    topic: &str,
    body: &BodyTemplate,
    owner: &str,
    lease_until: Millis,
) -> StoreResult<Option<ClaimedDelivery>> {
    let (mut conn, clock) = clock::clocked(pool).await?;
    let mut tx = conn.begin().await?;
    let bumped: Option<(i64, i64)> = sqlx::query_as(
        "UPDATE webhooks SET increment_id = increment_id + 1 \
         WHERE id = $1 AND ($2::BIGINT IS NULL OR merchant_id = $2) \
         RETURNING increment_id, merchant_id",
    )
    .bind(webhook.0)
    .bind(scope.merchant_filter())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((increment_id, merchant)) = bumped else {
        return Ok(None);
    };
    let rendered = body.render(increment_id);
    let id: i64 = sqlx::query_scalar(concat!(
        "INSERT INTO deliveries (webhook_id, merchant_id, event_id, increment_id, topic, body, status, \
         next_attempt_at, lease_owner, lease_until, created_at) \
         VALUES ($1, $2, NULL, $3, $4, $5, 'pending', ",
        on_db_clock!("$6", "$6"),
        ", $7, ",
        on_db_clock!("$8", "$6"),
        ", $6) RETURNING id",
    ))
    .bind(webhook.0)
    .bind(merchant)
    .bind(increment_id)
    .bind(topic)
    .bind(&rendered)
    .bind(clock)
    .bind(owner)
    .bind(lease_until)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(Some(ClaimedDelivery {
        id: DeliveryId(id),
        webhook_id: webhook,
        increment_id,
        attempts: 0,
        body: rendered,
        webhook_version: 0,
        trace: None,
    }))
}
