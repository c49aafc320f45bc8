//! `HOOKD_ENCRYPTION_KEYS`: a comma list of `ID:BASE64-32-BYTES`, the first one encrypts.
//! Parsing refuses what would be a mistake later (a short key, a repeated id) in one line
//! that names the entry and its id, never the key material.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Longest key id: it is stored beside every secret.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Most keys in the list (one encrypts; the others only decrypt during a rotation).
pub const MAX_KEYS: usize = 16;

/// Why a `HOOKD_ENCRYPTION_KEYS` value is refused. Messages never quote a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyListError {
    #[error("HOOKD_ENCRYPTION_KEYS is empty (give ID:BASE64-32-BYTES, e.g. k1:$(openssl rand -base64 32))")]
    Empty,
    #[error("HOOKD_ENCRYPTION_KEYS holds more than {MAX_KEYS} keys")]
    TooMany,
    #[error("HOOKD_ENCRYPTION_KEYS entry {0} is empty")]
    EmptyEntry(usize),
    #[error("HOOKD_ENCRYPTION_KEYS entry {0} is not ID:BASE64-32-BYTES (no ':')")]
    NoSeparator(usize),
    #[error(
        "HOOKD_ENCRYPTION_KEYS entry {0}: a key id is 1 to {MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, '_' and '-'"
    )]
    BadId(usize),
    #[error("HOOKD_ENCRYPTION_KEYS key \"{0}\" is not base64")]
    NotBase64(String),
    #[error("HOOKD_ENCRYPTION_KEYS key \"{0}\" is {1} bytes, not 32 (make one with: openssl rand -base64 32)")]
    WrongLength(String, usize),
    #[error("HOOKD_ENCRYPTION_KEYS gives key id \"{0}\" twice")]
    DuplicateId(String),
}

/// One key of the list: its id and its 32 bytes.
pub struct NamedKey {
    pub id: String,
    pub bytes: [u8; 32],
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NamedKey({}, ..)", self.id)
    }
}

/// Whether `id` may name a key (also used when reading a stored value).
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The keys in the order given; the first one encrypts.
pub fn parse_key_list(text: &str) -> Result<Vec<NamedKey>, KeyListError> {
    if text.trim().is_empty() {
        return Err(KeyListError::Empty);
    }
    let mut keys: Vec<NamedKey> = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        let n = i + 1;
        if n > MAX_KEYS {
            return Err(KeyListError::TooMany);
        }
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(KeyListError::EmptyEntry(n));
        }
        let (id, key) = entry.split_once(':').ok_or(KeyListError::NoSeparator(n))?;
        let id = id.trim();
        if !valid_key_id(id) {
            return Err(KeyListError::BadId(n));
        }
        let decoded = BASE64
            .decode(key.trim())
            .map_err(|_| KeyListError::NotBase64(id.to_string()))?;
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyListError::WrongLength(id.to_string(), decoded.len()))?;
        if keys.iter().any(|k| k.id == id) {
            return Err(KeyListError::DuplicateId(id.to_string()));
        }
        keys.push(NamedKey {
            id: id.to_string(),
            bytes,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32

    #[test]
    fn a_list_parses_in_order() {
        let keys = parse_key_list(&format!(" k2:{K} , old_1:{K}")).unwrap();
        assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k2", "old_1"]);
        assert_eq!(keys[0].bytes[31], 31);
    }

    #[test]
    fn bad_lists_are_refused_without_showing_key_material() {
        let short = "c2hvcnQ="; // "short"
        let cases = [
            ("".to_string(), KeyListError::Empty),
            (format!("k1:{K},"), KeyListError::EmptyEntry(2)),
            (K.to_string(), KeyListError::NoSeparator(1)),
            (format!("{K}:k1"), KeyListError::NotBase64(String::new())), // placeholder, checked below
            (format!("bad id:{K}"), KeyListError::BadId(1)),
            (format!("{}:{K}", "x".repeat(33)), KeyListError::BadId(1)),
            (format!("k1:{short}"), KeyListError::WrongLength("k1".into(), 5)),
            ("k1:not base64!".to_string(), KeyListError::NotBase64("k1".into())),
            (format!("k1:{K},k1:{K}"), KeyListError::DuplicateId("k1".into())),
        ];
        for (text, expected) in cases {
            let e = parse_key_list(&text).unwrap_err();
            if text.starts_with(&format!("{K}:")) {
                // The key given where the id goes: refused as an id, never printed.
                assert_eq!(e, KeyListError::BadId(1));
            } else {
                assert_eq!(e, expected, "{text}");
            }
            let shown = e.to_string();
            assert!(!shown.contains(K) && !shown.contains(short), "{shown}");
            assert!(!shown.contains('\n') && shown.len() < 160, "{shown}");
        }
        let many = (0..17).map(|i| format!("k{i}:{K}")).collect::<Vec<_>>().join(",");
        assert_eq!(parse_key_list(&many).unwrap_err(), KeyListError::TooMany);
    }
}
