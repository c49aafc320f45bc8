//! `webhook.rotate_secret`'s arguments: the new key (given or generated) and how long the
//! old one keeps signing alongside it.

use std::time::Duration;

use serde_json::Value;

use super::webhook::{optional_str, WebhookDataError};
use super::SecretKey;

/// The overlap when none is given.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The longest overlap: an old key should not sign for longer than a month.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// A validated rotation.
#[derive(Clone, Debug)]
pub struct SecretRotation {
    pub secret_key: SecretKey,
    pub overlap: Duration,
}

impl SecretRotation {
    /// From `{secret_key?, overlap?}`; absent (or null) options take the defaults.
    pub fn from_json(value: Option<&Value>) -> Result<Self, WebhookDataError> {
        let empty = serde_json::Map::new();
        let obj = match value {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(obj)) => obj,
            Some(_) => return Err(WebhookDataError::NotAnObject),
        };
        if let Some(unknown) = obj.keys().find(|k| !["secret_key", "overlap"].contains(&k.as_str())) {
            return Err(WebhookDataError::UnknownField(unknown.clone()));
        }
        let secret_key = match optional_str(obj, "secret_key")? {
            None => SecretKey::generate(),
            Some(s) => SecretKey::parse(s)?,
        };
        let overlap = match optional_str(obj, "overlap")? {
            None => DEFAULT_OVERLAP,
            Some(s) => parse_overlap(s)?,
        };
        Ok(Self { secret_key, overlap })
    }
}

fn parse_overlap(s: &str) -> Result<Duration, WebhookDataError> {
    let bad = |why: String| WebhookDataError::Overlap(why);
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| bad(format!("'{s}' is not a duration (e.g. \"24h\", \"30m\", \"0s\")")))?;
    if d > MAX_OVERLAP {
        return Err(bad(format!("'{s}' is longer than the maximum, 30 days")));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_generate_a_key_and_overlap_a_day() {
        let r = SecretRotation::from_json(None).unwrap();
        assert_eq!(r.overlap, DEFAULT_OVERLAP);
        assert_eq!(r.secret_key.as_str().len(), 32);
    }

    #[test]
    fn overlaps_parse_and_are_bounded() {
        let r = SecretRotation::from_json(Some(&json!({"secret_key": "new-key", "overlap": "0s"}))).unwrap();
        assert_eq!((r.secret_key.as_str(), r.overlap), ("new-key", Duration::ZERO));
        let r = SecretRotation::from_json(Some(&json!({"overlap": "30days"}))).unwrap();
        assert_eq!(r.overlap, MAX_OVERLAP);
        for bad in [
            json!({"overlap": "31d"}),
            json!({"overlap": "soon"}),
            json!({"overlap": ""}),
        ] {
            assert!(matches!(
                SecretRotation::from_json(Some(&bad)).unwrap_err(),
                WebhookDataError::Overlap(_)
            ));
        }
        assert!(matches!(
            SecretRotation::from_json(Some(&json!({"overlap": 5}))).unwrap_err(),
            WebhookDataError::WrongType { field: "overlap", .. }
        ));
        assert_eq!(
            SecretRotation::from_json(Some(&json!({"grace": "1h"}))).unwrap_err(),
            WebhookDataError::UnknownField("grace".into())
        );
    }
}
