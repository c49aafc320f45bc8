//! A webhook's signing secret. Given by the client or generated (190 bits of randomness).

use rand::distributions::Alphanumeric;
use rand::Rng;

pub const MAX_SECRET_LEN: usize = 256;
const GENERATED_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret_key must not be empty")]
    Empty,
    #[error("secret_key is longer than {MAX_SECRET_LEN} characters")]
    TooLong,
    #[error("secret_key contains a control character")]
    ControlChar,
    /// The prefix marks a value encrypted at rest (see `sealing`).
    #[error("secret_key must not start with \"enc:v1:\"")]
    Reserved,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if s.is_empty() {
            return Err(SecretError::Empty);
        }
        if s.chars().count() > MAX_SECRET_LEN {
            return Err(SecretError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(SecretError::ControlChar);
        }
        if s.starts_with(crate::sealing::SEALED_PREFIX) {
            return Err(SecretError::Reserved);
        }
        Ok(Self(s.to_string()))
    }

    /// 32 alphanumeric characters from the OS-seeded CSPRNG (~190 bits).
    pub fn generate() -> Self {
        let s: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(GENERATED_LEN)
            .map(char::from)
            .collect();
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let a = SecretKey::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a.as_str(), SecretKey::generate().as_str());
    }

    #[test]
    fn given_secrets_are_checked() {
        assert_eq!(SecretKey::parse("2RUJ8NXLnLRrAj3").unwrap().as_str(), "2RUJ8NXLnLRrAj3");
        assert_eq!(SecretKey::parse(""), Err(SecretError::Empty));
        assert_eq!(SecretKey::parse(&"x".repeat(257)), Err(SecretError::TooLong));
        assert_eq!(SecretKey::parse("a\nb"), Err(SecretError::ControlChar));
        assert_eq!(SecretKey::parse("enc:v1:k1:AAAA"), Err(SecretError::Reserved));
    }
}
