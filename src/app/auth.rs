//! Who is calling: `login` turns a name and API key into a session; every `call` names a
//! session or carries HTTP Basic credentials. API keys are verified against argon2 hashes,
//! which is deliberately slow, so a verified key is remembered (by its SHA-256, next to the
//! stored hash it matched): a repeat costs one indexed read, and a removed user or a new key
//! takes effect at once because the stored hash is re-read every time.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::{App, AppError};
use crate::domain::user::verify_api_key;
use crate::domain::{MerchantId, Role};
use crate::domain::{Scope, UserRecord};
use crate::time::now_millis;

/// The authenticated user behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserRecord,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// What this caller may see.
    pub fn scope(&self) -> Scope {
        match self.user.merchant_id {
            Some(m) if !self.is_admin() => Scope::Merchant(m),
            _ => Scope::All,
        }
    }

    pub fn merchant(&self) -> Option<MerchantId> {
        self.user.merchant_id
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::AccessDenied)
        }
    }
}

/// SHA-256 of `name:key` → the stored hash it was verified against.
#[derive(Default)]
pub struct VerifiedKeys(Mutex<HashMap<[u8; 32], String>>);

const MAX_CACHED_KEYS: usize = 10_000;

fn fingerprint(name: &str, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    h.finalize().into()
}

fn hash_session_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl App {
    /// Checks a name and API key; the user on success, `AccessDenied` otherwise.
    pub async fn verify_credentials(&self, name: &str, key: &str) -> Result<UserRecord, AppError> {
        let user = self.store.user_by_name(name).await?.ok_or(AppError::AccessDenied)?;
        let print = fingerprint(name, key);
        let cached = self.auth_cache.0.lock().unwrap().get(&print).cloned();
        if cached.as_deref() == Some(user.key_hash.as_str()) {
            return Ok(user);
        }
        let (presented, stored) = (key.to_string(), user.key_hash.clone());
        let ok = tokio::task::spawn_blocking(move || verify_api_key(&presented, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(AppError::AccessDenied);
        }
        let mut cache = self.auth_cache.0.lock().unwrap();
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(print, user.key_hash.clone());
        Ok(user)
    }

    /// `login(username, api_key)`: a new 32-hex session id, valid for the session TTL.
    pub async fn login(&self, name: &str, key: &str) -> Result<String, AppError> {
        let user = self.verify_credentials(name, key).await?;
        let id = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let expires = now_millis() + self.settings.session_ttl.as_millis() as i64;
        self.store.session_create(&hash_session_id(&id), &user, expires).await?;
        Ok(id)
    }

    /// The caller behind a session id; `SessionExpired` when unknown or expired.
    pub async fn caller_from_session(&self, id: &str) -> Result<Caller, AppError> {
        let user = self
            .store
            .session_user(&hash_session_id(id), now_millis())
            .await?
            .ok_or(AppError::SessionExpired)?;
        Ok(Caller { user })
    }

    pub async fn caller_from_basic(&self, name: &str, key: &str) -> Result<Caller, AppError> {
        Ok(Caller {
            user: self.verify_credentials(name, key).await?,
        })
    }
}
