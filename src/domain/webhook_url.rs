//! A webhook's target URL: absolute http(s), or a broker (`amqp://`, `nats://`, see
//! `broker_url`), kept exactly as given (query string included, receivers route on it),
//! refused when it names a local or private host unless allowed.

use super::broker_url::{BrokerTarget, BrokerUrlError};
use super::target::{check_host, TargetError};

pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    #[error("url must not be empty")]
    Empty,
    #[error("url is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url contains whitespace or a control character")]
    Whitespace,
    #[error("url is not a valid absolute URL: {0}")]
    Invalid(#[from] url::ParseError),
    #[error("url scheme must be http, https, amqp or nats, not '{0}'")]
    Scheme(String),
    #[error("url has no host")]
    NoHost,
    #[error("url target is not allowed: {0}")]
    Forbidden(#[from] TargetError),
    #[error("url is not a usable broker address: {0}")]
    Broker(#[from] BrokerUrlError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// `allow_private` lifts the local/private target check (`HOOKD_ALLOW_PRIVATE_TARGETS`).
    pub fn parse(s: &str, allow_private: bool) -> Result<Self, UrlError> {
        if s.is_empty() {
            return Err(UrlError::Empty);
        }
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Whitespace);
        }
        let url = url::Url::parse(s)?;
        match BrokerTarget::parse(&url) {
            Some(broker) => drop(broker?),
            None if url.scheme() != "http" && url.scheme() != "https" => {
                return Err(UrlError::Scheme(url.scheme().to_string()));
            }
            None => {}
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(UrlError::NoHost)?;
        // amqp and nats are not "special" schemes to the url crate, which leaves their host
        // opaque (an IP as text); parsed again here so target safety sees the address.
        let host = url::Host::parse(host).map_err(UrlError::Invalid)?;
        if !allow_private {
            let borrowed = match &host {
                url::Host::Domain(name) => url::Host::Domain(name.as_str()),
                url::Host::Ipv4(ip) => url::Host::Ipv4(*ip),
                url::Host::Ipv6(ip) => url::Host::Ipv6(*ip),
            };
            check_host(&borrowed)?;
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_url_exactly() {
        let s = "https://example.com/respond.php?plugin=X&b=1";
        assert_eq!(WebhookUrl::parse(s, false).unwrap().as_str(), s);
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        assert_eq!(WebhookUrl::parse("", false), Err(UrlError::Empty));
        assert_eq!(
            WebhookUrl::parse("ftp://example.com/", false),
            Err(UrlError::Scheme("ftp".into()))
        );
        assert!(matches!(
            WebhookUrl::parse("example.com/hook", false),
            Err(UrlError::Invalid(_))
        ));
        assert_eq!(
            WebhookUrl::parse(" http://example.com", false),
            Err(UrlError::Whitespace)
        );
        assert_eq!(
            WebhookUrl::parse("http://exa\nmple.com", false),
            Err(UrlError::Whitespace)
        );
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert_eq!(WebhookUrl::parse(&long, false), Err(UrlError::TooLong));
    }

    #[test]
    fn local_targets_need_permission() {
        assert!(matches!(
            WebhookUrl::parse("http://127.0.0.1:8080/", false),
            Err(UrlError::Forbidden(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("http://localhost/", false),
            Err(UrlError::Forbidden(_))
        ));
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/", true).is_ok());
    }
}
