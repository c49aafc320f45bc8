//! Portal links (CONTRACT §7.1 `portal.link`): the link's token, its time to live, the
//! public base URL links are made under, and the origins allowed to frame the console.
//!
//! The one idea to know: a link's token is 256 random bits shown once, in the URL; only its
//! SHA-256 is stored, and opening the link deletes that row and makes the session in one
//! transaction, so a token logs in at most once.

use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::MerchantId;
use crate::time::Millis;

/// A link's time to live when `ttl` is not given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Characters of a token in a URL: 32 random bytes in lowercase hex.
pub const TOKEN_LEN: usize = 64;

/// A new link's secret token; `hash` is what is stored.
pub struct PortalToken(String);

impl PortalToken {
    pub fn generate() -> Self {
        Self(hex::encode(rand::thread_rng().gen::<[u8; 32]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

/// Whether `token` has the shape of a link's token (so a malformed one costs no read).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn hash_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"hookd portal link\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// `ttl` as given to `portal.link`: a humantime duration from `MIN_TTL` to `MAX_TTL`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "ttl must be a duration from 1m to 24h such as \"15m\", not {}",
            quoted(text)
        )
    };
    let ttl = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(bad());
    }
    Ok(ttl)
}

/// A value quoted for an error message, cut short when long.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    let more = if text.chars().count() > 40 { "…" } else { "" };
    format!("{:?}", format!("{cut}{more}"))
}

/// A link as it is stored.
#[derive(Clone, Debug)]
pub struct NewPortalLink {
    pub token_hash: String,
    pub merchant: MerchantId,
    /// The admin who made it (its sessions end with that user).
    pub created_by: super::UserId,
    pub read_only: bool,
    pub expires_at: Millis,
}

/// What opening a link found: the link's row is gone either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// A session was made (stored under `session_hash`).
    Session { merchant_code: String, read_only: bool },
    /// The link existed but its time had passed; no session.
    Expired { merchant_code: String },
}

/// How a portal session differs from a user's own session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalGrant {
    pub read_only: bool,
}

/// Who a session acts as. For a portal session `user` is the admin who made the link,
/// seen as a merchant user of the link's merchant (role, merchant id and code replaced).
#[derive(Clone, Debug)]
pub struct SessionUser {
    pub user: super::UserRecord,
    pub portal: Option<PortalGrant>,
}

impl SessionUser {
    /// A session row's user, turned into the link's merchant when `portal` names one.
    pub fn new(mut user: super::UserRecord, portal: Option<(MerchantId, String)>, read_only: bool) -> Self {
        let portal = portal.map(|(merchant, code)| {
            user.role = super::Role::Merchant;
            user.merchant_id = Some(merchant);
            user.merchant_code = Some(code);
            PortalGrant { read_only }
        });
        Self { user, portal }
    }
}

/// The base portal URLs are made under (`HOOKD_PUBLIC_URL`): an absolute http(s) URL with
/// no query or fragment; kept without its trailing slash.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("'{text}' is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{text}' must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("'{text}' must have no user, query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// One origin allowed to frame the console (`HOOKD_CONSOLE_FRAME_ANCESTORS`): a scheme,
/// a host (optionally `*.` + a domain) and an optional port; no path, no other wildcard.
pub fn parse_frame_ancestor(text: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("'{text}' is not an origin ({why}); write e.g. https://platform.example or https://*.example.com:8443")
    };
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !matches!(scheme, "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("no path, query, fragment or user allowed"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    if let Some(p) = port {
        if p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535)
        {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
    }
    let domain = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(bad("the host must be a DNS name, optionally after a leading '*.'"));
    }
    Ok(format!(
        "{scheme}://{}{}",
        host.to_ascii_lowercase(),
        port.map(|p| format!(":{p}")).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_of_hex_and_hashed_under_a_label() {
        let t = PortalToken::generate();
        assert!(well_formed(t.as_str()));
        assert_ne!(t.as_str(), PortalToken::generate().as_str());
        assert_eq!(t.hash().len(), 64);
        assert_ne!(t.hash(), t.as_str());
        assert!(!well_formed(&t.as_str().to_uppercase()));
        assert!(!well_formed(&t.as_str()[1..]));
        assert!(!well_formed(""));
    }

    #[test]
    fn ttls_are_bounded() {
        assert_eq!(parse_ttl("15m").unwrap(), DEFAULT_TTL);
        assert_eq!(parse_ttl("1m").unwrap(), MIN_TTL);
        assert_eq!(parse_ttl("24h").unwrap(), MAX_TTL);
        for bad in ["59s", "25h", "0s", "", "soon", "-5m", "1 fortnight"] {
            assert!(parse_ttl(bad).unwrap_err().contains("ttl"), "{bad}");
        }
    }

    #[test]
    fn frame_ancestors_are_origins() {
        assert_eq!(
            parse_frame_ancestor("https://Platform.example").unwrap(),
            "https://platform.example"
        );
        assert_eq!(
            parse_frame_ancestor("https://*.example.com:8443/").unwrap(),
            "https://*.example.com:8443"
        );
        assert_eq!(
            parse_frame_ancestor("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "platform.example",
            "ftp://x.example",
            "https://x.example/path",
            "https://*",
            "https://a.*.example",
            "*",
            "https://x.example:0",
            "https://x.example:99999",
            "https://x.example?q",
            "https://u@x.example",
            "https://x .example",
            "https://x.example; script-src *",
            "'self'",
        ] {
            assert!(parse_frame_ancestor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_urls_are_absolute_http() {
        assert_eq!(
            parse_public_url("https://hooks.example/").unwrap(),
            "https://hooks.example"
        );
        assert_eq!(
            parse_public_url("https://x.example/hookd").unwrap(),
            "https://x.example/hookd"
        );
        for bad in [
            "hooks.example",
            "ftp://x",
            "https://x.example/?a=1",
            "https://u:p@x.example",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }
}
