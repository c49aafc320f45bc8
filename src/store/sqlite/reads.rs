//! The hot reads of the SQLite store (every API call authenticates, every publish resolves
//! its merchant, the dispatcher scans the queue), run directly on a small pool of rusqlite
//! read connections. A read in WAL mode never waits for the writer and takes microseconds,
//! so it runs in place on the calling thread instead of hopping to a worker.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::leases::Leases;
use crate::domain::{DeliveryId, MerchantId, Role, UserId, Webhook, WebhookId};
use crate::store::{ClaimedDelivery, Scope, StoreResult, UserRecord};
use crate::time::Millis;

pub struct Readers {
    conns: Vec<Mutex<Connection>>,
}

impl Readers {
    pub fn open(path: &str, n: usize) -> StoreResult<Self> {
        let conns = (0..n)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(32);
                Ok(Mutex::new(c))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self { conns })
    }

    /// Runs `f` on a free connection (or waits for the first one).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        for c in &self.conns {
            if let Ok(conn) = c.try_lock() {
                return Ok(f(&conn)?);
            }
        }
        let conn = self.conns[0].lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&conn)?)
    }

    pub fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} WHERE u.name = ?1"))?
                .query_row([name], user_from_row)
                .optional()
        })
    }

    pub fn session_user(&self, id_hash: &str, now: Millis) -> StoreResult<Option<UserRecord>> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} JOIN sessions s ON s.user_id = u.id WHERE s.id_hash = ?1 AND s.expires_at > ?2"
            ))?
            .query_row(params![id_hash, now], user_from_row)
            .optional()
        })
    }

    pub fn merchant_by_code(&self, code: &str) -> StoreResult<Option<MerchantId>> {
        self.with(|c| {
            c.prepare_cached("SELECT id FROM merchants WHERE code = ?1")?
                .query_row([code], |r| r.get(0).map(MerchantId))
                .optional()
        })
    }

    pub fn merchant_list(&self) -> StoreResult<Vec<(MerchantId, String)>> {
        self.with(|c| {
            c.prepare_cached("SELECT id, code FROM merchants ORDER BY id")?
                .query_map([], |r| Ok((MerchantId(r.get(0)?), r.get(1)?)))?
                .collect()
        })
    }

    pub fn webhook_get(&self, scope: Scope, id: WebhookId) -> StoreResult<Option<Webhook>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT id, merchant_id, increment_id, is_active, topics, url, extra_headers, secret_key \
                 FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)",
            )?
            .query_row(params![id.0, scope.merchant_filter()], |r| {
                Ok(Webhook {
                    id: WebhookId(r.get(0)?),
                    merchant_id: MerchantId(r.get(1)?),
                    increment_id: r.get(2)?,
                    is_active: r.get::<_, i64>(3)? != 0,
                    topics: r.get(4)?,
                    url: r.get(5)?,
                    extra_headers: r.get(6)?,
                    secret_key: r.get(7)?,
                })
            })
            .optional()
        })
    }

    /// Active webhooks with payloads to send, each with its earliest due time (leases are in
    /// memory: a claim skips what is held). Hops from one webhook id to the next through the
    /// queue index, so the cost grows with the number of webhooks that have work, not with
    /// the number of queued payloads.
    pub fn queue_scan(&self) -> StoreResult<Vec<(WebhookId, Millis)>> {
        self.with(|c| {
            c.prepare_cached(
                "WITH RECURSIVE hop(w) AS ( \
                   SELECT MIN(webhook_id) FROM deliveries WHERE status IN ('pending', 'retrying') \
                   UNION ALL \
                   SELECT (SELECT MIN(webhook_id) FROM deliveries \
                           WHERE status IN ('pending', 'retrying') AND webhook_id > hop.w) \
                   FROM hop WHERE hop.w IS NOT NULL) \
                 SELECT hop.w, (SELECT next_attempt_at FROM deliveries \
                                WHERE webhook_id = hop.w AND status IN ('pending', 'retrying') \
                                ORDER BY next_attempt_at LIMIT 1) \
                 FROM hop JOIN webhooks w ON w.id = hop.w AND w.is_active = 1 WHERE hop.w IS NOT NULL",
            )?
            .query_map([], |r| Ok((WebhookId(r.get(0)?), r.get::<_, Option<Millis>>(1)?)))?
            .filter_map(|row| row.map(|(w, due)| due.map(|d| (w, d))).transpose())
            .collect()
        })
    }

    /// Claims up to `limit` due payloads of an active webhook, oldest first: reads the
    /// queue through its index (with enough rows to skip what `leases` holds) and holds what
    /// it takes until `until`. Nothing is written; see `leases`.
    pub fn claim(
        &self,
        leases: &Leases,
        webhook: WebhookId,
        now: Millis,
        until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.with(|c| {
            let mut claimed = Vec::with_capacity(limit);
            // A read refused as stale (see `leases`) is done again, so that race never makes
            // a busy lane look empty.
            for _ in 0..3 {
                let want = limit - claimed.len();
                if want == 0 {
                    break;
                }
                let seen = leases.epoch();
                let candidates: Vec<ClaimedDelivery> = c
                    .prepare_cached(
                        "SELECT id, increment_id, attempts, body FROM deliveries \
                         WHERE webhook_id = ?1 AND status IN ('pending', 'retrying') AND next_attempt_at <= ?2 \
                           AND EXISTS (SELECT 1 FROM webhooks WHERE id = ?1 AND is_active = 1) \
                         ORDER BY next_attempt_at, id LIMIT ?3",
                    )?
                    .query_map(params![webhook.0, now, (want + leases.held_for(webhook)) as i64], |r| {
                        Ok(ClaimedDelivery {
                            id: DeliveryId(r.get(0)?),
                            webhook_id: webhook,
                            increment_id: r.get(1)?,
                            attempts: r.get(2)?,
                            body: r.get(3)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let (taken, refused_stale) = leases.take(webhook, seen, candidates, |d| d.id, (now, until), want);
                claimed.extend(taken);
                if !refused_stale {
                    break;
                }
            }
            Ok(claimed)
        })
    }
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.merchant_id, m.code, u.key_hash, u.created_at \
     FROM users u LEFT JOIN merchants m ON m.id = u.merchant_id";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(r.get(0)?),
        name: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?).unwrap_or(Role::Merchant),
        merchant_id: r.get::<_, Option<i64>>(3)?.map(MerchantId),
        merchant_code: r.get(4)?,
        key_hash: r.get(5)?,
        created_at: r.get(6)?,
    })
}
