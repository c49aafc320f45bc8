//! How the delivery client reaches a receiver: DNS through [`Resolver`] (target safety),
//! TCP with keep-alive probes and no Nagle delay, TLS on rustls (ring, the Mozilla roots;
//! HTTP/2 when the receiver offers it by ALPN), the whole of it bounded by the connect
//! timeout ([`Bounded`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::rustls;

use super::resolver::Resolver;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector the delivery client's pool uses.
pub(super) type Connector = Bounded<HttpsConnector<HttpConnector<Resolver>>>;

/// TCP keep-alive: an idle pooled connection whose peer vanished is found within a minute.
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 3;

/// What the client trusts: rustls on ring with its safe default protocol versions, and the
/// Mozilla roots.
pub(super) fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    with_roots(rustls::RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    ))
}

/// `tls_config` trusting `roots` instead.
pub(super) fn with_roots(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub(super) fn connector(connect_timeout: Duration, guarded: bool, tls: rustls::ClientConfig) -> Connector {
    let mut http = HttpConnector::new_with_resolver(Resolver { guarded });
    // https:// URIs go through: the TLS layer above takes them.
    http.enforce_http(false);
    http.set_nodelay(true);
    // Split between a name's addresses, so one that never answers leaves time for the next.
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(KEEPALIVE));
    http.set_keepalive_interval(Some(KEEPALIVE));
    http.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Bounded {
        inner: https,
        timeout: connect_timeout,
    }
}

/// The connect timeout ran out (resolving, connecting and the TLS handshake together).
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub(super) struct ConnectTimedOut;

/// A connector whose every connection, TLS handshake included, is made within `timeout`.
#[derive(Clone)]
pub(super) struct Bounded<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower::Service<Uri> for Bounded<C>
where
    C: tower::Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (connecting, timeout) = (self.inner.call(uri), self.timeout);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}
