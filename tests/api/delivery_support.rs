//! Shared set-up for the delivery tests: a hookd server with a short retry schedule and a
//! quick queue scan, an admin who publishes, one merchant who owns the webhooks, and a
//! `TestReceiver`; plus polling helpers with deadlines and raw TCP receivers that misbehave.
//!
//! The one idea to know: tests never sleep to wait for the dispatcher. They wait on the
//! receiver (`wait_for`) or poll the delivery log (`wait_info`, `wait_deliveries`) until a
//! condition holds, and fail with the last state seen when the deadline passes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookd::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::*;
use crate::receiver::TestReceiver;

/// Retries after 200 ms, 400 ms and 800 ms: four attempts within about 1.5 s.
pub const FAST_SCHEDULE: &str = "200ms,400ms,800ms";

/// How often the polling helpers look again.
const POLL: Duration = Duration::from_millis(25);

/// The test configuration every delivery test starts from: the short schedule and a queue
/// scan every 100 ms.
pub fn fast(config: &mut Config) {
    config.app.delivery.schedule = FAST_SCHEDULE.parse().unwrap();
    config.app.delivery.poll_interval = Duration::from_millis(100);
}

/// Sets the retry schedule, e.g. `schedule(c, "1s,1s")`.
pub fn schedule(config: &mut Config, delays: &str) {
    config.app.delivery.schedule = delays.parse().unwrap();
}

/// A server, an admin (name, key), one merchant with a session, and a receiver.
pub struct World {
    pub app: TestApp,
    pub admin: (String, String),
    /// The merchant's code.
    pub code: String,
    /// A session of a user of that merchant.
    pub shop: String,
    pub receiver: TestReceiver,
}

impl World {
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    /// `tweak` is applied after [`fast`], so it may override the schedule.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> World {
        let app = TestApp::spawn_with(|c| {
            fast(c);
            tweak(c);
        })
        .await;
        let admin = app.create_admin().await;
        let code = unique("shop");
        let shop = app.merchant_session(&code).await;
        let receiver = TestReceiver::start().await;
        World {
            app,
            admin,
            code,
            shop,
            receiver,
        }
    }

    // --- calls ---

    /// `call` as the merchant user: the full response.
    pub async fn as_shop(&self, path: &str, args: Value) -> Value {
        self.app.call(&self.shop, path, args).await
    }

    /// `call` as the admin (HTTP Basic): the full response.
    pub async fn as_admin(&self, path: &str, args: Value) -> Value {
        self.app.call_basic(&self.admin.0, &self.admin.1, path, args).await
    }

    /// `event.publish(topic, message)` as the admin: the full response.
    pub async fn publish(&self, topic: &str, message: Value) -> Value {
        self.as_admin("event.publish", json!([topic, message])).await
    }

    /// `event.publish(topic, message)`; panics unless it succeeds; the result.
    pub async fn publish_ok(&self, topic: &str, message: Value) -> Value {
        let resp = self.publish(topic, message).await;
        assert_ok(&resp).clone()
    }

    // --- webhooks ---

    /// Creates a webhook of the merchant from `data`; the entity `webhook.list` shows for it.
    pub async fn hook(&self, data: Value) -> Value {
        let resp = self.app.create_webhook(&self.shop, data.clone()).await;
        assert_eq!(assert_ok(&resp), &json!(true), "creating {data}");
        self.app
            .list_webhooks(&self.shop)
            .await
            .into_iter()
            .max_by_key(|w| w["webhook_id"].as_i64().unwrap())
            .expect("the new webhook is listed")
    }

    /// A webhook on `topics` pointing at the receiver's `path`; the listed entity.
    pub async fn hook_at(&self, topics: &str, path: &str) -> Value {
        self.hook(json!({"topics": topics, "url": self.receiver.url(path)}))
            .await
    }

    /// The listed entity of webhook `id`.
    pub async fn webhook(&self, id: i64) -> Value {
        self.app
            .list_webhooks(&self.shop)
            .await
            .into_iter()
            .find(|w| w["webhook_id"] == id)
            .unwrap_or_else(|| panic!("webhook {id} is listed"))
    }

    /// `increment_id` of webhook `id` as `webhook.list` shows it.
    pub async fn increment_id(&self, id: i64) -> i64 {
        self.webhook(id).await["increment_id"].as_i64().unwrap()
    }

    /// `webhook.update_status(id, active)`; panics unless it succeeds.
    pub async fn set_active(&self, id: i64, active: bool) {
        let resp = self.as_shop("webhook.update_status", json!([id, active as i64])).await;
        assert_eq!(assert_ok(&resp), &json!(true), "{resp}");
    }

    // --- the delivery log ---

    /// Every payload of webhook `id`, newest first.
    pub async fn deliveries(&self, id: i64) -> Vec<Value> {
        self.deliveries_where(id, json!({"limit": 1000})).await
    }

    /// `webhook.deliveries(id, filter)`; panics unless it succeeds.
    pub async fn deliveries_where(&self, id: i64, filter: Value) -> Vec<Value> {
        let resp = self.as_shop("webhook.deliveries", json!([id, filter])).await;
        assert_ok(&resp)
            .as_array()
            .unwrap_or_else(|| panic!("webhook.deliveries returns an array: {resp}"))
            .clone()
    }

    /// The id of webhook `id`'s only payload.
    pub async fn only_delivery(&self, id: i64) -> i64 {
        let list = self.deliveries(id).await;
        assert_eq!(list.len(), 1, "one payload for webhook {id}: {list:?}");
        list[0]["delivery_id"].as_i64().unwrap()
    }

    /// `delivery.info(id)` as the merchant; panics unless it succeeds.
    pub async fn info(&self, delivery_id: i64) -> Value {
        let resp = self.as_shop("delivery.info", json!([delivery_id])).await;
        assert_ok(&resp).clone()
    }

    /// Polls `delivery.info` until `done` holds; panics with the last answer after `timeout`.
    pub async fn wait_info(
        &self,
        delivery_id: i64,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info(delivery_id).await;
            if done(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "delivery {delivery_id}: no {what} within {timeout:?}; last seen {info:#}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until delivery `delivery_id` has `status`.
    pub async fn wait_status(&self, delivery_id: i64, status: &str, timeout: Duration) -> Value {
        self.wait_info(delivery_id, &format!("status {status}"), timeout, |i| {
            i["status"] == status
        })
        .await
    }

    /// Polls until delivery `delivery_id` has at least `n` attempts, counted and logged.
    pub async fn wait_attempts(&self, delivery_id: i64, n: usize, timeout: Duration) -> Value {
        self.wait_info(delivery_id, &format!("{n} attempts"), timeout, |i| {
            i["attempts"].as_u64().unwrap() >= n as u64 && attempt_log(i).len() >= n
        })
        .await
    }

    /// Polls `webhook.deliveries(id)` until `done` holds for the list.
    pub async fn wait_deliveries(
        &self,
        id: i64,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.deliveries(id).await;
            if done(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "webhook {id}: not {what} within {timeout:?}; last seen {list:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The `attempt_log` array of a `delivery.info` answer.
pub fn attempt_log(info: &Value) -> &[Value] {
    info["attempt_log"]
        .as_array()
        .unwrap_or_else(|| panic!("delivery.info has attempt_log: {info}"))
}

/// The statuses of a list of deliveries.
pub fn statuses(list: &[Value]) -> Vec<&str> {
    list.iter().map(|d| d["status"].as_str().unwrap()).collect()
}

/// The webhook id of a listed entity.
pub fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Unix seconds of a payload timestamp, which must have exactly the shape
/// `YYYY-MM-DDTHH:MM:SS+00:00`; None for anything else.
pub fn payload_timestamp(s: &str) -> Option<i64> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd+00:00";
    let bytes = s.as_bytes();
    let shaped = bytes.len() == SHAPE.len()
        && bytes.iter().zip(SHAPE).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        });
    if !shaped {
        return None;
    }
    let n = |from: usize, to: usize| s[from..to].parse::<u16>().unwrap();
    let month = time::Month::try_from(n(5, 7) as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0, 4) as i32, month, n(8, 10) as u8).ok()?;
    let clock = time::Time::from_hms(n(11, 13) as u8, n(14, 16) as u8, n(17, 19) as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
}

/// True when `text` reads as one short line for a person (an attempt log's error).
pub fn readable(text: &str) -> bool {
    !text.trim().is_empty() && !text.contains('\n') && text.len() < 300
}

// --- raw TCP receivers ---

/// How a [`RawReceiver`] treats each connection.
#[derive(Clone, Copy, Debug)]
pub enum Raw {
    /// Reads one HTTP request, keeps its bytes, answers 200 and closes.
    Capture,
    /// Closes the connection as soon as it is accepted.
    Close,
    /// Reads a little, answers bytes that are not HTTP, and closes.
    Garbage,
}

/// A TCP listener speaking just enough (or not enough) HTTP, to see requests byte for byte
/// or to fail in ways an HTTP server library would not.
pub struct RawReceiver {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawReceiver {
    pub async fn start(mode: Raw) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, store) = (accepted.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let store = store.clone();
                tokio::spawn(async move {
                    match mode {
                        Raw::Close => drop(socket),
                        Raw::Garbage => {
                            let mut buf = [0u8; 1024];
                            let _ = socket.read(&mut buf).await;
                            let _ = socket.write_all(b"THIS IS NOT HTTP\r\n\r\n").await;
                            let _ = socket.shutdown().await;
                        }
                        Raw::Capture => {
                            let request = read_request(&mut socket).await;
                            store.lock().unwrap().push(request);
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                                .await;
                            let _ = socket.shutdown().await;
                        }
                    }
                });
            }
        });
        RawReceiver {
            addr,
            accepted,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests were captured ([`Raw::Capture`]); their raw bytes.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} raw requests within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for RawReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request head and a `Content-Length` body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return data;
            }
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return data,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a raw HTTP request into its head lines and its body.
pub fn split_request(raw: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = find(raw, b"\r\n\r\n").expect("a complete request head");
    let head = String::from_utf8(raw[..end].to_vec()).expect("an ASCII request head");
    (
        head.split("\r\n").map(str::to_string).collect(),
        raw[end + 4..].to_vec(),
    )
}
