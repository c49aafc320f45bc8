//! Which delivery targets are forbidden.
//!
//! A webhook must not become a way to reach the machines behind hookd, so by default
//! loopback, private, link-local, CGNAT, multicast, broadcast and unspecified addresses
//! are refused. The one idea to know: this is checked twice. [`check_host`] refuses the
//! obvious cases (a literal forbidden IP, `localhost`) when a webhook is registered, and the
//! dispatcher's DNS resolver applies [`is_forbidden_ip`] to every resolved address at connect
//! time, so a name that later resolves somewhere private (DNS rebinding) is still refused.
//!
//! IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use url::Host;

/// Why a target was refused. The address variants hold the address as it was given
/// (for an IPv4-in-IPv6 address, the IPv6 form), the reason comes from what it points to.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("host {0} is a local name")]
    LocalName(String),
    #[error("address {0} is unspecified")]
    Unspecified(IpAddr),
    #[error("host {0} is a loopback address")]
    Loopback(IpAddr),
    #[error("address {0} is in a private range")]
    Private(IpAddr),
    #[error("address {0} is link-local")]
    LinkLocal(IpAddr),
    #[error("address {0} is in the carrier-grade NAT range")]
    CarrierGradeNat(IpAddr),
    #[error("address {0} is a multicast address")]
    Multicast(IpAddr),
    #[error("address {0} is the broadcast address")]
    Broadcast(IpAddr),
}

/// True when deliveries must never go to `ip`.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    range_of(ip).is_some()
}

/// Refuses literal forbidden IPs and local names (`localhost`, `*.localhost`).
///
/// Any other domain name passes: what it resolves to is checked at connect time.
pub fn check_host(host: &Host<&str>) -> Result<(), TargetError> {
    match host {
        Host::Domain(name) if is_local_name(name) => Err(TargetError::LocalName(name.to_string())),
        Host::Domain(_) => Ok(()),
        Host::Ipv4(ip) => check_ip(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => check_ip(IpAddr::V6(*ip)),
    }
}

/// A short label for why `ip` is forbidden ("loopback address"), or `None` if it is allowed.
/// Used by the dispatcher to explain refused connections.
pub(crate) fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    range_of(ip).map(Range::label)
}

fn check_ip(ip: IpAddr) -> Result<(), TargetError> {
    match range_of(ip) {
        Some(range) => Err(range.error(ip)),
        None => Ok(()),
    }
}

fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The kinds of forbidden address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    CarrierGradeNat,
    Multicast,
    Broadcast,
}

impl Range {
    fn label(self) -> &'static str {
        match self {
            Range::Unspecified => "unspecified address",
            Range::Loopback => "loopback address",
            Range::Private => "private address",
            Range::LinkLocal => "link-local address",
            Range::CarrierGradeNat => "carrier-grade NAT address",
            Range::Multicast => "multicast address",
            Range::Broadcast => "broadcast address",
        }
    }

    fn error(self, ip: IpAddr) -> TargetError {
        match self {
            Range::Unspecified => TargetError::Unspecified(ip),
            Range::Loopback => TargetError::Loopback(ip),
            Range::Private => TargetError::Private(ip),
            Range::LinkLocal => TargetError::LinkLocal(ip),
            Range::CarrierGradeNat => TargetError::CarrierGradeNat(ip),
            Range::Multicast => TargetError::Multicast(ip),
            Range::Broadcast => TargetError::Broadcast(ip),
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(first: u16, second: u16, prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(first, second, 0, 0, 0, 0, 0, 0), prefix)
}

const V4_RANGES: [(Ipv4Net, Range); 9] = [
    (v4(0, 0, 0, 0, 8), Range::Unspecified),
    (v4(127, 0, 0, 0, 8), Range::Loopback),
    (v4(10, 0, 0, 0, 8), Range::Private),
    (v4(172, 16, 0, 0, 12), Range::Private),
    (v4(192, 168, 0, 0, 16), Range::Private),
    (v4(169, 254, 0, 0, 16), Range::LinkLocal),
    (v4(100, 64, 0, 0, 10), Range::CarrierGradeNat),
    (v4(224, 0, 0, 0, 4), Range::Multicast),
    (v4(255, 255, 255, 255, 32), Range::Broadcast),
];

const V6_RANGES: [(Ipv6Net, Range); 4] = [
    // Unique-local addresses are IPv6's private ranges; fec0::/10 is their deprecated
    // site-local predecessor, still routed by some networks.
    (v6(0xfc00, 0, 7), Range::Private),
    (v6(0xfec0, 0, 10), Range::Private),
    (v6(0xfe80, 0, 10), Range::LinkLocal),
    (v6(0xff00, 0, 8), Range::Multicast),
];

/// NAT64 well-known prefix: the last 32 bits are an IPv4 address.
const NAT64: Ipv6Net = v6(0x64, 0xff9b, 96);

fn range_of(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(ip) => range_of_v4(ip),
        IpAddr::V6(ip) => range_of_v6(ip),
    }
}

fn range_of_v4(ip: Ipv4Addr) -> Option<Range> {
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, range)| *range)
}

fn range_of_v6(ip: Ipv6Addr) -> Option<Range> {
    if ip.is_unspecified() {
        return Some(Range::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Range::Loopback);
    }
    if let Some(embedded) = embedded_v4(ip) {
        return range_of_v4(embedded);
    }
    V6_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, range)| *range)
}

/// The IPv4 address carried by an IPv4-mapped, IPv4-compatible or NAT64 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let low = Ipv4Addr::from(u128::from(ip) as u32);
    let mapped = segments[..5] == [0; 5] && segments[5] == 0xffff;
    let compatible = segments[..6] == [0; 6];
    if mapped || compatible || NAT64.contains(&ip) {
        Some(low)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden_ip(s.parse().unwrap())
    }

    fn host_check(url: &str) -> Result<(), TargetError> {
        let url = url::Url::parse(url).unwrap();
        check_host(&url.host().unwrap())
    }

    #[test]
    fn forbidden_ipv4_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "223.255.255.255",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6_ranges_are_refused() {
        for ip in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        for ip in ["2001:4860:4860::8888", "2606:4700::1111", "2a00:1450::1"] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn ipv6_addresses_carrying_ipv4_are_judged_by_the_ipv4_address() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::10.1.2.3",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
        for ip in ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::1.1.1.1"] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn check_host_refuses_literal_forbidden_addresses() {
        assert_eq!(
            host_check("http://127.0.0.1/hook"),
            Err(TargetError::Loopback("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            host_check("https://[::1]:8443/"),
            Err(TargetError::Loopback("::1".parse().unwrap()))
        );
        assert_eq!(
            host_check("http://10.0.0.5/"),
            Err(TargetError::Private("10.0.0.5".parse().unwrap()))
        );
        assert_eq!(
            host_check("http://[::ffff:169.254.169.254]/"),
            Err(TargetError::LinkLocal("::ffff:169.254.169.254".parse().unwrap()))
        );
        // The URL parser normalises odd IPv4 spellings, so they are caught too.
        assert_eq!(
            host_check("http://2130706433/"),
            Err(TargetError::Loopback("127.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn check_host_refuses_local_names() {
        for url in [
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://localhost./",
            "http://api.localhost/",
            "http://Deep.Api.LocalHost./x",
        ] {
            assert!(
                matches!(host_check(url), Err(TargetError::LocalName(_))),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn check_host_lets_ordinary_names_and_public_addresses_through() {
        for url in [
            "https://example.com/hook",
            "https://localhost.example.com/",
            "https://notlocalhost/",
            "http://8.8.8.8/",
            "http://[2001:db8::1]/",
        ] {
            assert_eq!(host_check(url), Ok(()), "{url} should pass");
        }
    }

    #[test]
    fn error_messages_are_short_and_human() {
        assert_eq!(
            host_check("http://127.0.0.1/").unwrap_err().to_string(),
            "host 127.0.0.1 is a loopback address"
        );
        assert_eq!(
            host_check("http://localhost/").unwrap_err().to_string(),
            "host localhost is a local name"
        );
        assert_eq!(
            host_check("http://10.0.0.5/").unwrap_err().to_string(),
            "address 10.0.0.5 is in a private range"
        );
        assert_eq!(
            host_check("http://100.64.1.1/").unwrap_err().to_string(),
            "address 100.64.1.1 is in the carrier-grade NAT range"
        );
    }

    #[test]
    fn forbidden_reason_labels_the_range() {
        assert_eq!(forbidden_reason("127.0.0.1".parse().unwrap()), Some("loopback address"));
        assert_eq!(forbidden_reason("8.8.8.8".parse().unwrap()), None);
    }
}
