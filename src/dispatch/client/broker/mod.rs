//! Delivery attempts to brokers (CONTRACT §7.5): a webhook whose URL is `amqp://…` or
//! `nats://…` gets the same signed body, with the headers an HTTP receiver would get carried
//! as message headers and `webhook-id` as the message id. Success is the broker's publisher
//! confirm (RabbitMQ) or the stream's ack (JetStream); anything else is a failed attempt
//! with a one-line reason, so numbering, retries, the attempt log and auto-disable stay the
//! dispatcher's as for HTTP.
//!
//! Connections are pooled per broker and login, made again once the broker has closed
//! them, and dropped after 10 minutes unused (`pool`). Target safety: the broker's name is resolved here and every forbidden address
//! dropped (as the HTTP resolver does), and the connection goes to the address that was
//! checked, so a name cannot be rebound to a private address between check and connect.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::header::HeaderMap;

pub(crate) mod amqp;
pub(crate) mod nats;
mod pool;

use super::resolver::keep_allowed;
use crate::domain::broker_url::{BrokerAddress, BrokerTarget};

/// One pool per kind of broker; cheap when unused (no connection until a first attempt).
#[derive(Default)]
pub(super) struct Brokers {
    amqp: amqp::AmqpPool,
    nats: nats::NatsPool,
}

/// What a broker attempt needs besides the target.
pub(super) struct Publish<'a> {
    pub body: &'a [u8],
    pub msg_id: &'a str,
    /// The headers an HTTP attempt would send (content type, signatures, extra headers).
    pub headers: &'a HeaderMap,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub allow_private: bool,
}

impl Brokers {
    /// Publishes once; `Err` is the attempt's error text (credentials never in it).
    pub(super) async fn publish(&self, target: &BrokerTarget, publish: &Publish<'_>) -> Result<(), String> {
        let result = match target {
            BrokerTarget::Amqp(t) => self.amqp.publish(t, publish).await,
            BrokerTarget::Nats(t) => self.nats.publish(t, publish).await,
        };
        result.map_err(|e| mask_password(e, target.address()))
    }
}

/// The broker's first allowed address: forbidden ones are dropped unless private targets
/// are allowed, and a name that resolves only to forbidden ones is refused.
pub(super) async fn resolve(
    address: &BrokerAddress,
    allow_private: bool,
    within: Duration,
) -> Result<SocketAddr, String> {
    let lookup = tokio::net::lookup_host((address.host.as_str(), address.port));
    let resolved: Vec<SocketAddr> = match tokio::time::timeout(within, lookup).await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(e)) => return Err(format!("could not resolve {}: {e}", address.host)),
        Err(_) => return Err(format!("resolving {} timed out", address.host)),
    };
    let allowed = if allow_private {
        resolved
    } else {
        keep_allowed(address.host.clone(), resolved.into_iter()).map_err(|e| e.to_string())?
    };
    allowed
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} resolves to no address", address.host))
}

/// The headers as name/value text pairs (`build_headers` already checked they are valid).
pub(super) fn header_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
}

/// A broker's error text may quote the login; the password never reaches the attempt log.
fn mask_password(text: String, address: &BrokerAddress) -> String {
    match address.password.as_deref() {
        // Very short ones are left alone: masking every "a" would garble the line.
        Some(password) if password.len() >= 4 => text.replace(password, crate::redact::MASK),
        _ => text,
    }
}

fn timed_out(what: &str, after: Duration) -> String {
    format!("{what} timed out after {}", humantime::format_duration(after))
}
