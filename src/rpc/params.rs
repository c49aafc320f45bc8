//! Positional arguments of a `call`, with the errors for missing (6) and malformed (-32602)
//! ones. `args` may be omitted, an array, or a single value standing for one argument.

use serde_json::Value;

use super::error::RpcError;

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
