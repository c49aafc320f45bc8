//! What `webhook.update` may change, parsed from its JSON object with the same rules (and
//! the same 101 messages) as `webhook.create`. Every field is optional; a field not given
//! keeps its value.
//!
//! `ordered`, `max_rate` and `filter` belong to receiver steering (CONTRACT §6.2), which is
//! not built yet: their current behaviour (`false`, `null`, `null`) is accepted, anything
//! else is refused, so no setting is stored that nothing would honour.

use serde_json::{Map, Value};

use super::webhook::{optional_str, parse_active, parse_topics, WebhookDataError};
use super::{Catalog, ExtraHeaders, TopicList, WebhookUrl};

/// A validated `webhook.update`.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<WebhookUrl>,
    pub topics: Option<TopicList>,
    pub extra_headers: Option<ExtraHeaders>,
    pub is_active: Option<bool>,
}

const FIELDS: &[&str] = &[
    "url",
    "topics",
    "extra_headers",
    "is_active",
    "ordered",
    "max_rate",
    "filter",
];

impl WebhookChange {
    pub fn from_json(value: &Value, catalog: &Catalog, allow_private_targets: bool) -> Result<Self, WebhookDataError> {
        let obj = value.as_object().ok_or(WebhookDataError::NotAnObject)?;
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(WebhookDataError::UnknownField(unknown.clone()));
        }
        not_yet(obj, "ordered", &Value::Bool(false))?;
        not_yet(obj, "max_rate", &Value::Null)?;
        not_yet(obj, "filter", &Value::Null)?;
        let topics = match obj.get("topics") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_topics(v, catalog)?),
        };
        let url = optional_str(obj, "url")?
            .map(|s| WebhookUrl::parse(s, allow_private_targets))
            .transpose()?;
        let extra_headers = optional_str(obj, "extra_headers")?
            .map(ExtraHeaders::parse)
            .transpose()?;
        let is_active = match obj.get("is_active") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_active(v)?),
        };
        Ok(Self {
            url,
            topics,
            extra_headers,
            is_active,
        })
    }

    /// Whether it changes where or how payloads are sent (which dispatchers cache).
    pub fn changes_target(&self) -> bool {
        self.url.is_some() || self.extra_headers.is_some()
    }
}

/// A steering field: only its current behaviour is accepted until it is built.
fn not_yet(obj: &Map<String, Value>, field: &'static str, current: &Value) -> Result<(), WebhookDataError> {
    match obj.get(field) {
        Some(v) if v != current => Err(WebhookDataError::NotSupportedYet(field)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<WebhookChange, WebhookDataError> {
        WebhookChange::from_json(&v, &Catalog::default_catalog(), false)
    }

    #[test]
    fn every_field_is_optional() {
        let c = parse(json!({})).unwrap();
        assert!(c.url.is_none() && c.topics.is_none() && c.extra_headers.is_none() && c.is_active.is_none());
        let c = parse(json!({"url": "https://example.com/new", "topics": ["order:*"], "is_active": "0"})).unwrap();
        assert_eq!(c.url.unwrap().as_str(), "https://example.com/new");
        assert_eq!(c.topics.unwrap().joined(), "order:*");
        assert_eq!(c.is_active, Some(false));
    }

    #[test]
    fn steering_fields_accept_only_their_current_behaviour() {
        assert!(parse(json!({"ordered": false, "max_rate": null, "filter": null})).is_ok());
        assert_eq!(
            parse(json!({"ordered": true})).unwrap_err(),
            WebhookDataError::NotSupportedYet("ordered")
        );
        assert_eq!(
            parse(json!({"max_rate": 5})).unwrap_err(),
            WebhookDataError::NotSupportedYet("max_rate")
        );
        assert_eq!(
            parse(json!({"filter": "true"})).unwrap_err(),
            WebhookDataError::NotSupportedYet("filter")
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse(json!({"secret_key": "x"})).unwrap_err(),
            WebhookDataError::UnknownField("secret_key".into())
        );
        assert!(matches!(
            parse(json!({"is_active": "yes"})).unwrap_err(),
            WebhookDataError::WrongType { field: "is_active", .. }
        ));
        assert!(matches!(
            parse(json!({"url": "ftp://x"})).unwrap_err(),
            WebhookDataError::Url(_)
        ));
        assert!(matches!(
            parse(json!({"topics": "nosuch:topic"})).unwrap_err(),
            WebhookDataError::Topics(_)
        ));
        assert_eq!(parse(json!(5)).unwrap_err(), WebhookDataError::NotAnObject);
    }
}
