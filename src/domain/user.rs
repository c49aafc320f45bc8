//! API users and merchants: names, roles, and API keys (shown once, stored as argon2 hashes).
//!
//! Verifying a key runs argon2, which fills ~19 MiB of memory per check. `KeyCheckMemory`
//! lets a caller keep that memory and reuse it for every check it runs, instead of
//! allocating (and leaving to the allocator) a fresh block per check.

use std::sync::OnceLock;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Merchant,
    /// May only publish events (for its listed merchants, or any) and read the catalog.
    Publisher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Merchant => "merchant",
            Role::Publisher => "publisher",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "merchant" => Some(Role::Merchant),
            "publisher" => Some(Role::Publisher),
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
    verify_api_key_with(presented, stored_hash, &mut KeyCheckMemory::default())
}

/// Working memory for argon2, kept between checks by whoever runs many of them.
#[derive(Default)]
pub struct KeyCheckMemory(Vec<Block>);

/// The most memory a stored hash may ask for (64 MiB; ours use 19 MiB). A hash asking
/// for more never verifies rather than letting one row take the server's memory.
const MAX_CHECK_BLOCKS: usize = 64 * 1024;

/// `verify_api_key` with memory the caller keeps (see `KeyCheckMemory`).
pub fn verify_api_key_with(presented: &str, stored_hash: &str, memory: &mut KeyCheckMemory) -> bool {
    let Ok(hash) = PasswordHash::new(stored_hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash)) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_CHECK_BLOCKS {
        return false;
    }
    if memory.0.len() < blocks {
        memory.0.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        presented.as_bytes(),
        salt,
        &mut out,
        &mut memory.0[..blocks],
    );
    // `Output` compares in constant time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A hash of a random key, made once with the same parameters as real ones: checking a
/// key for a user who does not exist against it costs what a real check costs, so the
/// answer's timing does not tell which user names exist.
pub fn unknown_user_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| ApiKey::generate().hash())
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
    fn reused_memory_gives_the_same_answers() {
        let mut memory = KeyCheckMemory::default();
        let key = ApiKey::generate();
        let hash = key.hash();
        for _ in 0..2 {
            assert!(verify_api_key_with(key.expose(), &hash, &mut memory));
            assert!(!verify_api_key_with("wrong", &hash, &mut memory));
            assert!(!verify_api_key_with(key.expose(), unknown_user_hash(), &mut memory));
        }
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_never_verifies() {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(65 * 1024, 1, 1, None).unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let hash = argon.hash_password(b"k", &salt).unwrap().to_string();
        assert!(!verify_api_key("k", &hash));
    }

    #[test]
    fn names_are_restricted() {
        assert!(UserName::parse("shop-1.admin@x").is_ok());
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse("a b").is_err());
        assert!(MerchantCode::parse(&"m".repeat(65)).is_err());
    }
}
