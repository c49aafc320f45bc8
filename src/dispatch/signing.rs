//! The two signature schemes put on every delivery.
//!
//! Both are HMAC-SHA256 keyed with the webhook's raw `secret_key` bytes, over the exact body
//! bytes that are sent (serialize once, sign those bytes):
//! - the platform's own `X-Plugin-Hmac-Sha256` header, base64 of the HMAC of the body;
//! - Standard Webhooks (standardwebhooks.com) `webhook-signature`, `v1,` + base64 of the HMAC
//!   of `"{msg_id}.{timestamp}.{body}"`.
//!
//! - with `signature_scheme` "hmac+ed25519" (CONTRACT §7.3), also the Standard Webhooks
//!   asymmetric signature `v1a,` + base64 of the Ed25519 signature of the same string.
//!
//! The official Standard Webhooks verifier libraries take the secret as a string
//! `whsec_` + base64(secret_key); they strip the prefix and base64-decode the rest, so they end
//! up keying the HMAC with the same raw bytes used here.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// base64(HMAC-SHA256(secret, body)) — header `X-Plugin-Hmac-Sha256`;
/// PHP: `base64_encode(hash_hmac('sha256', $body, $secret, TRUE))`.
pub fn plugin_signature(secret: &[u8], body: &[u8]) -> String {
    plugin_with(keyed(secret), body)
}

fn plugin_with(mut mac: HmacSha256, body: &[u8]) -> String {
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Standard Webhooks: `"v1," + base64(HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}"))`.
pub fn standard_signature(secret: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    standard_with(keyed(secret), msg_id, timestamp, body)
}

fn standard_with(mut mac: HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// One key set that signs a request: the HMAC secret and, with "hmac+ed25519", the Ed25519
/// key. During rotation overlaps several sign (the current one first).
pub struct Signer {
    pub secret: Vec<u8>,
    pub ed25519: Option<SigningKey>,
    /// The HMAC keyed with `secret` and nothing else hashed yet: keying hashes two blocks
    /// (inner and outer pad), a third of what signing a small payload twice costs, so it
    /// is done once per loaded target and cloned for each signature.
    keyed: HmacSha256,
}

impl Signer {
    pub fn new(secret: &[u8], ed25519: Option<SigningKey>) -> Self {
        Self {
            secret: secret.to_vec(),
            ed25519,
            keyed: keyed(secret),
        }
    }

    pub fn hmac(secret: &[u8]) -> Self {
        Self::new(secret, None)
    }

    /// `plugin_signature` with this signer's secret.
    pub fn plugin_signature(&self, body: &[u8]) -> String {
        plugin_with(self.keyed.clone(), body)
    }

    /// `standard_signature` with this signer's secret.
    pub fn standard_signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        standard_with(self.keyed.clone(), msg_id, timestamp, body)
    }
}

/// Standard Webhooks: `"v1a," + base64(Ed25519(key, "{msg_id}.{timestamp}.{body}"))`.
pub fn asymmetric_signature(key: &SigningKey, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(msg_id.len() + body.len() + 24);
    message.extend_from_slice(msg_id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!("v1a,{}", BASE64.encode(key.sign(&message).to_bytes()))
}

/// The `webhook-signature` value: every signer's `v1,` entry, then every `v1a,` entry,
/// space-separated (a verifier accepts the request when any one entry it knows verifies).
pub fn signature_header(signers: &[&Signer], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let v1 = signers.iter().map(|s| s.standard_signature(msg_id, timestamp, body));
    let v1a = signers
        .iter()
        .filter_map(|s| s.ed25519.as_ref())
        .map(|k| asymmetric_signature(k, msg_id, timestamp, body));
    v1.chain(v1a).collect::<Vec<_>>().join(" ")
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed first), so this cannot fail.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were computed independently with Python's hmac/hashlib/base64,
    // e.g. base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).

    const BODY: &[u8] = br#"{"topic":"order.created","merchant_code":"M1","message":{"id":1}}"#;

    #[test]
    fn plugin_signature_matches_known_vectors() {
        assert_eq!(
            plugin_signature(b"key", b"The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
        assert_eq!(
            plugin_signature(b"s3cr3t-key", BODY),
            "+1WQAuaNXtsJzNKC27K1lPhBpJN6dvbY2JjwunnIL3Y="
        );
        assert_eq!(
            plugin_signature(b"", b""),
            "thNnmggU2ex3L5XXeMNfxf8Wl8STcVZTxscSFEKSxa0="
        );
    }

    #[test]
    fn standard_signature_matches_known_vectors() {
        assert_eq!(
            standard_signature(b"s3cr3t-key", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, BODY),
            "v1,0AHPWzZ9zor8fASK8gsRwOrIJJEJ5xLPRFFUgQU9ePo="
        );
    }

    #[test]
    fn a_signer_keyed_once_signs_every_request_alike() {
        let signer = Signer::hmac(b"s3cr3t-key");
        for _ in 0..2 {
            assert_eq!(
                signer.plugin_signature(BODY),
                "+1WQAuaNXtsJzNKC27K1lPhBpJN6dvbY2JjwunnIL3Y="
            );
            assert_eq!(
                signer.standard_signature("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, BODY),
                "v1,0AHPWzZ9zor8fASK8gsRwOrIJJEJ5xLPRFFUgQU9ePo="
            );
        }
    }

    #[test]
    fn standard_signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification: secret
        // "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", which is the raw key below.
        let secret = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            standard_signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn whsec_secret_given_to_verifiers_decodes_to_the_raw_key() {
        // Receivers using the Standard Webhooks libraries are given "whsec_" + base64(secret_key).
        let secret_key = b"s3cr3t-key";
        let whsec = format!("whsec_{}", BASE64.encode(secret_key));
        assert_eq!(whsec, "whsec_czNjcjN0LWtleQ==");
        let decoded = BASE64.decode(whsec.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(decoded, secret_key);
        assert_eq!(
            standard_signature(&decoded, "msg_1", 1, BODY),
            standard_signature(secret_key, "msg_1", 1, BODY)
        );
    }

    #[test]
    fn asymmetric_signature_matches_the_standard_webhooks_vector() {
        // The Standard Webhooks reference test vector: this base64 value is the 32-byte seed.
        let seed: [u8; 32] = BASE64
            .decode("VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            asymmetric_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
        );
    }

    #[test]
    fn the_header_lists_every_v1_then_every_v1a() {
        let with_pair = Signer::new(b"a", Some(SigningKey::from_bytes(&[7; 32])));
        let hmac_only = Signer::hmac(b"b");
        let header = signature_header(&[&with_pair, &hmac_only], "id", 10, b"body");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 3, "{header}");
        assert_eq!(entries[0], standard_signature(b"a", "id", 10, b"body"));
        assert_eq!(entries[1], standard_signature(b"b", "id", 10, b"body"));
        assert_eq!(
            entries[2],
            asymmetric_signature(with_pair.ed25519.as_ref().unwrap(), "id", 10, b"body")
        );
        assert_eq!(
            signature_header(&[&hmac_only], "id", 10, b"body"),
            standard_signature(b"b", "id", 10, b"body")
        );
    }

    #[test]
    fn signatures_depend_on_every_input() {
        let base = standard_signature(b"k", "id", 10, b"body");
        assert_ne!(base, standard_signature(b"k2", "id", 10, b"body"));
        assert_ne!(base, standard_signature(b"k", "id2", 10, b"body"));
        assert_ne!(base, standard_signature(b"k", "id", 11, b"body"));
        assert_ne!(base, standard_signature(b"k", "id", 10, b"body2"));
        assert_ne!(plugin_signature(b"k", b"body"), plugin_signature(b"k", b"body "));
    }
}
