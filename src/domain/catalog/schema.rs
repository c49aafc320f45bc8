//! A topic's message schema: JSON Schema 2020-12 compiled once by the `jsonschema` crate.
//!
//! Schemas come from admins, but are still bounded: at most `MAX_SCHEMA_BYTES` serialized and
//! `MAX_SCHEMA_DEPTH` levels deep; `$ref`s resolve only inside the schema (the crate is built
//! without its HTTP and file retrievers, and `offline()` refuses any other), so defining a
//! schema never makes a request; `pattern`s run on the `regex` engine (linear time, no
//! backtracking).

use std::sync::Arc;

use jsonschema::{PatternOptions, Validator};
use serde_json::Value;

use super::short;

/// Largest schema, serialized.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects in a schema.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// The only `$schema` accepted (and the dialect assumed without one).
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
/// Longest error text a mismatch gives (the failing value may be large).
const MAX_ERROR_CHARS: usize = 300;

/// A compiled message schema. Cheap to clone.
#[derive(Clone)]
pub struct MessageSchema(Arc<Validator>);

impl std::fmt::Debug for MessageSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageSchema")
    }
}

impl MessageSchema {
    /// Compiles `schema`; the error says what is wrong with it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err("must be a JSON object (or a boolean)".into());
        }
        let size = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_SCHEMA_BYTES {
            return Err(format!("is {size} bytes, more than the limit of {MAX_SCHEMA_BYTES}"));
        }
        if depth(schema) > MAX_SCHEMA_DEPTH {
            return Err(format!("is nested deeper than {MAX_SCHEMA_DEPTH} levels"));
        }
        if let Some(dialect) = schema.get("$schema") {
            if dialect.as_str() != Some(DIALECT) {
                return Err(format!("$schema must be {DIALECT} (JSON Schema 2020-12) or absent"));
            }
        }
        let validator = jsonschema::draft202012::options()
            .offline()
            .with_pattern_options(PatternOptions::regex())
            .build(schema)
            .map_err(|e| {
                format!(
                    "is not valid JSON Schema 2020-12: {}",
                    describe(&e.instance_path().to_string(), &e.to_string())
                )
            })?;
        Ok(Self(Arc::new(validator)))
    }

    /// Ok when `message` matches; otherwise the first failure, as `/path: what is wrong`.
    pub fn check(&self, message: &Value) -> Result<(), String> {
        match self.0.validate(message) {
            Ok(()) => Ok(()),
            Err(e) => Err(describe(&e.instance_path().to_string(), &e.to_string())),
        }
    }
}

/// `/order_id: "x" is not of type "integer"`; the message itself is `(root)`.
fn describe(path: &str, what: &str) -> String {
    let path = if path.is_empty() { "(root)" } else { path };
    short(&format!("{path}: {what}"), MAX_ERROR_CHARS)
}

/// Levels of arrays and objects (a scalar is 0), counted without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(d);
        if d > MAX_SCHEMA_DEPTH {
            break;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}
