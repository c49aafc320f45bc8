//! Provisioning and least privilege (CONTRACT §7.1): an admin makes merchants and users
//! through the API; a publisher may only publish (for its merchants) and read the catalog;
//! nobody else reaches the admin methods; re-keying and deleting a user end its key and
//! its sessions at once. Both backends (HOOKD_TEST_BACKEND).

use serde_json::{json, Value};

use crate::helpers::*;

/// The admin methods, each with arguments that would succeed for an admin.
fn admin_calls() -> Vec<(&'static str, Value)> {
    vec![
        ("merchant.create", json!([{"merchant_code": unique("m-")}])),
        ("merchant.list", json!([])),
        ("user.create", json!([{"username": unique("u-"), "role": "admin"}])),
        ("user.list", json!([])),
        ("user.rotate_key", json!(["nobody-at-all"])),
        ("user.delete", json!(["nobody-at-all"])),
    ]
}

/// An admin session and a merchant `code` made through the API.
async fn admin_with_merchant(app: &TestApp, code: &str) -> String {
    let admin = app.admin_session().await;
    let made = app
        .call(
            &admin,
            "merchant.create",
            json!([{"merchant_code": code, "name": "Shop"}]),
        )
        .await;
    assert_eq!(assert_ok(&made), &json!({"merchant_code": code, "name": "Shop"}));
    admin
}

/// `user.create` through `admin`: (username, api_key).
async fn make_user(app: &TestApp, admin: &str, fields: Value) -> (String, String) {
    let resp = app.call(admin, "user.create", json!([fields])).await;
    let made = assert_ok(&resp);
    (
        made["username"].as_str().unwrap().to_string(),
        made["api_key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn an_admin_makes_merchants_and_users_whose_keys_work_and_lists_them_without_keys() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let (shop_user, shop_key) = make_user(
        &app,
        &admin,
        json!({"username": unique("shopper-"), "role": "merchant", "merchant_code": code}),
    )
    .await;
    let shop = app.login(&shop_user, &shop_key).await;
    assert_ok(
        &app.create_webhook(&shop, json!({"topics": "order:created", "url": "https://x.example/"}))
            .await,
    );
    let (publisher, publisher_key) = make_user(
        &app,
        &admin,
        json!({"username": unique("pub-"), "role": "publisher", "merchant_codes": [code]}),
    )
    .await;
    assert_ok(&app.try_login(&publisher, &publisher_key).await);

    let merchants = app.call(&admin, "merchant.list", json!([])).await;
    let listed = assert_ok(&merchants).as_array().unwrap();
    let mine = listed.iter().find(|m| m["merchant_code"] == code.as_str()).unwrap();
    assert_eq!(
        (mine["name"].as_str(), mine["webhooks"].as_i64()),
        (Some("Shop"), Some(1))
    );
    assert!(mine["created_at"].is_string(), "{mine}");

    let users = app.call(&admin, "user.list", json!([])).await;
    let text = users.to_string();
    assert!(!text.contains(&shop_key) && !text.contains(&publisher_key) && !text.contains("argon2"));
    let users = assert_ok(&users).as_array().unwrap();
    let p = users.iter().find(|u| u["username"] == publisher.as_str()).unwrap();
    assert_eq!(p["role"], "publisher");
    assert_eq!(p["merchant_codes"], json!([code]));
    assert!(p["merchant_code"].is_null());
    let s = users.iter().find(|u| u["username"] == shop_user.as_str()).unwrap();
    assert_eq!(
        (s["role"].as_str(), s["merchant_code"].as_str()),
        (Some("merchant"), Some(code.as_str()))
    );
    for u in users {
        let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["created_at", "merchant_code", "merchant_codes", "role", "username"]
        );
    }
}

#[tokio::test]
async fn existing_and_missing_merchants_and_users_get_110_111_and_112() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let again = app
        .call(&admin, "merchant.create", json!([{"merchant_code": code}]))
        .await;
    assert!(assert_app_error(&again, 110).contains(&code));
    let name = unique("u-");
    make_user(&app, &admin, json!({"username": name, "role": "admin"})).await;
    let again = app
        .call(&admin, "user.create", json!([{"username": name, "role": "admin"}]))
        .await;
    assert!(assert_app_error(&again, 110).contains(&name));
    let ghost = app
        .call(
            &admin,
            "user.create",
            json!([{"username": unique("u-"), "role": "merchant", "merchant_code": "no-such-shop"}]),
        )
        .await;
    assert!(assert_app_error(&ghost, 111).contains("no-such-shop"));
    let ghost = app
        .call(
            &admin,
            "user.create",
            json!([{"username": unique("u-"), "role": "publisher", "merchant_codes": [code, "no-such-shop"]}]),
        )
        .await;
    assert!(assert_app_error(&ghost, 111).contains("merchant_codes"));
    for path in ["user.rotate_key", "user.delete"] {
        let resp = app.call(&admin, path, json!(["no-such-user"])).await;
        assert!(assert_app_error(&resp, 112).contains("no-such-user"), "{path}");
    }
}

#[tokio::test]
async fn merchant_and_publisher_users_get_access_denied_from_every_admin_method() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let (shop_user, shop_key) = make_user(
        &app,
        &admin,
        json!({"username": unique("shopper-"), "role": "merchant", "merchant_code": code}),
    )
    .await;
    let (publisher, publisher_key) =
        make_user(&app, &admin, json!({"username": unique("pub-"), "role": "publisher"})).await;
    let before = assert_ok(&app.call(&admin, "user.list", json!([])).await).clone();
    for (name, key) in [(&shop_user, &shop_key), (&publisher, &publisher_key)] {
        let session = app.login(name, key).await;
        for (path, args) in admin_calls() {
            assert_app_error(&app.call(&session, path, args.clone()).await, 2);
            assert_app_error(&app.call_basic(name, key, path, args.clone()).await, 2);
            let (_, direct) = app
                .rpc_basic(
                    name,
                    key,
                    json!({"jsonrpc": "2.0", "id": 1, "method": path, "params": args}),
                )
                .await;
            assert_app_error(&direct, 2);
        }
    }
    let after = assert_ok(&app.call(&admin, "user.list", json!([])).await).clone();
    assert_eq!(before, after, "nothing was made or removed");
}

#[tokio::test]
async fn a_publisher_may_only_publish_and_read_the_catalog() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let (shop_user, shop_key) = make_user(
        &app,
        &admin,
        json!({"username": unique("shopper-"), "role": "merchant", "merchant_code": code}),
    )
    .await;
    let shop = app.login(&shop_user, &shop_key).await;
    assert_ok(
        &app.create_webhook(&shop, json!({"topics": "order:created", "url": "https://x.example/"}))
            .await,
    );
    let (publisher, key) = make_user(&app, &admin, json!({"username": unique("pub-"), "role": "publisher"})).await;
    let session = app.login(&publisher, &key).await;
    assert!(!assert_ok(&app.call(&session, "topic.list", json!([])).await)
        .as_array()
        .unwrap()
        .is_empty());
    let published = app
        .call(
            &session,
            "event.publish",
            json!(["order:created", {"id": 1}, {"merchant_code": code}]),
        )
        .await;
    assert_eq!(assert_ok(&published)["payloads"], 1);
    for (path, args) in [
        ("webhook.list", json!([])),
        (
            "webhook.create",
            json!([{"topics": "order:created", "url": "https://y.example/"}]),
        ),
        ("webhook.delete", json!([1])),
        ("webhook.deliveries", json!([1])),
        ("delivery.list", json!([])),
        ("delivery.info", json!([1])),
        ("delivery.retry", json!([1])),
    ] {
        let resp = app.call(&session, path, args).await;
        assert!(assert_app_error(&resp, 2).contains("publisher"), "{path}: {resp}");
    }
    assert_eq!(app.list_webhooks(&shop).await.len(), 1);
}

#[tokio::test]
async fn a_publisher_limited_to_a_merchant_cannot_publish_for_another() {
    let app = TestApp::spawn().await;
    let (a, b) = (unique("shop-a-"), unique("shop-b-"));
    let admin = admin_with_merchant(&app, &a).await;
    assert_ok(&app.call(&admin, "merchant.create", json!([{"merchant_code": b}])).await);
    let (publisher, key) = make_user(
        &app,
        &admin,
        json!({"username": unique("pub-"), "role": "publisher", "merchant_codes": [a]}),
    )
    .await;
    let publish =
        |options: Value| app.call_basic(&publisher, &key, "event.publish", json!(["order:created", {}, options]));
    assert_ok(&publish(json!({"merchant_code": a})).await);
    // Its only merchant is the default.
    assert_ok(&publish(json!({})).await);
    for other in [b.as_str(), "no-such-shop"] {
        let resp = publish(json!({"merchant_code": other})).await;
        assert!(assert_app_error(&resp, 2).contains(other), "{resp}");
    }
    let events = app.query_i64("SELECT COUNT(*) FROM events").await;
    assert_eq!(events, 2, "only the allowed publishes were stored");
}

#[tokio::test]
async fn a_new_key_stops_the_old_key_and_every_session_at_once() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let (user, old_key) = make_user(
        &app,
        &admin,
        json!({"username": unique("shopper-"), "role": "merchant", "merchant_code": code}),
    )
    .await;
    let sessions = [app.login(&user, &old_key).await, app.login(&user, &old_key).await];
    // The old key is remembered as verified (a cached check) before the rotation.
    assert_ok(&app.call_basic(&user, &old_key, "webhook.list", json!([])).await);
    let resp = app.call(&admin, "user.rotate_key", json!([user])).await;
    let new_key = assert_ok(&resp)["api_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    for session in &sessions {
        assert_app_error(&app.call(session, "webhook.list", json!([])).await, 5);
    }
    assert_app_error(&app.call_basic(&user, &old_key, "webhook.list", json!([])).await, 2);
    assert_app_error(&app.try_login(&user, &old_key).await, 2);
    assert_ok(&app.call_basic(&user, &new_key, "webhook.list", json!([])).await);
    let fresh = app.login(&user, &new_key).await;
    assert_ok(&app.call(&fresh, "webhook.list", json!([])).await);
}

#[tokio::test]
async fn deleting_a_user_ends_its_sessions_but_never_the_callers_own_or_the_last_admin() {
    let app = TestApp::spawn().await;
    let (root, root_key) = app.create_admin().await;
    let root_session = app.login(&root, &root_key).await;
    let (other, other_key) = make_user(
        &app,
        &root_session,
        json!({"username": unique("admin-"), "role": "admin"}),
    )
    .await;
    let other_session = app.login(&other, &other_key).await;
    let own = app.call(&root_session, "user.delete", json!([root])).await;
    assert_invalid_data(&own, "yourself");
    assert_eq!(
        assert_ok(&app.call(&root_session, "user.delete", json!([other])).await),
        true
    );
    assert_app_error(&app.call(&other_session, "webhook.list", json!([])).await, 5);
    assert_app_error(&app.try_login(&other, &other_key).await, 2);
    // Another admin may delete root; nobody deletes themselves, so the API never removes
    // the last admin (the caller is one).
    let (third, third_key) = make_user(
        &app,
        &root_session,
        json!({"username": unique("admin-"), "role": "admin"}),
    )
    .await;
    let third_session = app.login(&third, &third_key).await;
    assert_eq!(
        assert_ok(&app.call(&third_session, "user.delete", json!([root])).await),
        true
    );
    let last = app.call(&third_session, "user.delete", json!([third])).await;
    assert_invalid_data(&last, "yourself");
}

#[tokio::test]
async fn bad_provisioning_data_gets_101_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let admin = admin_with_merchant(&app, &code).await;
    let long = "x".repeat(65);
    let many: Vec<String> = (0..101).map(|i| format!("m{i}")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("merchant.create", json!([{"merchant_code": "a b"}]), "merchant_code"),
        ("merchant.create", json!([{"merchant_code": long}]), "merchant_code"),
        ("merchant.create", json!([{"merchant_code": ""}]), "merchant_code"),
        ("merchant.create", json!([{"merchant_code": 5}]), "merchant_code"),
        ("merchant.create", json!([{}]), "merchant_code"),
        ("merchant.create", json!([{"merchant_code": "ok", "nme": "x"}]), "nme"),
        (
            "merchant.create",
            json!([{"merchant_code": "ok", "name": "x".repeat(201)}]),
            "name",
        ),
        (
            "merchant.create",
            json!([{"merchant_code": "ok", "name": "a\nb"}]),
            "name",
        ),
        ("merchant.create", json!(["ok"]), "merchant"),
        ("user.create", json!([{"username": "a b", "role": "admin"}]), "username"),
        ("user.create", json!([{"username": long, "role": "admin"}]), "username"),
        ("user.create", json!([{"username": "ok", "role": "root"}]), "role"),
        ("user.create", json!([{"username": "ok", "role": ["admin"]}]), "role"),
        ("user.create", json!([{"username": "ok"}]), "role"),
        (
            "user.create",
            json!([{"username": "ok", "role": "merchant"}]),
            "merchant_code",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "publisher", "merchant_code": code}]),
            "merchant_code",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "merchant", "merchant_code": code, "merchant_codes": [code]}]),
            "merchant_codes",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "publisher", "merchant_codes": many}]),
            "merchant_codes",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "publisher", "merchant_codes": [1]}]),
            "merchant_codes",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "publisher", "merchant_codes": code}]),
            "merchant_codes",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "publisher", "merchant_codes": [code, code]}]),
            "merchant_codes",
        ),
        (
            "user.create",
            json!([{"username": "ok", "role": "admin", "api_key": "mine"}]),
            "api_key",
        ),
        ("user.rotate_key", json!([42]), "username"),
        ("user.rotate_key", json!(["a b"]), "username"),
        ("user.delete", json!([{"username": "x"}]), "username"),
        ("user.delete", json!(["\u{0000}"]), "username"),
    ];
    let users_before = assert_ok(&app.call(&admin, "user.list", json!([])).await).clone();
    let merchants_before = assert_ok(&app.call(&admin, "merchant.list", json!([])).await).clone();
    for (path, args, field) in cases {
        let resp = app.call(&admin, path, args.clone()).await;
        assert_invalid_data(&resp, field);
    }
    assert_eq!(
        assert_ok(&app.call(&admin, "user.list", json!([])).await),
        &users_before
    );
    assert_eq!(
        assert_ok(&app.call(&admin, "merchant.list", json!([])).await),
        &merchants_before
    );
}

#[tokio::test]
async fn the_console_refuses_a_publisher_after_checking_its_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let (publisher, key) = make_user(&app, &admin, json!({"username": unique("pub-"), "role": "publisher"})).await;
    let refused = app.app.console_login(&publisher, &key, None).await.unwrap_err();
    assert!(refused.to_string().contains("publisher"), "{refused}");
    let wrong = app.app.console_login(&publisher, "wrong", None).await.unwrap_err();
    assert!(
        !wrong.to_string().contains("publisher"),
        "a wrong key says nothing of the role"
    );
    // A session made by the API's login does not open the console either.
    let session = app.login(&publisher, &key).await;
    assert!(app.app.console_caller_from_session(&session).await.is_err());
}
