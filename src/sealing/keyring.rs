//! The configured keys and the sealed text format (see the module above).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::keys::{parse_key_list, valid_key_id, KeyListError};
use crate::domain::{PreviousKey, Webhook};

/// What every sealed value starts with (a clear secret may not: see `SecretKey::parse`).
pub const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a stored value does not open. Each names the key id (never key material), in one line.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the database holds secrets encrypted with key \"{0}\", which HOOKD_ENCRYPTION_KEYS does not give")]
    UnknownKey(String),
    #[error(
        "the database holds secrets encrypted with key \"{0}\" that the key HOOKD_ENCRYPTION_KEYS gives as \"{0}\" \
         does not decrypt (a wrong key under that id?)"
    )]
    WrongKey(String),
    #[error("webhook {0} holds a malformed encrypted secret")]
    Malformed(i64),
}

struct Sealer {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys that seal and open secrets; empty when encryption is off (values stay clear).
#[derive(Default)]
pub struct Keyring {
    keys: Vec<Sealer>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Keyring({ids:?})")
    }
}

/// The associated data binding a value to its row.
fn aad(webhook: i64) -> String {
    format!("hookd webhook {webhook}")
}

impl Keyring {
    /// No keys: secrets are stored and read in clear.
    pub fn off() -> Self {
        Self::default()
    }

    /// From `HOOKD_ENCRYPTION_KEYS` (see `keys`).
    pub fn parse(text: &str) -> Result<Self, KeyListError> {
        let keys = parse_key_list(text)?
            .into_iter()
            .map(|k| Sealer {
                cipher: XChaCha20Poly1305::new(&k.bytes.into()),
                id: k.id,
            })
            .collect();
        Ok(Self { keys })
    }

    pub fn is_on(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals, when encryption is on.
    pub fn current_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// `clear` sealed under the first key for `webhook`'s row; `clear` itself when off.
    pub fn seal(&self, webhook: i64, clear: &str) -> String {
        let Some(key) = self.keys.first() else {
            return clear.to_string();
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = aad(webhook);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: clear.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", key.id, BASE64.encode(bytes))
    }

    /// The key id a stored value is sealed with; None for a clear value.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored.strip_prefix(SEALED_PREFIX)?.split_once(':').map(|(id, _)| id)
    }

    /// A stored value in clear: a clear value as it is, a sealed one opened.
    pub fn open(&self, webhook: i64, stored: &str) -> Result<String, OpenError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, data) = rest.split_once(':').ok_or(OpenError::Malformed(webhook))?;
        if !valid_key_id(id) {
            return Err(OpenError::Malformed(webhook));
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let bytes = BASE64.decode(data).map_err(|_| OpenError::Malformed(webhook))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed(webhook));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = aad(webhook);
        let clear = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError::WrongKey(id.to_string()))?;
        String::from_utf8(clear).map_err(|_| OpenError::Malformed(webhook))
    }

    /// Whether a stored value is as this keyring would write it now: sealed under the first
    /// key (clear when off).
    pub fn is_current(&self, stored: &str) -> bool {
        Self::key_id_of(stored) == self.current_id()
    }

    /// The stored value rewritten under the first key (in clear when off); None when it
    /// already is.
    pub fn reseal(&self, webhook: i64, stored: &str) -> Result<Option<String>, OpenError> {
        if self.is_current(stored) {
            return Ok(None);
        }
        Ok(Some(self.seal(webhook, &self.open(webhook, stored)?)))
    }

    /// Every secret of a webhook read from the store, opened in place.
    pub fn open_webhook(&self, hook: &mut Webhook) -> Result<(), OpenError> {
        let id = hook.id.0;
        hook.secret_key = self.open(id, &hook.secret_key)?;
        if let Some(k) = &hook.signing_key {
            hook.signing_key = Some(self.open(id, k)?);
        }
        for previous in &mut hook.previous_keys {
            self.open_previous(id, previous)?;
        }
        Ok(())
    }

    /// Webhooks read from the store, each opened in place (see `open_webhook`).
    pub fn open_webhooks(&self, mut hooks: Vec<Webhook>) -> Result<Vec<Webhook>, OpenError> {
        for hook in &mut hooks {
            self.open_webhook(hook)?;
        }
        Ok(hooks)
    }

    pub fn open_previous(&self, webhook: i64, key: &mut PreviousKey) -> Result<(), OpenError> {
        key.secret_key = self.open(webhook, &key.secret_key)?;
        if let Some(k) = &key.signing_key {
            key.signing_key = Some(self.open(webhook, k)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxobHBkaGxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQ=";

    fn ring(text: &str) -> Keyring {
        Keyring::parse(text).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_on_its_own_row() {
        let keys = ring(&format!("k1:{K1}"));
        let sealed = keys.seal(7, "s3cret");
        assert!(
            sealed.starts_with("enc:v1:k1:") && !sealed.contains("s3cret"),
            "{sealed}"
        );
        assert_ne!(sealed, keys.seal(7, "s3cret"), "a fresh nonce each time");
        assert_eq!(keys.open(7, &sealed).unwrap(), "s3cret");
        assert_eq!(keys.open(8, &sealed), Err(OpenError::WrongKey("k1".into())));
        assert_eq!(keys.open(7, "clear").unwrap(), "clear");
    }

    #[test]
    fn unknown_and_wrong_keys_are_named() {
        let sealed = ring(&format!("k2:{K1}")).seal(1, "x");
        let e = ring(&format!("k1:{K1}")).open(1, &sealed).unwrap_err();
        assert_eq!(e, OpenError::UnknownKey("k2".into()));
        assert!(e
            .to_string()
            .contains("\"k2\", which HOOKD_ENCRYPTION_KEYS does not give"));
        assert_eq!(Keyring::off().open(1, &sealed), Err(OpenError::UnknownKey("k2".into())));
        let e = ring(&format!("k2:{K2}")).open(1, &sealed).unwrap_err();
        assert_eq!(e, OpenError::WrongKey("k2".into()));
        assert!(!e.to_string().contains(K2));
    }

    #[test]
    fn tampered_or_malformed_values_never_open() {
        let keys = ring(&format!("k1:{K1}"));
        let sealed = keys.seal(1, "secret");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.open(1, std::str::from_utf8(&tampered).unwrap()).is_err());
        for bad in [
            "enc:v1:",
            "enc:v1:k1",
            "enc:v1:k1:",
            "enc:v1:k1:!!",
            "enc:v1:k1:AAAA",
            "enc:v1:b d:AAAA",
        ] {
            assert_eq!(keys.open(1, bad), Err(OpenError::Malformed(1)), "{bad}");
        }
    }

    #[test]
    fn reseal_moves_values_to_the_first_key_once() {
        let (old, both) = (ring(&format!("k1:{K1}")), ring(&format!("k2:{K2},k1:{K1}")));
        let under_k1 = old.seal(3, "v");
        let moved = both.reseal(3, &under_k1).unwrap().unwrap();
        assert_eq!(Keyring::key_id_of(&moved), Some("k2"));
        assert_eq!(both.reseal(3, &moved).unwrap(), None);
        let from_clear = both.reseal(3, "v").unwrap().unwrap();
        assert_eq!(both.open(3, &from_clear).unwrap(), "v");
        assert_eq!(Keyring::off().reseal(3, "v").unwrap(), None);
    }
}
