//! Merchants, users and sessions in SQLite.

use sqlx::{Row, SqlitePool};

use crate::domain::{MerchantCode, MerchantId, Role, UserId, UserName};
use crate::store::{StoreError, StoreResult, UserRecord};
use crate::time::{now_millis, Millis};

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.merchant_id, m.code, u.key_hash, u.created_at \
     FROM users u LEFT JOIN merchants m ON m.id = u.merchant_id";

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> UserRecord {
    UserRecord {
        id: UserId(row.get(0)),
        name: row.get(1),
        role: Role::parse(row.get::<&str, _>(2)).unwrap_or(Role::Merchant),
        merchant_id: row.get::<Option<i64>, _>(3).map(MerchantId),
        merchant_code: row.get(4),
        key_hash: row.get(5),
        created_at: row.get(6),
    }
}

pub async fn merchant_ensure(pool: &SqlitePool, code: &MerchantCode) -> StoreResult<MerchantId> {
    sqlx::query("INSERT INTO merchants (code, created_at) VALUES (?, ?) ON CONFLICT (code) DO NOTHING")
        .bind(code.as_str())
        .bind(now_millis())
        .execute(pool)
        .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM merchants WHERE code = ?")
        .bind(code.as_str())
        .fetch_one(pool)
        .await?;
    Ok(MerchantId(id))
}

pub async fn user_create(
    pool: &SqlitePool,
    name: &UserName,
    role: Role,
    merchant: Option<MerchantId>,
    key_hash: &str,
) -> StoreResult<UserRecord> {
    let result =
        sqlx::query("INSERT INTO users (name, role, merchant_id, key_hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(merchant.map(|m| m.0))
            .bind(key_hash)
            .bind(now_millis())
            .execute(pool)
            .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict("user")),
        Err(e) => Err(e.into()),
        Ok(_) => user_by_name(pool, name.as_str())
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound)),
    }
}

pub async fn user_by_name(pool: &SqlitePool, name: &str) -> StoreResult<Option<UserRecord>> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.name = ?"))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(user_from_row))
}

pub async fn user_list(pool: &SqlitePool) -> StoreResult<Vec<UserRecord>> {
    let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} ORDER BY u.id"))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

pub async fn user_remove(pool: &SqlitePool, name: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM users WHERE name = ?")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn session_create(
    pool: &SqlitePool,
    id_hash: &str,
    user: &UserRecord,
    expires_at: Millis,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, expires_at) VALUES (?, ?, ?)")
        .bind(id_hash)
        .bind(user.id.0)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn session_purge_expired(pool: &SqlitePool, now: Millis) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
