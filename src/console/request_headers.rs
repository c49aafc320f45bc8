//! The request headers a delivery's page shows for each attempt (CONTRACT §7.7), with
//! signature values masked.
//!
//! The one idea to know: the attempt log keeps only what cannot be derived (`SentHeaders`:
//! the extra headers as sent and whether a previous key signed), so the rest is rebuilt the
//! way the dispatcher builds it (`dispatch::client`): the fixed ones, the payload's
//! `webhook-id`, the attempt's logged second as `webhook-timestamp` (the dispatcher signs that
//! very second), and the signature headers, masked (a signature verifies a body, and a page is
//! no place to copy one from). Attempts logged before hookd kept `SentHeaders` fall back to
//! the webhook's extra headers as configured now, and say so (`Shown::rebuilt`). Values of
//! extra headers whose names suggest a credential are masked too.

use crate::domain::{AttemptLog, SentHeaders};

pub const MASK: &str = "•••• (masked)";

/// Names whose values are never shown (lowercase substrings).
const SECRET_NAMES: &[&str] = &["signature", "hmac", "authorization", "token", "secret", "key", "cookie"];

/// One attempt's headers as the page shows them.
pub struct Shown {
    pub headers: Vec<(String, String)>,
    /// Rebuilt from the webhook as it is now (an attempt logged before hookd kept its
    /// headers), not as sent.
    pub rebuilt: bool,
}

/// The headers of one attempt of payload `delivery_id`; `extra_headers_now` (the webhook's
/// current ones) stand in only for attempts logged without their own.
pub fn shown(delivery_id: i64, attempt: &AttemptLog, extra_headers_now: &str) -> Shown {
    let (sent, rebuilt) = match &attempt.sent_headers {
        Some(text) => (SentHeaders::decode(text), false),
        None => (
            SentHeaders {
                previous: false,
                extra: lines(extra_headers_now),
            },
            true,
        ),
    };
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Plugin-Hmac-Sha256".to_string(), MASK.to_string()),
        ("webhook-id".to_string(), format!("msg_{delivery_id}")),
        (
            "webhook-timestamp".to_string(),
            attempt.attempted_at.div_euclid(1000).to_string(),
        ),
    ];
    if sent.previous {
        headers.push(("X-Plugin-Hmac-Sha256-Previous".to_string(), MASK.to_string()));
    }
    headers.push(("webhook-signature".to_string(), MASK.to_string()));
    for (name, value) in sent.extra {
        let lower = name.to_ascii_lowercase();
        let value = if SECRET_NAMES.iter().any(|s| lower.contains(s)) {
            MASK.to_string()
        } else {
            value
        };
        headers.push((name, value));
    }
    Shown { headers, rebuilt }
}

/// `Name: value` lines as stored on the webhook (validated when saved).
fn lines(extra_headers: &str) -> Vec<(String, String)> {
    extra_headers
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(sent_headers: Option<&str>) -> AttemptLog {
        AttemptLog {
            attempted_at: 1_700_000_000_123,
            http_status: Some(200),
            duration_ms: 5,
            response_prefix: String::new(),
            error: None,
            sent_headers: sent_headers.map(str::to_string),
        }
    }

    fn get<'a>(h: &'a Shown, name: &str) -> Option<&'a str> {
        h.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn signatures_and_credentials_are_masked() {
        let now = "X-Shop: 1\r\nAuthorization: Bearer abc\nX-Api-Key: k";
        let h = shown(6, &attempt(None), now);
        assert!(h.rebuilt);
        assert_eq!(get(&h, "webhook-id"), Some("msg_6"));
        assert_eq!(get(&h, "webhook-timestamp"), Some("1700000000"));
        assert_eq!(get(&h, "webhook-signature"), Some(MASK));
        assert_eq!(get(&h, "X-Plugin-Hmac-Sha256"), Some(MASK));
        assert_eq!(get(&h, "X-Plugin-Hmac-Sha256-Previous"), None);
        assert_eq!(get(&h, "X-Shop"), Some("1"));
        assert_eq!(get(&h, "Authorization"), Some(MASK));
        assert_eq!(get(&h, "X-Api-Key"), Some(MASK));
        assert!(!h.headers.iter().any(|(_, v)| v.contains("abc")));
    }

    #[test]
    fn an_attempt_with_its_own_headers_shows_them_not_the_webhooks_current_ones() {
        let sent = SentHeaders::encode(true, &[("X-Shop".into(), "old".into()), ("X-Token".into(), "t".into())]);
        let h = shown(6, &attempt(Some(&sent)), "X-Shop: new\nX-Other: 2");
        assert!(!h.rebuilt);
        assert_eq!(get(&h, "X-Shop"), Some("old"));
        assert_eq!(get(&h, "X-Other"), None);
        assert_eq!(get(&h, "X-Token"), Some(MASK));
        assert_eq!(get(&h, "X-Plugin-Hmac-Sha256-Previous"), Some(MASK));
        let plain = shown(6, &attempt(Some("")), "X-Shop: new");
        assert!(!plain.rebuilt);
        assert_eq!(get(&plain, "X-Shop"), None);
        assert_eq!(plain.headers.len(), 5);
    }
}
