//! One message taken in from a broker: its body parsed into what `event.publish` takes, and
//! the outcome of publishing it sorted into "acknowledge" and "give back to the broker".
//!
//! The one idea: a message is acknowledged only when nothing would change by trying it again.
//! That is when it was published (the store's write returned), or when it can never be
//! published (bad JSON, an unknown topic or merchant, a schema mismatch, too big): those are
//! rejected, counted by a reason from a fixed list and logged once. Everything else (the
//! database down, overloaded or full) is transient: the broker gets the message back.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::app::events::{PublishOptions, MAX_IDEMPOTENCY_KEY_LEN};
use crate::app::{App, AppError};
use crate::domain::TraceParent;

/// The body of an ingested message (unknown fields refused, as `event.publish` refuses
/// unknown options).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    topic: String,
    message: Value,
    #[serde(default)]
    merchant_code: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// A message as a consumer hands it over, whichever the broker.
pub struct Incoming<'a> {
    pub body: &'a [u8],
    /// The broker's message id (AMQP `message_id`, NATS `Nats-Msg-Id`), if any.
    pub message_id: Option<&'a str>,
    /// The message's `traceparent` header, if any (an invalid one is ignored).
    pub traceparent: Option<&'a str>,
}

/// Why a message was rejected: the label of `hookd_ingest_rejected_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The body is not JSON.
    NotJson,
    /// JSON, but not `{topic, message, merchant_code?, idempotency_key?}`.
    Shape,
    TooBig,
    Topic,
    Merchant,
    Schema,
    /// Any other refusal of `event.publish` (e.g. a bad idempotency key, a message that is
    /// not an object).
    Invalid,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::NotJson,
        Reason::Shape,
        Reason::TooBig,
        Reason::Topic,
        Reason::Merchant,
        Reason::Schema,
        Reason::Invalid,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::Shape => "shape",
            Reason::TooBig => "too_big",
            Reason::Topic => "topic",
            Reason::Merchant => "merchant",
            Reason::Schema => "schema",
            Reason::Invalid => "invalid",
        }
    }
}

/// What the consumer does with the message.
#[derive(Debug)]
pub enum Verdict {
    /// Published (or a replay of an idempotency key already published): acknowledge.
    Published { replayed: bool },
    /// Can never be published: acknowledge, count, log once.
    Rejected(Reason, String),
    /// Not stored for a reason that may pass: give it back to the broker (after a pause).
    Transient(AppError),
}

/// Publishes the message as `event.publish` would for an admin (see README "Ingestion").
pub async fn publish(app: &App, incoming: &Incoming<'_>) -> Verdict {
    // Whitespace and escapes may make a body larger than its message; beyond twice the
    // limit it cannot be one that fits.
    let limit = app.settings.max_message_bytes.saturating_mul(2).saturating_add(4096);
    if incoming.body.len() > limit {
        return Verdict::Rejected(
            Reason::TooBig,
            format!("body is {} bytes, more than {limit}", incoming.body.len()),
        );
    }
    let body: Body = match serde_json::from_slice(incoming.body) {
        Ok(body) => body,
        Err(e) if e.is_syntax() || e.is_eof() => return Verdict::Rejected(Reason::NotJson, e.to_string()),
        Err(e) => return Verdict::Rejected(Reason::Shape, e.to_string()),
    };
    let options = PublishOptions {
        merchant_code: body.merchant_code,
        idempotency_key: Some(idempotency_key(body.idempotency_key, incoming)),
        trace: incoming.traceparent.and_then(TraceParent::parse),
        ..Default::default()
    };
    match app.publish(&body.topic, &body.message, &options).await {
        Ok(published) => Verdict::Published {
            replayed: published.replayed,
        },
        Err(e) => match rejection(&e) {
            Some(reason) => Verdict::Rejected(reason, e.to_string()),
            None => Verdict::Transient(e),
        },
    }
}

/// The given key, else the broker's message id (when it could be a key), else the body's
/// SHA-256: a message given again by the broker is then the same event.
fn idempotency_key(given: Option<String>, incoming: &Incoming<'_>) -> String {
    if let Some(key) = given {
        return key; // checked by `App::publish` like any other
    }
    match incoming.message_id {
        Some(id) if !id.is_empty() && id.len() <= MAX_IDEMPOTENCY_KEY_LEN => id.to_string(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(incoming.body))),
    }
}

/// The reason a refusal of `App::publish` is final; None when trying again may succeed.
fn rejection(error: &AppError) -> Option<Reason> {
    match error {
        AppError::SchemaMismatch(_) => Some(Reason::Schema),
        // The texts are `App::publish`'s own (see `events.rs`, `catalog`, `merchants.rs`).
        AppError::InvalidData(text) => Some(if text.starts_with("topic") {
            Reason::Topic
        } else if text.starts_with("merchant_code") || text.starts_with("no merchant") {
            Reason::Merchant
        } else if text.starts_with("message is ") && text.contains("bytes") {
            Reason::TooBig
        } else {
            Reason::Invalid
        }),
        AppError::NoSuchMerchant(_) => Some(Reason::Merchant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn incoming<'a>(body: &'a [u8], id: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            body,
            message_id: id,
            traceparent: None,
        }
    }

    #[test]
    fn the_key_is_the_given_one_then_the_message_id_then_the_body_hash() {
        let body = br#"{"topic":"a:b","message":{}}"#;
        assert_eq!(idempotency_key(Some("k".into()), &incoming(body, Some("m"))), "k");
        assert_eq!(idempotency_key(None, &incoming(body, Some("m"))), "m");
        let hashed = idempotency_key(None, &incoming(body, None));
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64, "{hashed}");
        assert_eq!(hashed, idempotency_key(None, &incoming(body, Some(""))));
        let long = "x".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        assert_eq!(hashed, idempotency_key(None, &incoming(body, Some(&long))));
    }

    #[test]
    fn refusals_are_sorted_by_reason_and_storage_failures_are_transient() {
        let invalid = |t: &str| rejection(&AppError::InvalidData(t.into()));
        assert_eq!(invalid("topic: unknown topic 'x:y'"), Some(Reason::Topic));
        assert_eq!(invalid("merchant_code: no merchant 'm'"), Some(Reason::Merchant));
        assert_eq!(
            invalid("merchant_code is required when more than one merchant exists"),
            Some(Reason::Merchant)
        );
        assert_eq!(invalid("no merchant exists yet (create …)"), Some(Reason::Merchant));
        assert_eq!(
            invalid("message is 9 bytes, more than the limit of 8"),
            Some(Reason::TooBig)
        );
        assert_eq!(
            invalid("idempotency_key must be 1 to 255 characters"),
            Some(Reason::Invalid)
        );
        assert_eq!(rejection(&AppError::SchemaMismatch("/n".into())), Some(Reason::Schema));
        assert_eq!(rejection(&AppError::Store(StoreError::Overloaded)), None);
        assert_eq!(rejection(&AppError::Store(StoreError::WriterGone)), None);
    }

    #[test]
    fn reason_labels_are_few_and_distinct() {
        let mut labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
