//! Who a request comes from, and whether it reached us over HTTPS, when proxies stand in
//! front (`trusted_proxies`, a list of CIDRs, none by default).
//!
//! The one idea to know: `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from
//! a peer in the list, and from `X-Forwarded-For` only as far as the chain of trusted
//! addresses goes: the client is the rightmost address that is not a trusted proxy (the
//! addresses left of it are whatever that client chose to send). From any other peer the
//! headers are ignored, so nobody escapes the login throttle by sending them.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client of one request, as far as it can be believed (an extension the server puts
/// on every request; handlers take it as an extractor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Client {
    /// The client's address (None outside the server, e.g. a router called directly).
    pub ip: Option<IpAddr>,
    /// Whether the client reached us over HTTPS: this connection is TLS, or a trusted
    /// proxy says `X-Forwarded-Proto: https`.
    pub https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Client>().copied().unwrap_or_default())
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// A comma list of CIDRs (`10.0.0.0/8, 127.0.0.1/32`; a bare address is that host alone).
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "trusted_proxies (HOOKD_TRUSTED_PROXIES): '{item}' is not a CIDR \
                         (give a comma list such as 10.0.0.0/8,127.0.0.1/32)"
                    )
                })?;
            nets.push(net);
        }
        Ok(Self(Arc::new(nets)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` over a connection that is TLS or not.
    pub fn client(&self, peer: SocketAddr, tls: bool, headers: &HeaderMap) -> Client {
        let peer_ip = peer.ip().to_canonical();
        if !self.trusts(peer_ip) {
            return Client {
                ip: Some(peer_ip),
                https: tls,
            };
        }
        Client {
            ip: Some(self.forwarded_for(peer_ip, headers)),
            https: tls || forwarded_https(headers),
        }
    }

    /// Walks `X-Forwarded-For` from the right while the addresses are trusted proxies; the
    /// first one that is not is the client. An entry that is not an address stops the walk
    /// (the last address believed stands).
    fn forwarded_for(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for entry in entries.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_address(entry.trim()) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

/// What the nearest proxy said in `X-Forwarded-Proto` (its rightmost value).
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let none = TrustedProxies::default();
        let h = headers(&[("x-forwarded-for", "9.9.9.9"), ("x-forwarded-proto", "https")]);
        let client = none.client(peer("10.0.0.1"), false, &h);
        assert_eq!(
            client,
            Client {
                ip: ip("10.0.0.1"),
                https: false
            }
        );
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4"), ("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(proxies.client(peer("10.0.0.1"), false, &h).ip, ip("1.2.3.4"));
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443, 5.6.7.8:1234")]);
        assert_eq!(proxies.client(peer("192.168.1.1"), false, &h).ip, ip("5.6.7.8"));
        // Everything trusted: the leftmost stands; garbage stops the walk.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.8.8.8")]);
        assert_eq!(proxies.client(peer("10.0.0.1"), false, &h).ip, ip("10.9.9.9"));
        let h = headers(&[("x-forwarded-for", "1.1.1.1, nonsense, 10.8.8.8")]);
        assert_eq!(proxies.client(peer("10.0.0.1"), false, &h).ip, ip("10.8.8.8"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(peer("10.0.0.1"), false, &HeaderMap::new()).ip,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_is_matched_as_ipv4() {
        let proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(proxies.client(peer("::ffff:127.0.0.1"), false, &h).ip, ip("1.2.3.4"));
    }

    #[test]
    fn https_comes_from_the_connection_or_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
        let https = headers(&[("x-forwarded-proto", "HTTPS")]);
        assert!(proxies.client(peer("127.0.0.1"), false, &https).https);
        assert!(!proxies.client(peer("127.0.0.2"), false, &https).https);
        assert!(proxies.client(peer("127.0.0.2"), true, &HeaderMap::new()).https);
        let http = headers(&[("x-forwarded-proto", "https, http")]);
        assert!(!proxies.client(peer("127.0.0.1"), false, &http).https);
    }

    #[test]
    fn a_bad_cidr_is_refused_by_name() {
        let err = TrustedProxies::parse("10.0.0.0/8, 10.0.0.0/33")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'10.0.0.0/33'") && err.contains("HOOKD_TRUSTED_PROXIES"),
            "{err}"
        );
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
