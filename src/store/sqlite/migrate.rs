//! The SQLite schema's migrations: SQL files embedded in order, applied by the writer in one
//! transaction, each recorded in `hookd_migrations` (version, description, when).
//!
//! The one idea to know: databases made before this runner existed were migrated by sqlx,
//! which recorded its runs in `_sqlx_migrations` (version, success, SHA-384 of the SQL). A
//! database with that table and an empty `hookd_migrations` is adopted: each version sqlx
//! applied is taken as applied here, after checking that it finished and that its SQL is
//! the very file embedded here, so nothing is run twice and nothing unknown is assumed.
//! `_sqlx_migrations` itself is left as it was.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha384};

use crate::store::{StoreError, StoreResult};
use crate::time::now_millis;

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in the order they apply. Files are never edited once released: a new
/// change is a new file.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "init",
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "drop lease columns",
        sql: include_str!("../../../migrations/sqlite/0002_drop_lease_columns.sql"),
    },
    Migration {
        version: 3,
        description: "attempt numbers",
        sql: include_str!("../../../migrations/sqlite/0003_attempt_numbers.sql"),
    },
    Migration {
        version: 4,
        description: "webhook counter",
        sql: include_str!("../../../migrations/sqlite/0004_webhook_counter.sql"),
    },
    Migration {
        version: 5,
        description: "webhook lifecycle",
        sql: include_str!("../../../migrations/sqlite/0005_webhook_lifecycle.sql"),
    },
    Migration {
        version: 6,
        description: "receiver steering",
        sql: include_str!("../../../migrations/sqlite/0006_receiver_steering.sql"),
    },
    Migration {
        version: 7,
        description: "pacing",
        sql: include_str!("../../../migrations/sqlite/0007_pacing.sql"),
    },
    Migration {
        version: 8,
        description: "disabled announcements",
        sql: include_str!("../../../migrations/sqlite/0008_disabled_announcements.sql"),
    },
    Migration {
        version: 9,
        description: "attempt requests",
        sql: include_str!("../../../migrations/sqlite/0009_attempt_requests.sql"),
    },
    Migration {
        version: 10,
        description: "publishers",
        sql: include_str!("../../../migrations/sqlite/0010_publishers.sql"),
    },
    Migration {
        version: 11,
        description: "portal links",
        sql: include_str!("../../../migrations/sqlite/0011_portal_links.sql"),
    },
    Migration {
        version: 12,
        description: "signing keys",
        sql: include_str!("../../../migrations/sqlite/0012_signing_keys.sql"),
    },
    Migration {
        version: 13,
        description: "event catalog",
        sql: include_str!("../../../migrations/sqlite/0013_event_catalog.sql"),
    },
    Migration {
        version: 15,
        description: "merchant portal",
        sql: include_str!("../../../migrations/sqlite/0015_merchant_portal.sql"),
    },
    Migration {
        version: 17,
        description: "event traceparent",
        sql: include_str!("../../../migrations/sqlite/0017_event_traceparent.sql"),
    },
    Migration {
        version: 18,
        description: "attempt headers as sent",
        sql: include_str!("../../../migrations/sqlite/0018_attempt_headers.sql"),
    },
    Migration {
        version: 19,
        description: "status check without IN",
        sql: include_str!("../../../migrations/sqlite/0019_status_check_without_in.sql"),
    },
];

/// Brings the schema up to date; runs inside a writer job's transaction, so a migration
/// that fails leaves nothing behind.
pub fn run(c: &Connection) -> StoreResult<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS hookd_migrations ( \
           version INTEGER PRIMARY KEY, \
           description TEXT NOT NULL, \
           applied_at INTEGER NOT NULL)",
    )?;
    if current_version(c)?.is_none() && table_exists(c, "_sqlx_migrations")? {
        adopt_sqlx_history(c)?;
    }
    let current = current_version(c)?.unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    // Every migration not yet recorded, not only those above the newest one: numbers are
    // handed out to branches in advance, so one with a lower number may arrive later.
    let applied: Vec<i64> = c
        .prepare("SELECT version FROM hookd_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            description = m.description,
            "applying a SQLite migration"
        );
        c.execute_batch(m.sql)?;
        // A migration that edits `sqlite_schema` itself: every connection must read the
        // edited schema again.
        if m.sql.contains("PRAGMA writable_schema") {
            reload_schema(c)?;
        }
        note_applied(c, m)?;
    }
    Ok(())
}

/// The last step of SQLite's procedure for editing `sqlite_schema`: a new `schema_version`
/// makes each connection parse the schema again before its next statement.
fn reload_schema(c: &Connection) -> StoreResult<()> {
    let version: i64 = c.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    c.execute_batch(&format!("PRAGMA schema_version = {}", version + 1))?;
    Ok(())
}

fn current_version(c: &Connection) -> StoreResult<Option<i64>> {
    Ok(c.query_row("SELECT MAX(version) FROM hookd_migrations", [], |r| r.get(0))?)
}

fn table_exists(c: &Connection, name: &str) -> StoreResult<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

fn note_applied(c: &Connection, m: &Migration) -> StoreResult<()> {
    c.execute(
        "INSERT INTO hookd_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
        params![m.version, m.description, now_millis()],
    )?;
    Ok(())
}

/// Takes over what sqlx's migrator applied (see the module header).
fn adopt_sqlx_history(c: &Connection) -> StoreResult<()> {
    let ran: Vec<(i64, bool, Vec<u8>)> = c
        .prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (version, success, checksum) in ran {
        let refuse = |why| Err(StoreError::AdoptionRefused { version, why });
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return refuse("is unknown to this hookd");
        };
        if !success {
            return refuse("did not finish");
        }
        if checksum != Sha384::digest(m.sql.as_bytes()).as_slice() {
            return refuse("differs from the one this hookd has");
        }
        tracing::info!(version, "adopting a migration applied by sqlx");
        note_applied(c, m)?;
    }
    Ok(())
}
