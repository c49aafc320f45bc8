//! What an operator sees (CONTRACT.md §6.3): at the default log level, one line per payload
//! that becomes `failed`, naming what it is about; `GET /metrics` with the contract's names.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

#[tokio::test]
async fn a_payload_that_fails_for_good_is_logged_once_with_webhook_delivery_increment_host_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let admin_key = user_add(dir.path(), &database_url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_RETRY_SCHEDULE", "50ms".to_string()),
    ];
    let receiver = TestReceiver::start().await;
    receiver.set("/down", Behaviour::Status(500));
    let node = Node::serve("observed", dir.path(), &env).await;
    let shop = node.rpc("shop", &shop_key);
    shop.call_ok(
        "webhook.create",
        json!([{"topics": TOPIC, "url": receiver.url("/down?token=secret")}]),
    )
    .await;
    node.rpc("root", &admin_key).publish(1).await.expect("published");

    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        if let Some(line) = node.logged("payload failed") {
            break line;
        }
        assert!(Instant::now() < deadline, "no failure line:\n{}", node.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for part in [
        "WARN",
        "webhook=1",
        "delivery_id=1",
        "increment_id=1",
        "attempt=2",
        "host=\"127.0.0.1\"",
        "HTTP 500",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
    assert!(!line.contains("token=secret"), "the URL's query is not logged: {line}");
    let failures = node.log_tail().lines().filter(|l| l.contains("payload failed")).count();
    assert_eq!(failures, 1, "one line per failed payload:\n{}", node.log_tail());
    assert!(
        !node
            .log_tail()
            .lines()
            .any(|l| l.contains(" INFO sqlx") || l.contains(" DEBUG ")),
        "no dependency noise or debug lines at the default level:\n{}",
        node.log_tail()
    );
    node.assert_no_panic();
}

/// `GET /metrics` counts what happened: an event with two payloads, two successful attempts
/// and one failing one, and a payload that became `failed`.
#[tokio::test]
async fn metrics_count_events_payloads_attempts_and_failures_under_the_contract_s_names() {
    use crate::delivery_support::*;

    let w = World::start_with(|c| schedule(c, "10ms")).await;
    w.hook_at("order:created", "/fine").await;
    let broken = id_of(&w.hook_at("order:created", "/broken").await);
    w.receiver.set("/broken", Behaviour::Status(500));
    w.publish_ok("order:created", json!({"n": 1})).await;
    let failed = w.only_delivery(broken).await;
    w.wait_status(failed, "failed", Duration::from_secs(10)).await;
    w.receiver.wait_for("/fine", 1, Duration::from_secs(10)).await;

    let url = w.app.endpoint.replace("/api/jsonrpc", "/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().contains("text"));
        let text = response.text().await.unwrap();
        // The success is counted when its attempt ends, a moment after the receiver saw it.
        if text.contains("hookd_delivery_attempts_total{outcome=\"success\"} 1") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "hookd_events_published_total 1",
        "hookd_payloads_created_total 2",
        "hookd_delivery_attempts_total{outcome=\"success\"} 1",
        "hookd_delivery_attempts_total{outcome=\"failure\"} 2",
        "hookd_payloads_failed_total 1",
        "hookd_webhooks_disabled_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("hookd_delivery_attempt_duration_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "hookd_queue_due 0"),
        "nothing is due now: {text}"
    );
}
