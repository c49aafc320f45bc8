//! The CLI twins of the provisioning methods (CONTRACT §7.1): `hookd merchant add`,
//! `hookd user add NAME --publisher [--merchant CODE…]`, `hookd user rotate-key NAME`, run
//! as the real binary against a running test server's database.

use serde_json::json;

use crate::cli::{hookd, is_api_key, stderr, stdout, user_add};
use crate::helpers::*;

#[tokio::test]
async fn merchant_add_makes_a_merchant_once_and_publishers_are_limited_to_theirs() {
    let app = TestApp::spawn().await;
    let out = hookd(&app, &["merchant", "add", "shop-a", "--name", "Shop A"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let again = hookd(&app, &["merchant", "add", "shop-a"]).await;
    assert!(
        !again.status.success() && stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let bad = hookd(&app, &["merchant", "add", "a b"]).await;
    assert!(
        !bad.status.success() && stderr(&bad).contains("merchant_code"),
        "{}",
        stderr(&bad)
    );
    assert_ok(
        &app.call(
            &app.admin_session().await,
            "merchant.create",
            json!([{"merchant_code": "shop-b"}]),
        )
        .await,
    );

    let key = user_add(&app, &["pub", "--publisher", "--merchant", "shop-a"]).await;
    assert!(is_api_key(&key), "{key}");
    let publish = |code: &str| {
        app.call_basic(
            "pub",
            &key,
            "event.publish",
            json!(["order:created", {}, {"merchant_code": code}]),
        )
    };
    assert_ok(&publish("shop-a").await);
    assert_app_error(&publish("shop-b").await, 2);
    assert_app_error(&app.call_basic("pub", &key, "webhook.list", json!([])).await, 2);
    // A publisher's merchants must exist (no merchant is made by a typo).
    let ghost = hookd(&app, &["user", "add", "pub2", "--publisher", "--merchant", "nope"]).await;
    assert!(
        !ghost.status.success() && stderr(&ghost).contains("nope"),
        "{}",
        stderr(&ghost)
    );
    // Unlimited publisher; and the listing shows each user's merchants.
    user_add(&app, &["pub-any", "--publisher"]).await;
    let list = stdout(&hookd(&app, &["user", "list"]).await);
    assert!(list.lines().any(|l| l == "pub\tpublisher\tshop-a"), "{list}");
    assert!(list.lines().any(|l| l == "pub-any\tpublisher\t-"), "{list}");
    // A merchant user still takes exactly one --merchant, made on first use.
    let two = hookd(&app, &["user", "add", "m", "--merchant", "x", "--merchant", "y"]).await;
    assert!(!two.status.success());
    user_add(&app, &["m", "--merchant", "new-shop"]).await;
}

#[tokio::test]
async fn rotate_key_prints_a_new_key_and_the_old_one_stops_with_its_sessions() {
    let app = TestApp::spawn().await;
    let old = user_add(&app, &["alice", "--merchant", "shop1"]).await;
    let session = app.login("alice", &old).await;
    let out = hookd(&app, &["user", "rotate-key", "alice"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let new = stdout(&out).lines().last().unwrap().to_string();
    assert!(is_api_key(&new) && new != old, "{new}");
    assert_app_error(&app.call(&session, "webhook.list", json!([])).await, 5);
    assert_app_error(&app.try_login("alice", &old).await, 2);
    assert_ok(&app.call_basic("alice", &new, "webhook.list", json!([])).await);
    let nobody = hookd(&app, &["user", "rotate-key", "nobody"]).await;
    assert!(
        !nobody.status.success() && stderr(&nobody).contains("nobody"),
        "{}",
        stderr(&nobody)
    );
    assert!(!stdout(&nobody).lines().any(is_api_key));
}

/// A publish takes a key verified before from memory, without reading the user (issue 28);
/// the key is checked in the publish's own transaction instead. A rotation made outside
/// this server (the CLI here; another node on PostgreSQL) must still stop it at once, and
/// the old key must learn nothing from the errors it gets.
#[tokio::test]
async fn a_key_rotated_by_another_process_stops_publishing_at_once_and_learns_nothing() {
    let app = TestApp::spawn().await;
    assert!(hookd(&app, &["merchant", "add", "shop-a"]).await.status.success());
    let old = user_add(&app, &["feed", "--publisher"]).await;
    let publish = |key: &str, message: serde_json::Value, options: serde_json::Value| {
        let key = key.to_string();
        let app = &app;
        async move {
            app.call_basic(
                "feed",
                &key,
                "event.publish",
                json!(["order:created", message, options]),
            )
            .await
        }
    };
    // Verified once, then remembered.
    assert_ok(&publish(&old, json!({"n": 1}), json!({"merchant_code": "shop-a"})).await);
    assert_ok(
        &publish(
            &old,
            json!({"n": 2}),
            json!({"merchant_code": "shop-a", "idempotency_key": "k"}),
        )
        .await,
    );

    let out = hookd(&app, &["user", "rotate-key", "feed"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let new = stdout(&out).lines().last().unwrap().to_string();

    // A new event, a replay of a stored one, an unknown merchant, a bad message: each is
    // refused as the old key's, and nothing is stored.
    assert_app_error(
        &publish(&old, json!({"n": 3}), json!({"merchant_code": "shop-a"})).await,
        2,
    );
    let replay = publish(
        &old,
        json!({"n": 2}),
        json!({"merchant_code": "shop-a", "idempotency_key": "k"}),
    )
    .await;
    assert_app_error(&replay, 2);
    assert_app_error(
        &publish(&old, json!({"n": 4}), json!({"merchant_code": "no-such"})).await,
        2,
    );
    assert_app_error(&publish(&old, json!("not an object"), json!({})).await, 2);
    let (_, direct) = app
        .rpc_basic(
            "feed",
            &old,
            json!({"jsonrpc": "2.0", "id": 1, "method": "event.publish",
                   "params": {"topic": "order:created", "message": {"n": 5}, "options": {"merchant_code": "shop-a"}}}),
        )
        .await;
    assert_app_error(&direct, 2);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM events").await,
        2,
        "only the first two were stored"
    );

    assert_ok(&publish(&new, json!({"n": 6}), json!({"merchant_code": "shop-a"})).await);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM events").await, 3);
    // The old key is forgotten, not only refused: it stays refused.
    assert_app_error(
        &publish(&old, json!({"n": 7}), json!({"merchant_code": "shop-a"})).await,
        2,
    );

    let out = hookd(&app, &["user", "remove", "feed"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_app_error(
        &publish(&new, json!({"n": 8}), json!({"merchant_code": "shop-a"})).await,
        2,
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM events").await, 3);
}
