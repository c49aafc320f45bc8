//! Payloads: the body a receiver gets, rendered once when the event is published, and the
//! states a delivery moves through.
//!
//! Body: `{"topic":T,"merchant_code":M,"message":{…,"webhook_increment_id":N,
//! "event_timestamp":"2021-12-07T16:08:15+00:00"}}`. The message is serialized once per
//! event (`BodyTemplate`); each payload only appends its own increment id.

use serde_json::{Map, Value};

use crate::time::{format_timestamp, Millis};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Success,
    Failed,
    Canceled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Success,
        DeliveryStatus::Failed,
        DeliveryStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An event's body with the per-payload part left open (sent whole to the node that stores
/// it when publishes are forwarded, see `cluster`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BodyTemplate {
    /// Everything up to the message's own fields, e.g. `{"topic":…,"message":{"a":1`.
    head: String,
    /// Whether the message had fields (so a comma is needed before ours).
    has_fields: bool,
    message_len: usize,
    /// `"event_timestamp":"…"}}`
    tail: String,
}

impl BodyTemplate {
    /// `message` keeps its field order; fields named like ours are replaced by ours.
    pub fn new(topic: &str, merchant_code: &str, message: &Map<String, Value>, published_at: Millis) -> Self {
        let own = |k: &String| k == "webhook_increment_id" || k == "event_timestamp";
        let cleaned;
        let message = if message.keys().any(own) {
            let mut m = message.clone();
            m.retain(|k, _| !own(k));
            cleaned = m;
            &cleaned
        } else {
            message
        };
        let message_json = serde_json::to_string(message).expect("a JSON object serializes");
        let mut head = format!(
            "{{\"topic\":{},\"merchant_code\":{},\"message\":",
            Value::from(topic),
            Value::from(merchant_code)
        );
        head.push_str(&message_json[..message_json.len() - 1]);
        let tail = format!(",\"event_timestamp\":\"{}\"}}}}", format_timestamp(published_at));
        Self {
            head,
            has_fields: !message.is_empty(),
            message_len: message_json.len(),
            tail,
        }
    }

    /// The serialized size of the message as published (our own fields not counted).
    pub fn message_len(&self) -> usize {
        self.message_len
    }

    /// The body's bytes before and after the increment id: `render(n)` is `before`, `n` in
    /// decimal, then `after` (so a store can render the body where it draws the id).
    pub fn around_increment(&self) -> (Vec<u8>, &[u8]) {
        let mut before = String::with_capacity(self.head.len() + 24);
        self.push_before_increment(&mut before);
        (before.into_bytes(), self.tail.as_bytes())
    }

    pub fn render(&self, increment_id: i64) -> Vec<u8> {
        let mut out = String::with_capacity(self.head.len() + self.tail.len() + 48);
        self.push_before_increment(&mut out);
        out.push_str(&increment_id.to_string());
        out.push_str(&self.tail);
        out.into_bytes()
    }

    /// Everything up to the increment id's value: the head, a comma if the message had
    /// fields, and our field's name.
    fn push_before_increment(&self, out: &mut String) {
        out.push_str(&self.head);
        if self.has_fields {
            out.push(',');
        }
        out.push_str("\"webhook_increment_id\":");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_documented_envelope() {
        let msg = json!({"order_id": 7, "items": [1, 2], "webhook_increment_id": 99});
        let t = BodyTemplate::new("order:created", "shop1", msg.as_object().unwrap(), 1_638_893_295_000);
        let body: Value = serde_json::from_slice(&t.render(3)).unwrap();
        assert_eq!(
            body,
            json!({"topic": "order:created", "merchant_code": "shop1", "message": {
                "order_id": 7, "items": [1, 2], "webhook_increment_id": 3,
                "event_timestamp": "2021-12-07T16:08:15+00:00"}})
        );
        let raw = String::from_utf8(t.render(3)).unwrap();
        assert!(raw.starts_with("{\"topic\":\"order:created\",\"merchant_code\":\"shop1\",\"message\":{\"order_id\":7"));
    }

    #[test]
    fn replacing_our_own_fields_keeps_the_message_s_field_order() {
        let msg = json!({"a": 1, "event_timestamp": "x", "b": 2, "c": 3});
        let t = BodyTemplate::new("order:created", "m", msg.as_object().unwrap(), 0);
        let raw = String::from_utf8(t.render(5)).unwrap();
        assert!(
            raw.contains("\"message\":{\"a\":1,\"b\":2,\"c\":3,\"webhook_increment_id\":5,"),
            "{raw}"
        );
        assert_eq!(t.message_len(), "{\"a\":1,\"b\":2,\"c\":3}".len());
    }

    #[test]
    fn an_empty_message_still_renders_valid_json() {
        let t = BodyTemplate::new("test:ping", "m", &Map::new(), 0);
        let body: Value = serde_json::from_slice(&t.render(1)).unwrap();
        assert_eq!(body["message"]["webhook_increment_id"], 1);
    }

    #[test]
    fn the_parts_around_the_increment_id_make_the_rendered_body() {
        let empty = Map::new();
        let msg = json!({"a": 1});
        for message in [msg.as_object().unwrap(), &empty] {
            let t = BodyTemplate::new("order:created", "m", message, 0);
            let (before, after) = t.around_increment();
            for n in [1, 42, i64::MAX] {
                let joined = [before.as_slice(), n.to_string().as_bytes(), after].concat();
                assert_eq!(joined, t.render(n));
            }
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
