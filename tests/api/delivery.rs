//! `event.publish` and the request a receiver gets (CONTRACT.md §4): fan-out by topic, the
//! body and headers, both signatures (checked here and by a separate Python process),
//! gap-free increment ids under concurrent publishing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

// --- fan-out ---

#[tokio::test]
async fn an_event_reaches_exactly_the_webhooks_whose_topics_match_it() {
    let w = World::start().await;
    let exact = id_of(&w.hook_at("order:created", "/fan/exact").await);
    let prefix = id_of(&w.hook_at("order:*", "/fan/prefix").await);
    let all = id_of(&w.hook_at("*", "/fan/all").await);
    let product = id_of(&w.hook_at("product:created", "/fan/product").await);

    let published = w.publish_ok("order:created", json!({"id": 1})).await;
    assert!(published["event_id"].is_i64(), "{published}");
    assert_eq!(published["payloads"], 3, "{published}");
    for path in ["/fan/exact", "/fan/prefix", "/fan/all"] {
        let got = w.receiver.wait_for(path, 1, WAIT).await;
        assert_eq!(got[0].json()["topic"], "order:created", "{path}");
    }
    assert_eq!(w.increment_id(product).await, 0, "no payload for product:created");

    let published = w.publish_ok("product:created", json!({"id": 2})).await;
    assert_eq!(published["payloads"], 2, "{published}");
    let product_got = w.receiver.wait_for("/fan/product", 1, WAIT).await;
    assert_eq!(product_got[0].json()["topic"], "product:created");
    let all_got = w.receiver.wait_for("/fan/all", 2, WAIT).await;
    assert_eq!(all_got[1].json()["topic"], "product:created");

    assert_eq!(w.receiver.received("/fan/exact").len(), 1);
    assert_eq!(w.receiver.received("/fan/prefix").len(), 1);
    let increments = [
        w.increment_id(exact).await,
        w.increment_id(prefix).await,
        w.increment_id(all).await,
        w.increment_id(product).await,
    ];
    assert_eq!(increments, [1, 1, 2, 1]);
}

// --- the request ---

#[tokio::test]
async fn a_delivery_carries_the_documented_body_signatures_and_extra_headers() {
    let w = World::start().await;
    let secret = "s3cr3t-Key_for-tests";
    w.hook(json!({
        "topics": "order:created",
        "url": w.receiver.url("/hook/1?plugin=X"),
        "secret_key": secret,
        "extra_headers": "X-Api-Key: abc\r\nX-Other: 1",
    }))
    .await;

    let message = json!({"order_id": 42, "note": "ünïcode \"quoted\"", "lines": [{"sku": "A", "qty": 2}]});
    w.publish_ok("order:created", message.clone()).await;
    let r = w.receiver.wait_for("/hook/", 1, WAIT).await.remove(0);

    assert_eq!(r.path, "/hook/1?plugin=X", "the URL is used exactly as registered");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let agent = r.header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("hookd/"), "user agent {agent:?}");

    let body = r.json();
    let timestamp = body["message"]["event_timestamp"]
        .as_str()
        .expect("event_timestamp is a string")
        .to_string();
    let seconds = payload_timestamp(&timestamp)
        .unwrap_or_else(|| panic!("event_timestamp {timestamp:?} is YYYY-MM-DDTHH:MM:SS+00:00"));
    assert!((unix_now() - seconds).abs() < 60, "event_timestamp {timestamp} is now");
    let mut expected_message = message.clone();
    expected_message["webhook_increment_id"] = json!(1);
    expected_message["event_timestamp"] = json!(timestamp);
    assert_eq!(
        body,
        json!({"topic": "order:created", "merchant_code": w.code, "message": expected_message})
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["topic", "merchant_code", "message"]);

    assert_eq!(
        r.header("x-plugin-hmac-sha256"),
        Some(plugin_signature(secret, &r.body).as_str())
    );
    assert!(
        standard_webhooks_valid(&whsec(secret), &r),
        "Standard Webhooks signature verifies: {:?}",
        r.headers
    );
    let sent_at: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((unix_now() - sent_at).abs() < 60, "webhook-timestamp {sent_at}");
    assert!(!r.header("webhook-id").unwrap_or_default().is_empty());
    assert_eq!(r.header("x-api-key"), Some("abc"));
    assert_eq!(r.header("x-other"), Some("1"));
}

#[tokio::test]
async fn a_delivery_is_a_post_to_the_url_exactly_as_registered() {
    let w = World::start().await;
    let raw = RawReceiver::start(Raw::Capture).await;
    w.hook(json!({"topics": "order:created", "url": raw.url("/respond.php?plugin=X&a=%20b")}))
        .await;
    w.publish_ok("order:created", json!({"id": 7})).await;

    let request = raw.wait_for_requests(1, WAIT).await.remove(0);
    let (head, body) = split_request(&request);
    assert_eq!(head[0], "POST /respond.php?plugin=X&a=%20b HTTP/1.1");
    // The documented spelling: PHP's getallheaders() keeps the case a header was sent in.
    assert!(
        head.iter().any(|l| l.starts_with("X-Plugin-Hmac-Sha256: ")),
        "{head:#?}"
    );
    let length = head
        .iter()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .expect("a Content-Length header");
    assert_eq!(length.parse::<usize>().unwrap(), body.len());
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["message"]["id"], 7);
}

/// Verifies both signatures of the request in `dir` (files `secret`, `body`, `headers`)
/// with Python's standard library only; prints OK or what differs.
const PYTHON_VERIFIER: &str = r#"
import base64, hashlib, hmac, os, sys
d = sys.argv[1]
secret = open(os.path.join(d, "secret"), "rb").read()
body = open(os.path.join(d, "body"), "rb").read()
headers = {}
for line in open(os.path.join(d, "headers"), encoding="utf-8").read().splitlines():
    name, value = line.split(": ", 1)
    headers[name.lower()] = value
plugin = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
if not hmac.compare_digest(plugin, headers["x-plugin-hmac-sha256"]):
    sys.exit("X-Plugin-Hmac-Sha256 differs: expected " + plugin)
# What a Standard Webhooks verifier does with the whsec_ secret it is given.
whsec = "whsec_" + base64.b64encode(secret).decode()
key = base64.b64decode(whsec[len("whsec_"):])
signed = (headers["webhook-id"] + "." + headers["webhook-timestamp"] + ".").encode() + body
expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
if expected not in headers["webhook-signature"].split(" "):
    sys.exit("webhook-signature differs: expected " + expected)
print("OK")
"#;

#[tokio::test]
async fn message_fields_named_like_hookd_s_own_are_replaced_not_repeated() {
    let w = World::start().await;
    w.hook_at("order:created", "/own").await;
    w.publish_ok(
        "order:created",
        json!({"webhook_increment_id": 99, "a": 1, "event_timestamp": "yesterday"}),
    )
    .await;
    w.publish_ok("order:created", json!({})).await;
    let got = w.receiver.wait_for("/own", 2, WAIT).await;

    for r in &got {
        let text = std::str::from_utf8(&r.body).unwrap();
        assert_eq!(text.matches("\"webhook_increment_id\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"event_timestamp\"").count(), 1, "{text}");
        let timestamp = r.json()["message"]["event_timestamp"].as_str().unwrap().to_string();
        assert!(payload_timestamp(&timestamp).is_some(), "{text}");
    }
    let mut messages: Vec<_> = got.iter().map(|r| r.json()["message"].clone()).collect();
    messages.sort_by_key(|m| m["webhook_increment_id"].as_i64());
    assert_eq!(messages[0]["webhook_increment_id"], 1);
    assert_eq!(messages[0]["a"], 1);
    assert_eq!(messages[1].as_object().unwrap().len(), 2, "{}", messages[1]);
    assert_eq!(messages[1]["webhook_increment_id"], 2);
}

#[tokio::test]
async fn both_signatures_verify_with_an_independent_python_implementation() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        crate::helpers::skipped("the independent signature check", "python3 is not installed");
        return;
    }
    let w = World::start().await;
    let secret = "pyth0n-Sécret/+=";
    w.hook(json!({"topics": "order:created", "url": w.receiver.url("/py"), "secret_key": secret}))
        .await;
    w.publish_ok("order:created", json!({"id": 9, "name": "Ωmega & co"}))
        .await;
    let r = w.receiver.wait_for("/py", 1, WAIT).await.remove(0);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), secret).unwrap();
    std::fs::write(dir.path().join("body"), &r.body).unwrap();
    let headers: String = [
        "x-plugin-hmac-sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
    .iter()
    .map(|name| format!("{name}: {}\n", r.header(name).expect(name)))
    .collect();
    std::fs::write(dir.path().join("headers"), headers).unwrap();

    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_VERIFIER)
        .arg(dir.path())
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 disagrees: {stdout}{stderr}");
    assert_eq!(stdout.trim(), "OK");
}

// --- increment ids ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_ids_are_gap_free_under_concurrent_publishing() {
    const EVENTS: usize = 200;
    const TASKS: usize = 16;
    let w = Arc::new(World::start().await);
    let first = id_of(&w.hook_at("order:created", "/inc/a").await);
    let second = id_of(&w.hook_at("order:*", "/inc/b").await);

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let w = w.clone();
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for i in (task..EVENTS).step_by(TASKS) {
                answers.push(w.publish_ok("order:created", json!({"n": i})).await);
            }
            answers
        });
    }
    let mut event_ids = BTreeSet::new();
    while let Some(answers) = tasks.join_next().await {
        for answer in answers.unwrap() {
            assert_eq!(answer["payloads"], 2, "{answer}");
            event_ids.insert(answer["event_id"].as_i64().unwrap());
        }
    }
    assert_eq!(event_ids.len(), EVENTS, "every publish made its own event");

    let expected: BTreeSet<i64> = (1..=EVENTS as i64).collect();
    for path in ["/inc/a", "/inc/b"] {
        let got = w.receiver.wait_for(path, EVENTS, Duration::from_secs(30)).await;
        let ids: BTreeSet<i64> = got.iter().map(|r| r.increment_id()).collect();
        assert_eq!(ids, expected, "{path} got increment ids 1..={EVENTS}");
    }
    assert_eq!(w.increment_id(first).await, EVENTS as i64);
    assert_eq!(w.increment_id(second).await, EVENTS as i64);
}
