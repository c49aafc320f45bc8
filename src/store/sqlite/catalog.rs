//! The event catalog in SQLite (`topic_catalog`). Schemas and examples are stored as JSON text.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::catalog::{CatalogEntry, CatalogWrite};
use crate::store::StoreResult;
use crate::time::now_millis;

const COLUMNS: &str = "topic, description, schema, example, version FROM topic_catalog";

fn entry_from_row(r: &Row<'_>) -> rusqlite::Result<CatalogEntry> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(CatalogEntry {
        topic: r.get(0)?,
        description: r.get(1)?,
        schema: json(r.get(2)?),
        example: json(r.get(3)?),
        version: r.get(4)?,
    })
}

fn text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub fn seed(c: &Connection, entries: &[CatalogEntry]) -> StoreResult<()> {
    let mut insert = c.prepare_cached(
        "INSERT INTO topic_catalog (topic, description, schema, example, version, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (topic) DO NOTHING",
    )?;
    let now = now_millis();
    for e in entries {
        insert.execute(params![e.topic, e.description, text(&e.schema), text(&e.example), now])?;
    }
    Ok(())
}

pub fn list(c: &Connection) -> StoreResult<Vec<CatalogEntry>> {
    Ok(c.prepare_cached(&format!("SELECT {COLUMNS} ORDER BY topic"))?
        .query_map([], entry_from_row)?
        .collect::<Result<_, _>>()?)
}

pub fn topics(c: &Connection) -> StoreResult<Vec<String>> {
    Ok(c.prepare_cached("SELECT topic FROM topic_catalog ORDER BY topic")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

pub fn get(c: &Connection, topic: &str) -> StoreResult<Option<CatalogEntry>> {
    Ok(c.prepare_cached(&format!("SELECT {COLUMNS} WHERE topic = ?1"))?
        .query_row([topic], entry_from_row)
        .optional()?)
}

pub fn version(c: &Connection, topic: &str) -> StoreResult<Option<i64>> {
    Ok(c.prepare_cached("SELECT version FROM topic_catalog WHERE topic = ?1")?
        .query_row([topic], |r| r.get(0))
        .optional()?)
}

pub fn define(c: &Connection, e: &CatalogEntry, expected: Option<i64>, max_topics: usize) -> StoreResult<CatalogWrite> {
    let now = now_millis();
    let written = match expected {
        Some(version) => c
            .prepare_cached(
                "UPDATE topic_catalog SET description = ?2, schema = ?3, example = ?4, version = version + 1, \
                 updated_at = ?6 WHERE topic = ?1 AND version = ?5",
            )?
            .execute(params![
                e.topic,
                e.description,
                text(&e.schema),
                text(&e.example),
                version,
                now
            ])?,
        None => {
            let count: i64 = c.query_row("SELECT COUNT(*) FROM topic_catalog", [], |r| r.get(0))?;
            if count >= max_topics as i64 {
                return Ok(CatalogWrite::Full);
            }
            c.prepare_cached(
                "INSERT INTO topic_catalog (topic, description, schema, example, version, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (topic) DO NOTHING",
            )?
            .execute(params![e.topic, e.description, text(&e.schema), text(&e.example), now])?
        }
    };
    Ok(if written == 1 {
        CatalogWrite::Written
    } else {
        CatalogWrite::Conflict
    })
}
