//! One HTTP delivery attempt: POST the payload, signed, and describe what happened.
//!
//! [`DeliveryClient::attempt`] never fails and never panics: every problem (refused target,
//! DNS, TCP, TLS, timeout, bad HTTP, non-2xx status) becomes an [`AttemptOutcome`] with a
//! one-line error text for the delivery's attempt log. The one idea to know: target safety is
//! enforced where the connection is made. Unless private targets are allowed, a custom DNS
//! resolver drops forbidden addresses from every lookup (so DNS rebinding cannot get around
//! it), and because the connector never calls the resolver for literal IP hosts, `attempt`
//! checks those itself before sending anything. The client is hyper's pooled client with a
//! rustls connector (`connect`), with nothing between it and the attempt.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::timeout_at;
use url::{Host, Url};

pub(crate) mod broker;
mod connect;
mod errors;
mod resolver;
pub mod retry_after;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_https;
#[cfg(test)]
mod tests_steering;

use connect::{ConnectTimedOut, Connector};
use errors::{chain_text, find_in_chain, innermost_io};
use resolver::ForbiddenResolution;

use crate::dispatch::signing::{signature_header, Signer};
use crate::domain::broker_url::BrokerTarget;
use crate::domain::target::forbidden_reason;

/// How many bytes of the response body are kept for the attempt log.
const RESPONSE_PREFIX_LIMIT: usize = 1024;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Time allowed to resolve, connect and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Time allowed for the whole attempt, including reading the response prefix.
    pub request_timeout: Duration,
    /// Lifts the target safety checks (for local development and tests).
    pub allow_private_targets: bool,
    pub user_agent: String,
    /// Idle keep-alive connections kept per receiver host. Many webhooks often share a
    /// host, so this should cover every attempt that can be in flight at once; fewer, and
    /// busy fan-outs close and reopen connections all the time.
    pub max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            allow_private_targets: false,
            user_agent: format!("hookd/{}", env!("CARGO_PKG_VERSION")),
            max_idle_per_host: 512,
        }
    }
}

pub struct AttemptRequest<'a> {
    pub url: &'a str,
    /// `url` parsed, when the caller keeps it parsed (`deliver::Target` does, once per
    /// target rather than once per attempt); otherwise it is parsed here.
    pub parsed: Option<&'a Url>,
    /// The exact bytes to send and sign.
    pub body: Bytes,
    /// The current keys first, then, during rotation overlaps, the previous ones (newest
    /// first), which sign too. Never empty.
    pub signers: &'a [&'a Signer],
    /// Sent as `webhook-id`; stable across the attempts of one payload.
    pub msg_id: &'a str,
    /// Sent and signed as `webhook-timestamp` (unix seconds): the second the attempt is
    /// logged with, so its page can show it without storing it.
    pub timestamp: i64,
    /// Already validated name/value pairs, sent as given after the standard headers.
    pub extra_headers: &'a [(String, String)],
    /// W3C `traceparent` (CONTRACT §7.6), sent after the extra headers and replacing any of
    /// theirs, so the request is always in the event's trace.
    pub traceparent: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// Any 2xx status.
    pub success: bool,
    pub http_status: Option<u16>,
    pub duration: Duration,
    /// The first bytes (at most 1024) of the response body, lossy UTF-8.
    pub response_prefix: String,
    /// One readable line saying why the attempt failed; `None` on success.
    pub error: Option<String>,
    /// A 429 or 503 answer's `Retry-After`, parsed and held to 1 s … 24 h (see
    /// [`retry_after`]); `None` for other answers and for a header that does not parse.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    /// The receiver answered 410 Gone: it wants no more deliveries (the webhook is turned off).
    pub fn gone(&self) -> bool {
        self.http_status == Some(410)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("user agent {value:?} is not a valid header value")]
    UserAgent {
        value: String,
        #[source]
        source: hyper::header::InvalidHeaderValue,
    },
    #[error("could not set up TLS for the HTTP client")]
    Tls(#[source] tokio_rustls::rustls::Error),
}

/// Sends delivery attempts over one shared, keep-alive connection pool (and, for webhooks
/// whose URL names a broker, over pooled broker connections: see `broker`).
pub struct DeliveryClient {
    http: Client<Connector, Full<Bytes>>,
    user_agent: HeaderValue,
    brokers: broker::Brokers,
    config: ClientConfig,
}

/// Where one attempt goes: an HTTP receiver or a broker.
enum Route {
    Http(Url),
    Broker(BrokerTarget),
}

impl DeliveryClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let tls = connect::tls_config().map_err(ClientBuildError::Tls)?;
        Self::with_tls(config, tls)
    }

    /// A client trusting what `tls` trusts (tests give it their own certificate authority).
    fn with_tls(config: ClientConfig, tls: tokio_rustls::rustls::ClientConfig) -> Result<Self, ClientBuildError> {
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|source| ClientBuildError::UserAgent {
            value: config.user_agent.clone(),
            source,
        })?;
        // No proxy (it would make the resolver check the proxy's address, not the target's)
        // and no redirects followed (`send` reports them).
        let connector = connect::connector(config.connect_timeout, !config.allow_private_targets, tls);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(config.max_idle_per_host)
            // Receivers written against the platform's docs may look headers up by their
            // documented spelling (PHP's getallheaders() keeps the case it was sent in).
            .http1_title_case_headers(true)
            .build(connector);
        Ok(DeliveryClient {
            http,
            user_agent,
            brokers: Default::default(),
            config,
        })
    }

    /// Makes one attempt; all failures are reported in the outcome.
    #[tracing::instrument(skip_all, fields(msg_id = req.msg_id))]
    pub async fn attempt(&self, req: &AttemptRequest<'_>) -> AttemptOutcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.config.request_timeout);
        let outcome = match self.prepare(req) {
            Ok((Route::Http(url), headers)) => self.send(url, headers, req.body.clone(), deadline).await,
            // Boxed: the broker clients' futures are large, and inline they would make every
            // HTTP attempt's future (moved on each spawn) as large.
            Ok((Route::Broker(target), headers)) => Box::pin(self.publish(&target, &headers, req)).await,
            Err(error) => Sent::failed(error),
        };
        let outcome = AttemptOutcome {
            success: outcome.error.is_none(),
            http_status: outcome.status,
            duration: started.elapsed(),
            response_prefix: outcome.prefix,
            error: outcome.error,
            retry_after: outcome.retry_after,
        };
        tracing::debug!(
            status = outcome.http_status,
            duration_ms = outcome.duration.as_millis() as u64,
            error = outcome.error.as_deref(),
            "delivery attempt finished"
        );
        outcome
    }

    /// Checks the URL and builds the headers; an `Err` is the outcome's error text.
    fn prepare(&self, req: &AttemptRequest<'_>) -> Result<(Route, HeaderMap), String> {
        let url = match req.parsed {
            Some(url) => url.clone(),
            None => Url::parse(req.url).map_err(|e| format!("invalid URL: {e}"))?,
        };
        if let Some(target) = BrokerTarget::parse(&url) {
            let target = target.map_err(|e| format!("invalid broker URL: {e}"))?;
            return Ok((Route::Broker(target), build_headers(req)?));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "unsupported URL scheme {:?} (only http and https)",
                url.scheme()
            ));
        }
        if !self.config.allow_private_targets {
            check_literal_ip(&url)?;
        }
        Ok((Route::Http(url), build_headers(req)?))
    }

    /// One broker publish, bounded by the request timeout like an HTTP attempt.
    async fn publish(&self, target: &BrokerTarget, headers: &HeaderMap, req: &AttemptRequest<'_>) -> Sent {
        let publish = broker::Publish {
            body: &req.body,
            msg_id: req.msg_id,
            headers,
            connect_timeout: self.config.connect_timeout,
            request_timeout: self.config.request_timeout,
            allow_private: self.config.allow_private_targets,
        };
        let within = self.config.request_timeout + self.config.connect_timeout;
        match tokio::time::timeout(within, self.brokers.publish(target, &publish)).await {
            Ok(Ok(())) => Sent {
                status: None,
                prefix: String::new(),
                error: None,
                retry_after: None,
            },
            Ok(Err(error)) => Sent::failed(error),
            Err(_) => Sent::failed(self.timed_out()),
        }
    }

    async fn send(&self, url: Url, mut headers: HeaderMap, body: Bytes, deadline: tokio::time::Instant) -> Sent {
        let is_https = url.scheme() == "https";
        let uri = match Uri::try_from(url.as_str()) {
            Ok(uri) => uri,
            Err(e) => return Sent::failed(format!("invalid URL: {e}")),
        };
        headers.insert(USER_AGENT, self.user_agent.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let mut response = match timeout_at(deadline, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Sent::failed(self.describe(&err, is_https)),
            Err(_) => return Sent::failed(self.timed_out()),
        };
        let status = response.status();
        let retry_after = retry_after_of(&response);
        let prefix = read_prefix(&mut response, deadline).await;
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!("redirect ({}) not followed", status.as_u16()))
        } else if let Some(wait) = retry_after {
            let wait = humantime::format_duration(wait);
            Some(format!("HTTP {} (Retry-After: {wait})", status.as_u16()))
        } else {
            Some(format!("HTTP {}", status.as_u16()))
        };
        Sent {
            status: Some(status.as_u16()),
            prefix,
            error,
            retry_after,
        }
    }

    fn timed_out(&self) -> String {
        format!(
            "timed out after {}",
            humantime::format_duration(self.config.request_timeout)
        )
    }

    /// One readable line for a failed request, built from the whole error chain.
    fn describe(&self, err: &hyper_util::client::legacy::Error, is_https: bool) -> String {
        if let Some(refused) = find_in_chain::<ForbiddenResolution>(err) {
            return refused.to_string();
        }
        let io = find_in_chain::<io::Error>(err).map(innermost_io);
        let connect_timed_out = find_in_chain::<ConnectTimedOut>(err).is_some()
            || (err.is_connect() && io.is_some_and(|io| io.kind() == io::ErrorKind::TimedOut));
        if connect_timed_out {
            return format!(
                "connect timed out after {}",
                humantime::format_duration(self.config.connect_timeout)
            );
        }
        if let Some(io) = io {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                io::ErrorKind::ConnectionReset => return "connection reset by peer".into(),
                io::ErrorKind::ConnectionAborted => return "connection aborted".into(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => return "connection closed by peer".into(),
                // rustls reports handshake and certificate failures as InvalidData.
                io::ErrorKind::InvalidData if is_https && err.is_connect() => {
                    return format!("TLS error: {}", chain_text(err));
                }
                _ => {}
            }
        }
        chain_text(err)
    }
}

/// What [`DeliveryClient::send`] found out, before timing is added.
struct Sent {
    status: Option<u16>,
    prefix: String,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Sent {
    fn failed(error: String) -> Sent {
        Sent {
            status: None,
            prefix: String::new(),
            error: Some(error),
            retry_after: None,
        }
    }
}

/// The `Retry-After` of a 429 or 503 answer, when it parses (the first one, if repeated).
fn retry_after_of(response: &Response<Incoming>) -> Option<Duration> {
    if !retry_after::applies_to(response.status().as_u16()) {
        return None;
    }
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    retry_after::parse(value, SystemTime::now())
}

/// Refuses a URL whose host is a forbidden literal IP (the resolver never sees those).
fn check_literal_ip(url: &Url) -> Result<(), String> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err("URL has no host".into()),
    };
    match forbidden_reason(ip) {
        Some(reason) => Err(format!("target {ip} is forbidden: {reason}")),
        None => Ok(()),
    }
}

fn build_headers(req: &AttemptRequest<'_>) -> Result<HeaderMap, String> {
    let timestamp = req.timestamp;
    let msg_id = HeaderValue::from_str(req.msg_id)
        .map_err(|_| format!("webhook id {:?} is not a valid header value", req.msg_id))?;
    let signed = |value: String| HeaderValue::try_from(value).expect("base64 is a valid header");

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let current = req.signers.first().ok_or("no signing key")?;
    headers.insert("x-plugin-hmac-sha256", signed(current.plugin_signature(&req.body)));
    headers.insert("webhook-id", msg_id);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    if let Some(previous) = req.signers.get(1) {
        // The newest previous key (the platform header has room for one).
        headers.insert(
            "x-plugin-hmac-sha256-previous",
            signed(previous.plugin_signature(&req.body)),
        );
    }
    headers.insert(
        "webhook-signature",
        signed(signature_header(req.signers, req.msg_id, timestamp, &req.body)),
    );
    for (name, value) in req.extra_headers {
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("extra header name {name:?} is not valid"))?;
        let header_value =
            HeaderValue::from_str(value).map_err(|_| format!("extra header {name:?} has an invalid value"))?;
        headers.append(header_name, header_value);
    }
    if let Some(tp) = req.traceparent.and_then(|tp| HeaderValue::from_str(tp).ok()) {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
    Ok(headers)
}

/// Reads up to [`RESPONSE_PREFIX_LIMIT`] bytes of the body, chunk by chunk, until the
/// deadline. Problems reading the body do not change the outcome: the status decides.
async fn read_prefix(response: &mut Response<Incoming>, deadline: tokio::time::Instant) -> String {
    let mut prefix = Vec::new();
    let body = response.body_mut();
    while prefix.len() < RESPONSE_PREFIX_LIMIT {
        match timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                // Trailers carry no body bytes.
                if let Some(chunk) = frame.data_ref() {
                    let room = RESPONSE_PREFIX_LIMIT - prefix.len();
                    prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                tracing::debug!(error = %chain_text(&err), "response body read failed");
                break;
            }
            Err(_) => {
                tracing::debug!("response body read hit the attempt deadline");
                break;
            }
        }
    }
    lossy_utf8(&prefix)
}

/// Lossy UTF-8 that drops a character cut in half by the prefix limit instead of
/// showing it as a replacement character.
fn lossy_utf8(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
