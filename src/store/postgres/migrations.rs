//! The PostgreSQL schema's migrations (`migrations/postgres`), applied at start by every node.
//!
//! A rolling upgrade has old and new nodes on one database: the first new node applies the new
//! migrations, and an old node that restarts then finds applied migrations it does not know.
//! sqlx refuses that by default ("migration N was previously applied but is missing"); hookd
//! accepts it, since its migrations only add (columns with defaults, tables, indexes), so an
//! older node keeps working on a newer schema. It says so once, at start.

use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::store::StoreResult;

/// The migrations this build knows, tolerating newer ones already applied.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
}

/// Applies the migrations this build knows and has not applied yet (sqlx holds an advisory lock
/// meanwhile, so nodes starting together take turns); returns the versions applied that this
/// build does not know (a newer hookd's), which are logged.
pub async fn run(pool: &PgPool) -> StoreResult<Vec<i64>> {
    let migrator = migrator();
    migrator.run(pool).await?;
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let newer: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE version > $1 AND success ORDER BY version")
            .bind(known)
            .fetch_all(pool)
            .await?;
    if !newer.is_empty() {
        tracing::warn!(
            "the database's schema is newer than this hookd's (migrations {newer:?} were applied \
             by a newer hookd; this one knows up to {known}): running on it, as hookd's \
             migrations only add; upgrade this node too"
        );
    }
    Ok(newer)
}
