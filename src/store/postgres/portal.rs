//! The merchant portal's reads in PostgreSQL (CONTRACT §7.7): a webhook's attempts of a
//! time window for its health, one range of `delivery_attempts_health` (an index-only scan
//! once the table is vacuumed: the index holds every column read).

use sqlx::{PgPool, Row};

use crate::domain::health::HealthSample;
use crate::domain::WebhookId;
use crate::store::StoreResult;
use crate::time::Millis;

pub const SAMPLES_SQL: &str = "SELECT attempted_at, http_status, duration_ms FROM delivery_attempts \
     WHERE webhook_id = $1 AND attempted_at >= $2 AND attempted_at < $3 \
     ORDER BY attempted_at DESC LIMIT $4";

pub async fn health_samples(
    pool: &PgPool,
    webhook: WebhookId,
    since: Millis,
    until: Millis,
    limit: i64,
) -> StoreResult<Vec<HealthSample>> {
    let rows = sqlx::query(SAMPLES_SQL)
        .bind(webhook.0)
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let status: Option<i64> = r.get(1);
            HealthSample {
                at: r.get(0),
                ok: status.is_some_and(|s| (200..300).contains(&s)),
                duration_ms: r.get(2),
            }
        })
        .collect())
}
