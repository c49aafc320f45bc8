//! Target safety at the DNS step: unless private targets are allowed, every lookup's
//! forbidden addresses are dropped, so a name cannot be rebound to a private address.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::target::{forbidden_reason, is_forbidden_ip};

/// The resolver used unless private targets are allowed: resolves with the system resolver
/// and keeps only addresses that are not forbidden.
pub(super) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = keep_allowed(host, resolved.into_iter())?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Drops forbidden addresses; refuses the name if nothing else is left.
pub(super) fn keep_allowed(
    host: String,
    resolved: impl Iterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, ForbiddenResolution> {
    let mut allowed = Vec::new();
    let mut refused: Vec<IpAddr> = Vec::new();
    for addr in resolved {
        if !is_forbidden_ip(addr.ip()) {
            allowed.push(addr);
        } else if !refused.contains(&addr.ip()) {
            refused.push(addr.ip());
        }
    }
    if allowed.is_empty() && !refused.is_empty() {
        return Err(ForbiddenResolution { host, refused });
    }
    Ok(allowed)
}

/// Every address a name resolved to is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("target {host} resolves only to forbidden addresses: {}", list_refused(.refused))]
pub(super) struct ForbiddenResolution {
    pub(super) host: String,
    pub(super) refused: Vec<IpAddr>,
}

pub(super) fn list_refused(refused: &[IpAddr]) -> String {
    refused
        .iter()
        .map(|ip| format!("{ip} ({})", forbidden_reason(*ip).unwrap_or("forbidden")))
        .collect::<Vec<_>>()
        .join(", ")
}
