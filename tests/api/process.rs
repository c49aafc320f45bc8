//! The real `hookd` binary as a child process, for tests that `kill -9` it, run several
//! nodes on one database, or restart the database under it.
//!
//! The one idea to know: everything here drives hookd the way an operator does. The CLI
//! makes users (`hookd user add`), `hookd serve` reports its address in the stderr line
//! `listening on <addr>`, clients speak JSON-RPC over HTTP Basic auth, and `Node::kill` is
//! a real SIGKILL. `ledger` then compares what publishers were told with what a
//! `TestReceiver` got.

// Shared by several test binaries (`tests/pg_restart.rs` includes this file too).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

/// The topic every process test publishes on.
pub const TOPIC: &str = "order:created";

/// How long any one HTTP request to a node may take before it counts as a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

const LOG_LINES_KEPT: usize = 300;

/// `hookd` run in `dir` with `env`, and with no `HOOKD_*` or `RUST_LOG` from outside.
pub fn command(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("HOOKD_") || text == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd.current_dir(dir);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// `hookd user add NAME ROLE…` on `database_url` (e.g. `&["--admin"]` or
/// `&["--merchant", "shop1"]`): the new API key, alone on stdout's last line.
/// Where Debian's `faketime` package puts the preload library.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// libfaketime, when installed: preloaded into a node (with `FAKETIME=+30s` and
/// `FAKETIME_DONT_FAKE_MONOTONIC=1`) it moves the node's wall clock alone.
pub fn libfaketime() -> Option<std::path::PathBuf> {
    LIBFAKETIME.iter().map(std::path::PathBuf::from).find(|p| p.exists())
}

pub async fn user_add(dir: &Path, database_url: &str, name: &str, role: &[&str]) -> String {
    let env = [("HOOKD_DATABASE_URL", database_url.to_string())];
    let mut cmd = tokio::process::Command::from(command(dir, &env));
    cmd.args(["user", "add", name]).args(role).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("hookd user add finishes within 60 s")
        .expect("running hookd user add");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hookd user add {name} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let key = stdout.lines().last().expect("a key on stdout").trim();
    assert!(!key.is_empty(), "hookd user add printed no key; stderr: {stderr}");
    key.to_string()
}

/// The stderr of a node: its last lines, and whether it ever reported a panic.
#[derive(Default)]
struct Log {
    tail: Mutex<VecDeque<String>>,
    panicked: AtomicBool,
}

/// A running `hookd serve` child process. Dropping it kills the process.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Log>,
}

impl Node {
    /// Starts `hookd serve` on 127.0.0.1:0 with `env` and waits for `listening on <addr>`.
    pub async fn serve(name: &str, dir: &Path, env: &[(&str, String)]) -> Node {
        let mut cmd = command(dir, env);
        cmd.env("HOOKD_LISTEN", "127.0.0.1:0")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting hookd serve");
        let stderr = child.stderr.take().expect("a piped stderr");
        let log = Arc::new(Log::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn({
            let log = log.clone();
            move || drain(stderr, &log, tx)
        });
        let mut node = Node {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log,
        };
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(addr)) => node.addr = addr,
            Ok(Err(_)) => panic!("node {name} exited before listening:\n{}", node.log_tail()),
            Err(_) => panic!("node {name} did not listen within 30 s:\n{}", node.log_tail()),
        }
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("sending SIGKILL");
        self.child.wait().expect("reaping the killed node");
    }

    /// SIGTERM (a graceful stop), then waits up to `within` for the process to exit; whether
    /// it did.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "sending SIGTERM to node {}", self.name);
        let deadline = std::time::Instant::now() + within;
        while self.is_running() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A JSON-RPC client of this node with HTTP Basic credentials.
    pub fn rpc(&self, user: &str, key: &str) -> Rpc {
        Rpc::new(self.addr, user, key)
    }

    /// The last lines the node wrote to stderr.
    pub fn log_tail(&self) -> String {
        let tail = self.log.tail.lock().unwrap();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Whether any kept stderr line contains `text`.
    pub fn logged(&self, text: &str) -> Option<String> {
        let tail = self.log.tail.lock().unwrap();
        tail.iter().find(|l| l.contains(text)).cloned()
    }

    #[track_caller]
    pub fn assert_no_panic(&self) {
        let panicked = self.log.panicked.load(Ordering::Relaxed);
        assert!(!panicked, "node {} panicked:\n{}", self.name, self.log_tail());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the node's stderr until it closes, so the node never blocks on a full pipe; sends
/// the address of the `listening on <addr>` line.
fn drain(stderr: impl Read, log: &Log, tx: tokio::sync::oneshot::Sender<SocketAddr>) {
    let mut tx = Some(tx);
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line).into_owned();
        if let Some(addr) = tx.is_some().then(|| listening_addr(&line)).flatten() {
            let _ = tx.take().expect("not sent yet").send(addr);
        }
        if line.contains("panicked") {
            log.panicked.store(true, Ordering::Relaxed);
        }
        let mut tail = log.tail.lock().unwrap();
        if tail.len() == LOG_LINES_KEPT {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    word.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()
}

/// Why a request got no result.
#[derive(Clone, Debug)]
pub enum Failure {
    /// No HTTP answer: refused, reset, timed out (a killed or hung node).
    Transport(String),
    /// An answer that is not a JSON-RPC success (an `error` object, or a bad HTTP status).
    Rpc(String),
}

/// A JSON-RPC client of one node, with HTTP Basic credentials.
#[derive(Clone)]
pub struct Rpc {
    http: reqwest::Client,
    base: String,
    user: String,
    key: String,
}

impl Rpc {
    pub fn new(addr: SocketAddr, user: &str, key: &str) -> Rpc {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("an HTTP client");
        Rpc {
            http,
            base: format!("http://{addr}"),
            user: user.into(),
            key: key.into(),
        }
    }

    /// Posts a JSON-RPC body (with Basic auth when `basic`); the decoded answer.
    async fn post(&self, body: &Value, basic: bool) -> Result<Value, Failure> {
        let mut request = self
            .http
            .post(format!("{}/api/jsonrpc", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).unwrap());
        if basic {
            request = request.basic_auth(&self.user, Some(&self.key));
        }
        let response = request.send().await.map_err(|e| Failure::Transport(format!("{e:?}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(format!("{e:?}")))?;
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&bytes);
            return Err(Failure::Rpc(format!("HTTP {status}: {text}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| Failure::Rpc(format!("not JSON ({e})")))
    }

    /// `result` of a JSON-RPC answer, or the answer as a failure.
    fn result(answer: &Value) -> Result<Value, Failure> {
        match (answer.get("error"), answer.get("result")) {
            (Some(Value::Null), Some(result)) => Ok(result.clone()),
            _ => Err(Failure::Rpc(answer.to_string())),
        }
    }

    /// `call(null, path, args)` with Basic credentials.
    pub async fn call(&self, path: &str, args: Value) -> Result<Value, Failure> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [null, path, args]});
        Self::result(&self.post(&body, true).await?)
    }

    /// Like `call`, panicking unless it succeeds.
    pub async fn call_ok(&self, path: &str, args: Value) -> Value {
        self.call(path, args)
            .await
            .unwrap_or_else(|e| panic!("{path} on {} failed: {e:?}", self.base))
    }

    /// `call(session, path, args)` without Basic credentials.
    pub async fn call_session(&self, session: &str, path: &str, args: Value) -> Result<Value, Failure> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [session, path, args]});
        Self::result(&self.post(&body, false).await?)
    }

    /// `login(user, key)`: a new session id.
    pub async fn login(&self) -> String {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": [self.user, self.key]});
        let answer = self.post(&body, false).await.expect("login answers");
        let session = Self::result(&answer).expect("login succeeds");
        session.as_str().expect("a session id").to_string()
    }

    /// `event.publish(TOPIC, {"seq": seq})`: the event id.
    pub async fn publish(&self, seq: u64) -> Result<i64, Failure> {
        let result = self.call("event.publish", json!([TOPIC, {"seq": seq}])).await?;
        result["event_id"]
            .as_i64()
            .ok_or_else(|| Failure::Rpc(format!("no event_id in {result}")))
    }

    /// One JSON-RPC batch publishing every seq (request id = seq): each seq's outcome.
    pub async fn publish_batch(&self, seqs: &[u64]) -> Vec<(u64, Result<i64, Failure>)> {
        let body: Vec<Value> = seqs
            .iter()
            .map(|seq| {
                json!({"jsonrpc": "2.0", "id": seq, "method": "call",
                       "params": [null, "event.publish", [TOPIC, {"seq": seq}]]})
            })
            .collect();
        let answers = match self.post(&Value::Array(body), true).await {
            Ok(Value::Array(answers)) => answers,
            Ok(other) => {
                return seqs
                    .iter()
                    .map(|&s| (s, Err(Failure::Rpc(other.to_string()))))
                    .collect()
            }
            Err(e) => return seqs.iter().map(|&s| (s, Err(e.clone()))).collect(),
        };
        let by_id: BTreeMap<u64, &Value> = answers.iter().filter_map(|a| Some((a["id"].as_u64()?, a))).collect();
        let outcome = |seq: u64| -> Result<i64, Failure> {
            let answer = by_id
                .get(&seq)
                .ok_or_else(|| Failure::Rpc(format!("no answer for {seq}")))?;
            let result = Self::result(answer)?;
            result["event_id"]
                .as_i64()
                .ok_or_else(|| Failure::Rpc(format!("no event_id in {result}")))
        };
        seqs.iter().map(|&seq| (seq, outcome(seq))).collect()
    }

    /// `GET path` (e.g. `/readyz`): the HTTP status.
    pub async fn get_status(&self, path: &str) -> Result<u16, Failure> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| Failure::Transport(format!("{e:?}")))?;
        Ok(response.status().as_u16())
    }

    /// `webhook.list()`: url → increment_id.
    pub async fn increment_ids(&self) -> BTreeMap<String, i64> {
        let hooks = self.call_ok("webhook.list", json!([])).await;
        let hooks = hooks.as_array().expect("webhook.list returns an array");
        hooks
            .iter()
            .map(|h| {
                (
                    h["url"].as_str().unwrap().to_string(),
                    h["increment_id"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

/// A fresh PostgreSQL database on `HOOKD_TEST_POSTGRES_URL`, dropped with this value.
pub struct TestDatabase {
    /// The URL a node uses (`HOOKD_DATABASE_URL`).
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// None (after printing a note) when `HOOKD_TEST_POSTGRES_URL` is unset.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        use sqlx::{Connection, Executor};
        let Ok(admin_url) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
            crate::skip::skipped(test, "set HOOKD_TEST_POSTGRES_URL to run it");
            return None;
        };
        let name = format!("hookd_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to HOOKD_TEST_POSTGRES_URL: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating the test database");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin_url).expect("HOOKD_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(TestDatabase {
            url: url.to_string(),
            admin_url,
            name,
        })
    }

    /// A direct connection to the test database.
    pub async fn connect(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A runtime of its own: Drop cannot await, and may run inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                use sqlx::{Connection, Executor};
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                conn.execute(sql.as_str()).await.ok()
            })
        });
        if dropped.join().ok().flatten().is_none() {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}
