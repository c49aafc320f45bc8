//! The client against real and deliberately broken servers (raw TCP where HTTP would be
//! too polite).

use super::resolver::keep_allowed;
use super::*;
use std::time::UNIX_EPOCH;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &[u8] = b"s3cr3t-key";
const BODY: &str = r#"{"topic":"order.created","merchant_code":"M1","message":{"id":7}}"#;

pub(super) fn client(allow_private_targets: bool) -> DeliveryClient {
    DeliveryClient::new(ClientConfig {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
        allow_private_targets,
        ..ClientConfig::default()
    })
    .unwrap()
}

pub(super) async fn attempt(client: &DeliveryClient, url: &str) -> AttemptOutcome {
    attempt_with_headers(client, url, &[]).await
}

async fn attempt_with_headers(
    client: &DeliveryClient,
    url: &str,
    extra_headers: &[(String, String)],
) -> AttemptOutcome {
    let signer = Signer::hmac(SECRET);
    let req = AttemptRequest {
        url,
        parsed: None,
        body: Bytes::from_static(BODY.as_bytes()),
        signers: &[&signer],
        msg_id: "msg_abc123",
        timestamp: crate::time::now_millis() / 1000,
        extra_headers,
        traceparent: None,
    };
    client.attempt(&req).await
}

fn hmac_base64(message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

type Received = Arc<Mutex<Vec<(AxumHeaders, Bytes)>>>;

/// An axum receiver on 127.0.0.1 that records each request and answers `status`.
async fn receiver(status: StatusCode) -> (String, Received) {
    let received = Received::default();
    let log = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: AxumHeaders, body: Bytes| async move {
            log.lock().unwrap().push((headers, body));
            (status, "thanks")
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// A raw TCP server on 127.0.0.1 that hands each connection to `handle`.
pub(super) async fn raw_server<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// Reads one request (head and Content-Length body) so the client sees a clean close.
pub(super) async fn read_request(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return;
        }
    }
}

/// A listener that must never see a connection; the port is real so a bug would show.
async fn untouched_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

async fn assert_never_connected(listener: TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "the client connected to a forbidden target");
}

pub(super) fn error_of(outcome: &AttemptOutcome) -> &str {
    assert!(!outcome.success, "{outcome:?}");
    outcome.error.as_deref().expect("a failed attempt has an error")
}

#[tokio::test]
async fn a_2xx_answer_is_a_success_with_both_signatures_verifiable() {
    for status in [StatusCode::OK, StatusCode::NO_CONTENT] {
        let (url, received) = receiver(status).await;
        let outcome = attempt(&client(true), &url).await;

        assert!(outcome.success, "{outcome:?}");
        assert_eq!(outcome.http_status, Some(status.as_u16()));
        assert_eq!(outcome.error, None);
        let (headers, body) = received.lock().unwrap().pop().unwrap();
        assert_eq!(body, BODY.as_bytes());
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(header("content-type"), "application/json");
        assert!(header("user-agent").starts_with("hookd/"));
        assert_eq!(header("webhook-id"), "msg_abc123");
        assert_eq!(header("x-plugin-hmac-sha256"), hmac_base64(BODY.as_bytes()));

        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!((now.as_secs() as i64 - timestamp).abs() <= 5);
        let signed = format!("msg_abc123.{timestamp}.{BODY}");
        assert_eq!(
            header("webhook-signature"),
            format!("v1,{}", hmac_base64(signed.as_bytes()))
        );
    }
}

#[tokio::test]
async fn the_response_prefix_is_recorded() {
    let (url, _) = receiver(StatusCode::OK).await;
    let outcome = attempt(&client(true), &url).await;
    assert_eq!(outcome.response_prefix, "thanks");
    assert!(outcome.duration < Duration::from_millis(300));
}

#[tokio::test]
async fn extra_headers_are_delivered_as_given() {
    let (url, received) = receiver(StatusCode::OK).await;
    let extra = [
        ("X-Api-Key".to_string(), "k-123".to_string()),
        ("X-Tag".to_string(), "one".to_string()),
        ("X-Tag".to_string(), "two".to_string()),
    ];
    let outcome = attempt_with_headers(&client(true), &url, &extra).await;
    assert!(outcome.success, "{outcome:?}");
    let (headers, _) = received.lock().unwrap().pop().unwrap();
    assert_eq!(headers.get("x-api-key").unwrap(), "k-123");
    let tags: Vec<_> = headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["one", "two"]);
}

#[tokio::test]
async fn a_500_answer_is_a_failure_with_its_status() {
    let (url, _) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let outcome = attempt(&client(true), &url).await;
    assert_eq!(error_of(&outcome), "HTTP 500");
    assert_eq!(outcome.http_status, Some(500));
    assert_eq!(outcome.response_prefix, "thanks");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let followed = Arc::new(Mutex::new(false));
    let flag = followed.clone();
    let app = Router::new()
        .route(
            "/hook",
            post(|| async { (StatusCode::FOUND, [("location", "/elsewhere")]) }),
        )
        .route(
            "/elsewhere",
            post(move || async move {
                *flag.lock().unwrap() = true;
                StatusCode::OK
            })
            .get(|| async { StatusCode::OK }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let outcome = attempt(&client(true), &url).await;
    assert_eq!(error_of(&outcome), "redirect (302) not followed");
    assert_eq!(outcome.http_status, Some(302));
    assert!(!*followed.lock().unwrap());
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let addr = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let started = Instant::now();
    let outcome = attempt(&client(true), &format!("http://{addr}/")).await;
    assert_eq!(error_of(&outcome), "timed out after 300ms");
    assert_eq!(outcome.http_status, None);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_full_accept_queue_is_a_connect_timeout() {
    // A listener that never accepts, with its queue filled: the kernel drops further SYNs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let connect = TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(100), connect).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let client = DeliveryClient::new(ClientConfig {
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        allow_private_targets: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let outcome = attempt(&client, &format!("http://{addr}/")).await;
    assert_eq!(error_of(&outcome), "connect timed out after 200ms");
    assert!(outcome.duration < Duration::from_secs(1));
    drop(listener);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_1024_bytes_without_waiting() {
    let addr = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("1000\r\n{}\r\n", "é".repeat(2048));
        // Bounded, and ends as soon as the client hangs up.
        for _ in 0..100_000 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let outcome = attempt(&client, &format!("http://{addr}/")).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(outcome.duration < Duration::from_secs(1), "{outcome:?}");
    assert!(outcome.response_prefix.len() <= 1024);
    // 1024 bytes of two-byte characters: all 512 kept whole, nothing replaced.
    assert_eq!(outcome.response_prefix, "é".repeat(512));
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let outcome = attempt(&client(true), &format!("http://{addr}/")).await;
    assert_eq!(error_of(&outcome), "connection refused");
}

#[tokio::test]
async fn a_server_closing_without_answering_is_reported() {
    let addr = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
    })
    .await;
    let outcome = attempt(&client(true), &format!("http://{addr}/")).await;
    let error = error_of(&outcome);
    assert!(error.contains("connection closed"), "{error}");
    assert!(!error.contains('\n'));
}

#[tokio::test]
async fn a_reset_connection_is_reported() {
    let addr = raw_server(|stream| async move {
        stream.set_zero_linger().unwrap();
        drop(stream);
    })
    .await;
    let outcome = attempt(&client(true), &format!("http://{addr}/")).await;
    let error = error_of(&outcome);
    assert!(
        error == "connection reset by peer" || error.contains("connection closed"),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_instead_of_http_is_reported() {
    let addr = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
    })
    .await;
    let outcome = attempt(&client(true), &format!("http://{addr}/")).await;
    let error = error_of(&outcome);
    assert!(error.contains("invalid HTTP"), "{error}");
    assert_eq!(outcome.http_status, None);
}

#[tokio::test]
async fn plain_http_on_an_https_url_is_a_tls_error() {
    let addr = raw_server(|mut stream| async move {
        let mut hello = [0u8; 512];
        let _ = stream.read(&mut hello).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let outcome = attempt(&client(true), &format!("https://{addr}/")).await;
    let error = error_of(&outcome);
    assert!(error.starts_with("TLS error: "), "{error}");
}

#[tokio::test]
async fn forbidden_literal_ips_are_refused_before_connecting() {
    let (listener, port) = untouched_listener().await;
    for (url, expected) in [
        (
            format!("http://127.0.0.1:{port}/"),
            "target 127.0.0.1 is forbidden: loopback address",
        ),
        (
            format!("http://[::1]:{port}/"),
            "target ::1 is forbidden: loopback address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "target ::ffff:127.0.0.1 is forbidden: loopback address",
        ),
        (
            format!("http://2130706433:{port}/"),
            "target 127.0.0.1 is forbidden: loopback address",
        ),
    ] {
        let outcome = attempt(&client(false), &url).await;
        assert_eq!(error_of(&outcome), expected);
    }
    assert_never_connected(listener).await;
}

#[tokio::test]
async fn localhost_is_refused_by_the_resolver() {
    let (listener, port) = untouched_listener().await;
    for host in ["localhost", "LOCALHOST"] {
        let outcome = attempt(&client(false), &format!("http://{host}:{port}/")).await;
        let error = error_of(&outcome);
        assert!(
            error.contains("resolves only to forbidden addresses: 127.0.0.1 (loopback address)"),
            "{error}"
        );
    }
    assert_never_connected(listener).await;
}

#[tokio::test]
async fn the_resolver_refuses_localhost() {
    use tower::ServiceExt as _;
    let refused = resolver::Resolver { guarded: true }
        .oneshot("localhost".parse().unwrap())
        .await
        .expect_err("localhost must be refused");
    assert!(refused.downcast_ref::<ForbiddenResolution>().is_some());
}

#[test]
fn forbidden_addresses_are_dropped_from_a_mixed_answer() {
    // Pure filtering: nothing here is ever connected to.
    let addr = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
    let resolved = [addr("10.0.0.1"), addr("93.184.216.34"), addr("::1")];
    let allowed = keep_allowed("mixed.example".into(), resolved.into_iter()).unwrap();
    assert_eq!(allowed, [addr("93.184.216.34")]);

    let resolved = [addr("169.254.169.254"), addr("fd00::1"), addr("169.254.169.254")];
    let refused = keep_allowed("rebind.example".into(), resolved.into_iter()).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "target rebind.example resolves only to forbidden addresses: \
         169.254.169.254 (link-local address), fd00::1 (private address)"
    );
}

#[tokio::test]
async fn localhost_is_reachable_when_private_targets_are_allowed() {
    let (url, _) = receiver(StatusCode::OK).await;
    let url = url.replace("127.0.0.1", "localhost");
    let outcome = attempt(&client(true), &url).await;
    assert!(outcome.success, "{outcome:?}");
}

#[tokio::test]
async fn bad_urls_and_schemes_are_refused() {
    let client = client(false);
    let outcome = attempt(&client, "ftp://example.com/hook").await;
    assert_eq!(
        error_of(&outcome),
        "unsupported URL scheme \"ftp\" (only http and https)"
    );
    let outcome = attempt(&client, "not a url").await;
    assert!(error_of(&outcome).starts_with("invalid URL"));
}

#[tokio::test]
async fn invalid_extra_headers_fail_the_attempt_instead_of_panicking() {
    let extra = [("bad header".to_string(), "x".to_string())];
    let outcome = attempt_with_headers(&client(false), "http://example.invalid/", &extra).await;
    assert!(error_of(&outcome).contains("bad header"));
}

#[test]
fn an_invalid_user_agent_is_a_build_error() {
    let config = ClientConfig {
        user_agent: "bad\nagent".into(),
        ..ClientConfig::default()
    };
    assert!(matches!(
        DeliveryClient::new(config),
        Err(ClientBuildError::UserAgent { .. })
    ));
}

#[test]
fn defaults_match_the_contract() {
    let config = ClientConfig::default();
    assert_eq!(config.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.request_timeout, Duration::from_secs(5));
    assert!(!config.allow_private_targets);
    assert_eq!(config.user_agent, format!("hookd/{}", env!("CARGO_PKG_VERSION")));
}
