//! Positional arguments of a `call`, with the errors for missing (6) and malformed (-32602)
//! ones. `args` may be omitted, an array, or a single value standing for one argument.

use serde_json::{Map, Value};

use super::error::RpcError;
use crate::app::AppError;

pub struct Args {
    path: String,
    items: Vec<Value>,
}

impl Args {
    pub fn new(path: &str, args: Option<Value>) -> Self {
        let items = match args {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(single) => vec![single],
        };
        Self {
            path: path.to_string(),
            items,
        }
    }

    /// Fails with -32602 when more than `n` arguments were given.
    pub fn at_most(&self, n: usize) -> Result<(), RpcError> {
        if self.items.len() > n {
            return Err(RpcError::invalid_params(format!(
                "{} takes at most {n} argument(s), {} given",
                self.path,
                self.items.len()
            )));
        }
        Ok(())
    }

    pub fn get(&self, i: usize) -> Option<&Value> {
        self.items.get(i).filter(|v| !v.is_null())
    }

    /// Argument `i`, or error 6 naming it.
    pub fn required(&self, i: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(i).ok_or_else(|| RpcError::missing(name))
    }

    pub fn wrong_type(&self, name: &str, expected: &str) -> RpcError {
        RpcError::invalid_params(format!("{}: {name} must be {expected}", self.path))
    }
}

/// An integer id given as a JSON integer or a string of digits.
pub fn as_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An argument that must be a JSON object of named fields, none but `allowed`; anything
/// else is error 101 naming `what` (or the unknown field).
pub fn fields<'a>(value: &'a Value, what: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, AppError> {
    let obj = value
        .as_object()
        .ok_or_else(|| AppError::InvalidData(format!("{what}: must be a JSON object")))?;
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AppError::InvalidData(format!(
            "{what}: unknown field '{}' (the fields are {})",
            clip(unknown),
            allowed.join(", ")
        )));
    }
    Ok(obj)
}

/// A field that is a string when present (null counts as absent); 101 naming it otherwise.
pub fn opt_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, AppError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AppError::InvalidData(format!("{name}: must be a string"))),
    }
}

/// A name from a client, cut short for an error message.
pub fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}
