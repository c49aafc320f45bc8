//! Who is calling: `login` turns a name and API key into a session; every `call` names a
//! session or carries HTTP Basic credentials. API keys are verified against argon2 hashes,
//! which is deliberately slow, so a verified key is remembered (by its SHA-256, next to the
//! user as read then): a repeat costs one indexed read, and a removed user or a new key
//! takes effect at once because the stored hash is re-read every time.
//!
//! Except for `event.publish`, the one call a platform makes per business event: there the
//! remembered user is taken without a read (`remembered_caller`), and the store compares the
//! stored hash inside the publish's own transaction (`KeyCheck`), so a key rotated or a user
//! removed on any node or by the CLI still stops publishing at once, without a round trip
//! per publish. A publish that fails for a remembered caller has its key checked the usual way
//! before the error is answered (`rpc::call`): an error told to a revoked key would tell
//! what exists.
//!
//! Checks that are not remembered are limited: they run on a few threads with a bounded
//! queue (`verifier`), concurrent checks of the same name and key share one run, and
//! failures are throttled per user name and per client address (`throttle`). A name that
//! does not exist is checked against a dummy hash, so it costs what a wrong key costs.

mod throttle;
mod verifier;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::in_flight::InFlight;
use super::{App, AppError};
use crate::domain::portal::PortalGrant;
use crate::domain::{KeyCheck, Scope, UserRecord};
use crate::domain::{MerchantId, Role};
use crate::time::now_millis;

/// The authenticated user behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserRecord,
    /// Set for a console session opened by a portal link (`user` then acts as the link's
    /// merchant); such a session is the console's only, never the API's.
    pub portal: Option<PortalGrant>,
    /// True for a caller taken from memory without reading the store (`remembered_caller`):
    /// only a publish may act for it, with its `key_check`.
    pub remembered: bool,
}

impl Caller {
    /// A read-only portal session: it may look at everything and change nothing.
    pub fn read_only(&self) -> bool {
        self.portal.is_some_and(|p| p.read_only)
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// What this caller may see. A publisher sees no merchant's data (no merchant has the
    /// id 0: ids start at 1); the method table keeps it from reading anyway.
    pub fn scope(&self) -> Scope {
        match (self.user.role, self.user.merchant_id) {
            (Role::Admin, _) => Scope::All,
            (_, Some(m)) => Scope::Merchant(m),
            (_, None) => Scope::Merchant(MerchantId(0)),
        }
    }

    /// Whether this caller may publish for the merchant `code`: an admin for any, a
    /// publisher for its listed merchants (any when none are listed), nobody else.
    pub fn may_publish_for(&self, code: &str) -> bool {
        match self.user.role {
            Role::Admin => true,
            Role::Publisher => {
                self.user.merchant_codes.is_empty() || self.user.merchant_codes.iter().any(|c| c == code)
            }
            Role::Merchant => false,
        }
    }

    pub fn merchant(&self) -> Option<MerchantId> {
        self.user.merchant_id
    }

    /// What the store must find unchanged when it stores this caller's publish: set only
    /// for a remembered caller, whose key was not read for this request.
    pub fn key_check(&self) -> Option<KeyCheck> {
        self.remembered.then(|| KeyCheck {
            user: self.user.id,
            key_hash: self.user.key_hash.clone(),
        })
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::AccessDenied)
        }
    }
}

/// Limits on checking API keys (part of `AppSettings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// Key checks (argon2, ~19 MiB and ~25 ms each) running at once.
    pub check_threads: usize,
    /// Key checks waiting for a thread; beyond them a login is refused at once.
    pub check_queue: usize,
    /// Failed logins per user name within `failure_window` before it is refused.
    pub max_failures_per_user: u32,
    /// Failed logins per client address within `failure_window` before it is refused.
    pub max_failures_per_address: u32,
    pub failure_window: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            // About one per core, and never more than 8 (8 x 19 MiB) by default.
            check_threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            check_queue: 64,
            max_failures_per_user: 10,
            max_failures_per_address: 100,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// What `App` keeps for authentication.
pub struct AuthState {
    verified: VerifiedKeys,
    verifier: verifier::KeyVerifier,
    /// Checks in progress, by fingerprint and stored hash: callers with the same name and
    /// key wait for one run (a batch of Basic-auth calls makes many at once).
    running: InFlight<CheckKey, Result<bool, verifier::Busy>>,
    /// Reads of a user by name in progress for publishes, shared by concurrent ones (see
    /// `caller_for_publish`).
    reading: InFlight<String, Option<UserRecord>>,
    pub(super) throttle: throttle::LoginThrottle,
}

/// A check's fingerprint of name and key, and the stored hash it is made against ("" for
/// a user that does not exist).
type CheckKey = ([u8; 32], String);

impl AuthState {
    pub fn new(settings: &AuthSettings) -> std::io::Result<Self> {
        Ok(Self {
            verified: VerifiedKeys::default(),
            verifier: verifier::KeyVerifier::start(settings.check_threads, settings.check_queue)?,
            running: InFlight::default(),
            reading: InFlight::default(),
            throttle: throttle::LoginThrottle::new(
                settings.max_failures_per_user,
                settings.max_failures_per_address,
                settings.failure_window,
            ),
        })
    }

    /// One argon2 check of `key` against `stored` (None: no such user), shared with
    /// concurrent identical ones.
    async fn check(&self, print: [u8; 32], key: &str, stored: Option<&str>) -> Result<bool, verifier::Busy> {
        let slot = (print, stored.unwrap_or_default().to_string());
        self.running.run(slot, || self.verifier.verify(key, stored)).await
    }
}

/// SHA-256 of `name:key` → the user it was verified as (with the stored hash it matched).
#[derive(Default)]
struct VerifiedKeys(Mutex<HashMap<[u8; 32], UserRecord>>);

impl VerifiedKeys {
    fn get(&self, print: &[u8; 32]) -> Option<UserRecord> {
        self.0.lock().unwrap().get(print).cloned()
    }

    fn forget(&self, print: &[u8; 32]) {
        self.0.lock().unwrap().remove(print);
    }
}

const MAX_CACHED_KEYS: usize = 10_000;

fn fingerprint(name: &str, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    h.finalize().into()
}

fn refuse_publisher_in_console(user: &UserRecord) -> Result<(), AppError> {
    if user.role == Role::Publisher {
        return Err(AppError::Forbidden(
            "A publisher key may only publish events through the API; the console is for admin and merchant users."
                .into(),
        ));
    }
    Ok(())
}

pub(super) fn hash_session_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl App {
    /// Checks a name and API key from `client`; the user on success, `AccessDenied` for
    /// a wrong name or key, `Throttled` when the check was refused (too many at once, or
    /// too many failures lately for this name or address).
    pub async fn verify_credentials(
        &self,
        name: &str,
        key: &str,
        client: Option<IpAddr>,
    ) -> Result<UserRecord, AppError> {
        let user = self.store.user_by_name(name).await?;
        self.verify_against(user, name, key, client).await
    }

    /// `verify_credentials` with the user as read (None: no such user).
    async fn verify_against(
        &self,
        user: Option<UserRecord>,
        name: &str,
        key: &str,
        client: Option<IpAddr>,
    ) -> Result<UserRecord, AppError> {
        let auth = &self.auth;
        let print = fingerprint(name, key);
        if let Some(user) = &user {
            let cached = auth.verified.get(&print);
            if cached.is_some_and(|c| c.key_hash == user.key_hash && c.id == user.id) {
                return Ok(user.clone());
            }
        }
        if let Err(wait) = auth.throttle.check(name, client) {
            return Err(AppError::Throttled(format!(
                "Too many failed logins for this user or from this address, retry in {} s.",
                wait.as_secs().max(1)
            )));
        }
        let stored = user.as_ref().map(|u| u.key_hash.as_str());
        let ok = auth
            .check(print, key, stored)
            .await
            .map_err(|verifier::Busy| AppError::Throttled("Too many logins in progress, retry shortly.".into()))?;
        let user = match user {
            Some(user) if ok => user,
            _ => {
                auth.throttle.failed(name, client);
                // No longer remembered, for a publish either (see `remembered_caller`).
                auth.verified.forget(&print);
                return Err(AppError::AccessDenied);
            }
        };
        auth.throttle.succeeded(name);
        let mut cache = auth.verified.0.lock().unwrap();
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(print, user.clone());
        Ok(user)
    }

    /// The user `name` and `key` were verified as before, taken from memory without reading
    /// the store; None when they were not (or not lately). Only for a publish, whose store
    /// transaction checks `Caller::key_check`.
    pub fn remembered_caller(&self, name: &str, key: &str) -> Option<Caller> {
        let user = self.auth.verified.get(&fingerprint(name, key))?;
        (user.name == name).then_some(Caller {
            user,
            portal: None,
            remembered: true,
        })
    }

    /// `caller_from_basic` for a publish whose key is not remembered (the first of a client,
    /// say): concurrent publishes under one name share one read of the user, so a burst of
    /// new connections does not queue a read each for the API's connections. A shared read
    /// may have begun before a rotation that ended before this request began, so the caller
    /// comes back as remembered: its publish is stored only if the store finds the key
    /// unchanged (`KeyCheck`), as for any remembered caller.
    pub async fn caller_for_publish(&self, name: &str, key: &str, client: Option<IpAddr>) -> Result<Caller, AppError> {
        let shared = (self.auth.reading)
            .try_run(name.to_string(), || self.store.user_by_name(name))
            .await?;
        let user = match self.verify_against(shared.clone(), name, key, client).await {
            // The shared read may predate a new key: refused only if a fresh read agrees.
            Err(AppError::AccessDenied) => {
                let fresh = self.store.user_by_name(name).await?;
                let hash = |u: &Option<UserRecord>| u.as_ref().map(|u| (u.id, u.key_hash.clone()));
                if hash(&fresh) == hash(&shared) {
                    return Err(AppError::AccessDenied);
                }
                self.verify_against(fresh, name, key, client).await?
            }
            other => other?,
        };
        Ok(Caller {
            user,
            portal: None,
            remembered: true,
        })
    }

    /// `login(username, api_key)`: a new 32-hex session id, valid for the session TTL.
    pub async fn login(&self, name: &str, key: &str, client: Option<IpAddr>) -> Result<String, AppError> {
        let user = self.verify_credentials(name, key, client).await?;
        let id = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let expires = now_millis() + self.settings.session_ttl.as_millis() as i64;
        self.store.session_create(&hash_session_id(&id), &user, expires).await?;
        Ok(id)
    }

    /// The caller behind a session id; `SessionExpired` when unknown or expired.
    pub async fn caller_from_session(&self, id: &str) -> Result<Caller, AppError> {
        let session = self
            .store
            .session_user(&hash_session_id(id), now_millis())
            .await?
            .ok_or(AppError::SessionExpired)?;
        Ok(Caller {
            user: session.user,
            portal: session.portal,
            remembered: false,
        })
    }

    /// `login` for the console, which is for people managing webhooks: a publisher's key
    /// is checked like any (same throttling), then refused with the reason, and no
    /// session is made.
    pub async fn console_login(&self, name: &str, key: &str, client: Option<IpAddr>) -> Result<String, AppError> {
        let user = self.verify_credentials(name, key, client).await?;
        refuse_publisher_in_console(&user)?;
        self.login(name, key, client).await
    }

    /// `caller_from_session` for the console: a publisher's session (made by the API's
    /// `login`) does not open it.
    pub async fn console_caller_from_session(&self, id: &str) -> Result<Caller, AppError> {
        let caller = self.caller_from_session(id).await?;
        refuse_publisher_in_console(&caller.user)?;
        Ok(caller)
    }

    /// Ends the session (the console's logout); unknown ids are no error.
    pub async fn logout(&self, id: &str) -> Result<(), AppError> {
        self.store.session_delete(&hash_session_id(id)).await?;
        Ok(())
    }

    pub async fn caller_from_basic(&self, name: &str, key: &str, client: Option<IpAddr>) -> Result<Caller, AppError> {
        Ok(Caller {
            user: self.verify_credentials(name, key, client).await?,
            portal: None,
            remembered: false,
        })
    }
}
