//! The bench's webhook receiver: a small axum server on 127.0.0.1:0.
//!
//! Webhook `n` of a scenario is registered with the URL `/w/{n}` (its *slot*). Per slot the
//! receiver keeps which increment ids arrived (a bit set), so a delivery that came twice is
//! counted once and a lost one shows as a gap; across slots it records publish→receipt
//! latency from the `t_us` stamp the bench put in each message. It can stall one slot for a
//! fraction of its requests, and it verifies both signatures on a sample of requests.
//! URLs outside `/w/{n}` (webhooks that should never be called) count as unexpected.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::metrics::{now_us, Histogram, Snapshot};

/// Every how many requests the signatures are checked (the first of each slot always is).
const SIGNATURE_SAMPLE: u64 = 50;

/// The secret the bench registers webhook `slot` with (the receiver derives it again).
pub fn secret_for(slot: usize) -> String {
    format!("bench-secret-{slot}-7f3a")
}

/// Most hookd nodes the receiver tells apart.
pub const MAX_NODES: usize = 8;

/// The User-Agent a bench hookd node `node` sends (`config.app.delivery.client.user_agent`),
/// so the receiver can count which node made each delivery.
pub fn node_agent(node: usize) -> String {
    format!("hookd-bench-node-{node}")
}

/// Which node sent a request, from its User-Agent (see `node_agent`).
fn node_of(headers: &HeaderMap) -> Option<usize> {
    let agent = headers.get("user-agent")?.to_str().ok()?;
    agent
        .strip_prefix("hookd-bench-node-")?
        .parse()
        .ok()
        .filter(|n| *n < MAX_NODES)
}

/// Holds every `every`-th request (by increment id) of one slot for `duration`.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub slot: usize,
    pub every: u64,
    pub duration: Duration,
}

#[derive(Default)]
struct Slot {
    seen: Mutex<Vec<u64>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    last_us: AtomicU64,
}

impl Slot {
    /// Marks `increment_id` seen; true the first time.
    fn mark(&self, increment_id: u64) -> bool {
        let (word, bit) = ((increment_id / 64) as usize, increment_id % 64);
        let mut seen = self.seen.lock().unwrap();
        if seen.len() <= word {
            seen.resize((word + 1).next_power_of_two(), 0);
        }
        let fresh = seen[word] & (1 << bit) == 0;
        seen[word] |= 1 << bit;
        fresh
    }
}

struct Shared {
    slots: Vec<Slot>,
    latency: Histogram,
    stalled_latency: Histogram,
    stall: Option<Stall>,
    stalling: AtomicBool,
    requests: AtomicU64,
    unexpected: AtomicU64,
    malformed: AtomicU64,
    signatures_checked: AtomicU64,
    signatures_bad: AtomicU64,
    /// Distinct payloads by the node whose request brought them first.
    by_node: [AtomicU64; MAX_NODES],
}

/// What the receiver has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub unique: u64,
    pub duplicates: u64,
    pub unexpected: u64,
    pub malformed: u64,
    pub signatures_checked: u64,
    pub signatures_bad: u64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts a receiver for `slots` webhooks on the current (bench) runtime.
    pub async fn start(slots: usize, stall: Option<Stall>) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            latency: Histogram::default(),
            stalled_latency: Histogram::default(),
            stall,
            stalling: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            signatures_checked: AtomicU64::new(0),
            signatures_bad: AtomicU64::new(0),
            by_node: Default::default(),
        });
        let router = Router::new()
            .route("/w/{slot}", post(deliver))
            .fallback(unexpected)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("receiver stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    pub fn url(&self, slot: usize) -> String {
        format!("http://{}/w/{slot}", self.addr)
    }

    /// A URL on this receiver that no payload should ever reach.
    pub fn unused_url(&self, n: usize) -> String {
        format!("http://{}/never/{n}", self.addr)
    }

    pub fn set_stalling(&self, on: bool) {
        self.shared.stalling.store(on, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        let sum = |f: fn(&Slot) -> &AtomicU64| s.slots.iter().map(|x| f(x).load(Ordering::Relaxed)).sum();
        Counts {
            unique: sum(|x| &x.unique),
            duplicates: sum(|x| &x.duplicates),
            unexpected: s.unexpected.load(Ordering::Relaxed),
            malformed: s.malformed.load(Ordering::Relaxed),
            signatures_checked: s.signatures_checked.load(Ordering::Relaxed),
            signatures_bad: s.signatures_bad.load(Ordering::Relaxed),
        }
    }

    /// Distinct payloads received by the slots in `range`.
    pub fn unique_in(&self, range: std::ops::Range<usize>) -> u64 {
        self.shared.slots[range]
            .iter()
            .map(|x| x.unique.load(Ordering::Relaxed))
            .sum()
    }

    /// When the last distinct payload of any slot in `range` arrived (µs on the bench clock).
    pub fn last_receipt_in(&self, range: std::ops::Range<usize>) -> u64 {
        self.shared.slots[range]
            .iter()
            .map(|x| x.last_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    pub fn last_receipt_us(&self) -> u64 {
        self.last_receipt_in(0..self.shared.slots.len())
    }

    /// Publish→receipt latency of every slot but the stalled one.
    pub fn latency(&self) -> Snapshot {
        self.shared.latency.snapshot()
    }

    pub fn stalled_latency(&self) -> Snapshot {
        self.shared.stalled_latency.snapshot()
    }

    /// Distinct payloads each node delivered first (nodes named with `node_agent`).
    pub fn by_node(&self, nodes: usize) -> Vec<u64> {
        self.shared.by_node[..nodes.min(MAX_NODES)]
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    pub fn reset_latency(&self) {
        self.shared.latency.reset();
        self.shared.stalled_latency.reset();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Deserialize)]
struct Body {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    t_us: u64,
    webhook_increment_id: u64,
}

async fn deliver(State(s): State<Arc<Shared>>, Path(slot): Path<usize>, headers: HeaderMap, body: Bytes) -> StatusCode {
    s.record(slot, &headers, &body).await
}

impl Receiver {
    /// Counts one payload that came another way (a broker message a bench consumer got),
    /// with its headers, as if it had been POSTed to slot `slot`.
    pub async fn record(&self, slot: usize, headers: &HeaderMap, body: &[u8]) {
        self.shared.record(slot, headers, body).await;
    }
}

impl Shared {
    async fn record(&self, slot: usize, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let s = self;
        let now = now_us();
        let Some(entry) = s.slots.get(slot) else {
            s.unexpected.fetch_add(1, Ordering::Relaxed);
            return StatusCode::OK;
        };
        let Ok(Body { message }) = serde_json::from_slice::<Body>(body) else {
            // Answered 200 all the same: a retry would not make the body any better.
            s.malformed.fetch_add(1, Ordering::Relaxed);
            return StatusCode::OK;
        };
        let n = s.requests.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SIGNATURE_SAMPLE) || entry.unique.load(Ordering::Relaxed) == 0 {
            s.signatures_checked.fetch_add(1, Ordering::Relaxed);
            if !signatures_valid(headers, body, secret_for(slot).as_bytes()) {
                s.signatures_bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        let stalled = s.stall.filter(|st| st.slot == slot);
        let latency = now.saturating_sub(message.t_us);
        if stalled.is_some() {
            s.stalled_latency.record(latency);
        } else {
            s.latency.record(latency);
        }
        if entry.mark(message.webhook_increment_id) {
            entry.unique.fetch_add(1, Ordering::Relaxed);
            if let Some(node) = node_of(headers) {
                s.by_node[node].fetch_add(1, Ordering::Relaxed);
            }
            entry.last_us.fetch_max(now, Ordering::Relaxed);
        } else {
            entry.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(st) = stalled {
            if s.stalling.load(Ordering::Relaxed) && message.webhook_increment_id % st.every == 0 {
                tokio::time::sleep(st.duration).await;
            }
        }
        StatusCode::OK
    }
}

async fn unexpected(State(s): State<Arc<Shared>>) -> StatusCode {
    s.unexpected.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// Checks `X-Plugin-Hmac-Sha256` and the Standard Webhooks `webhook-signature`.
fn signatures_valid(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mac = |parts: &[&[u8]]| {
        let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        for p in parts {
            m.update(p);
        }
        BASE64.encode(m.finalize().into_bytes())
    };
    let plugin_ok = header("x-plugin-hmac-sha256") == mac(&[body]);
    let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = format!("v1,{}", mac(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]));
    let standard_ok = header("webhook-signature").split(' ').any(|sig| sig == expected);
    plugin_ok && standard_ok && !id.is_empty()
}
