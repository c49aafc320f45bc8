//! Secrets at rest in SQLite (see `sealing`): the key ids in use, and `hookd secrets
//! reencrypt`'s pages and compare-and-set rewrites.

use rusqlite::{params, Connection};

use crate::domain::{StoredSecrets, WebhookId};
use crate::store::StoreResult;

/// One (webhook, value) per key id in use, over current, private and previous keys. The
/// bare `v` beside `MIN(id)` is SQLite's: the value of the row with that id.
pub fn key_samples(c: &Connection) -> StoreResult<Vec<(WebhookId, String)>> {
    let mut statement = c.prepare_cached(
        "SELECT MIN(id), v FROM ( \
           SELECT id, secret_key AS v FROM webhooks \
           UNION ALL SELECT id, signing_key FROM webhooks \
           UNION ALL SELECT w.id, json_extract(j.value, '$.secret_key') \
             FROM webhooks w, json_each(w.previous_keys) j WHERE w.previous_keys IS NOT NULL \
           UNION ALL SELECT w.id, json_extract(j.value, '$.signing_key') \
             FROM webhooks w, json_each(w.previous_keys) j WHERE w.previous_keys IS NOT NULL \
         ) WHERE v GLOB 'enc:v1:*' \
         GROUP BY substr(v, 8, instr(substr(v, 8), ':'))",
    )?;
    let rows = statement.query_map([], |r| Ok((WebhookId(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn page(c: &Connection, after: WebhookId, limit: i64) -> StoreResult<Vec<StoredSecrets>> {
    let mut statement = c.prepare_cached(
        "SELECT id, secret_key, signing_key, previous_keys FROM webhooks WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![after.0, limit], |r| {
        Ok(StoredSecrets {
            webhook: WebhookId(r.get(0)?),
            secret_key: r.get(1)?,
            signing_key: r.get(2)?,
            previous_keys: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Compare-and-set on the three columns: a row changed since it was read is left alone.
pub fn replace(c: &Connection, rows: &[(StoredSecrets, StoredSecrets)]) -> StoreResult<u64> {
    let mut statement = c.prepare_cached(
        "UPDATE webhooks SET secret_key = ?5, signing_key = ?6, previous_keys = ?7 \
         WHERE id = ?1 AND secret_key = ?2 AND signing_key IS ?3 AND previous_keys IS ?4",
    )?;
    let mut written = 0;
    for (old, new) in rows {
        written += statement.execute(params![
            old.webhook.0,
            old.secret_key,
            old.signing_key,
            old.previous_keys,
            new.secret_key,
            new.signing_key,
            new.previous_keys,
        ])? as u64;
    }
    Ok(written)
}
