//! What the templates show, prepared in Rust: plain strings and flags, so the templates stay
//! free of logic (and everything they print is escaped by askama).

use base64::Engine;

use crate::domain::{AttemptLog, DeliveryRecord, DeliveryStatus, Webhook};
use crate::time::{format_timestamp, Millis};

/// The page header: who is logged in, and the logout form's CSRF token.
#[derive(Clone, Debug)]
pub struct Nav {
    pub user: String,
    pub merchant: String,
    pub admin: bool,
    pub csrf: String,
    /// A read-only (portal) session: pages show no forms that change anything.
    pub read_only: bool,
}

/// A webhook as the list and its own page show it.
pub struct HookView {
    pub id: i64,
    /// Its description, or "Webhook N" without one (CONTRACT §7.7: the description is its name).
    pub name: String,
    /// "" unless active and every attempt since some time failed: then since when, and
    /// the latest error (shown instead of a plain "active").
    pub failing_since: String,
    pub last_error: String,
    pub merchant: String,
    pub url: String,
    pub topics: Vec<String>,
    pub active: bool,
    /// Why hookd turned it off ("" when it did not).
    pub disabled_reason: String,
    /// Steering (CONTRACT §6.2): one at a time in order, a rate cap ("" for none), a filter
    /// expression ("" for none).
    pub ordered: bool,
    pub max_rate: String,
    pub filter: String,
    pub increment_id: i64,
    pub extra_headers: String,
    pub secret_key: String,
    /// Until when the previous secret still signs ("" when there is none).
    pub previous_until: String,
    /// The Ed25519 public key (`whpk_…`) with "hmac+ed25519", "" otherwise.
    pub public_key: String,
    /// The latest delivery's status and when ("" before the first).
    pub last_status: String,
    pub last_detail: String,
}

impl HookView {
    pub fn new(hook: &Webhook, last: Option<&DeliveryRecord>) -> Self {
        let now = crate::time::now_millis();
        let previous_until = hook
            .previous_keys
            .iter()
            .map(|k| k.expires_at)
            .filter(|until| *until > now)
            .max()
            .map(when)
            .unwrap_or_default();
        let failing_since = hook
            .failing_since
            .filter(|_| hook.is_active)
            .map(when)
            .unwrap_or_default();
        Self {
            id: hook.id.0,
            name: hook_name(&hook.description, hook.id.0),
            last_error: if failing_since.is_empty() {
                String::new()
            } else {
                last.map(last_answer).unwrap_or_default()
            },
            failing_since,
            merchant: hook.merchant_code.clone(),
            url: crate::redact::shown_url(&hook.url).into_owned(),
            topics: hook
                .topics
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            active: hook.is_active,
            disabled_reason: hook.disabled_reason.clone().unwrap_or_default(),
            ordered: hook.ordered,
            max_rate: hook.max_rate.map(|r| r.to_string()).unwrap_or_default(),
            filter: hook.filter.clone().unwrap_or_default(),
            increment_id: hook.increment_id,
            extra_headers: hook.extra_headers.clone(),
            secret_key: hook.secret_key.clone(),
            previous_until,
            public_key: hook
                .public_key
                .clone()
                .filter(|_| hook.signature_scheme.has_key_pair())
                .unwrap_or_default(),
            last_status: last.map(|d| d.status.as_str().to_string()).unwrap_or_default(),
            last_detail: last.map(outcome_detail).unwrap_or_default(),
        }
    }

    /// The secret in the form the Standard Webhooks libraries take.
    pub fn whsec(&self) -> String {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(self.secret_key.as_bytes())
        )
    }
}

/// A webhook's name: its description, or "Webhook N" when it has none.
pub fn hook_name(description: &str, id: i64) -> String {
    if description.is_empty() {
        format!("Webhook {id}")
    } else {
        description.to_string()
    }
}

/// A delivery's one name everywhere (CONTRACT §7.7): "order:created #12 on Shop sync · delivery 6".
pub fn delivery_name(d: &DeliveryRecord, hook: &str) -> String {
    format!("{} #{} on {} · delivery {}", d.topic, d.increment_id, hook, d.id.0)
}

/// A payload's latest answer: its error text, else its HTTP status.
fn last_answer(d: &DeliveryRecord) -> String {
    match (&d.last_error, d.last_http_status) {
        (Some(err), _) => short(err, 120),
        (None, Some(code)) => format!("HTTP {code}"),
        (None, None) => String::new(),
    }
}

/// "HTTP 500 at …" / "connection refused at …" for a delivery's latest attempt.
fn outcome_detail(d: &DeliveryRecord) -> String {
    let what = match (d.last_http_status, &d.last_error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(err)) => short(err, 80),
        (None, None) => "not sent yet".to_string(),
    };
    format!("#{} {} · {}", d.increment_id, d.topic, what)
}

/// One row of a webhook's delivery list.
pub struct DeliveryRow {
    pub id: i64,
    /// Its one name (see `delivery_name`).
    pub name: String,
    pub webhook: String,
    pub increment_id: i64,
    pub topic: String,
    pub status: String,
    pub attempts: i64,
    pub created: String,
    pub next: String,
    pub last_http: String,
    pub last_error: String,
}

impl DeliveryRow {
    /// `hook`: the name of its webhook.
    pub fn new(d: &DeliveryRecord, hook: &str) -> Self {
        let waiting = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
        Self {
            id: d.id.0,
            name: delivery_name(d, hook),
            webhook: hook.to_string(),
            increment_id: d.increment_id,
            topic: d.topic.clone(),
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            created: when(d.created_at),
            next: if waiting {
                when(d.next_attempt_at)
            } else {
                String::new()
            },
            last_http: d.last_http_status.map(|c| c.to_string()).unwrap_or_default(),
            last_error: d
                .last_error
                .as_deref()
                .filter(|e| !says_only_status(e, d.last_http_status))
                .map(|e| short(e, 120))
                .unwrap_or_default(),
        }
    }
}

/// One attempt of a delivery.
pub struct AttemptRow {
    pub number: usize,
    pub at: String,
    pub http_status: String,
    pub duration_ms: i64,
    pub response: String,
    pub error: String,
}

impl AttemptRow {
    pub fn new(number: usize, a: &AttemptLog) -> Self {
        Self {
            number,
            at: when(a.attempted_at),
            http_status: a.http_status.map(|c| c.to_string()).unwrap_or_else(|| "—".into()),
            duration_ms: a.duration_ms,
            response: a.response_prefix.clone(),
            error: a
                .error
                .clone()
                .filter(|e| !says_only_status(e, a.http_status))
                .unwrap_or_default(),
        }
    }
}

/// Whether an error text only repeats the HTTP status shown beside it ("HTTP 500").
fn says_only_status(error: &str, status: Option<i64>) -> bool {
    status.is_some_and(|code| error == format!("HTTP {code}"))
}

/// A time as people read it: `2026-12-01 12:30:05 UTC`.
pub fn when(ms: Millis) -> String {
    format_timestamp(ms).replacen('T', " ", 1).replace("+00:00", " UTC")
}

/// The first `max` characters of `s`, with an ellipsis when cut.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max).collect();
    cut.push('…');
    cut
}

/// A body as sent, pretty-printed when it is JSON (it always is; the bytes are shown as
/// they are otherwise).
pub fn pretty_body(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// The delivery statuses, for the filter.
pub fn statuses() -> Vec<String> {
    DeliveryStatus::ALL.iter().map(|s| s.as_str().to_string()).collect()
}

/// The line a page shows after an action redirected to it (`?msg=…`); unknown keys show nothing.
pub fn notice(msg: Option<&str>, n: Option<u64>) -> Option<String> {
    Some(match msg? {
        "created" => "Webhook created.".to_string(),
        "updated" => "Changes saved.".to_string(),
        "activated" => "Webhook activated.".to_string(),
        "deactivated" => "Webhook deactivated.".to_string(),
        "deleted" => "Webhook deleted.".to_string(),
        "rotated" => {
            "Secret rotated. The new secret is below; the previous one keeps signing until the time shown.".to_string()
        }
        "recovered" => format!("{} failed payload(s) queued again.", n.unwrap_or(0)),
        "recovered_some" => format!(
            "{} failed payload(s) queued again; more remain (a recovery queues at most 1000): recover again for the next ones.",
            n.unwrap_or(0)
        ),
        "retried" => "Delivery queued again: it is sent within moments.".to_string(),
        "test" => "Test ping sent. Its first attempt is below.".to_string(),
        _ => return None,
    })
}
