//! Target safety at the DNS step: unless private targets are allowed, every lookup's
//! forbidden addresses are dropped, so a name cannot be rebound to a private address.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use super::connect::BoxError;
use crate::domain::target::{forbidden_reason, is_forbidden_ip};

/// Resolves with the system resolver; when `guarded` (private targets are not allowed),
/// keeps only addresses that are not forbidden. The connector never asks it about a literal
/// IP host: `DeliveryClient::prepare` checks those.
#[derive(Clone, Copy)]
pub(super) struct Resolver {
    pub(super) guarded: bool,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    // Boxed, not io::Error: a `ForbiddenResolution` inside an io::Error would be hidden from
    // the error chain's `source()` walk that names it in the attempt log.
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guarded = self.guarded;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs = if guarded {
                keep_allowed(host, resolved.into_iter())?
            } else {
                resolved
            };
            Ok(addrs.into_iter())
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
