//! The 0/1 flags of the API (`is_active`, `status`), which clients send as numbers,
//! numeric strings or booleans.

use serde_json::Value;

/// Accepts 0/1, "0"/"1" and true/false; anything else is `None`.
pub fn parse_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::String(s) => match s.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_documented_forms() {
        for (v, want) in [
            (json!(0), false),
            (json!(1), true),
            (json!("0"), false),
            (json!("1"), true),
            (json!(false), false),
            (json!(true), true),
        ] {
            assert_eq!(parse_flag(&v), Some(want), "{v}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for v in [json!(2), json!(-1), json!("yes"), json!(null), json!([1]), json!(0.5)] {
            assert_eq!(parse_flag(&v), None, "{v}");
        }
    }
}
