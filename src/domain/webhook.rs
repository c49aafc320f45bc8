//! The webhook entity: what `webhook.create` accepts (`NewWebhook`, parsed from the JSON
//! object of the seed document) and what is stored and listed (`Webhook`).

use serde_json::{Map, Value};

use super::description::WebhookDescription;
use super::headers::HeadersError;
use super::secret::SecretError;
use super::signing_keys::{parse_scheme, KeyPair, PreviousKey, SignatureScheme};
use super::steering::{parse_filter, parse_max_rate, parse_ordered, FilterSource, MaxRate};
use super::topic::TopicError;
use super::webhook_url::UrlError;
use super::{parse_flag, Catalog, ExtraHeaders, MerchantCode, MerchantId, SecretKey, TopicList, WebhookId, WebhookUrl};

/// Why the data given to `webhook.create` is invalid (error 101). The text says exactly what.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebhookDataError {
    #[error("webhook data must be a JSON object")]
    NotAnObject,
    #[error("unknown field '{0}'")]
    UnknownField(String),
    #[error("field '{0}' is required")]
    Missing(&'static str),
    #[error("field '{field}' must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("topics: {0}")]
    Topics(#[from] TopicError),
    #[error("{0}")]
    Url(#[from] UrlError),
    #[error("{0}")]
    Headers(#[from] HeadersError),
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("merchant_code: {0}")]
    MerchantCode(String),
    #[error("overlap: {0}")]
    Overlap(String),
    #[error("filter: {0}")]
    Filter(String),
    #[error("description: {0}")]
    Description(String),
    #[error("signature_scheme must be \"hmac\" or \"hmac+ed25519\", not {0}")]
    Scheme(String),
}

/// A webhook to be created, every field validated.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub topics: TopicList,
    pub url: WebhookUrl,
    pub is_active: bool,
    pub extra_headers: ExtraHeaders,
    pub secret_key: SecretKey,
    /// Only admins may name the merchant; merchant users create for their own.
    pub merchant_code: Option<MerchantCode>,
    pub ordered: bool,
    pub max_rate: Option<MaxRate>,
    pub filter: Option<FilterSource>,
    pub signature_scheme: SignatureScheme,
    /// Made when the scheme has one (`hmac+ed25519`).
    pub key_pair: Option<KeyPair>,
    pub description: WebhookDescription,
}

const FIELDS: &[&str] = &[
    "topics",
    "url",
    "is_active",
    "extra_headers",
    "secret_key",
    "merchant_code",
    "ordered",
    "max_rate",
    "filter",
    "signature_scheme",
    "description",
];

impl NewWebhook {
    pub fn from_json(value: &Value, catalog: &Catalog, allow_private_targets: bool) -> Result<Self, WebhookDataError> {
        let obj = value.as_object().ok_or(WebhookDataError::NotAnObject)?;
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(WebhookDataError::UnknownField(unknown.clone()));
        }
        let topics = match obj.get("topics") {
            None | Some(Value::Null) => return Err(WebhookDataError::Missing("topics")),
            Some(v) => parse_topics(v, catalog)?,
        };
        let url = WebhookUrl::parse(required_str(obj, "url")?, allow_private_targets)?;
        let is_active = match obj.get("is_active") {
            None | Some(Value::Null) => true,
            Some(v) => parse_active(v)?,
        };
        let extra_headers = match optional_str(obj, "extra_headers")? {
            None => ExtraHeaders::default(),
            Some(s) => ExtraHeaders::parse(s)?,
        };
        let secret_key = match optional_str(obj, "secret_key")? {
            None => SecretKey::generate(),
            Some(s) => SecretKey::parse(s)?,
        };
        let merchant_code = optional_str(obj, "merchant_code")?
            .map(|s| MerchantCode::parse(s).map_err(|e| WebhookDataError::MerchantCode(e.to_string())))
            .transpose()?;
        let signature_scheme = parse_scheme(obj)?.unwrap_or_default();
        let description = optional_str(obj, "description")?
            .map(WebhookDescription::parse)
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            description,
            key_pair: signature_scheme.has_key_pair().then(KeyPair::generate),
            signature_scheme,
            topics,
            url,
            is_active,
            extra_headers,
            secret_key,
            merchant_code,
            ordered: parse_ordered(obj)?.unwrap_or(false),
            max_rate: parse_max_rate(obj)?.flatten(),
            filter: parse_filter(obj)?.flatten(),
        })
    }
}

pub(super) fn parse_topics(v: &Value, catalog: &Catalog) -> Result<TopicList, WebhookDataError> {
    const EXPECTED: WebhookDataError = WebhookDataError::WrongType {
        field: "topics",
        expected: "a string or an array of strings",
    };
    match v {
        Value::String(s) => Ok(TopicList::parse_joined(s, catalog)?),
        Value::Array(items) => {
            let entries = items
                .iter()
                .map(|v| v.as_str())
                .collect::<Option<Vec<_>>>()
                .ok_or(EXPECTED)?;
            Ok(TopicList::parse(entries, catalog)?)
        }
        _ => Err(EXPECTED),
    }
}

pub(super) fn parse_active(v: &Value) -> Result<bool, WebhookDataError> {
    parse_flag(v).ok_or(WebhookDataError::WrongType {
        field: "is_active",
        expected: "0, 1, \"0\", \"1\", true or false",
    })
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, WebhookDataError> {
    optional_str(obj, field)?.ok_or(WebhookDataError::Missing(field))
}

/// A string field; absent and null both mean "not given".
pub(super) fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, WebhookDataError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WebhookDataError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A stored webhook, as `webhook.list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub merchant_id: MerchantId,
    /// The increment id of the latest payload made for this webhook; 0 before the first.
    pub increment_id: i64,
    pub is_active: bool,
    pub topics: String,
    pub url: String,
    pub extra_headers: String,
    pub secret_key: String,
    /// The code of the merchant it belongs to.
    pub merchant_code: String,
    /// Moves with every change of where or how its payloads are sent (URL, headers,
    /// secrets), so dispatchers know when a target they loaded is stale.
    pub version: i64,
    /// After rotations, the keys that keep signing alongside the current one, each until
    /// the expiry its rotation announced (newest first; expired ones may linger until the
    /// next rotation and never sign).
    pub previous_keys: Vec<PreviousKey>,
    pub signature_scheme: SignatureScheme,
    /// The Ed25519 seed (base64) and the public key (`whpk_…`) with `hmac+ed25519`.
    pub signing_key: Option<String>,
    pub public_key: Option<String>,
    /// Why hookd turned it off (410 Gone, failing too long), with when; cleared when a
    /// caller sets its status.
    pub disabled_reason: Option<String>,
    /// At most one attempt in flight, in increment order.
    pub ordered: bool,
    /// Deliveries per second at most; None is no limit.
    pub max_rate: Option<f64>,
    /// A CEL expression over `topic` and `message`; payloads are made only where it holds.
    pub filter: Option<String>,
    /// Free text shown as its name (§7.7); "" when none was given.
    pub description: String,
    /// When its current run of failed attempts began (None after a success).
    pub failing_since: Option<crate::time::Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewWebhook, WebhookDataError> {
        NewWebhook::from_json(&v, &Catalog::default_catalog(), false)
    }

    #[test]
    fn the_seed_example_parses() {
        let w = parse(json!({"is_active": 1, "topics": "order:*", "url": "http://example.com",
            "extra_headers": "", "secret_key": "2RUJ8NXLnLRrAj3"}))
        .unwrap();
        assert_eq!(w.topics.joined(), "order:*");
        assert!(w.is_active);
        assert_eq!(w.secret_key.as_str(), "2RUJ8NXLnLRrAj3");
    }

    #[test]
    fn defaults_apply() {
        let w = parse(json!({"topics": ["order:created", "*"], "url": "https://example.com/h"})).unwrap();
        assert_eq!(w.topics.joined(), "order:created,*");
        assert!(w.is_active);
        assert_eq!(w.extra_headers.raw(), "");
        assert_eq!(w.secret_key.as_str().len(), 32);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(parse(json!([1])).unwrap_err(), WebhookDataError::NotAnObject);
        assert_eq!(
            parse(json!({"topics": "order:*", "url": "http://example.com", "color": 1})).unwrap_err(),
            WebhookDataError::UnknownField("color".into())
        );
        assert_eq!(
            parse(json!({"url": "http://example.com"})).unwrap_err(),
            WebhookDataError::Missing("topics")
        );
        assert_eq!(
            parse(json!({"topics": "order:*"})).unwrap_err(),
            WebhookDataError::Missing("url")
        );
        assert!(matches!(
            parse(json!({"topics": 5, "url": "http://example.com"})).unwrap_err(),
            WebhookDataError::WrongType { field: "topics", .. }
        ));
        assert!(matches!(
            parse(json!({"topics": "order:*", "url": "http://example.com", "is_active": "yes"})).unwrap_err(),
            WebhookDataError::WrongType { field: "is_active", .. }
        ));
    }
}
