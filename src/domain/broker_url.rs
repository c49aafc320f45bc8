//! Broker addresses (CONTRACT §7.5): a webhook may deliver to RabbitMQ
//! (`amqp://user:pass@host:port/vhost?exchange=X&routing_key=Y`) or to a NATS JetStream
//! subject (`nats://user:pass@host:port/SUBJECT`), and `serve` may take events in from
//! `amqp://…/vhost?queue=Q` or `nats://host:port/SUBJECT?stream=S&consumer=C`.
//!
//! Parsed once into typed targets; everything not understood (an unknown query parameter,
//! a fragment, a wildcard subject, a name longer than the protocol allows) is refused with
//! a reason, so a typo never silently becomes a different route. Credentials come from the
//! userinfo only: one in the query string is an unknown parameter, refused.

use url::Url;

/// AMQP short strings (exchange, routing key, queue, vhost) hold at most 255 bytes.
const MAX_NAME: usize = 255;
/// NATS subjects are kept to the same bound (the server's own is larger, but no route needs it).
const MAX_SUBJECT: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BrokerUrlError {
    #[error("{scheme} URL has an unknown query parameter {0:?}", scheme = .1)]
    UnknownParameter(String, &'static str),
    #[error("{0} URL gives parameter {1:?} twice")]
    Repeated(&'static str, String),
    #[error("amqp URL needs an exchange parameter (exchange= for the default exchange)")]
    MissingExchange,
    #[error("amqp ingest URL needs a queue parameter")]
    MissingQueue,
    #[error("nats ingest URL needs {0} parameter")]
    MissingNatsParameter(&'static str),
    #[error("{0} is longer than 255 bytes")]
    TooLong(&'static str),
    #[error("{0} must not be empty")]
    EmptyName(&'static str),
    #[error("{0} contains a character it may not contain (whitespace, wildcard or control)")]
    BadName(&'static str),
    #[error("broker URL must not have a fragment")]
    Fragment,
    #[error("broker URL port must not be 0")]
    PortZero,
    #[error("nats URL path must be one subject: nats://host:port/SUBJECT")]
    NatsPath,
    #[error("amqp URL path must be at most one vhost segment")]
    AmqpPath,
    #[error("broker URL credentials are not valid percent-encoded UTF-8")]
    BadCredentials,
}

/// The broker's address and login, shared by both kinds (its `Debug` masks the password).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    /// Percent-decoded; empty when the URL has none.
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| crate::redact::MASK))
            .finish()
    }
}

impl BrokerAddress {
    fn of(url: &Url, default_port: u16) -> Result<Self, BrokerUrlError> {
        let port = url.port().unwrap_or(default_port);
        if port == 0 {
            return Err(BrokerUrlError::PortZero);
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| BrokerUrlError::BadCredentials)
        };
        Ok(Self {
            // url keeps IPv6 hosts bracketed in host_str; the socket address wants them bare.
            host: url
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            user: decode(url.username())?,
            password: url.password().map(decode).transpose()?,
        })
    }

    /// The key connections are pooled under: one connection per broker and login.
    pub fn pool_key(&self, extra: &str) -> String {
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{extra}",
            self.host,
            self.port,
            self.user,
            self.password.as_deref().unwrap_or_default()
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpTarget {
    pub address: BrokerAddress,
    pub vhost: String,
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsTarget {
    pub address: BrokerAddress,
    pub subject: String,
}

/// Where a webhook's payloads go when its URL names a broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerTarget {
    Amqp(AmqpTarget),
    Nats(NatsTarget),
}

/// True for the schemes that name a broker.
pub fn is_broker_scheme(scheme: &str) -> bool {
    scheme == "amqp" || scheme == "nats"
}

impl BrokerTarget {
    /// Parses an already URL-parsed `amqp://` or `nats://` webhook URL; `None` for any other
    /// scheme (HTTP), an error for a broker URL that does not say exactly one route.
    pub fn parse(url: &Url) -> Option<Result<Self, BrokerUrlError>> {
        match url.scheme() {
            "amqp" => Some(parse_amqp(url).map(BrokerTarget::Amqp)),
            "nats" => Some(parse_nats(url).map(BrokerTarget::Nats)),
            _ => None,
        }
    }

    pub fn address(&self) -> &BrokerAddress {
        match self {
            BrokerTarget::Amqp(t) => &t.address,
            BrokerTarget::Nats(t) => &t.address,
        }
    }
}

fn parse_amqp(url: &Url) -> Result<AmqpTarget, BrokerUrlError> {
    common_checks(url)?;
    let params = Params::of(url, "amqp", &["exchange", "routing_key"])?;
    let exchange = params.get("exchange").ok_or(BrokerUrlError::MissingExchange)?;
    let routing_key = params.get("routing_key").unwrap_or_default();
    Ok(AmqpTarget {
        address: BrokerAddress::of(url, 5672)?,
        vhost: vhost_of(url)?,
        exchange: amqp_name("exchange", exchange, true)?,
        routing_key: amqp_name("routing_key", routing_key, true)?,
    })
}

fn parse_nats(url: &Url) -> Result<NatsTarget, BrokerUrlError> {
    common_checks(url)?;
    Params::of(url, "nats", &[])?;
    Ok(NatsTarget {
        address: BrokerAddress::of(url, 4222)?,
        subject: subject_of(url)?,
    })
}

fn common_checks(url: &Url) -> Result<(), BrokerUrlError> {
    if url.fragment().is_some() {
        return Err(BrokerUrlError::Fragment);
    }
    Ok(())
}

/// `/` or nothing is the default vhost `/`; `/name` (percent-decoded, `%2f` for `/`) any other.
fn vhost_of(url: &Url) -> Result<String, BrokerUrlError> {
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if path.is_empty() {
        return Ok("/".to_string());
    }
    if path.contains('/') {
        return Err(BrokerUrlError::AmqpPath);
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| BrokerUrlError::BadName("vhost"))?;
    amqp_name("vhost", &decoded, false)
}

fn subject_of(url: &Url) -> Result<String, BrokerUrlError> {
    let subject = url.path().strip_prefix('/').unwrap_or_default();
    if subject.is_empty() || subject.contains('/') {
        return Err(BrokerUrlError::NatsPath);
    }
    nats_name("subject", subject, MAX_SUBJECT)
}

/// An AMQP name: at most 255 bytes, no control characters.
fn amqp_name(what: &'static str, value: &str, may_be_empty: bool) -> Result<String, BrokerUrlError> {
    if value.is_empty() && !may_be_empty {
        return Err(BrokerUrlError::EmptyName(what));
    }
    if value.len() > MAX_NAME {
        return Err(BrokerUrlError::TooLong(what));
    }
    if value.chars().any(char::is_control) {
        return Err(BrokerUrlError::BadName(what));
    }
    Ok(value.to_string())
}

/// A NATS subject or name: dot-separated non-empty tokens, no whitespace, no wildcards.
fn nats_name(what: &'static str, value: &str, max: usize) -> Result<String, BrokerUrlError> {
    if value.is_empty() {
        return Err(BrokerUrlError::EmptyName(what));
    }
    if value.len() > max {
        return Err(BrokerUrlError::TooLong(what));
    }
    // '%': the url crate percent-encodes what it does not like ('>' becomes %3E).
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>' | '%');
    if value.chars().any(bad_char) || value.split('.').any(str::is_empty) {
        return Err(BrokerUrlError::BadName(what));
    }
    Ok(value.to_string())
}

/// The query parameters, each allowed at most once, none unknown.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(url: &Url, scheme: &'static str, allowed: &[&str]) -> Result<Self, BrokerUrlError> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (name, value) in url.query_pairs() {
            if !allowed.contains(&name.as_ref()) {
                return Err(BrokerUrlError::UnknownParameter(name.into_owned(), scheme));
            }
            if seen.iter().any(|(n, _)| *n == name) {
                return Err(BrokerUrlError::Repeated(scheme, name.into_owned()));
            }
            seen.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self(seen))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Where `serve` takes events in from (`HOOKD_INGEST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestSource {
    Amqp {
        address: BrokerAddress,
        vhost: String,
        queue: String,
    },
    Nats {
        address: BrokerAddress,
        subject: String,
        stream: String,
        consumer: String,
    },
}

impl IngestSource {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
        let source = match url.scheme() {
            "amqp" => parse_amqp_source(&url),
            "nats" => parse_nats_source(&url),
            other => return Err(format!("scheme must be amqp or nats, not {other:?}")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err("URL has no host".into());
        }
        source.map_err(|e| e.to_string())
    }

    pub fn address(&self) -> &BrokerAddress {
        match self {
            IngestSource::Amqp { address, .. } | IngestSource::Nats { address, .. } => address,
        }
    }
}

fn parse_amqp_source(url: &Url) -> Result<IngestSource, BrokerUrlError> {
    common_checks(url)?;
    let params = Params::of(url, "amqp", &["queue"])?;
    let queue = params.get("queue").ok_or(BrokerUrlError::MissingQueue)?;
    Ok(IngestSource::Amqp {
        address: BrokerAddress::of(url, 5672)?,
        vhost: vhost_of(url)?,
        queue: amqp_name("queue", queue, false)?,
    })
}

fn parse_nats_source(url: &Url) -> Result<IngestSource, BrokerUrlError> {
    common_checks(url)?;
    let params = Params::of(url, "nats", &["stream", "consumer"])?;
    let stream = params
        .get("stream")
        .ok_or(BrokerUrlError::MissingNatsParameter("a stream"))?;
    let consumer = params
        .get("consumer")
        .ok_or(BrokerUrlError::MissingNatsParameter("a consumer"))?;
    Ok(IngestSource::Nats {
        address: BrokerAddress::of(url, 4222)?,
        subject: subject_of(url)?,
        stream: nats_name("stream", stream, MAX_NAME)?,
        consumer: nats_name("consumer", consumer, MAX_NAME)?,
    })
}

#[cfg(test)]
#[path = "broker_url_tests.rs"]
mod tests;
