//! A real HTTP receiver for delivery tests: it records every request (path with query,
//! headers, body, arrival time) and answers as each path is told to: a status, a redirect,
//! a stall, a scripted sequence of statuses, a `Retry-After`, or a status after a stall. Signatures are checked with code written
//! here, independently of hookd's own signing module.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query, e.g. `/hook/1?plugin=X`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }

    /// `message.webhook_increment_id` of the body.
    pub fn increment_id(&self) -> i64 {
        self.json()["message"]["webhook_increment_id"]
            .as_i64()
            .expect("increment id")
    }
}

/// How the receiver answers requests to one path.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Status(u16),
    /// 302 to the given location.
    Redirect(String),
    /// Waits this long, then answers 200.
    Stall(Duration),
    /// Answers these statuses in turn, then 200 forever.
    Sequence(Vec<u16>),
    /// Answers 503 to this percentage of requests, picked at random, and 200 to the rest.
    Flaky(u8),
    /// Answers this status (429, 503 …) with a `Retry-After` header of this value.
    RetryAfter(u16, String),
    /// Waits this long, then answers this status (e.g. a 410 that lets more payloads queue).
    StallThen(Duration, u16),
    /// A receiver with little room: 429 at once when more than `max_open` requests are open
    /// (this one included), else waits `hold` and answers 200.
    Crowded {
        max_open: usize,
        hold: Duration,
    },
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    behaviours: Mutex<HashMap<String, Behaviour>>,
    arrived: Notify,
    /// Requests being answered now, and the most there ever were at once.
    open: Mutex<(usize, usize)>,
}

pub struct TestReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestReceiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// On a given address (to come back on the same port after `stop`).
    pub async fn start_on(addr: &str) -> Self {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, shared, task }
    }

    pub fn stop(&self) {
        self.task.abort();
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sets how requests whose path (without query) is `path` are answered.
    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.shared
            .behaviours
            .lock()
            .unwrap()
            .insert(path.to_string(), behaviour);
    }

    /// The most requests this receiver was answering at one time.
    pub fn most_at_once(&self) -> usize {
        self.shared.open.lock().unwrap().1
    }

    /// Everything received on paths starting with `prefix`, in arrival order.
    pub fn received(&self, prefix: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests arrived on `prefix`; panics after `timeout`.
    pub async fn wait_for(&self, prefix: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received(prefix);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received(prefix);
                assert!(
                    got.len() >= n,
                    "expected {n} deliveries on {prefix} within {timeout:?}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let behaviour = {
        let mut map = shared.behaviours.lock().unwrap();
        match map.get_mut(uri.path()) {
            Some(Behaviour::Sequence(seq)) if !seq.is_empty() => Behaviour::Status(seq.remove(0)),
            Some(b) => b.clone(),
            None => Behaviour::Status(200),
        }
    };
    shared.received.lock().unwrap().push(Received {
        path: path_and_query,
        headers,
        body,
        at: Instant::now(),
    });
    shared.arrived.notify_waiters();
    let now_open = {
        let mut open = shared.open.lock().unwrap();
        open.0 += 1;
        open.1 = open.1.max(open.0);
        open.0
    };
    let response = answer(behaviour, now_open).await;
    shared.open.lock().unwrap().0 -= 1;
    response
}

async fn answer(behaviour: Behaviour, now_open: usize) -> Response {
    match behaviour {
        Behaviour::Crowded { max_open, .. } if now_open > max_open => {
            (StatusCode::TOO_MANY_REQUESTS, "too many at once").into_response()
        }
        Behaviour::Crowded { hold, .. } => {
            tokio::time::sleep(hold).await;
            (StatusCode::OK, "ok").into_response()
        }
        Behaviour::Flaky(percent) if rand::random::<u8>() % 100 < percent => {
            (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
        }
        Behaviour::Flaky(_) => (StatusCode::OK, "ok").into_response(),
        Behaviour::Status(code) => (StatusCode::from_u16(code).unwrap(), format!("answered {code}")).into_response(),
        Behaviour::Redirect(location) => (StatusCode::FOUND, [("location", location)], "moved").into_response(),
        Behaviour::Stall(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "late").into_response()
        }
        Behaviour::RetryAfter(code, value) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", value)],
            format!("answered {code}"),
        )
            .into_response(),
        Behaviour::StallThen(d, code) => {
            tokio::time::sleep(d).await;
            (StatusCode::from_u16(code).unwrap(), format!("answered {code}")).into_response()
        }
        // An exhausted sequence answers 200.
        Behaviour::Sequence(_) => (StatusCode::OK, "ok").into_response(),
    }
}

/// What the platform's PHP example computes: base64_encode(hash_hmac('sha256', $body, $secret, TRUE)).
pub fn plugin_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies the Standard Webhooks headers the way its verifier libraries do, given the
/// secret in `whsec_` + base64 form.
pub fn standard_webhooks_valid(whsec: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(whsec.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let (Some(id), Some(ts), Some(sigs)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    sigs.split(' ').any(|s| s == expected)
}

/// The `whsec_` form of a webhook's secret_key.
pub fn whsec(secret_key: &str) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret_key.as_bytes())
    )
}
