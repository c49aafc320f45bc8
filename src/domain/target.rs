//! placeholder until the dispatch helper lands
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("host {0} is local")]
    Local(String),
}
pub fn check_host(host: &url::Host<&str>) -> Result<(), TargetError> {
    match host {
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => Err(TargetError::Local(d.to_string())),
        url::Host::Ipv4(ip) if ip.is_loopback() || ip.is_private() => Err(TargetError::Local(ip.to_string())),
        _ => Ok(()),
    }
}
