//! The event catalog's entries (CONTRACT §7.4): each topic with a description, the JSON Schema
//! its messages must match (none: any object) and an example message. `Definition` is what
//! `topic.define` asks for, checked before anything is stored; `schema` compiles and bounds
//! schemas; `shipped` holds the entries that come with hookd (catalog/*.json).

pub mod schema;
pub mod shipped;

use serde_json::{Map, Value};

pub use schema::MessageSchema;

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Largest example message, serialized.
pub const MAX_EXAMPLE_BYTES: usize = 64 * 1024;
/// Most topics the catalog may hold (defining a new one beyond is refused).
pub const MAX_TOPICS: usize = 2000;

/// One topic of the catalog as stored. `version` moves on every change (a cache key).
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogEntry {
    pub topic: String,
    pub description: String,
    pub schema: Option<Value>,
    pub example: Option<Value>,
    pub version: i64,
}

impl CatalogEntry {
    /// An entry with only a name (a topic the topics file lists and nothing describes).
    pub fn named(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            description: String::new(),
            schema: None,
            example: None,
            version: 1,
        }
    }

    /// `topic.describe`'s form: `{topic, description, schema, example}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "topic": self.topic,
            "description": self.description,
            "schema": self.schema,
            "example": self.example,
        })
    }
}

/// What a catalog write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogWrite {
    Written,
    /// The topic changed (or was added) meanwhile: nothing written; read it again.
    Conflict,
    /// A new topic, and the catalog already holds `MAX_TOPICS`.
    Full,
}

/// A field of `topic.define`: absent keeps the stored value, `null` clears it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    Keep,
    Clear,
    Set(T),
}

impl<T: Clone> Change<T> {
    fn apply(&self, current: Option<T>) -> Option<T> {
        match self {
            Change::Keep => current,
            Change::Clear => None,
            Change::Set(v) => Some(v.clone()),
        }
    }
}

/// `topic.define({topic, description?, schema?, example?})`, its fields checked one by one.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub topic: String,
    pub description: Option<String>,
    pub schema: Change<Value>,
    pub example: Change<Value>,
}

impl Definition {
    /// Reads the argument object; the error names the field and what is wrong with it.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("the topic definition must be a JSON object {topic, description?, schema?, example?}")?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["topic", "description", "schema", "example"].contains(&k.as_str()))
        {
            return Err(format!("unknown field '{}'", short(unknown, 60)));
        }
        let topic = match obj.get("topic") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => return Err("topic must be a string".into()),
            None => return Err("topic is required".into()),
        };
        check_topic_name(&topic)?;
        let description = match obj.get("description") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(d)) => {
                if d.chars().count() > MAX_DESCRIPTION_CHARS {
                    return Err(format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"));
                }
                if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    return Err("description contains control characters".into());
                }
                Some(d.clone())
            }
            Some(_) => return Err("description must be a string".into()),
        };
        let change = |name: &str| -> Result<Change<Value>, String> {
            match obj.get(name) {
                None => Ok(Change::Keep),
                Some(Value::Null) => Ok(Change::Clear),
                Some(v) => Ok(Change::Set(v.clone())),
            }
        };
        let schema = change("schema")?;
        let example = change("example")?;
        if let Change::Set(example) = &example {
            check_example(example)?;
        }
        Ok(Self {
            topic,
            description,
            schema,
            example,
        })
    }

    /// The entry this definition makes of `current` (None: a new topic), with its schema
    /// compiled: a schema that is not valid, or an example that does not match it, is an
    /// error naming what is wrong.
    pub fn apply(&self, current: Option<&CatalogEntry>) -> Result<(CatalogEntry, Option<MessageSchema>), String> {
        let base = current.cloned().unwrap_or_else(|| CatalogEntry::named(&self.topic));
        let entry = CatalogEntry {
            topic: self.topic.clone(),
            description: self.description.clone().unwrap_or(base.description),
            schema: self.schema.apply(base.schema),
            example: self.example.apply(base.example),
            version: base.version,
        };
        let compiled = match &entry.schema {
            Some(s) => Some(MessageSchema::compile(s).map_err(|e| format!("schema: {e}"))?),
            None => None,
        };
        if let (Some(schema), Some(example)) = (&compiled, &entry.example) {
            if let Err(e) = schema.check(example) {
                return Err(format!("example does not match the schema: {e}"));
            }
        }
        Ok((entry, compiled))
    }
}

/// The catalog's topic syntax (`resource:event`, lowercase letters, digits, `_ - .`).
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    let named = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.')
    };
    if topic.len() > super::topic::MAX_TOPIC_LEN {
        return Err(format!(
            "topic is longer than {} characters",
            super::topic::MAX_TOPIC_LEN
        ));
    }
    match topic.split_once(':') {
        Some((r, e)) if named(r) && named(e) => Ok(()),
        _ => Err(format!(
            "topic '{}' is not of the form resource:event (lowercase letters, digits, _ - .)",
            short(topic, 100)
        )),
    }
}

fn check_example(example: &Value) -> Result<(), String> {
    if !example.is_object() {
        return Err("example must be a JSON object (a message)".into());
    }
    let size = serde_json::to_vec(example).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_EXAMPLE_BYTES {
        return Err(format!(
            "example is {size} bytes, more than the limit of {MAX_EXAMPLE_BYTES}"
        ));
    }
    Ok(())
}

/// An example's fields, as a published message's (`Map::new()` for none).
pub fn example_fields(example: Option<&Value>) -> Option<&Map<String, Value>> {
    example.and_then(Value::as_object)
}

/// `s` cut to at most `max` characters (an ellipsis marks the cut), for error texts.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
