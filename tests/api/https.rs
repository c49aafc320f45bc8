//! HTTPS (CONTRACT §7.2, issue 21): with `tls_cert` and `tls_key` the API and the console
//! speak HTTPS; a client that trusts the certificate's CA logs in and calls, plain HTTP to
//! that port gets a clear refusal and the server keeps serving, the console's cookies are
//! `Secure`, a bad certificate stops the start with one line naming the file, and SIGHUP
//! loads a renewed certificate. The certificates are made here, at test time (rcgen).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hookd::server::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use crate::process::{command, Node};

/// A test certificate authority; `issue` makes a server certificate for `localhost`.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("hookd test CA {name}"));
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// The CA certificate, PEM (what a client trusts).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `localhost` signed by this CA, written as `<stem>.crt` and `<stem>.key` in `dir`.
    pub fn issue(&self, dir: &Path, stem: &str) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// A client that trusts only `ca` and reaches `localhost` at `addr`.
pub fn trusting(ca: &TestCa, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// A server speaking HTTPS with a certificate of a new CA; `app.endpoint` and `app.client`
/// point at it over HTTPS, so the helpers (`login`, `call`…) go through TLS.
async fn https_app(tweak: impl FnOnce(&mut hookd::config::Config)) -> (TestApp, TestCa) {
    let ca = TestCa::new("main");
    let certs = tempfile::tempdir().unwrap();
    let files = ca.issue(certs.path(), "server");
    let mut app = TestApp::spawn_with(|c| {
        c.tls = Some(files);
        tweak(c);
    })
    .await;
    // The server read its files at start-up.
    drop(certs);
    app.endpoint = format!("https://localhost:{}/api/jsonrpc", app.addr.port());
    app.client = trusting(&ca, app.addr);
    (app, ca)
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_logs_in_and_calls_over_https() {
    let (app, ca) = https_app(|_| {}).await;
    let (name, key) = app.create_merchant_user("tls-shop").await;
    let session = app.login(&name, &key).await;
    let hook = json!({"topics": "order:created", "url": "https://example.com/in"});
    assert_ok(&app.create_webhook(&session, hook).await);
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
    // HTTP Basic over TLS too.
    let resp = app.call_basic(&name, &key, "webhook.list", json!([])).await;
    assert_eq!(assert_ok(&resp).as_array().unwrap().len(), 1);

    // A client that does not trust this CA gets no answer at all.
    let stranger = TestCa::new("stranger");
    let refused = trusting(&stranger, app.addr)
        .get(format!("https://localhost:{}/healthz", app.addr.port()))
        .send()
        .await;
    assert!(refused.is_err(), "an untrusted certificate was accepted: {refused:?}");
    let _ = ca;
}

#[tokio::test]
async fn plain_http_to_the_https_port_is_refused_clearly_and_the_server_keeps_serving() {
    let (app, _ca) = https_app(|c| c.http.header_read_timeout = Duration::from_secs(1)).await;
    let session = app.admin_session().await;

    let plain = reqwest::Client::new()
        .post(format!("http://{}/api/jsonrpc", app.addr))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#)
        .send()
        .await
        .expect("plain HTTP gets an answer, not a dropped connection");
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    let text = plain.text().await.unwrap();
    assert!(text.contains("HTTPS"), "the refusal says why: {text}");

    // Garbage that claims to be TLS, and a client that connects and says nothing: each is
    // closed within the header read timeout, and neither stops the server.
    let mut fake = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    fake.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), fake.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a broken handshake is closed");
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();

    app.assert_still_serving(&session).await;
    let resp = app.call(&session, "webhook.list", json!([])).await;
    assert_ok(&resp);
    let mut byte = [0u8; 1];
    let dropped = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut byte)).await;
    assert!(
        matches!(dropped, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection is closed by the handshake timeout"
    );
}

/// The cookies a console answer sets, by name: the whole Set-Cookie line.
fn cookies(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap().to_string();
            (line.split('=').next().unwrap().to_string(), line)
        })
        .collect()
}

fn is_secure(line: &str) -> bool {
    line.split(';').any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

#[tokio::test]
async fn over_https_the_console_s_cookies_are_secure_and_its_login_works() {
    let (app, _ca) = https_app(|_| {}).await;
    let (name, key) = app.create_merchant_user("tls-console").await;
    let base = format!("https://localhost:{}", app.addr.port());

    let page = app.client.get(format!("{base}/console/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let set = cookies(&page);
    let (_, login_cookie) = set.iter().find(|(n, _)| n == "hookd_login").expect("a login cookie");
    assert!(is_secure(login_cookie), "{login_cookie}");
    let token = login_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();

    let resp = app
        .client
        .post(format!("{base}/console/login"))
        .header(COOKIE, format!("hookd_login={token}"))
        .form(&[("csrf", token.as_str()), ("username", &name), ("api_key", &key)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = cookies(&resp);
    let (_, session) = set
        .iter()
        .find(|(n, _)| n == "hookd_session")
        .expect("a session cookie");
    assert!(is_secure(session), "{session}");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
}

#[tokio::test]
async fn over_plain_http_the_console_s_cookies_are_not_secure() {
    let app = TestApp::spawn().await;
    let page = reqwest::get(format!("http://{}/console/login", app.addr))
        .await
        .unwrap();
    let set = cookies(&page);
    let (_, login_cookie) = set.iter().find(|(n, _)| n == "hookd_login").expect("a login cookie");
    assert!(!is_secure(login_cookie), "{login_cookie}");
}

/// `hookd serve` with `env` (no database given: a new SQLite file in `dir`); what it printed
/// and its exit code, once it has exited.
async fn serve_fails(dir: &Path, env: &[(&str, String)]) -> String {
    let mut cmd = tokio::process::Command::from(command(dir, env));
    cmd.env("HOOKD_LISTEN", "127.0.0.1:0").arg("serve").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("hookd serve gives up within 60 s")
        .expect("running hookd serve");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "hookd serve must fail: {stderr}");
    stderr
}

/// The `hookd: error:` line of what a failed command printed.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("hookd: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

#[tokio::test]
async fn a_bad_tls_setting_stops_the_start_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("setup");
    let good = ca.issue(dir.path(), "good");
    let path = |p: &PathBuf| p.display().to_string();

    let printed = serve_fails(dir.path(), &[("HOOKD_TLS_CERT", path(&good.cert))]).await;
    let line = error_line(&printed);
    assert!(line.contains("HOOKD_TLS_KEY"), "{line}");

    let missing = dir.path().join("nowhere.key");
    let env = [("HOOKD_TLS_CERT", path(&good.cert)), ("HOOKD_TLS_KEY", path(&missing))];
    let line = error_line(&serve_fails(dir.path(), &env).await).to_string();
    assert!(line.contains(&path(&missing)), "{line}");

    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let env = [("HOOKD_TLS_CERT", path(&garbage)), ("HOOKD_TLS_KEY", path(&good.key))];
    let line = error_line(&serve_fails(dir.path(), &env).await).to_string();
    assert!(
        line.contains(&path(&garbage)) && line.contains("no certificate"),
        "{line}"
    );

    // The key of another certificate does not fit.
    let other = ca.issue(dir.path(), "other");
    let env = [
        ("HOOKD_TLS_CERT", path(&good.cert)),
        ("HOOKD_TLS_KEY", path(&other.key)),
    ];
    let line = error_line(&serve_fails(dir.path(), &env).await).to_string();
    assert!(line.contains(&path(&other.key)), "{line}");
}

/// Waits until `client` gets `/healthz` from the node, or panics after 20 s.
async fn until_healthy(client: &reqwest::Client, port: u16, node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(format!("https://localhost:{port}/healthz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => return,
            other if Instant::now() > deadline => {
                panic!("no healthy answer over HTTPS: {other:?}\n{}", node.log_tail())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn sighup_loads_a_renewed_certificate_and_a_broken_one_keeps_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old"), TestCa::new("new"));
    let files = old_ca.issue(dir.path(), "server");
    let env = [
        (
            "HOOKD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("hookd.db").display()),
        ),
        ("HOOKD_TLS_CERT", files.cert.display().to_string()),
        ("HOOKD_TLS_KEY", files.key.display().to_string()),
    ];
    let node = Node::serve("tls", dir.path(), &env).await;
    let port = node.addr.port();
    let (old_client, new_client) = (trusting(&old_ca, node.addr), trusting(&new_ca, node.addr));
    until_healthy(&old_client, port, &node).await;

    // Renewed in place (as certbot does), then SIGHUP: new connections get the new one.
    let renewed = new_ca.issue(dir.path(), "renewed");
    std::fs::copy(&renewed.cert, &files.cert).unwrap();
    std::fs::copy(&renewed.key, &files.key).unwrap();
    let hangup = |node: &Node| {
        // SAFETY: kill only sends a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(node.pid() as i32, libc::SIGHUP) }, 0);
    };
    hangup(&node);
    until_healthy(&new_client, port, &node).await;
    let old = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(old_ca.pem().as_bytes()).unwrap())
        .resolve("localhost", node.addr)
        .build()
        .unwrap();
    assert!(
        old.get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is still served"
    );

    // A broken file: the reload fails, says so, and the renewed certificate stays.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    hangup(&node);
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.logged("not reloaded").is_none() {
        assert!(
            Instant::now() < deadline,
            "the failed reload is not logged:\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = trusting(&new_ca, node.addr);
    until_healthy(&fresh, port, &node).await;
    node.assert_no_panic();
}
