//! `webhook.rotate_secret`'s arguments: the new key (given or generated) and how long the
//! old one keeps signing alongside it.

use std::time::Duration;

use serde_json::Value;

use super::signing_keys::PreviousKey;
use super::webhook::{optional_str, WebhookDataError};
use super::SecretKey;
use crate::time::Millis;

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

/// At most this many previous keys sign at once (CONTRACT §7.3: overlaps are kept as announced).
pub const MAX_PREVIOUS_KEYS: usize = 3;

/// A rotation refused: the previous keys are all still within their overlaps.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyPrevious {
    /// When the oldest previous key expires, after which a rotation is accepted again.
    pub oldest_expires_at: Millis,
}

/// What a rotation did, as the store answers.
#[derive(Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    NotFound,
    Refused(TooManyPrevious),
}

/// The previous keys after a rotation at `now`: those still unexpired keep the expiry their
/// own rotation announced, and the key being replaced joins them (newest first) until
/// `expires_at`, unless it expires at once (an overlap of 0). Refused when
/// `MAX_PREVIOUS_KEYS` are still signing.
pub fn previous_after_rotation(
    replaced: PreviousKey,
    previous: Vec<PreviousKey>,
    now: Millis,
) -> Result<Vec<PreviousKey>, TooManyPrevious> {
    let mut kept: Vec<PreviousKey> = previous.into_iter().filter(|k| k.expires_at > now).collect();
    if replaced.expires_at <= now {
        return Ok(kept);
    }
    if kept.len() >= MAX_PREVIOUS_KEYS {
        let oldest_expires_at = kept.iter().map(|k| k.expires_at).min().unwrap_or(now);
        return Err(TooManyPrevious { oldest_expires_at });
    }
    kept.insert(0, replaced);
    Ok(kept)
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

    fn key(name: &str, expires_at: Millis) -> PreviousKey {
        PreviousKey {
            secret_key: name.into(),
            signing_key: None,
            expires_at,
        }
    }

    fn names(keys: &[PreviousKey]) -> Vec<(&str, Millis)> {
        keys.iter().map(|k| (k.secret_key.as_str(), k.expires_at)).collect()
    }

    #[test]
    fn rotations_keep_each_previous_key_until_its_own_expiry() {
        let one = previous_after_rotation(key("a", 1000), vec![], 0).unwrap();
        let two = previous_after_rotation(key("b", 500), one, 100).unwrap();
        assert_eq!(names(&two), [("b", 500), ("a", 1000)]);
        let three = previous_after_rotation(key("c", 2000), two.clone(), 600).unwrap();
        assert_eq!(names(&three), [("c", 2000), ("a", 1000)], "b expired at 500");
        let zero = previous_after_rotation(key("d", 100), two, 100).unwrap();
        assert_eq!(
            names(&zero),
            [("b", 500), ("a", 1000)],
            "an overlap of 0 keeps nothing new"
        );
    }

    #[test]
    fn a_fourth_key_within_the_overlaps_is_refused() {
        let full = vec![key("c", 300), key("b", 200), key("a", 400)];
        assert_eq!(
            previous_after_rotation(key("d", 900), full.clone(), 100).unwrap_err(),
            TooManyPrevious { oldest_expires_at: 200 }
        );
        let later = previous_after_rotation(key("d", 900), full, 200).unwrap();
        assert_eq!(names(&later), [("d", 900), ("c", 300), ("a", 400)]);
    }

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
