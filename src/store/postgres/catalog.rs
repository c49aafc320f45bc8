//! The event catalog in PostgreSQL (`topic_catalog`). Schemas and examples are stored as JSON
//! text. Every node reads it, so a topic defined on one is seen by the others at once.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use crate::domain::catalog::{CatalogEntry, CatalogWrite};
use crate::store::StoreResult;
use crate::time::{now_millis, Millis};

const COLUMNS: &str = "topic, description, schema, example, version FROM topic_catalog";

fn entry_from_row(row: &PgRow) -> CatalogEntry {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    CatalogEntry {
        topic: row.get(0),
        description: row.get(1),
        schema: json(row.get(2)),
        example: json(row.get(3)),
        version: row.get(4),
    }
}

fn text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Adds `e` as version 1 unless its topic is in the catalog already.
fn insert_if_new(e: &CatalogEntry, now: Millis) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(
        "INSERT INTO topic_catalog (topic, description, schema, example, version, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (topic) DO NOTHING",
    )
    .bind(&e.topic)
    .bind(&e.description)
    .bind(text(&e.schema))
    .bind(text(&e.example))
    .bind(now)
}

pub async fn seed(pool: &PgPool, entries: &[CatalogEntry]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let now = now_millis();
    for e in entries {
        insert_if_new(e, now).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool) -> StoreResult<Vec<CatalogEntry>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} ORDER BY topic"))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(entry_from_row).collect())
}

pub async fn topics(pool: &PgPool) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT topic FROM topic_catalog ORDER BY topic")
        .fetch_all(pool)
        .await?)
}

pub async fn get(pool: &PgPool, topic: &str) -> StoreResult<Option<CatalogEntry>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} WHERE topic = $1"))
        .bind(topic)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(entry_from_row))
}

pub async fn version(pool: &PgPool, topic: &str) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT version FROM topic_catalog WHERE topic = $1")
        .bind(topic)
        .fetch_optional(pool)
        .await?)
}

pub async fn define(
    pool: &PgPool,
    e: &CatalogEntry,
    expected: Option<i64>,
    max_topics: usize,
) -> StoreResult<CatalogWrite> {
    let now = now_millis();
    let written = match expected {
        Some(version) => sqlx::query(
            "UPDATE topic_catalog SET description = $2, schema = $3, example = $4, version = version + 1, \
             updated_at = $6 WHERE topic = $1 AND version = $5",
        )
        .bind(&e.topic)
        .bind(&e.description)
        .bind(text(&e.schema))
        .bind(text(&e.example))
        .bind(version)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected(),
        None => {
            // The count and the insert are not one snapshot: two nodes adding at once may pass
            // the bound by one each, which a bound of thousands can take.
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM topic_catalog")
                .fetch_one(pool)
                .await?;
            if count >= max_topics as i64 {
                return Ok(CatalogWrite::Full);
            }
            insert_if_new(e, now).execute(pool).await?.rows_affected()
        }
    };
    Ok(if written == 1 {
        CatalogWrite::Written
    } else {
        CatalogWrite::Conflict
    })
}
