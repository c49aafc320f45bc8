//! Webhook changes reach every node: node A only serves the API, node B only delivers, on one
//! PostgreSQL database. An update or a rotation made on A changes what B sends next, though
//! B loaded the webhook's target before (the claim reports the webhook's version).
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set; each run uses a fresh database.

use std::time::Duration;

use serde_json::json;

use crate::process::*;
use crate::receiver::{plugin_signature, Behaviour, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

fn node_env(database_url: &str, dispatch: bool) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        (
            "HOOKD_RETRY_SCHEDULE",
            "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms".into(),
        ),
        ("HOOKD_POLL_INTERVAL", "100ms".into()),
        ("HOOKD_DISPATCH", dispatch.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_a_rotation_made_on_one_node_reach_the_node_that_delivers() {
    let Some(db) = TestDatabase::create("lifecycle_nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let receiver = TestReceiver::start().await;
    receiver.set("/old", Behaviour::Status(500));
    let (env_a, env_b) = (node_env(&db.url, false), node_env(&db.url, true));
    let (a, b) = tokio::join!(
        Node::serve("A", dir.path(), &env_a),
        Node::serve("B", dir.path(), &env_b)
    );
    let (shop, admin) = (a.rpc("shop", &shop_key), a.rpc("root", &admin_key));
    shop.call(
        "webhook.create",
        json!([{"topics": "order:created", "url": receiver.url("/old"), "secret_key": "first-key"}]),
    )
    .await
    .expect("creating");
    let id = shop.call("webhook.list", json!([])).await.unwrap()[0]["webhook_id"]
        .as_i64()
        .unwrap();
    for n in 1..=2 {
        admin
            .call("event.publish", json!(["order:created", {"n": n}]))
            .await
            .expect("publishing");
    }
    // B has loaded the target and keeps retrying at the old URL.
    receiver.wait_for("/old", 4, WAIT).await;

    shop.call("webhook.update", json!([id, {"url": receiver.url("/new")}]))
        .await
        .expect("updating on A");
    let moved = receiver.wait_for("/new", 2, WAIT).await;
    let mut incs: Vec<i64> = moved.iter().map(|r| r.increment_id()).collect();
    incs.sort();
    assert_eq!(incs, vec![1, 2]);

    let rotated = shop
        .call(
            "webhook.rotate_secret",
            json!([id, {"secret_key": "second-key", "overlap": "1h"}]),
        )
        .await
        .expect("rotating on A");
    assert_eq!(rotated["secret_key"], "second-key");
    admin
        .call("event.publish", json!(["order:created", {"n": 3}]))
        .await
        .expect("publishing");
    let r = receiver
        .wait_for("/new", 3, WAIT)
        .await
        .into_iter()
        .find(|r| r.increment_id() == 3)
        .expect("the third payload");
    assert_eq!(
        r.header("x-plugin-hmac-sha256"),
        Some(plugin_signature("second-key", &r.body).as_str())
    );
    assert_eq!(
        r.header("x-plugin-hmac-sha256-previous"),
        Some(plugin_signature("first-key", &r.body).as_str())
    );
    drop((a, b));
}
