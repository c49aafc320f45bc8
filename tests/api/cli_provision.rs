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
