//! The event catalog's operations (CONTRACT §7.4): `topic.list`, `topic.describe`,
//! `topic.define`, and the schema check `event.publish` makes.
//!
//! The catalog lives in the database (every node reads the same one); each node keeps two
//! things in memory: the topic names (a `Catalog`, what webhook topics are parsed against;
//! read again from the database when a name is not in it, so a topic another node added is
//! found at once) and each topic's compiled schema with the version it was compiled from.
//! Once a topic's schema is compiled, a publish reads nothing more of the catalog:
//! - On PostgreSQL the publish carries the version it was checked against into its group
//!   commit, whose last statement compares it with the stored one (`SchemaChecked`); when it
//!   moved (a `topic.define` on another node), nothing is stored, the schema is read and
//!   compiled again, and the message is checked and published again. So a schema defined on
//!   one node is applied by every node at once, without a read per publish.
//! - On SQLite the one server of the file makes every change, so its compiled schema is
//!   always the stored one.

mod asyncapi;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use serde_json::Value;

use super::{App, AppError, Caller};
use crate::domain::catalog::{self, CatalogEntry, CatalogWrite, Definition, MessageSchema};
use crate::domain::topic::{TopicError, MAX_TOPIC_LEN};
use crate::domain::{Catalog, SchemaChecked, Topic};
use crate::store::StoreError;

pub use asyncapi::asyncapi_document;

/// Messages larger than this are checked on the blocking pool rather than in place.
const CHECK_IN_PLACE_BYTES: usize = 64 * 1024;
/// Reads of a topic's version made again after a broken connection.
const READ_TRIES: usize = 3;
/// Tries of a `topic.define` that keeps meeting concurrent changes of the same topic.
const DEFINE_TRIES: usize = 4;

/// A node's view of the catalog (see the module header).
pub struct CatalogCache {
    names: RwLock<Catalog>,
    schemas: Mutex<HashMap<String, Compiled>>,
}

/// Per topic: the version compiled (None: the topic had no catalog entry) and its schema.
type Compiled = (Option<i64>, Option<MessageSchema>);

impl CatalogCache {
    pub fn new(names: Catalog) -> Self {
        Self {
            names: RwLock::new(names),
            schemas: Mutex::default(),
        }
    }

    pub fn names(&self) -> Catalog {
        self.names.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_names(&self, names: Catalog) {
        *self.names.write().unwrap_or_else(|e| e.into_inner()) = names;
    }

    fn schema(&self, topic: &str, version: Option<i64>) -> Option<Option<MessageSchema>> {
        let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        match schemas.get(topic) {
            Some((v, s)) if *v == version => Some(s.clone()),
            _ => None,
        }
    }

    /// The version and schema last compiled for `topic`.
    fn last_schema(&self, topic: &str) -> Option<(Option<i64>, Option<MessageSchema>)> {
        let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.get(topic).cloned()
    }

    fn set_schema(&self, topic: &str, version: Option<i64>, schema: Option<MessageSchema>) {
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.insert(topic.to_string(), (version, schema));
    }
}

impl App {
    /// Adds the topics file's topics missing from the database (with the shipped schemas
    /// and examples), then reads the catalog's names. At every start: the file keeps working.
    pub async fn catalog_seed(&self, file: &Catalog) -> Result<(), AppError> {
        self.store.catalog_seed(&catalog::shipped::seed(file)).await?;
        self.catalog_refresh().await?;
        Ok(())
    }

    /// The topic names as this node last read them (the console's lists).
    pub fn catalog(&self) -> Catalog {
        self.catalog.names()
    }

    /// Reads the topic names from the database again; the topics file's stay in (a database
    /// the file was not seeded into, as the CLI may open, still knows them).
    pub async fn catalog_refresh(&self) -> Result<Catalog, AppError> {
        let stored = self.store.catalog_topics().await?;
        let names = self.catalog.names().with(stored);
        self.catalog.set_names(names.clone());
        Ok(names)
    }

    /// `topic.list`: every topic's name, sorted.
    pub async fn topic_list_fresh(&self) -> Result<Vec<String>, AppError> {
        Ok(self.catalog_refresh().await?.iter().map(str::to_string).collect())
    }

    /// Parses a topic to publish to; a name this node does not know is looked up again.
    pub(super) async fn publish_topic(&self, topic: &str) -> Result<Topic, AppError> {
        let invalid = |e: TopicError| AppError::InvalidData(format!("topic: {e}"));
        match Topic::parse(topic, &self.catalog.names()) {
            Err(TopicError::Unknown(_)) => Topic::parse(topic, &self.catalog_refresh().await?).map_err(invalid),
            other => other.map_err(invalid),
        }
    }

    /// `topic.describe(topic?)`: one entry, or all of them by name. An unknown topic is 101.
    pub async fn topic_describe(&self, topic: Option<&str>) -> Result<Vec<CatalogEntry>, AppError> {
        match topic {
            None => Ok(self.store.catalog_list().await?),
            Some(t) => match self.catalog_get_bounded(t).await? {
                Some(entry) => Ok(vec![entry]),
                None => Err(AppError::InvalidData(format!(
                    "topic '{}' is not in the catalog",
                    catalog::short(t, 100)
                ))),
            },
        }
    }

    /// The entry of `topic`; None for no such topic, or a name too long to be one (not
    /// looked up).
    async fn catalog_get_bounded(&self, topic: &str) -> Result<Option<CatalogEntry>, AppError> {
        if topic.len() > MAX_TOPIC_LEN {
            return Ok(None);
        }
        Ok(self.store.catalog_get(topic).await?)
    }

    /// `topic.define` (admin): adds the topic or changes it; nothing is stored unless the
    /// whole definition is valid (schema compiles, example matches it).
    pub async fn topic_define(&self, caller: &Caller, definition: &Value) -> Result<(), AppError> {
        caller.require_admin()?;
        let definition = Definition::from_json(definition).map_err(AppError::InvalidData)?;
        for _ in 0..DEFINE_TRIES {
            let current = self.store.catalog_get(&definition.topic).await?;
            let (entry, compiled) = definition.apply(current.as_ref()).map_err(AppError::InvalidData)?;
            let expected = current.as_ref().map(|c| c.version);
            match self.store.catalog_define(&entry, expected, catalog::MAX_TOPICS).await? {
                CatalogWrite::Written => {
                    self.catalog
                        .set_schema(&entry.topic, Some(expected.map_or(1, |v| v + 1)), compiled);
                    self.catalog_refresh().await?;
                    return Ok(());
                }
                CatalogWrite::Full => {
                    return Err(AppError::InvalidData(format!(
                        "topic: the catalog already holds {} topics, the most it may",
                        catalog::MAX_TOPICS
                    )))
                }
                CatalogWrite::Conflict => continue,
            }
        }
        Err(AppError::Busy)
    }

    /// The topic's compiled schema (None: the topic has none) and the version it is of, for
    /// the publish to confirm (`SchemaChecked`). With `fresh`, or on a store that does not
    /// confirm versions, the version is read from the database first (see the module header).
    pub async fn topic_schema(
        &self,
        topic: &str,
        fresh: bool,
    ) -> Result<(SchemaChecked, Option<MessageSchema>), AppError> {
        let confirms = self.store.publish_confirms_schema();
        let stamp = |version| match confirms {
            true => SchemaChecked::Version(version),
            false => SchemaChecked::Unconfirmed,
        };
        let last = self.catalog.last_schema(topic);
        if let (true, false, Some((version, schema))) = (confirms, fresh, &last) {
            return Ok((stamp(*version), schema.clone()));
        }
        let known = last.is_some() && !fresh;
        let version = match self.read_version(topic, known).await {
            Ok(Some(version)) => version,
            Ok(None) => return Ok(last.map_or((stamp(None), None), |(v, s)| (stamp(v), s))),
            // The database answers no read now: the schema this node compiled last (the
            // publish itself then succeeds or fails on the store's own terms).
            Err(e) => return last.map(|(v, s)| (stamp(v), s)).ok_or(e.into()),
        };
        if let Some(schema) = self.catalog.schema(topic, version) {
            return Ok((stamp(version), schema));
        }
        let Some(entry) = self.store.catalog_get(topic).await? else {
            self.catalog.set_schema(topic, None, None);
            return Ok((stamp(None), None));
        };
        let compiled = match &entry.schema {
            None => None,
            Some(schema) => match MessageSchema::compile(schema) {
                Ok(s) => Some(s),
                Err(e) => {
                    // Stored schemas were checked when defined; one this build refuses is
                    // logged and not applied rather than refusing every publish.
                    tracing::warn!(topic, error = %e, "a stored topic schema does not compile; not applied");
                    None
                }
            },
        };
        self.catalog.set_schema(topic, Some(entry.version), compiled.clone());
        Ok((stamp(Some(entry.version)), compiled))
    }

    /// The topic's stored version; a read on a connection that broke (PostgreSQL killed it,
    /// a node's pool still held it) is made again on another, a few times.
    /// With a schema compiled already (`known`), a store may answer `Ok(None)`: the compiled
    /// one is still the stored one (SQLite).
    async fn read_version(&self, topic: &str, known: bool) -> Result<Option<Option<i64>>, StoreError> {
        let mut tries = 0;
        loop {
            let read = if known {
                self.store.catalog_version_if_idle(topic).await
            } else {
                self.store.catalog_version(topic).await.map(Some)
            };
            match read {
                Err(StoreError::Unavailable(_)) if tries < READ_TRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// `event.publish`'s check: 113 naming the first failing path when the topic's schema
    /// refuses `message` (`size`: its serialized length); otherwise the version checked
    /// against. `fresh`: the version is read again first (the store said it moved).
    pub(super) async fn check_message(
        &self,
        topic: &Topic,
        message: &Value,
        size: usize,
        fresh: bool,
    ) -> Result<SchemaChecked, AppError> {
        let (stamp, schema) = self.topic_schema(topic.as_str(), fresh).await?;
        let Some(schema) = schema else {
            return Ok(stamp);
        };
        let verdict = if size <= CHECK_IN_PLACE_BYTES {
            schema.check(message)
        } else {
            let message = message.clone();
            tokio::task::spawn_blocking(move || schema.check(&message))
                .await
                .unwrap_or_else(|_| Err("(root): the schema check failed".into()))
        };
        verdict.map_err(AppError::SchemaMismatch)?;
        Ok(stamp)
    }

    /// The example `webhook.test` sends for a webhook whose first topic is `topic`.
    pub(super) async fn topic_example(&self, topic: &str) -> Result<Option<Value>, AppError> {
        Ok(self.store.catalog_get(topic).await?.and_then(|e| e.example))
    }
}
