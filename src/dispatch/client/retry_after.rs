//! A receiver's `Retry-After` header on a 429 or 503 answer: how long it asks us to wait.
//!
//! RFC 9110 §10.2.3 allows delta-seconds (`120`) or an HTTP date
//! (`Wed, 21 Oct 2026 07:28:00 GMT`). Whatever it says is held to [`MIN`] … [`MAX`]: a
//! receiver cannot make hookd hammer it (0 s, a date in the past) nor park its payloads for
//! weeks. A value that is neither form is ignored (the schedule's step applies).

use std::time::{Duration, SystemTime};

/// The shortest wait a `Retry-After` can ask for.
pub const MIN: Duration = Duration::from_secs(1);
/// The longest wait a `Retry-After` can ask for.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// Statuses whose `Retry-After` hookd follows (too many requests, service unavailable).
pub fn applies_to(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The wait the header asks for, clamped to [`MIN`] … [`MAX`], as seen at `now`; `None` when
/// it is neither delta-seconds nor an HTTP date.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Any run of digits is a valid delta; one too long for u64 is simply "very long".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        // A date already past asks for no wait at all (then MIN applies).
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.clamp(MIN, MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn delta_seconds_are_taken_as_given_within_the_bounds() {
        let now = SystemTime::now();
        assert_eq!(parse("2", now), secs(2));
        assert_eq!(parse(" 120 ", now), secs(120));
        assert_eq!(parse("0", now), secs(1), "clamped up to 1 s");
        assert_eq!(parse("86400", now), secs(86_400));
        assert_eq!(parse("86401", now), secs(86_400), "clamped down to 24 h");
        assert_eq!(parse("99999999999999999999999", now), secs(86_400));
    }

    #[test]
    fn http_dates_are_read_as_a_wait_from_now() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 12:00:00 GMT").unwrap();
        assert_eq!(parse("Tue, 01 Dec 2026 12:00:30 GMT", now), secs(30));
        assert_eq!(parse("Tue, 01 Dec 2026 11:00:00 GMT", now), secs(1), "in the past");
        assert_eq!(parse("Tue, 08 Dec 2026 12:00:00 GMT", now), secs(86_400), "a week away");
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(parse("Tuesday, 01-Dec-26 12:00:05 GMT", now), secs(5));
        assert_eq!(parse("Tue Dec  1 12:00:07 2026", now), secs(7));
    }

    #[test]
    fn anything_else_is_ignored() {
        let now = SystemTime::now();
        for bad in ["", " ", "-5", "1.5", "2s", "soon", "Tue, 01 Dec 2026", "0x10"] {
            assert_eq!(parse(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn only_429_and_503_carry_a_retry_after_worth_following() {
        assert!(applies_to(429) && applies_to(503));
        assert!(!applies_to(500) && !applies_to(410) && !applies_to(200) && !applies_to(301));
    }
}
