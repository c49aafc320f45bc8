//! Issue 9, logins: API key checks are bounded (a few at a time, a short queue that refuses
//! when full), cost the same for unknown users, and failures are throttled per user name
//! and per client address. The burst test runs the real binary to read its memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::helpers::*;
use crate::process::{user_add, Node};

const TOO_MANY_IN_PROGRESS: &str = "Too many logins in progress";
const TOO_MANY_FAILED: &str = "Too many failed logins";

/// A `/proc/<pid>/status` figure in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn login_body(name: &str, key: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": [name, key]})
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON answer")
}

#[tokio::test]
async fn a_burst_of_wrong_logins_keeps_memory_bounded_and_sessions_answered() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let victim_key = user_add(dir.path(), &database_url, "victim", &["--merchant", "shop1"]).await;
    let key = user_add(dir.path(), &database_url, "alice", &["--merchant", "shop1"]).await;
    assert_ne!(victim_key, key);
    // Throttling off, so that every attempt reaches the key check: the worst case for memory.
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_LOGIN_FAILURES_PER_USER", "1000000".into()),
        ("HOOKD_LOGIN_FAILURES_PER_ADDRESS", "1000000".into()),
    ];
    let node = Node::serve("burst", dir.path(), &env).await;
    let rpc = node.rpc("alice", &key);
    let session = rpc.login().await;
    rpc.call_session(&session, "topic.list", json!([])).await.unwrap();
    let rss_before = proc_kb(node.pid(), "VmRSS");

    let url = format!("http://{}/api/jsonrpc", node.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let at_once = Arc::new(Semaphore::new(200));
    let started = Instant::now();
    let attempts: Vec<_> = (0..400)
        .map(|i| {
            let (client, url, at_once) = (client.clone(), url.clone(), at_once.clone());
            tokio::spawn(async move {
                let _turn = at_once.acquire_owned().await.unwrap();
                post_json(&client, &url, &login_body("victim", &format!("{i:040x}"))).await
            })
        })
        .collect();
    // Meanwhile a caller with a session keeps asking.
    let prober = tokio::spawn({
        let rpc = rpc.clone();
        let session = session.clone();
        async move {
            let mut worst = Duration::ZERO;
            let mut calls = 0;
            while started.elapsed() < Duration::from_secs(3) || calls < 10 {
                let asked = Instant::now();
                rpc.call_session(&session, "topic.list", json!([])).await.unwrap();
                worst = worst.max(asked.elapsed());
                calls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, calls)
        }
    });
    let mut refused_busy = 0;
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        let message = assert_app_error(&answer, 2);
        if message.contains(TOO_MANY_IN_PROGRESS) {
            refused_busy += 1;
        }
    }
    let burst = started.elapsed();
    let (worst, calls) = prober.await.unwrap();
    let peak = proc_kb(node.pid(), "VmHWM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = proc_kb(node.pid(), "VmRSS");
    eprintln!(
        "burst of 400 wrong logins (200 at once) in {burst:?}: {refused_busy} refused as busy; \
         RSS before {} MB, peak {} MB, after {} MB; session caller: worst {worst:?} over {calls} calls",
        rss_before / 1024,
        peak / 1024,
        rss_after / 1024
    );
    assert!(
        peak.saturating_sub(rss_before) <= 200 * 1024,
        "peak RSS rose from {rss_before} kB to {peak} kB"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a session call took {worst:?} during the burst"
    );
    assert!(refused_busy > 0, "200 at once overflow the default queue of 64");
    // And the right key still works afterwards.
    assert!(!rpc.login().await.is_empty());
    node.assert_no_panic();
}

#[tokio::test]
async fn requests_waiting_for_their_key_check_hold_no_more_than_their_body() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let env = [("HOOKD_DATABASE_URL", database_url), ("HOOKD_LOGIN_QUEUE", "30".into())];
    let node = Node::serve("waiting", dir.path(), &env).await;
    // Half a megabyte of args that would take ~20 MB as JSON values, on calls whose Basic
    // credentials are wrong: they wait for a key check (32 at once fill the queue), and
    // are refused. Built up front, the args would take some 600 MB.
    let args = format!("[{}]", vec!["0"; 250_000].join(","));
    let url = format!("http://{}/api/jsonrpc", node.addr);
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = proc_kb(node.pid(), "VmRSS");
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"call","params":[null,"webhook.list",{args}]}}"#);
            let request = client
                .post(&url)
                .basic_auth(format!("nobody{i}"), Some("wrong"))
                .header("content-type", "application/json")
                .body(body);
            tokio::spawn(async move { request.send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    for call in calls {
        let answer: Value = serde_json::from_slice(&call.await.unwrap()).unwrap();
        assert_app_error(&answer, 2);
    }
    let peak = proc_kb(node.pid(), "VmHWM");
    eprintln!(
        "32 refused 0.5 MB calls at once: RSS before {} MB, peak {} MB",
        rss_before / 1024,
        peak / 1024
    );
    assert!(
        peak.saturating_sub(rss_before) <= 200 * 1024,
        "peak RSS rose from {rss_before} kB to {peak} kB"
    );
    node.assert_no_panic();
}

/// How long `login(name, key)` takes to be refused.
async fn time_refusal(app: &TestApp, name: &str, key: &str) -> Duration {
    let started = Instant::now();
    let resp = app.try_login(name, key).await;
    let took = started.elapsed();
    assert_eq!(assert_app_error(&resp, 2), "Access denied.");
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn an_unknown_user_costs_as_much_time_as_a_wrong_key() {
    let app = TestApp::spawn_with(|c| c.app.auth.max_failures_per_user = 1000).await;
    let (name, _key) = app.create_merchant_user(&unique("shop")).await;
    // Alternating, so that both see the same load from whatever else runs.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..15 {
        known.push(time_refusal(&app, &name, &format!("{i:040x}")).await);
        unknown.push(time_refusal(&app, &unique("nobody"), &format!("{i:040x}")).await);
    }
    let (known, unknown) = (median(known), median(unknown));
    eprintln!("median refusal: known user, wrong key {known:?}; unknown user {unknown:?}");
    assert!(
        unknown * 2 >= known,
        "an unknown user ({unknown:?}) answers much faster than a wrong key ({known:?})"
    );
}

#[tokio::test]
async fn failed_logins_for_one_user_are_refused_for_a_while_without_telling_whether_it_exists() {
    let app = TestApp::spawn_with(|c| {
        c.app.auth.max_failures_per_user = 3;
        c.app.auth.failure_window = Duration::from_secs(2);
    })
    .await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    // A key checked once before is remembered, and still accepted during a lockout.
    assert_ok(&app.call_basic(&name, &key, "topic.list", json!([])).await);
    let (other, other_key) = app.create_merchant_user(&unique("shop")).await;
    let nobody = unique("nobody");
    for user in [&other, &nobody] {
        for i in 0..3 {
            let message = assert_app_error(&app.try_login(user, &format!("{i:040x}")).await, 2);
            assert_eq!(message, "Access denied.");
        }
    }
    let locked = assert_app_error(&app.try_login(&other, &other_key).await, 2);
    assert!(
        locked.starts_with("Access denied. ") && locked.contains(TOO_MANY_FAILED),
        "{locked}"
    );
    let locked_unknown = assert_app_error(&app.try_login(&nobody, &other_key).await, 2);
    assert_eq!(
        locked.split(", retry in").next(),
        locked_unknown.split(", retry in").next(),
        "an unknown name is locked out alike"
    );
    assert_ok(&app.call_basic(&name, &key, "topic.list", json!([])).await);
    app.login(&name, &key).await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.login(&other, &other_key).await;
}

#[tokio::test]
async fn failed_logins_from_one_address_are_refused_whatever_the_name() {
    let app = TestApp::spawn_with(|c| {
        c.app.auth.max_failures_per_user = 1000;
        c.app.auth.max_failures_per_address = 4;
    })
    .await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    for i in 0..4 {
        assert_eq!(
            assert_app_error(&app.try_login(&unique("nobody"), &format!("{i}")).await, 2),
            "Access denied."
        );
    }
    let refused = assert_app_error(&app.try_login(&name, &key).await, 2);
    assert!(refused.contains(TOO_MANY_FAILED), "{refused}");
    // Wrong Basic credentials count and are refused the same way.
    let basic = app.call_basic(&name, "wrong", "topic.list", json!([])).await;
    assert!(assert_app_error(&basic, 2).contains(TOO_MANY_FAILED), "{basic}");
}

#[tokio::test]
async fn key_checks_beyond_the_queue_are_refused_at_once_and_identical_ones_share_a_check() {
    let app = TestApp::spawn_with(|c| {
        c.app.auth.check_threads = 1;
        c.app.auth.check_queue = 1;
        c.app.auth.max_failures_per_user = 1000;
        c.app.auth.max_failures_per_address = 1000;
    })
    .await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let wrong: Vec<Value> = (0..20).map(|i| login_body(&name, &format!("{i:040x}"))).collect();
    let started = Instant::now();
    let answers = app.rpc_concurrently(wrong).await;
    let busy = answers
        .iter()
        .filter(|a| assert_app_error(a, 2).contains(TOO_MANY_IN_PROGRESS))
        .count();
    assert!(
        busy >= 10,
        "one check runs and one waits; the rest are refused: {answers:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = answers
        .iter()
        .map(|a| assert_app_error(a, 2))
        .find(|m| m.contains(TOO_MANY_IN_PROGRESS))
        .unwrap();
    assert_eq!(message, "Access denied. Too many logins in progress, retry shortly.");

    // Fifty calls with the same good Basic credentials at once make one check, not fifty.
    let calls = (0..50).map(|_| app.call_basic(&name, &key, "topic.list", json!([])));
    for resp in futures_util::future::join_all(calls).await {
        assert_ok(&resp);
    }
}

#[tokio::test]
async fn a_refused_caller_gets_the_same_errors_as_before_whatever_its_args() {
    let app = TestApp::spawn().await;
    let (name, _key) = app.create_merchant_user(&unique("shop")).await;
    let call = |params: Value| json!({"jsonrpc": "2.0", "id": 7, "method": "call", "params": params});
    let cases = [
        (json!([null, "webhook.list", [1, 2, 3]]), -32002),
        (
            json!({"session_id": null, "path": "webhook.list", "args": [{"x": 1}]}),
            -32002,
        ),
        (json!([null, "webhook.list", [], "extra"]), -32602),
        (json!({"path": "webhook.list", "extra": 1}), -32602),
        (json!([null]), -32006),
        (json!(["no-such-session", "webhook.list", [1]]), -32005),
        (json!([5, "webhook.list", [1]]), -32602),
    ];
    for (params, code) in cases {
        let (_, resp) = app.rpc_basic(&name, "wrong", call(params.clone())).await;
        assert_error(&resp, code);
        assert_eq!(resp["id"], 7, "{params}: {resp}");
    }
    // The same Basic credentials in a batch are checked once: every item is refused alike.
    let batch: Vec<Value> = (0..20).map(|_| call(json!([null, "topic.list", []]))).collect();
    let (_, resp) = app.rpc_basic(&name, "wrong", Value::Array(batch)).await;
    for answer in resp.as_array().unwrap() {
        assert_eq!(assert_app_error(answer, 2), "Access denied.");
    }
}
