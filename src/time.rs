//! Wall-clock time as stored in the database: unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with a numeric offset, as in the payloads: `2021-12-07T16:08:15+00:00`.
pub fn format_timestamp(ms: Millis) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// RFC 3339 with milliseconds, for the delivery log: `2021-12-07T16:08:15.123+00:00`.
pub fn format_timestamp_millis(ms: Millis) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 (ISO-8601) timestamp with an offset, e.g. `2021-12-07T16:08:15+00:00`
/// or `2021-12-07T16:08:15.5Z`, to unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_parse_back() {
        assert_eq!(
            super::parse_timestamp("2021-12-07T16:08:15+00:00"),
            Some(1_638_893_295_000)
        );
        assert_eq!(
            super::parse_timestamp("2021-12-07T17:08:15.123+01:00"),
            Some(1_638_893_295_123)
        );
        assert_eq!(super::parse_timestamp("yesterday"), None);
        assert_eq!(super::parse_timestamp("2021-12-07"), None);
    }

    #[test]
    fn timestamps_look_like_the_platform_s() {
        assert_eq!(super::format_timestamp(1_638_893_295_123), "2021-12-07T16:08:15+00:00");
        assert_eq!(
            super::format_timestamp_millis(1_638_893_295_123),
            "2021-12-07T16:08:15.123+00:00"
        );
    }
}
