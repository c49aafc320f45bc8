//! Merchants, users and sessions in PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::domain::portal::{NewPortalLink, Redeemed, SessionUser};
use crate::domain::records::merchant_codes_from_column;
use crate::domain::{MerchantCode, MerchantId, Role, UserId, UserName};
use crate::store::{MerchantSummary, StoreError, StoreResult, UserRecord};
use crate::time::{now_millis, Millis};

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.merchant_id, m.code, u.key_hash, u.created_at, u.merchant_codes";

fn user_from_row(row: &PgRow) -> UserRecord {
    UserRecord {
        id: UserId(row.get(0)),
        name: row.get(1),
        role: Role::parse(row.get::<&str, _>(2)).unwrap_or(Role::Merchant),
        merchant_id: row.get::<Option<i64>, _>(3).map(MerchantId),
        merchant_code: row.get(4),
        merchant_codes: merchant_codes_from_column(row.get::<&str, _>(7)),
        key_hash: row.get(5),
        created_at: row.get(6),
    }
}

pub async fn merchant_ensure(pool: &PgPool, code: &MerchantCode) -> StoreResult<MerchantId> {
    // A concurrent insert of the same code makes ours wait for it, then do nothing; the
    // SELECT (a new snapshot) then sees the committed row.
    sqlx::query("INSERT INTO merchants (code, created_at) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING")
        .bind(code.as_str())
        .bind(now_millis())
        .execute(pool)
        .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM merchants WHERE code = $1")
        .bind(code.as_str())
        .fetch_one(pool)
        .await?;
    Ok(MerchantId(id))
}

pub async fn merchant_by_code(pool: &PgPool, code: &str) -> StoreResult<Option<MerchantId>> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM merchants WHERE code = $1")
        .bind(code)
        .fetch_optional(pool)
        .await?;
    Ok(id.map(MerchantId))
}

pub async fn merchant_list(pool: &PgPool) -> StoreResult<Vec<(MerchantId, String)>> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, code FROM merchants ORDER BY id")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(id, code)| (MerchantId(id), code)).collect())
}

pub async fn merchant_create(pool: &PgPool, code: &MerchantCode, name: Option<&str>) -> StoreResult<MerchantSummary> {
    let created_at = now_millis();
    let made =
        sqlx::query("INSERT INTO merchants (code, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING")
            .bind(code.as_str())
            .bind(name)
            .bind(created_at)
            .execute(pool)
            .await?;
    if made.rows_affected() == 0 {
        return Err(StoreError::Conflict("merchant"));
    }
    Ok(MerchantSummary {
        code: code.as_str().to_string(),
        name: name.map(str::to_string),
        created_at,
        webhooks: 0,
    })
}

pub async fn merchant_summaries(pool: &PgPool) -> StoreResult<Vec<MerchantSummary>> {
    let rows: Vec<(String, Option<String>, i64, i64)> =
        sqlx::query_as("SELECT code, name, created_at, webhook_count FROM merchants ORDER BY id")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(code, name, created_at, webhooks)| MerchantSummary {
            code,
            name,
            created_at,
            webhooks,
        })
        .collect())
}

pub async fn user_create(
    pool: &PgPool,
    name: &UserName,
    role: Role,
    merchant: Option<MerchantId>,
    merchant_codes: &[String],
    key_hash: &str,
) -> StoreResult<UserRecord> {
    let result = sqlx::query(&format!(
        "WITH u AS (INSERT INTO users (name, role, merchant_id, key_hash, created_at, merchant_codes) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *) \
         SELECT {USER_COLUMNS} FROM u LEFT JOIN merchants m ON m.id = u.merchant_id"
    ))
    .bind(name.as_str())
    .bind(role.as_str())
    .bind(merchant.map(|m| m.0))
    .bind(key_hash)
    .bind(now_millis())
    .bind(merchant_codes.join(","))
    .fetch_one(pool)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict("user")),
        Err(e) => Err(e.into()),
        Ok(row) => Ok(user_from_row(&row)),
    }
}

pub async fn user_by_name(pool: &PgPool, name: &str) -> StoreResult<Option<UserRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users u LEFT JOIN merchants m ON m.id = u.merchant_id \
         WHERE u.name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(user_from_row))
}

pub async fn user_list(pool: &PgPool) -> StoreResult<Vec<UserRecord>> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users u LEFT JOIN merchants m ON m.id = u.merchant_id \
         ORDER BY u.id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

pub async fn user_remove(pool: &PgPool, name: &str) -> StoreResult<bool> {
    // Sessions go with the user (ON DELETE CASCADE).
    let done = sqlx::query("DELETE FROM users WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The new hash and the end of every session of the user, in one transaction: once it
/// commits, no node accepts the old key or a session made with it.
pub async fn user_rotate_key(pool: &PgPool, name: &str, key_hash: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar("UPDATE users SET key_hash = $2 WHERE name = $1 RETURNING id")
        .bind(name)
        .bind(key_hash)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn session_create(pool: &PgPool, id_hash: &str, user: &UserRecord, expires_at: Millis) -> StoreResult<()> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(id_hash)
        .bind(user.id.0)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn session_user(pool: &PgPool, id_hash: &str, now: Millis) -> StoreResult<Option<SessionUser>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, s.merchant_id, pm.code, s.read_only \
         FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN merchants m ON m.id = u.merchant_id \
         LEFT JOIN merchants pm ON pm.id = s.merchant_id \
         WHERE s.id_hash = $1 AND s.expires_at > $2"
    ))
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        // Columns 0..=7 are the user's (USER_COLUMNS), then the portal grant's.
        let portal = match (row.get::<Option<i64>, _>(8), row.get::<Option<String>, _>(9)) {
            (Some(m), Some(code)) => Some((MerchantId(m), code)),
            _ => None,
        };
        SessionUser::new(user_from_row(&row), portal, row.get(10))
    }))
}

pub async fn session_delete(pool: &PgPool, id_hash: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn session_purge_expired(pool: &PgPool, now: Millis) -> StoreResult<u64> {
    sqlx::query("DELETE FROM portal_links WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub async fn portal_link_create(pool: &PgPool, link: &NewPortalLink) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO portal_links (token_hash, merchant_id, created_by, read_only, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&link.token_hash)
    .bind(link.merchant.0)
    .bind(link.created_by.0)
    .bind(link.read_only)
    .bind(link.expires_at)
    .bind(now_millis())
    .execute(pool)
    .await?;
    Ok(())
}

/// One transaction: the link's row is deleted (a concurrent open of the same link waits on
/// its row lock, then finds it gone) and the session made.
pub async fn portal_link_redeem(
    pool: &PgPool,
    token_hash: &str,
    session_hash: &str,
    now: Millis,
    session_expires: Millis,
) -> StoreResult<Option<Redeemed>> {
    let mut tx = pool.begin().await?;
    let link: Option<(i64, String, i64, bool, i64)> = sqlx::query_as(
        "DELETE FROM portal_links p USING merchants m WHERE p.token_hash = $1 AND m.id = p.merchant_id \
         RETURNING p.merchant_id, m.code, p.created_by, p.read_only, p.expires_at",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((merchant, merchant_code, created_by, read_only, expires_at)) = link else {
        return Ok(None);
    };
    if expires_at <= now {
        tx.commit().await?;
        return Ok(Some(Redeemed::Expired { merchant_code }));
    }
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, expires_at, merchant_id, read_only) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session_hash)
    .bind(created_by)
    .bind(session_expires)
    .bind(merchant)
    .bind(read_only)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Redeemed::Session {
        merchant_code,
        read_only,
    }))
}
