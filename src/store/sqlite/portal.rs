//! The merchant portal's reads in SQLite (CONTRACT §7.7): a webhook's attempts of a time
//! window for its health, one range of `delivery_attempts_health` (the index holds every
//! column read, so the table itself is never touched).

use rusqlite::{params, Connection};

use crate::domain::health::HealthSample;
use crate::domain::WebhookId;
use crate::store::StoreResult;
use crate::time::Millis;

pub const SAMPLES_SQL: &str = "SELECT attempted_at, http_status, duration_ms FROM delivery_attempts \
     WHERE webhook_id = ?1 AND attempted_at >= ?2 AND attempted_at < ?3 \
     ORDER BY attempted_at DESC LIMIT ?4";

pub fn health_samples(
    c: &Connection,
    webhook: WebhookId,
    since: Millis,
    until: Millis,
    limit: i64,
) -> StoreResult<Vec<HealthSample>> {
    Ok(c.prepare_cached(SAMPLES_SQL)?
        .query_map(params![webhook.0, since, until, limit], |r| {
            let status: Option<i64> = r.get(1)?;
            Ok(HealthSample {
                at: r.get(0)?,
                ok: status.is_some_and(|s| (200..300).contains(&s)),
                duration_ms: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}
