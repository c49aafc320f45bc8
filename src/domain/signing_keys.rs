//! CONTRACT §7.3: a webhook's `signature_scheme` and, for `"hmac+ed25519"`, its Ed25519 key
//! pair; the previous keys that keep signing after a rotation (see `rotation`).
//!
//! Stored forms: the private key is the 32-byte seed in base64; the public key is shown as
//! `whpk_` + base64 of its 32 bytes (what receivers are given). Previous keys are one JSON
//! array column, newest first.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::webhook::WebhookDataError;
use crate::time::Millis;

/// How a webhook's requests are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureScheme {
    /// `v1,` (HMAC-SHA256) only, as CONTRACT §4.
    #[default]
    Hmac,
    /// `v1,` and `v1a,` (Ed25519).
    HmacEd25519,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::HmacEd25519 => "hmac+ed25519",
        }
    }

    /// A stored value; anything unknown reads as the default (the column is checked on write).
    pub fn from_stored(s: &str) -> Self {
        if s == "hmac+ed25519" {
            Self::HmacEd25519
        } else {
            Self::Hmac
        }
    }

    pub fn has_key_pair(self) -> bool {
        self == Self::HmacEd25519
    }
}

/// The optional `signature_scheme` field of create and update (absent or null: not given).
pub fn parse_scheme(obj: &Map<String, Value>) -> Result<Option<SignatureScheme>, WebhookDataError> {
    match obj.get("signature_scheme") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "hmac" => Ok(Some(SignatureScheme::Hmac)),
        Some(Value::String(s)) if s == "hmac+ed25519" => Ok(Some(SignatureScheme::HmacEd25519)),
        Some(other) => {
            let mut shown = other.to_string();
            if shown.chars().count() > 40 {
                shown = shown.chars().take(40).collect::<String>() + "…";
            }
            Err(WebhookDataError::Scheme(shown))
        }
    }
}

/// An Ed25519 key pair as stored: the private seed (base64) and the public key (`whpk_…`).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

impl KeyPair {
    /// A new pair from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        Self {
            private: BASE64.encode(seed),
            public: public_key_text(&key.verifying_key()),
        }
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({}, ..)", self.public)
    }
}

/// `whpk_` + base64 of the 32 bytes.
pub fn public_key_text(key: &ed25519_dalek::VerifyingKey) -> String {
    format!("whpk_{}", BASE64.encode(key.as_bytes()))
}

/// The signing key from its stored seed; None for a value that is not 32 bytes of base64.
pub fn signing_key(private: &str) -> Option<ed25519_dalek::SigningKey> {
    let seed: [u8; 32] = BASE64.decode(private).ok()?.try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// A `whpk_…` public key; the error says what is wrong.
pub fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let b64 = text.strip_prefix("whpk_").ok_or("a public key starts with whpk_")?;
    let bytes: [u8; 32] = BASE64
        .decode(b64)
        .map_err(|_| "the part after whpk_ is not base64".to_string())?
        .try_into()
        .map_err(|_| "the key is not 32 bytes".to_string())?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// A key that signs alongside the current one until `expires_at`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousKey {
    pub secret_key: String,
    /// The Ed25519 seed (stored form), when the webhook had a pair.
    #[serde(default)]
    pub signing_key: Option<String>,
    pub expires_at: Millis,
}

impl std::fmt::Debug for PreviousKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreviousKey(.., until {})", self.expires_at)
    }
}

/// The `previous_keys` column: NULL or a JSON array. A value that does not parse reads as
/// none (it was written by this code, so that means no previous key).
pub fn previous_from_stored(text: Option<&str>) -> Vec<PreviousKey> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

pub fn previous_to_stored(keys: &[PreviousKey]) -> Option<String> {
    if keys.is_empty() {
        None
    } else {
        Some(serde_json::to_string(keys).expect("plain structs serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheme(v: Value) -> Result<Option<SignatureScheme>, WebhookDataError> {
        parse_scheme(json!({ "signature_scheme": v }).as_object().unwrap())
    }

    #[test]
    fn schemes_parse_and_errors_name_the_field() {
        assert_eq!(scheme(json!("hmac")).unwrap(), Some(SignatureScheme::Hmac));
        assert_eq!(
            scheme(json!("hmac+ed25519")).unwrap(),
            Some(SignatureScheme::HmacEd25519)
        );
        assert_eq!(scheme(Value::Null).unwrap(), None);
        for bad in [
            json!("ed25519"),
            json!("HMAC"),
            json!(1),
            json!(["hmac"]),
            json!("x".repeat(5000)),
        ] {
            let e = scheme(bad).unwrap_err().to_string();
            assert!(e.starts_with("signature_scheme must be"), "{e}");
            assert!(e.len() < 200, "{e}");
        }
    }

    #[test]
    fn generated_pairs_are_distinct_and_round_trip() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        assert_ne!(a.private, b.private);
        let key = signing_key(&a.private).unwrap();
        assert_eq!(public_key_text(&key.verifying_key()), a.public);
        assert_eq!(parse_public_key(&a.public).unwrap(), key.verifying_key());
        assert!(format!("{a:?}").contains(&a.public) && !format!("{a:?}").contains(&a.private));
    }

    #[test]
    fn bad_public_keys_say_why() {
        assert!(parse_public_key("abc").unwrap_err().contains("whpk_"));
        assert!(parse_public_key("whpk_!!").unwrap_err().contains("base64"));
        assert!(parse_public_key("whpk_AAAA").unwrap_err().contains("32 bytes"));
        assert_eq!(signing_key("AAAA"), None);
    }

    proptest::proptest! {
        /// Any value but the two names is refused, naming the field, in a bounded message.
        #[test]
        fn only_the_two_schemes_parse(text in ".{0,300}", n in proptest::num::i64::ANY, flag in proptest::bool::ANY) {
            for v in [json!(text.clone()), json!(n), json!(flag), json!([text.clone()]), json!({"s": text.clone()})] {
                match scheme(v.clone()) {
                    Ok(Some(s)) => proptest::prop_assert!(v == json!(s.as_str())),
                    Ok(None) => proptest::prop_assert!(false, "{v} read as absent"),
                    Err(e) => {
                        let e = e.to_string();
                        proptest::prop_assert!(e.starts_with("signature_scheme must be"));
                        proptest::prop_assert!(e.chars().count() < 120, "{e}");
                    }
                }
            }
        }

        /// Rotations never keep more than MAX_PREVIOUS_KEYS, never an expired key, and never
        /// drop a key before its expiry (a refused rotation changes nothing).
        #[test]
        fn rotations_keep_keys_as_announced(steps in proptest::collection::vec((0i64..50, 0i64..200), 1..40)) {
            use crate::domain::rotation::{previous_after_rotation, MAX_PREVIOUS_KEYS};
            let (mut now, mut previous) = (0i64, Vec::<PreviousKey>::new());
            for (i, (advance, overlap)) in steps.into_iter().enumerate() {
                now += advance;
                let replaced = PreviousKey { secret_key: i.to_string(), signing_key: None, expires_at: now + overlap };
                let unexpired: Vec<PreviousKey> = previous.iter().filter(|k| k.expires_at > now).cloned().collect();
                match previous_after_rotation(replaced.clone(), previous.clone(), now) {
                    Ok(next) => {
                        proptest::prop_assert!(next.len() <= MAX_PREVIOUS_KEYS);
                        proptest::prop_assert!(next.iter().all(|k| k.expires_at > now));
                        proptest::prop_assert!(unexpired.iter().all(|k| next.contains(k)), "a key dropped early");
                        proptest::prop_assert_eq!(next.contains(&replaced), overlap > 0);
                        previous = next;
                    }
                    Err(refused) => {
                        proptest::prop_assert_eq!(unexpired.len(), MAX_PREVIOUS_KEYS);
                        proptest::prop_assert!(overlap > 0);
                        proptest::prop_assert_eq!(Some(refused.oldest_expires_at), unexpired.iter().map(|k| k.expires_at).min());
                    }
                }
            }
        }
    }

    #[test]
    fn previous_keys_round_trip() {
        let keys = vec![PreviousKey {
            secret_key: "s".into(),
            signing_key: None,
            expires_at: 5,
        }];
        assert_eq!(previous_from_stored(previous_to_stored(&keys).as_deref()), keys);
        assert_eq!(previous_to_stored(&[]), None);
        assert!(previous_from_stored(Some("not json")).is_empty());
    }
}
