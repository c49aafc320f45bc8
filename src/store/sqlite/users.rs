//! Merchants, users and sessions in SQLite. Writes run as writer jobs, reads on a reader
//! connection (see `mod.rs`); every function here takes the connection it runs on.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::portal::{NewPortalLink, Redeemed, SessionUser};
use crate::domain::records::merchant_codes_from_column;
use crate::domain::{MerchantId, Role, UserId};
use crate::store::{MerchantSummary, StoreError, StoreResult, UserRecord};
use crate::time::{now_millis, Millis};

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.merchant_id, m.code, u.key_hash, u.created_at, \
     u.merchant_codes FROM users u LEFT JOIN merchants m ON m.id = u.merchant_id";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(r.get(0)?),
        name: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?).unwrap_or(Role::Merchant),
        merchant_id: r.get::<_, Option<i64>>(3)?.map(MerchantId),
        merchant_code: r.get(4)?,
        merchant_codes: merchant_codes_from_column(&r.get::<_, String>(7)?),
        key_hash: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub fn merchant_ensure(c: &Connection, code: &str) -> StoreResult<MerchantId> {
    c.prepare_cached("INSERT INTO merchants (code, created_at) VALUES (?1, ?2) ON CONFLICT (code) DO NOTHING")?
        .execute(params![code, now_millis()])?;
    Ok(merchant_by_code(c, code)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
}

pub fn merchant_by_code(c: &Connection, code: &str) -> StoreResult<Option<MerchantId>> {
    Ok(c.prepare_cached("SELECT id FROM merchants WHERE code = ?1")?
        .query_row([code], |r| r.get(0).map(MerchantId))
        .optional()?)
}

pub fn merchant_list(c: &Connection) -> StoreResult<Vec<(MerchantId, String)>> {
    Ok(c.prepare_cached("SELECT id, code FROM merchants ORDER BY id")?
        .query_map([], |r| Ok((MerchantId(r.get(0)?), r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// A taken code is `Conflict("merchant")`, found without failing the statement.
pub fn merchant_create(c: &Connection, code: &str, name: Option<&str>) -> StoreResult<MerchantSummary> {
    let created_at = now_millis();
    let made = c
        .prepare_cached(
            "INSERT INTO merchants (code, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (code) DO NOTHING",
        )?
        .execute(params![code, name, created_at])?;
    if made == 0 {
        return Err(StoreError::Conflict("merchant"));
    }
    Ok(MerchantSummary {
        code: code.to_string(),
        name: name.map(str::to_string),
        created_at,
        webhooks: 0,
    })
}

pub fn merchant_summaries(c: &Connection) -> StoreResult<Vec<MerchantSummary>> {
    Ok(
        c.prepare_cached("SELECT code, name, created_at, webhook_count FROM merchants ORDER BY id")?
            .query_map([], |r| {
                Ok(MerchantSummary {
                    code: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                    webhooks: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?,
    )
}

/// A taken name is `Conflict("user")`, found without failing the statement (a failed job
/// would make the writer run its whole batch again job by job).
pub fn user_create(
    c: &Connection,
    name: &str,
    role: Role,
    merchant: Option<MerchantId>,
    merchant_codes: &[String],
    key_hash: &str,
) -> StoreResult<UserRecord> {
    let made = c
        .prepare_cached(
            "INSERT INTO users (name, role, merchant_id, merchant_codes, key_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![
            name,
            role.as_str(),
            merchant.map(|m| m.0),
            merchant_codes.join(","),
            key_hash,
            now_millis()
        ])?;
    if made == 0 {
        return Err(StoreError::Conflict("user"));
    }
    Ok(user_by_name(c, name)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
}

pub fn user_by_name(c: &Connection, name: &str) -> StoreResult<Option<UserRecord>> {
    Ok(c.prepare_cached(&format!("SELECT {USER_COLUMNS} WHERE u.name = ?1"))?
        .query_row([name], user_from_row)
        .optional()?)
}

pub fn user_list(c: &Connection) -> StoreResult<Vec<UserRecord>> {
    Ok(c.prepare_cached(&format!("SELECT {USER_COLUMNS} ORDER BY u.id"))?
        .query_map([], user_from_row)?
        .collect::<Result<_, _>>()?)
}

/// Sessions go with the user (ON DELETE CASCADE).
pub fn user_remove(c: &Connection, name: &str) -> StoreResult<bool> {
    Ok(c.prepare_cached("DELETE FROM users WHERE name = ?1")?.execute([name])? > 0)
}

/// The new hash and the end of every session of the user, in the writer's transaction.
pub fn user_rotate_key(c: &Connection, name: &str, key_hash: &str) -> StoreResult<bool> {
    let id: Option<i64> = c
        .prepare_cached("UPDATE users SET key_hash = ?2 WHERE name = ?1 RETURNING id")?
        .query_row(params![name, key_hash], |r| r.get(0))
        .optional()?;
    let Some(id) = id else {
        return Ok(false);
    };
    c.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
        .execute([id])?;
    Ok(true)
}

pub fn session_create(c: &Connection, id_hash: &str, user: UserId, expires_at: Millis) -> StoreResult<()> {
    c.prepare_cached("INSERT INTO sessions (id_hash, user_id, expires_at) VALUES (?1, ?2, ?3)")?
        .execute(params![id_hash, user.0, expires_at])?;
    Ok(())
}

pub fn session_user(c: &Connection, id_hash: &str, now: Millis) -> StoreResult<Option<SessionUser>> {
    Ok(c.prepare_cached(
        "SELECT u.id, u.name, u.role, u.merchant_id, m.code, u.key_hash, u.created_at, u.merchant_codes, \
                s.merchant_id, pm.code, s.read_only \
         FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN merchants m ON m.id = u.merchant_id \
         LEFT JOIN merchants pm ON pm.id = s.merchant_id \
         WHERE s.id_hash = ?1 AND s.expires_at > ?2",
    )?
    .query_row(params![id_hash, now], |r| {
        let user = user_from_row(r)?;
        // Columns 0..=7 are the user's (as USER_COLUMNS), then the portal grant's.
        let portal = match (r.get::<_, Option<i64>>(8)?, r.get::<_, Option<String>>(9)?) {
            (Some(m), Some(code)) => Some((MerchantId(m), code)),
            _ => None,
        };
        Ok(SessionUser::new(user, portal, r.get(10)?))
    })
    .optional()?)
}

pub fn session_delete(c: &Connection, id_hash: &str) -> StoreResult<bool> {
    Ok(c.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
        .execute([id_hash])?
        > 0)
}

pub fn session_purge_expired(c: &Connection, now: Millis) -> StoreResult<u64> {
    c.prepare_cached("DELETE FROM portal_links WHERE expires_at <= ?1")?
        .execute([now])?;
    Ok(c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
        .execute([now])? as u64)
}

pub fn portal_link_create(c: &Connection, link: &NewPortalLink) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO portal_links (token_hash, merchant_id, created_by, read_only, expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        link.token_hash,
        link.merchant.0,
        link.created_by.0,
        link.read_only,
        link.expires_at,
        now_millis()
    ])?;
    Ok(())
}

/// Runs as one writer job, so the link's row goes and the session comes in one transaction
/// (and jobs run one at a time: of two opens of one link, the second finds no row).
pub fn portal_link_redeem(
    c: &Connection,
    token_hash: &str,
    session_hash: &str,
    now: Millis,
    session_expires: Millis,
) -> StoreResult<Option<Redeemed>> {
    let link = c
        .prepare_cached(
            "DELETE FROM portal_links WHERE token_hash = ?1 \
             RETURNING merchant_id, created_by, read_only, expires_at",
        )?
        .query_row([token_hash], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Millis>(3)?,
            ))
        })
        .optional()?;
    let Some((merchant, created_by, read_only, expires_at)) = link else {
        return Ok(None);
    };
    let merchant_code: String = c
        .prepare_cached("SELECT code FROM merchants WHERE id = ?1")?
        .query_row([merchant], |r| r.get(0))?;
    if expires_at <= now {
        return Ok(Some(Redeemed::Expired { merchant_code }));
    }
    c.prepare_cached(
        "INSERT INTO sessions (id_hash, user_id, expires_at, merchant_id, read_only) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![session_hash, created_by, session_expires, merchant, read_only])?;
    Ok(Some(Redeemed::Session {
        merchant_code,
        read_only,
    }))
}
