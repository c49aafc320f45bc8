//! API users and merchants: names, roles, and API keys (shown once, stored as argon2 hashes).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Merchant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Merchant => "merchant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "merchant" => Some(Role::Merchant),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} must be 1 to 64 characters of letters, digits, '.', '_', '-' or '@'")]
pub struct NameError {
    what: &'static str,
}

fn check_name(s: &str, what: &'static str) -> Result<String, NameError> {
    let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    ok.then(|| s.to_string()).ok_or(NameError { what })
}

/// A user's login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_name(s, "a user name").map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A merchant's code, as it appears in every payload (`merchant_code`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantCode(String);

impl MerchantCode {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_name(s, "a merchant code").map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A freshly made API key: 40 hex characters (160 bits). Only its hash is stored.
pub struct ApiKey(String);

impl ApiKey {
    pub fn generate() -> Self {
        let bytes: [u8; 20] = rand::thread_rng().gen();
        Self(hex::encode(bytes))
    }

    /// Wraps a key given in full (to hash it elsewhere, e.g. on a blocking thread).
    pub fn from_plain(key: &str) -> Self {
        Self(key.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A salted argon2id hash in PHC string form.
    pub fn hash(&self) -> String {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail")
            .to_string()
    }
}

/// Checks a presented key against a stored hash. A malformed hash never verifies.
pub fn verify_api_key(presented: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(presented.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_only_against_their_own_hash() {
        let key = ApiKey::generate();
        let hash = key.hash();
        assert!(!hash.contains(key.expose()));
        assert!(verify_api_key(key.expose(), &hash));
        assert!(!verify_api_key(ApiKey::generate().expose(), &hash));
        assert!(!verify_api_key(key.expose(), "not a hash"));
    }

    #[test]
    fn names_are_restricted() {
        assert!(UserName::parse("shop-1.admin@x").is_ok());
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse("a b").is_err());
        assert!(MerchantCode::parse(&"m".repeat(65)).is_err());
    }
}
