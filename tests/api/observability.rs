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
