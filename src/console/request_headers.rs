//! The request headers a delivery's page shows for each attempt (CONTRACT §7.7), with
//! signature values masked.
//!
//! The one idea to know: the attempt log does not store headers, so they are rebuilt
//! from what makes them, the same way the dispatcher builds them (`dispatch::client`):
//! the fixed ones, the payload's `webhook-id`, the attempt's second as `webhook-timestamp`,
//! the signature headers (masked: a signature verifies a body, and a page is no place to
//! copy one from), then the webhook's extra headers as configured now (so a header changed
//! since is shown as it is today; the page says so). Values of extra headers whose names
//! suggest a credential are masked too.

use crate::domain::AttemptLog;

pub const MASK: &str = "•••• (masked)";

/// Names whose values are never shown (lowercase substrings).
const SECRET_NAMES: &[&str] = &["signature", "hmac", "authorization", "token", "secret", "key", "cookie"];

/// `(name, value)` lines for one attempt of payload `delivery_id`.
pub fn rebuild(
    delivery_id: i64,
    attempt: &AttemptLog,
    extra_headers: &str,
    previous_key: bool,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Plugin-Hmac-Sha256".to_string(), MASK.to_string()),
    ];
    if previous_key {
        headers.push(("X-Plugin-Hmac-Sha256-Previous".to_string(), MASK.to_string()));
    }
    headers.push(("webhook-id".to_string(), format!("msg_{delivery_id}")));
    headers.push((
        "webhook-timestamp".to_string(),
        (attempt.attempted_at / 1000).to_string(),
    ));
    headers.push(("webhook-signature".to_string(), MASK.to_string()));
    for line in extra_headers.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let lower = name.to_ascii_lowercase();
        let shown = if SECRET_NAMES.iter().any(|s| lower.contains(s)) {
            MASK.to_string()
        } else {
            value.to_string()
        };
        headers.push((name.to_string(), shown));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_credentials_are_masked() {
        let a = AttemptLog {
            attempted_at: 1_700_000_000_123,
            http_status: Some(200),
            duration_ms: 5,
            response_prefix: String::new(),
            error: None,
        };
        let h = rebuild(6, &a, "X-Shop: 1\r\nAuthorization: Bearer abc\nX-Api-Key: k", false);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("webhook-id"), Some("msg_6"));
        assert_eq!(get("webhook-timestamp"), Some("1700000000"));
        assert_eq!(get("webhook-signature"), Some(MASK));
        assert_eq!(get("X-Plugin-Hmac-Sha256"), Some(MASK));
        assert_eq!(get("X-Shop"), Some("1"));
        assert_eq!(get("Authorization"), Some(MASK));
        assert_eq!(get("X-Api-Key"), Some(MASK));
        assert!(!h.iter().any(|(_, v)| v.contains("abc")));
    }
}
