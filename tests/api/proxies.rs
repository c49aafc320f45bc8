//! `trusted_proxies` (CONTRACT §7.2, issue 21): `X-Forwarded-For` and `X-Forwarded-Proto`
//! are believed only from a trusted peer. Behind a trusted proxy each client address has
//! its own login-throttle bucket (API `login` and HTTP Basic alike) and the console's
//! cookies are `Secure` when the proxy says `https`; from an untrusted peer the headers
//! change nothing, so a spoofed address does not escape the peer's bucket.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE};
use serde_json::{json, Value};

use crate::helpers::*;

const FAILURES_PER_ADDRESS: u32 = 3;

/// A server that refuses an address after 3 failed logins (and a user name only after many).
async fn throttled_app(trusted: &str) -> TestApp {
    let trusted = hookd::server::TrustedProxies::parse(trusted).unwrap();
    TestApp::spawn_with(|c| {
        c.trusted_proxies = trusted;
        c.app.auth.max_failures_per_address = FAILURES_PER_ADDRESS;
        c.app.auth.max_failures_per_user = 1000;
    })
    .await
}

/// `login(name, key)` sent with `X-Forwarded-For: forwarded_for`.
async fn login_from(app: &TestApp, forwarded_for: &str, name: &str, key: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": [name, key]});
    app.client
        .post(&app.endpoint)
        .header(CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap()
}

/// `call(null, "topic.list")` with HTTP Basic credentials, from `forwarded_for`.
async fn basic_from(app: &TestApp, forwarded_for: &str, name: &str, key: &str) -> Value {
    use base64::Engine;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [null, "topic.list", []]});
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{key}"));
    app.client
        .post(&app.endpoint)
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Basic {auth}"))
        .header("x-forwarded-for", forwarded_for)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap()
}

fn is_throttled(resp: &Value) -> bool {
    let message = assert_app_error(resp, 2);
    message.contains("Too many failed logins")
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_throttle_bucket() {
    let app = throttled_app("127.0.0.1/32").await;
    let (name, key) = app.create_admin().await;
    // 203.0.113.1 uses up its failures (API login and Basic both count), each on a new user name.
    for i in 0..FAILURES_PER_ADDRESS {
        let resp = if i % 2 == 0 {
            login_from(&app, "203.0.113.1", &unique("nobody-"), "wrong-key").await
        } else {
            basic_from(&app, "203.0.113.1", &unique("nobody-"), "wrong-key").await
        };
        assert!(
            !is_throttled(&resp),
            "failure {i} is refused as a failure, not throttled: {resp}"
        );
    }
    let resp = login_from(&app, "203.0.113.1", &name, &key).await;
    assert!(
        is_throttled(&resp),
        "203.0.113.1 is throttled, even with the right key: {resp}"
    );
    let resp = basic_from(&app, "203.0.113.1", &name, &key).await;
    assert!(is_throttled(&resp), "Basic from 203.0.113.1 is throttled too: {resp}");

    // Another client behind the same proxy is not; a spoofed left entry does not matter
    // either: the rightmost address the proxy added is the client.
    let resp = login_from(&app, "203.0.113.2", &name, &key).await;
    assert_ok(&resp);
    let resp = login_from(&app, "203.0.113.1, 203.0.113.3", &name, &key).await;
    assert_ok(&resp);
    let resp = basic_from(&app, "203.0.113.2", &name, &key).await;
    assert_ok(&resp);
    // The proxy's own address (no header) is yet another bucket.
    let resp = app.try_login(&name, &key).await;
    assert_ok(&resp);
}

#[tokio::test]
async fn from_an_untrusted_peer_a_spoofed_forwarded_for_does_not_escape_its_bucket() {
    // Only 10.0.0.0/8 is trusted: the test client (127.0.0.1) is not.
    let app = throttled_app("10.0.0.0/8").await;
    let (name, key) = app.create_admin().await;
    for i in 0..FAILURES_PER_ADDRESS {
        let spoofed = format!("198.51.100.{i}");
        let resp = login_from(&app, &spoofed, &unique("nobody-"), "wrong-key").await;
        assert!(!is_throttled(&resp), "{resp}");
    }
    for spoofed in ["198.51.100.200", "10.1.2.3", "127.0.0.2"] {
        let resp = login_from(&app, spoofed, &name, &key).await;
        assert!(
            is_throttled(&resp),
            "X-Forwarded-For {spoofed} escaped the bucket: {resp}"
        );
        let resp = basic_from(&app, spoofed, &name, &key).await;
        assert!(
            is_throttled(&resp),
            "Basic with X-Forwarded-For {spoofed} escaped: {resp}"
        );
    }
}

/// Whether the console's login page sets a `Secure` cookie when asked with these headers.
async fn login_cookie_secure(app: &TestApp, headers: &[(&str, &str)]) -> bool {
    let mut request = app.client.get(format!("http://{}/console/login", app.addr));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.unwrap();
    let line = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|l| l.starts_with("hookd_login="))
        .expect("the login page sets its cookie");
    line.split(';').any(|a| a.trim().eq_ignore_ascii_case("secure"))
}

#[tokio::test]
async fn x_forwarded_proto_https_makes_the_cookie_secure_only_from_a_trusted_proxy() {
    let https = [("x-forwarded-proto", "https")];
    let trusted = throttled_app("127.0.0.1/32").await;
    assert!(login_cookie_secure(&trusted, &https).await);
    assert!(!login_cookie_secure(&trusted, &[]).await, "plain HTTP: not Secure");
    assert!(!login_cookie_secure(&trusted, &[("x-forwarded-proto", "http")]).await);

    let untrusted = throttled_app("10.0.0.0/8").await;
    assert!(
        !login_cookie_secure(&untrusted, &https).await,
        "an untrusted peer's header is ignored"
    );
}

#[tokio::test]
async fn a_bad_trusted_proxies_setting_is_a_clear_config_error() {
    let settings = hookd::config::Settings {
        trusted_proxies: Some("127.0.0.1/32, 10.0.0.0/40".into()),
        ..Default::default()
    };
    let err = hookd::config::Config::resolve(settings, None).unwrap_err().to_string();
    assert!(
        err.contains("HOOKD_TRUSTED_PROXIES") && err.contains("10.0.0.0/40"),
        "{err}"
    );
}
