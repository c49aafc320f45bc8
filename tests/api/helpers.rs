//! Shared test harness: a real hookd server on 127.0.0.1:0 with a database of its own, plus
//! small JSON-RPC client helpers and assertions.
//!
//! The one idea to know: the server runs on a tokio task with a stop trigger, and the
//! database outlives it, so a test can stop the server and start a new one on the same
//! database (`TestApp::restart`) to check what survives.
//!
//! The backend is SQLite (a file in a temporary directory) unless `HOOKD_TEST_BACKEND=postgres`,
//! which gives each test a fresh database on the server `HOOKD_TEST_POSTGRES_URL` names
//! (dropped when the test passes, kept for a look when it fails).

// Shared by every test module, and by tests still to come: not each uses everything.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use hookd::app::App;
use hookd::config::Config;
use hookd::domain::{ApiKey, MerchantCode, Role, UserName};
use hookd::startup::Application;
use hookd::store::UserRecord;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running hookd server and the database it uses.
pub struct TestApp {
    /// Where the server listens (changes on restart).
    pub addr: SocketAddr,
    /// `http://<addr>/api/jsonrpc`
    pub endpoint: String,
    /// Where `/metrics` is served when `metrics_listen` gives it a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    /// The server's shared state; `app.store` gives direct access to the database.
    pub app: App,
    /// The configuration the server was built with (`database_url` included).
    pub config: Config,
    pub client: reqwest::Client,
    db: TestDatabase,
    server: Option<RunningServer>,
    // Dropped last: an SQLite database lives here.
    dir: TempDir,
}

/// The storage backend the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `HOOKD_TEST_BACKEND`: `sqlite` (the default) or `postgres`.
    pub fn from_env() -> Self {
        match std::env::var("HOOKD_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!("HOOKD_TEST_BACKEND must be sqlite or postgres, not '{other}'"),
        }
    }
}

/// Where a test's data lives.
enum TestDatabase {
    Sqlite { path: PathBuf },
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    async fn create(dir: &Path) -> (Self, String) {
        match Backend::from_env() {
            Backend::Sqlite => {
                let path = dir.join("hookd.db");
                let url = format!("sqlite://{}", path.display());
                (TestDatabase::Sqlite { path }, url)
            }
            Backend::Postgres => {
                let admin_url = std::env::var("HOOKD_TEST_POSTGRES_URL").expect(
                    "HOOKD_TEST_BACKEND=postgres needs HOOKD_TEST_POSTGRES_URL \
                     (a server where this user may create databases)",
                );
                let name = format!("hookd_api_{:016x}", rand::random::<u64>());
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connecting to HOOKD_TEST_POSTGRES_URL");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("creating a test database");
                admin.close().await.ok();
                let mut url = url::Url::parse(&admin_url).expect("HOOKD_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                (TestDatabase::Postgres { admin_url, name }, url.to_string())
            }
        }
    }
}

struct RunningServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A unique suffix for user names and merchant codes within this test process.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// SHA-256 as lowercase hex (how session ids are stored).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl TestApp {
    /// A server with the test defaults: port 0, a fresh database, private targets allowed.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, with `tweak` applied to the configuration before the server is built.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let (db, database_url) = TestDatabase::create(dir.path()).await;
        let mut config = Config::defaults();
        config.listen = "127.0.0.1:0".into();
        config.database_url = database_url;
        config.app.allow_private_targets = true;
        tweak(&mut config);
        let (addr, metrics_addr, app, server) = start(config.clone()).await;
        TestApp {
            addr,
            endpoint: format!("http://{addr}/api/jsonrpc"),
            metrics_addr,
            app,
            config,
            client: reqwest::Client::new(),
            db,
            server: Some(server),
            dir,
        }
    }

    /// The backend this server stores its data in.
    pub fn backend(&self) -> Backend {
        match self.db {
            TestDatabase::Sqlite { .. } => Backend::Sqlite,
            TestDatabase::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The SQLite database file (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.db {
            TestDatabase::Sqlite { path } => Some(path),
            TestDatabase::Postgres { .. } => None,
        }
    }

    /// A temporary directory for the test's own files (on SQLite, the database is here too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server and waits until it has shut down. The database stays.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            server
                .task
                .await
                .expect("the server task panicked")
                .expect("the server failed");
        }
    }

    /// Stops the server and starts a new one on the same database (and a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let (addr, metrics_addr, app, server) = start(self.config.clone()).await;
        self.addr = addr;
        self.metrics_addr = metrics_addr;
        self.endpoint = format!("http://{addr}/api/jsonrpc");
        self.app = app;
        self.client = reqwest::Client::new();
        self.server = Some(server);
    }

    // --- users, straight through the store (the CLI is tested on its own) ---

    /// A new merchant user of merchant `code` (created if missing): (name, API key).
    pub async fn create_merchant_user(&self, code: &str) -> (String, String) {
        let code = MerchantCode::parse(code).expect("a valid merchant code");
        let merchant = self
            .app
            .store
            .merchant_ensure(&code)
            .await
            .expect("creating the merchant");
        self.create_user(Role::Merchant, Some(merchant)).await
    }

    /// A new admin user: (name, API key).
    pub async fn create_admin(&self) -> (String, String) {
        self.create_user(Role::Admin, None).await
    }

    async fn create_user(&self, role: Role, merchant: Option<hookd::domain::MerchantId>) -> (String, String) {
        let name = unique(&format!("{}-", role.as_str()));
        let key = ApiKey::generate();
        let plain = key.expose().to_string();
        let hash = tokio::task::spawn_blocking(move || key.hash()).await.unwrap();
        let user_name = UserName::parse(&name).unwrap();
        self.app
            .store
            .user_create(&user_name, role, merchant, &hash)
            .await
            .expect("creating the user");
        (name, plain)
    }

    /// The stored record of user `name`.
    pub async fn user_record(&self, name: &str) -> UserRecord {
        self.app
            .store
            .user_by_name(name)
            .await
            .unwrap()
            .expect("the user exists")
    }

    /// A new merchant user of `code`, logged in: its session id.
    pub async fn merchant_session(&self, code: &str) -> String {
        let (name, key) = self.create_merchant_user(code).await;
        self.login(&name, &key).await
    }

    /// A new admin, logged in: its session id.
    pub async fn admin_session(&self) -> String {
        let (name, key) = self.create_admin().await;
        self.login(&name, &key).await
    }

    // --- raw JSON-RPC ---

    /// Posts `body` as JSON; the HTTP status and the decoded body (Null when empty).
    pub async fn rpc(&self, body: Value) -> (StatusCode, Value) {
        self.rpc_raw(serde_json::to_vec(&body).unwrap()).await
    }

    /// Posts `body` as JSON with HTTP Basic credentials.
    pub async fn rpc_basic(&self, name: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let request = self.post(&self.endpoint, serde_json::to_vec(&body).unwrap()).header(
            AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{key}"))
            ),
        );
        send(request).await
    }

    /// Posts every body at once, each on its own connection and task; the answers in order
    /// (HTTP 200 asserted).
    pub async fn rpc_concurrently(&self, bodies: Vec<Value>) -> Vec<Value> {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let request = reqwest::Client::new()
                    .post(&self.endpoint)
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&body).unwrap());
                tokio::spawn(send(request))
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            let (status, resp) = task.await.expect("a request task panicked");
            assert_eq!(status, StatusCode::OK, "{resp}");
            answers.push(resp);
        }
        answers
    }

    /// Posts exactly these bytes (Content-Type: application/json).
    pub async fn rpc_raw(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        self.rpc_raw_to(&self.endpoint, body).await
    }

    /// Posts exactly these bytes to `url`.
    pub async fn rpc_raw_to(&self, url: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        send(self.post(url, body)).await
    }

    fn post(&self, url: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    // --- login and call ---

    /// The full response to `login(name, key)`.
    pub async fn try_login(&self, name: &str, key: &str) -> Value {
        self.request("login", json!([name, key])).await
    }

    /// Logs in and returns the session id; panics unless login succeeds.
    pub async fn login(&self, name: &str, key: &str) -> String {
        let resp = self.try_login(name, key).await;
        assert_ok(&resp).as_str().expect("a session id string").to_string()
    }

    /// The full response to `call(session, path, args)`.
    pub async fn call(&self, session: &str, path: &str, args: Value) -> Value {
        self.request("call", json!([session, path, args])).await
    }

    /// The full response to `call(null, path, args)` with HTTP Basic credentials.
    pub async fn call_basic(&self, name: &str, key: &str, path: &str, args: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [null, path, args]});
        let (status, resp) = self.rpc_basic(name, key, body).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        resp
    }

    /// The full response to a single request `{method, params}` with id 1 (HTTP 200 asserted).
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let (status, resp) = self
            .rpc(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        resp
    }

    /// `webhook.create(data)` through `session`: the full response.
    pub async fn create_webhook(&self, session: &str, data: Value) -> Value {
        self.call(session, "webhook.create", json!([data])).await
    }

    /// `webhook.list()` through `session`; panics unless it succeeds.
    pub async fn list_webhooks(&self, session: &str) -> Vec<Value> {
        let resp = self.call(session, "webhook.list", json!([])).await;
        assert_ok(&resp)
            .as_array()
            .expect("webhook.list returns an array")
            .clone()
    }

    /// A good request still gets a good answer (after a bad one).
    pub async fn assert_still_serving(&self, session: &str) {
        let resp = self.call(session, "topic.list", json!([])).await;
        assert!(assert_ok(&resp).is_array(), "{resp}");
    }

    // --- the database itself, under the server's feet ---

    /// Runs SQL statements (several, separated by `;`) directly on the test's database.
    pub async fn execute_sql(&self, sql: &str) {
        let result = match &self.db {
            TestDatabase::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            TestDatabase::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.config.database_url).await.unwrap();
                let done = conn.execute(sql).await.map(drop).map_err(|e| e.to_string());
                conn.close().await.unwrap();
                done
            }
        };
        result.unwrap_or_else(|e| panic!("executing {sql}: {e}"));
    }

    /// The integer a query returns (first column of its one row).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        match &self.db {
            TestDatabase::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            TestDatabase::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.config.database_url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Makes every `event` ("INSERT", "UPDATE" or "DELETE") on `table` fail with the
    /// error text "boom" until `stop_failing` is called, to see how the API copes.
    pub async fn fail_on(&self, event: &str, table: &str) {
        let trigger = format!("boom_{}_{table}", event.to_lowercase());
        let sql = match self.backend() {
            Backend::Sqlite => {
                format!("CREATE TRIGGER {trigger} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'boom'); END")
            }
            Backend::Postgres => format!(
                "CREATE OR REPLACE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'boom'; END $$; \
                 CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION boom()"
            ),
        };
        self.execute_sql(&sql).await;
    }

    /// Undoes `fail_on(event, table)`.
    pub async fn stop_failing(&self, event: &str, table: &str) {
        let trigger = format!("boom_{}_{table}", event.to_lowercase());
        let sql = match self.backend() {
            Backend::Sqlite => format!("DROP TRIGGER {trigger}"),
            Backend::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
        };
        self.execute_sql(&sql).await;
    }

    /// Where `needle` (exactly, or upper-cased) is stored: on SQLite the database files
    /// (main file, WAL, shared memory) searched as raw bytes, so deleted or not yet
    /// checkpointed data counts too; on PostgreSQL every row of every table, as text.
    pub async fn where_stored(&self, needle: &str) -> Vec<String> {
        let forms = [needle.to_string(), needle.to_uppercase()];
        let holds = |bytes: &[u8]| forms.iter().any(|f| bytes.windows(f.len()).any(|w| w == f.as_bytes()));
        match &self.db {
            TestDatabase::Sqlite { .. } => self
                .sqlite_files()
                .into_iter()
                .filter(|p| holds(&std::fs::read(p).unwrap()))
                .map(|p| p.display().to_string())
                .collect(),
            TestDatabase::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.config.database_url).await.unwrap();
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                let mut found = Vec::new();
                for table in tables {
                    let rows: String = sqlx::query_scalar(&format!(
                        "SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"
                    ))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                    if holds(rows.as_bytes()) {
                        found.push(table);
                    }
                }
                found
            }
        }
    }

    /// SQLite only: every file of the database (main, WAL, shared memory).
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        let Some(path) = self.sqlite_path() else {
            return Vec::new();
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
        }
        // A failed test's database stays, to be looked at.
        if let TestDatabase::Postgres { admin_url, name } = &self.db {
            if !std::thread::panicking() {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop cannot await; a thread of its own with its own runtime can.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                        admin
                            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                            .await?;
                        admin.close().await
                    })
                })
                .join();
                if let Ok(Err(e)) = dropped {
                    eprintln!("note: could not drop test database: {e}");
                }
            }
        }
    }
}

async fn start(config: Config) -> (SocketAddr, Option<SocketAddr>, App, RunningServer) {
    let application = Application::build(config).await.expect("building the application");
    let addr = application.local_addr();
    let metrics_addr = application.metrics_addr();
    let app = application.app().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    (addr, metrics_addr, app, RunningServer { stop, task })
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let bytes = response.bytes().await.expect("reading the response body");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    assert!(
        content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json")),
        "a JSON body is labelled application/json, got {content_type:?}"
    );
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the response is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

// --- assertions ---

/// Checks the success shape (`jsonrpc` "2.0", `"error": null`, `result`) and returns `result`.
#[track_caller]
pub fn assert_ok(resp: &Value) -> &Value {
    assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
    assert!(
        resp.get("error").is_some_and(Value::is_null),
        "expected success with \"error\": null, got {resp}"
    );
    resp.get("result")
        .unwrap_or_else(|| panic!("a success carries result: {resp}"))
}

/// Checks an error response with exactly `code` and returns its message.
#[track_caller]
pub fn assert_error(resp: &Value, code: i64) -> String {
    assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
    assert_eq!(resp["error"]["code"], code, "expected error {code}, got {resp}");
    assert!(
        resp.get("result").is_none_or(Value::is_null),
        "an error carries no result: {resp}"
    );
    resp["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("an error has a message: {resp}"))
        .to_string()
}

/// Checks application error `n` (sent as `-(32000 + n)`) and returns its message.
#[track_caller]
pub fn assert_app_error(resp: &Value, n: i64) -> String {
    assert_error(resp, -(32000 + n))
}

/// Checks application error 101 and that its message names `what`.
#[track_caller]
pub fn assert_invalid_data(resp: &Value, what: &str) {
    let message = assert_app_error(resp, 101);
    assert!(message.starts_with("Invalid data given. "), "{message}");
    assert!(
        message.contains(what),
        "expected the message to name '{what}': {message}"
    );
}

/// Says that a test was skipped and why (stderr, and the test command's count: see
/// `tests/common/skip.rs`), so a skip is never mistaken for a pass.
pub use crate::skip::skipped;

/// Runs `node SCRIPT ROOT` (a checker under tests/, ROOT where `.ci/run` installed its npm
/// packages) with `doc` on stdin, and fails the test with its output when it refuses `doc`.
pub async fn node_validates(script: &str, root: &str, doc: &Value, what: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("node")
        .args([script, root])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running node");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(doc.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{what} is not valid: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
