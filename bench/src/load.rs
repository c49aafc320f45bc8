//! Load through the public JSON-RPC API: a keep-alive HTTP client with Basic auth, and the
//! publishing patterns the scenarios use (closed loop with N requests in flight, single
//! events or batches; open loop at a fixed rate).
//!
//! Every published message is `{"seq": n, "t_us": <bench clock at send>}`; the receiver
//! reads `t_us` back to measure publish→receipt latency. `payloads` sums what each publish
//! answered, so the scenario knows how many deliveries to wait for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::metrics::{now_us, Histogram};
use crate::server::Login;

/// A JSON-RPC client for one user.
#[derive(Clone)]
pub struct Rpc {
    http: reqwest::Client,
    url: String,
    auth: String,
}

impl Rpc {
    pub fn new(endpoint: &str, login: &Login) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the JSON-RPC client")?;
        let auth = format!("Basic {}", BASE64.encode(format!("{}:{}", login.name, login.key)));
        Ok(Self {
            http,
            url: endpoint.to_string(),
            auth,
        })
    }

    /// The JSON-RPC endpoint this client calls.
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// POSTs a raw JSON-RPC body and returns the response body.
    pub async fn post(&self, body: String) -> anyhow::Result<bytes::Bytes> {
        let resp = self
            .http
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("sending a JSON-RPC request")?;
        let status = resp.status();
        let body = resp.bytes().await.context("reading a JSON-RPC response")?;
        anyhow::ensure!(status.is_success(), "HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    /// `call(null, method, args)`: the result, or the JSON-RPC error as an error.
    pub async fn call(&self, method: &str, args: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [null, method, args]});
        let resp: Value = serde_json::from_slice(&self.post(body.to_string()).await?)?;
        match resp.get("error") {
            Some(e) if !e.is_null() => anyhow::bail!("{method} failed: {e}"),
            _ => Ok(resp.get("result").cloned().unwrap_or(Value::Null)),
        }
    }
}

#[derive(Deserialize)]
struct Response {
    result: Option<PublishResult>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct PublishResult {
    payloads: u64,
}

/// Publishes `order:created` events and counts what came of them. With several endpoints
/// (several hookd nodes) the requests take turns among them, so each gets an even share.
pub struct Publisher {
    rpcs: Vec<Rpc>,
    next_rpc: AtomicU64,
    topic: &'static str,
    /// More fields of every message, as JSON object members (`"a":1,"b":2`); none when unset.
    fields: std::sync::OnceLock<String>,
    /// Merchant codes the events name (`merchant_code`), spread over them in a mixed order;
    /// none when unset.
    merchants: std::sync::OnceLock<Vec<String>>,
    /// Round trip of each HTTP request (one event, or one batch).
    pub rpc_latency: Histogram,
    next_seq: AtomicU64,
    published: AtomicU64,
    payloads: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    progress: ProgressBar,
}

/// What a publishing phase did, on the bench clock (`events`: those accepted).
#[derive(Clone, Copy, Debug)]
pub struct PublishRun {
    pub started_us: u64,
    pub ended_us: u64,
    pub events: u64,
}

impl PublishRun {
    pub fn seconds(&self) -> f64 {
        (self.ended_us.saturating_sub(self.started_us)) as f64 / 1e6
    }

    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds().max(1e-9)
    }
}

impl Publisher {
    /// A publisher whose requests go to each of `rpcs` in turn.
    pub fn spread(rpcs: Vec<Rpc>, topic: &'static str, progress: ProgressBar) -> Arc<Self> {
        assert!(!rpcs.is_empty(), "a publisher needs an endpoint");
        Arc::new(Self {
            rpcs,
            next_rpc: AtomicU64::new(0),
            topic,
            fields: std::sync::OnceLock::new(),
            merchants: std::sync::OnceLock::new(),
            rpc_latency: Histogram::default(),
            next_seq: AtomicU64::new(0),
            published: AtomicU64::new(0),
            payloads: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            progress,
        })
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Payloads the accepted events made (what the receiver should get).
    /// Counts payloads made by events that reached hookd another way (ingested from a
    /// broker), so waiting and checking count them as this publisher's.
    pub fn count_payloads(&self, n: u64) {
        self.payloads.fetch_add(n, Ordering::Relaxed);
    }

    pub fn payloads(&self) -> u64 {
        self.payloads.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> (u64, Option<String>) {
        (
            self.errors.load(Ordering::Relaxed),
            self.first_error.lock().unwrap().clone(),
        )
    }

    /// Makes every message carry `fields` too (JSON object members, e.g. `"a":1,"b":2`),
    /// after `seq` and `t_us`; set once, before publishing.
    pub fn set_fields(&self, fields: String) {
        let _ = self.fields.set(fields);
    }

    /// Makes the events name these merchants, in a mixed order (needed once several exist); set
    /// once, before publishing.
    pub fn set_merchants(&self, codes: Vec<String>) {
        let _ = self.merchants.set(codes);
    }

    fn request(&self) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let more = match self.fields.get() {
            Some(f) => format!(",{f}"),
            None => String::new(),
        };
        let options = match self.merchants.get() {
            Some(codes) if !codes.is_empty() => {
                // Mixed (Fibonacci hashing), not `seq % n`: the endpoints also take turns, and
                // each node would otherwise see only every other merchant.
                let pick = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % codes.len();
                format!(r#",{{"merchant_code":"{}"}}"#, codes[pick])
            }
            _ => String::new(),
        };
        format!(
            r#"{{"jsonrpc":"2.0","id":{seq},"method":"call","params":[null,"event.publish",["{}",{{"seq":{seq},"t_us":{}{more}}}{options}]]}}"#,
            self.topic,
            now_us()
        )
    }

    fn failed(&self, n: u64, what: String) {
        self.errors.fetch_add(n, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert(what);
    }

    fn accepted(&self, r: Response) {
        match (r.result, r.error) {
            (Some(res), None | Some(Value::Null)) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                self.payloads.fetch_add(res.payloads, Ordering::Relaxed);
                self.progress.inc(1);
            }
            (_, e) => self.failed(1, format!("event.publish answered {}", e.unwrap_or(Value::Null))),
        }
    }

    /// Publishes `n` events: one request when `n` is 1, otherwise one JSON-RPC batch.
    pub async fn publish(&self, n: u64) {
        let body = if n == 1 {
            self.request()
        } else {
            let items: Vec<String> = (0..n).map(|_| self.request()).collect();
            format!("[{}]", items.join(","))
        };
        let turn = self.next_rpc.fetch_add(1, Ordering::Relaxed) as usize % self.rpcs.len();
        let sent = now_us();
        let answer = self.rpcs[turn].post(body).await;
        self.rpc_latency.record(now_us() - sent);
        let answer = match answer {
            Ok(bytes) => bytes,
            Err(e) => return self.failed(n, format!("{e:#}")),
        };
        if n == 1 {
            match serde_json::from_slice::<Response>(&answer) {
                Ok(r) => self.accepted(r),
                Err(e) => self.failed(1, format!("unreadable answer: {e}")),
            }
        } else {
            match serde_json::from_slice::<Vec<Response>>(&answer) {
                Ok(rs) if rs.len() as u64 == n => rs.into_iter().for_each(|r| self.accepted(r)),
                Ok(rs) => self.failed(n, format!("a batch of {n} got {} answers", rs.len())),
                Err(e) => self.failed(n, format!("unreadable batch answer: {e}")),
            }
        }
    }
}

/// How much a closed loop publishes: a number of events, or as many as fit in a time.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    Events(u64),
    For(Duration),
}

impl Amount {
    /// The event count when it is known in advance.
    pub fn events(self) -> Option<u64> {
        match self {
            Amount::Events(n) => Some(n),
            Amount::For(_) => None,
        }
    }
}

/// Publishes with `concurrency` requests in flight, each carrying `batch` events (1 =
/// single-event requests), as fast as hookd answers.
pub async fn closed_loop(p: &Arc<Publisher>, amount: Amount, concurrency: usize, batch: u64) -> PublishRun {
    let (events, deadline) = match amount {
        Amount::Events(n) => (n, None),
        Amount::For(d) => (u64::MAX, Some(tokio::time::Instant::now() + d)),
    };
    let remaining = Arc::new(AtomicU64::new(events));
    let before = p.published();
    let started_us = now_us();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (p, remaining) = (p.clone(), remaining.clone());
            tokio::spawn(async move {
                while deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
                    let take = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        (left > 0).then(|| left - left.min(batch))
                    });
                    match take {
                        Ok(left) => p.publish(left.min(batch)).await,
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    PublishRun {
        started_us,
        ended_us: now_us(),
        events: p.published() - before,
    }
}

/// Publishes `events` single events at `rate` per second on a fixed schedule, whatever the
/// answers' latency (each request is its own task, so a slow answer delays nothing).
pub async fn open_loop(p: &Arc<Publisher>, events: u64, rate: f64) -> PublishRun {
    let start = tokio::time::Instant::now();
    let before = p.published();
    let started_us = now_us();
    let mut inflight = tokio::task::JoinSet::new();
    for i in 0..events {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let p = p.clone();
        inflight.spawn(async move { p.publish(1).await });
        while inflight.try_join_next().is_some() {}
    }
    let ended_us = now_us();
    while inflight.join_next().await.is_some() {}
    PublishRun {
        started_us,
        ended_us,
        events: p.published() - before,
    }
}
