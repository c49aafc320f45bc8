//! A webhook's steering settings (CONTRACT §6.2): `ordered` delivery, a `max_rate` in
//! deliveries per second, and a `filter` expression deciding which events make payloads.
//! Parsed here with the same 101 messages on `webhook.create` and `webhook.update`.

use serde_json::{Map, Value};

use super::parse_flag;
use super::webhook::WebhookDataError;

/// Highest `max_rate` accepted, in deliveries per second.
pub const MAX_RATE_LIMIT: f64 = 100_000.0;

/// Lowest `max_rate` accepted: one delivery an hour. A slower cap means nothing a receiver
/// could want, and its interval between tokens stops being a usable number.
pub const MIN_RATE_LIMIT: f64 = 1.0 / 3600.0;

/// Longest `filter` expression accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;

/// A webhook's rate cap in deliveries per second: from one an hour to `MAX_RATE_LIMIT`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxRate(f64);

impl MaxRate {
    pub fn new(per_second: f64) -> Option<Self> {
        (MIN_RATE_LIMIT..=MAX_RATE_LIMIT)
            .contains(&per_second)
            .then_some(Self(per_second))
    }

    /// A stored rate as pacing uses it: within the bounds whatever was stored (a row written
    /// before the lower bound existed, or by hand), so a token's interval is always finite.
    pub fn clamped(per_second: f64) -> Self {
        if per_second.is_nan() {
            return Self(MIN_RATE_LIMIT);
        }
        Self(per_second.clamp(MIN_RATE_LIMIT, MAX_RATE_LIMIT))
    }

    pub fn per_second(self) -> f64 {
        self.0
    }
}

/// A filter expression as given: not empty, not too long, and valid CEL (`filter`).
#[derive(Clone, Debug, PartialEq)]
pub struct FilterSource(String);

impl FilterSource {
    pub fn parse(s: &str) -> Result<Self, WebhookDataError> {
        if s.trim().is_empty() {
            return Err(WebhookDataError::Filter(
                "the expression is empty (use null for no filter)".into(),
            ));
        }
        if s.len() > MAX_FILTER_BYTES {
            return Err(WebhookDataError::Filter(format!(
                "the expression is longer than {MAX_FILTER_BYTES} bytes"
            )));
        }
        // Compiled only to check it: the program itself is compiled again, once, at publish.
        super::filter::compile(s).map_err(|e| WebhookDataError::Filter(e.to_string()))?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ordered`: a 0/1 flag like `is_active`; absent or null is "not given".
pub(super) fn parse_ordered(obj: &Map<String, Value>) -> Result<Option<bool>, WebhookDataError> {
    match obj.get("ordered") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_flag(v).map(Some).ok_or(WebhookDataError::WrongType {
            field: "ordered",
            expected: "true, false, 0 or 1",
        }),
    }
}

/// `max_rate`: absent is "not given" (None); null is "no limit" (Some(None)).
pub(super) fn parse_max_rate(obj: &Map<String, Value>) -> Result<Option<Option<MaxRate>>, WebhookDataError> {
    let rate = match obj.get("max_rate") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Number(n)) => n.as_f64().and_then(MaxRate::new),
        Some(_) => None,
    };
    rate.map(|r| Some(Some(r))).ok_or(WebhookDataError::WrongType {
        field: "max_rate",
        expected: "null or a number of deliveries per second from 1/3600 (one an hour) to 100000",
    })
}

/// `filter`: absent is "not given" (None); null is "no filter" (Some(None)).
pub(super) fn parse_filter(obj: &Map<String, Value>) -> Result<Option<Option<FilterSource>>, WebhookDataError> {
    match obj.get("filter") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => FilterSource::parse(s).map(|f| Some(Some(f))),
        Some(_) => Err(WebhookDataError::WrongType {
            field: "filter",
            expected: "null or a string (a CEL expression)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn absent_and_null_differ_where_null_means_none() {
        assert_eq!(parse_max_rate(&obj(json!({}))).unwrap(), None);
        assert_eq!(parse_max_rate(&obj(json!({"max_rate": null}))).unwrap(), Some(None));
        assert_eq!(
            parse_max_rate(&obj(json!({"max_rate": 2.5}))).unwrap(),
            Some(MaxRate::new(2.5))
        );
        assert_eq!(parse_filter(&obj(json!({}))).unwrap(), None);
        assert_eq!(parse_filter(&obj(json!({"filter": null}))).unwrap(), Some(None));
        assert_eq!(parse_ordered(&obj(json!({"ordered": null}))).unwrap(), None);
        assert_eq!(parse_ordered(&obj(json!({"ordered": 1}))).unwrap(), Some(true));
    }

    #[test]
    fn the_slowest_rate_is_one_an_hour_and_stored_rates_are_clamped_into_the_bounds() {
        assert_eq!(
            MaxRate::new(1.0 / 3600.0).map(MaxRate::per_second),
            Some(MIN_RATE_LIMIT)
        );
        assert_eq!(MaxRate::new(100_000.0).map(MaxRate::per_second), Some(MAX_RATE_LIMIT));
        assert_eq!(MaxRate::new(1.0 / 3601.0), None);
        assert_eq!(MaxRate::new(f64::NAN), None);
        assert_eq!(MaxRate::new(f64::INFINITY), None);
        for (stored, used) in [
            (5e-324, MIN_RATE_LIMIT),
            (-1.0, MIN_RATE_LIMIT),
            (f64::NAN, MIN_RATE_LIMIT),
            (f64::INFINITY, MAX_RATE_LIMIT),
            (2.5, 2.5),
        ] {
            assert_eq!(MaxRate::clamped(stored).per_second(), used, "{stored}");
        }
        let WebhookDataError::WrongType { expected, .. } =
            parse_max_rate(&obj(json!({"max_rate": 5e-324}))).unwrap_err()
        else {
            panic!("a wrong max_rate")
        };
        assert!(expected.contains("1/3600 (one an hour)"), "{expected}");
    }

    #[test]
    fn bad_values_name_the_field() {
        for bad in [
            json!(0),
            json!(-1),
            json!("5"),
            json!(1e9),
            json!(true),
            json!(5e-324),
            json!(0.0002),
        ] {
            assert!(matches!(
                parse_max_rate(&obj(json!({ "max_rate": bad }))).unwrap_err(),
                WebhookDataError::WrongType { field: "max_rate", .. }
            ));
        }
        assert!(matches!(
            parse_ordered(&obj(json!({"ordered": "yes"}))).unwrap_err(),
            WebhookDataError::WrongType { field: "ordered", .. }
        ));
        assert!(matches!(
            parse_filter(&obj(json!({"filter": 5}))).unwrap_err(),
            WebhookDataError::WrongType { field: "filter", .. }
        ));
        assert!(matches!(
            parse_filter(&obj(json!({"filter": "  "}))).unwrap_err(),
            WebhookDataError::Filter(_)
        ));
        let WebhookDataError::Filter(message) = parse_filter(&obj(json!({"filter": "message.total >"}))).unwrap_err()
        else {
            panic!("a CEL syntax error is a filter error")
        };
        assert!(message.starts_with("line 1, column "), "{message}");
        assert!(parse_filter(&obj(json!({"filter": "message.total > 100"}))).is_ok());
        let long = format!("true{}", " ".repeat(MAX_FILTER_BYTES));
        assert!(matches!(
            parse_filter(&obj(json!({ "filter": long }))).unwrap_err(),
            WebhookDataError::Filter(_)
        ));
    }
}
