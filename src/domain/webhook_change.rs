//! What `webhook.update` may change, parsed from its JSON object with the same rules (and
//! the same 101 messages) as `webhook.create`. Every field is optional; a field not given
//! keeps its value.
//!
//! For `max_rate` and `filter`, null is a value ("no limit", "no filter"), not "keep".

use serde_json::Value;

use super::description::WebhookDescription;
use super::signing_keys::{parse_scheme, KeyPair, SignatureScheme};
use super::steering::{parse_filter, parse_max_rate, parse_ordered, FilterSource, MaxRate};
use super::webhook::{optional_str, parse_active, parse_topics, WebhookDataError};
use super::{Catalog, ExtraHeaders, TopicList, WebhookUrl};

/// A validated `webhook.update`.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<WebhookUrl>,
    pub topics: Option<TopicList>,
    pub extra_headers: Option<ExtraHeaders>,
    pub is_active: Option<bool>,
    pub ordered: Option<bool>,
    /// `Some(None)`: remove the limit.
    pub max_rate: Option<Option<MaxRate>>,
    /// `Some(None)`: remove the filter.
    pub filter: Option<Option<FilterSource>>,
    pub signature_scheme: Option<SignatureScheme>,
    /// A pair to use should the webhook switch to `hmac+ed25519` without one (switching
    /// to "hmac" drops the pair; switching on again makes a new one).
    pub key_pair: Option<KeyPair>,
    pub description: Option<WebhookDescription>,
}

const FIELDS: &[&str] = &[
    "url",
    "topics",
    "extra_headers",
    "is_active",
    "ordered",
    "max_rate",
    "filter",
    "signature_scheme",
    "description",
];

impl WebhookChange {
    pub fn from_json(value: &Value, catalog: &Catalog, allow_private_targets: bool) -> Result<Self, WebhookDataError> {
        let obj = value.as_object().ok_or(WebhookDataError::NotAnObject)?;
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(WebhookDataError::UnknownField(unknown.clone()));
        }
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
        let signature_scheme = parse_scheme(obj)?;
        let description = optional_str(obj, "description")?
            .map(WebhookDescription::parse)
            .transpose()?;
        Ok(Self {
            description,
            key_pair: signature_scheme
                .filter(|s| s.has_key_pair())
                .map(|_| KeyPair::generate()),
            signature_scheme,
            url,
            topics,
            extra_headers,
            is_active,
            ordered: parse_ordered(obj)?,
            max_rate: parse_max_rate(obj)?,
            filter: parse_filter(obj)?,
        })
    }

    /// Whether it changes where or how payloads are sent (which dispatchers cache).
    pub fn changes_target(&self) -> bool {
        self.url.is_some() || self.extra_headers.is_some() || self.signature_scheme.is_some()
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
    fn steering_fields_set_and_clear() {
        let c = parse(json!({"ordered": true, "max_rate": 5, "filter": "topic == 'order:created'"})).unwrap();
        assert_eq!(c.ordered, Some(true));
        assert_eq!(c.max_rate.unwrap().unwrap().per_second(), 5.0);
        assert_eq!(c.filter.unwrap().unwrap().as_str(), "topic == 'order:created'");
        let c = parse(json!({"max_rate": null, "filter": null})).unwrap();
        assert_eq!((c.max_rate, c.filter), (Some(None), Some(None)));
        let c = parse(json!({})).unwrap();
        assert!(c.ordered.is_none() && c.max_rate.is_none() && c.filter.is_none());
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
