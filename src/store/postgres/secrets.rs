//! Secrets at rest in PostgreSQL (see `sealing`): the key ids in use, and `hookd secrets
//! reencrypt`'s pages and compare-and-set rewrites.

use sqlx::{PgPool, Row};

use crate::domain::{StoredSecrets, WebhookId};
use crate::store::{StoreError, StoreResult};

/// One (webhook, value) per key id in use, over current, private and previous keys.
pub async fn key_samples(pool: &PgPool) -> StoreResult<Vec<(WebhookId, String)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (split_part(v, ':', 3)) id, v FROM ( \
           SELECT id, secret_key AS v FROM webhooks \
           UNION ALL SELECT id, signing_key FROM webhooks \
           UNION ALL SELECT id, e->>'secret_key' \
             FROM webhooks, jsonb_array_elements(previous_keys::jsonb) e WHERE previous_keys IS NOT NULL \
           UNION ALL SELECT id, e->>'signing_key' \
             FROM webhooks, jsonb_array_elements(previous_keys::jsonb) e WHERE previous_keys IS NOT NULL \
         ) s WHERE v LIKE 'enc:v1:%' ORDER BY split_part(v, ':', 3), id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| (WebhookId(r.get(0)), r.get(1))).collect())
}

pub async fn page(pool: &PgPool, after: WebhookId, limit: i64) -> StoreResult<Vec<StoredSecrets>> {
    let rows = sqlx::query(
        "SELECT id, secret_key, signing_key, previous_keys FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after.0)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| StoredSecrets {
            webhook: WebhookId(r.get(0)),
            secret_key: r.get(1),
            signing_key: r.get(2),
            previous_keys: r.get(3),
        })
        .collect())
}

/// Compare-and-set on the three columns, in one transaction: a row changed since it was
/// read (a rotation) is left alone.
pub async fn replace(pool: &PgPool, rows: &[(StoredSecrets, StoredSecrets)]) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut written = 0;
    for (old, new) in rows {
        written += sqlx::query(
            "UPDATE webhooks SET secret_key = $5, signing_key = $6, previous_keys = $7 \
             WHERE id = $1 AND secret_key = $2 AND signing_key IS NOT DISTINCT FROM $3 \
               AND previous_keys IS NOT DISTINCT FROM $4",
        )
        .bind(old.webhook.0)
        .bind(&old.secret_key)
        .bind(&old.signing_key)
        .bind(&old.previous_keys)
        .bind(&new.secret_key)
        .bind(&new.signing_key)
        .bind(&new.previous_keys)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await.map_err(StoreError::from_commit_pg)?;
    Ok(written)
}
