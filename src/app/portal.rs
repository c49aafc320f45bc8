//! Portal links (CONTRACT §7.1): an admin makes a single-use URL that logs whoever opens it
//! into the console as one merchant, optionally read-only; opening it is throttled and
//! logged like a login (failures count against the client's address).

use std::net::IpAddr;
use std::time::Duration;

use rand::Rng;

use super::auth::hash_session_id;
use super::{App, AppError, Caller};
use crate::domain::portal::{self, NewPortalLink, PortalToken, Redeemed};
use crate::time::{format_timestamp, now_millis, Millis};

/// Settings of portal links and of framing the console (part of `AppSettings`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortalSettings {
    /// Base of the links' URLs (`HOOKD_PUBLIC_URL`, no trailing slash); None: the Host the
    /// `portal.link` request came to, over http.
    pub public_url: Option<String>,
    /// Origins allowed to frame the console (`HOOKD_CONSOLE_FRAME_ANCESTORS`); empty: none.
    pub frame_ancestors: Vec<String>,
}

/// A link made by `portal.link`.
pub struct PortalLink {
    pub url: String,
    pub expires_at: Millis,
}

impl PortalLink {
    pub fn expires_at_text(&self) -> String {
        format_timestamp(self.expires_at)
    }
}

/// Why a link did not log anyone in: the console shows the text on its login page.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("This portal link is not valid: it is malformed, or it was already used (a link logs in once). Ask for a new link.")]
    Invalid,
    #[error("This portal link has expired. Ask for a new link.")]
    Expired,
    #[error(transparent)]
    App(#[from] AppError),
}

impl App {
    /// `portal.link`: a single-use link for `merchant_code`, valid for `ttl`, under `base`
    /// (the configured public URL wins over it). Admins only.
    pub async fn portal_link(
        &self,
        caller: &Caller,
        merchant_code: &str,
        ttl: Duration,
        read_only: bool,
        base: Option<&str>,
    ) -> Result<PortalLink, AppError> {
        caller.require_admin()?;
        let base = match (&self.settings.portal.public_url, base) {
            (Some(url), _) => url.clone(),
            (None, Some(base)) => base.to_string(),
            (None, None) => {
                return Err(AppError::InvalidData(
                    "no public URL to make the link under: set HOOKD_PUBLIC_URL or send a Host header".into(),
                ))
            }
        };
        let merchant = self
            .merchant_id(merchant_code)
            .await?
            .ok_or_else(|| AppError::NoSuchMerchant(merchant_code.to_string()))?;
        let token = PortalToken::generate();
        let expires_at = now_millis() + ttl.as_millis() as i64;
        self.store
            .portal_link_create(&NewPortalLink {
                token_hash: token.hash(),
                merchant,
                created_by: caller.user.id,
                read_only,
                expires_at,
            })
            .await?;
        tracing::info!(
            merchant = merchant_code,
            read_only,
            by = caller.user.name.as_str(),
            "portal link made"
        );
        Ok(PortalLink {
            url: format!("{base}/console/portal/{}", token.as_str()),
            expires_at,
        })
    }

    /// Opens a portal link from `client`: a new console session id for the link's
    /// merchant. Each failure counts against the address like a failed login.
    pub async fn portal_open(&self, token: &str, client: Option<IpAddr>) -> Result<String, OpenError> {
        let throttle = &self.auth.throttle;
        if let Err(wait) = throttle.check_address(client) {
            tracing::warn!(client = ?client, "portal link refused: too many failures from this address");
            return Err(AppError::Throttled(format!(
                "Too many failed logins from this address, retry in {} s.",
                wait.as_secs().max(1)
            ))
            .into());
        }
        let failed = |why: OpenError| {
            throttle.failed_address(client);
            tracing::warn!(client = ?client, reason = %why, "portal link refused");
            Err(why)
        };
        if !portal::well_formed(token) {
            return failed(OpenError::Invalid);
        }
        let session = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let now = now_millis();
        let expires = now + self.settings.session_ttl.as_millis() as i64;
        let redeemed = self
            .store
            .portal_link_redeem(&portal::hash_token(token), &hash_session_id(&session), now, expires)
            .await
            .map_err(AppError::from)?;
        match redeemed {
            None => failed(OpenError::Invalid),
            Some(Redeemed::Expired { merchant_code }) => {
                tracing::info!(merchant = merchant_code.as_str(), "an expired portal link was opened");
                failed(OpenError::Expired)
            }
            Some(Redeemed::Session {
                merchant_code,
                read_only,
            }) => {
                tracing::info!(client = ?client, merchant = merchant_code.as_str(), read_only, "portal link used: console session opened");
                Ok(session)
            }
        }
    }
}
