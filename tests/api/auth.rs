//! `login`, `call` and who may call (CONTRACT.md §2): sessions, HTTP Basic, and errors 2–6.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn is_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn login_with_a_good_key_returns_a_32_hex_session_id() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let first = app.login(&name, &key).await;
    let second = app.login(&name, &key).await;
    assert!(is_session_id(&first), "{first}");
    assert!(is_session_id(&second), "{second}");
    assert_ne!(first, second, "every login makes a new session");
}

#[tokio::test]
async fn a_session_is_valid_for_24_hours() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let before = hookd::time::now_millis();
    let session = app.login(&name, &key).await;
    let after = hookd::time::now_millis();
    let day = 24 * 3600 * 1000;
    let minute = 60 * 1000;
    let id_hash = sha256_hex(&session);
    let user_at = |t| app.app.store.session_user(&id_hash, t);
    assert!(
        user_at(before + day - minute).await.unwrap().is_some(),
        "valid just before 24 hours"
    );
    assert!(
        user_at(after + day + minute).await.unwrap().is_none(),
        "expired just after 24 hours"
    );
}

#[tokio::test]
async fn login_accepts_named_parameters() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let resp = app.request("login", json!({"username": name, "api_key": key})).await;
    assert!(is_session_id(assert_ok(&resp).as_str().unwrap()));
}

#[tokio::test]
async fn login_with_a_wrong_key_or_an_unknown_user_is_access_denied_alike() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let wrong_key = app.try_login(&name, &"0".repeat(40)).await;
    let unknown_user = app.try_login("nobody", &key).await;
    let empty_key = app.try_login(&name, "").await;
    assert_app_error(&wrong_key, 2);
    assert_app_error(&empty_key, 2);
    // Nothing tells a wrong key from an unknown user.
    assert_eq!(wrong_key["error"], unknown_user["error"]);
}

#[tokio::test]
async fn a_session_from_login_authorizes_calls() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    assert_eq!(
        assert_ok(&app.call(&session, "webhook.list", json!([])).await),
        &json!([])
    );
}

#[tokio::test]
async fn call_args_may_be_omitted_when_there_are_none() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    let resp = app.request("call", json!([session, "webhook.list"])).await;
    assert_eq!(assert_ok(&resp), &json!([]));
    let resp = app
        .request("call", json!({"session_id": session, "path": "topic.list"}))
        .await;
    assert!(assert_ok(&resp).is_array());
}

#[tokio::test]
async fn an_unknown_session_id_answers_session_expired() {
    let app = TestApp::spawn().await;
    for session in ["be1c13ed4e03f0ed7f1e4053dfff9658", "not-a-session", ""] {
        let resp = app.call(session, "webhook.list", json!([])).await;
        let message = assert_app_error(&resp, 5);
        assert_eq!(message, "Session expired. Try to relogin.");
    }
}

#[tokio::test]
async fn an_expired_session_answers_session_expired() {
    let app = TestApp::spawn().await;
    let (name, _) = app.create_merchant_user(&unique("shop")).await;
    let user = app.user_record(&name).await;
    let session = "0123456789abcdef0123456789abcdef";
    let an_hour_ago = hookd::time::now_millis() - 3_600_000;
    app.app
        .store
        .session_create(&sha256_hex(session), &user, an_hour_ago)
        .await
        .unwrap();
    assert_app_error(&app.call(session, "webhook.list", json!([])).await, 5);

    // The same row with a future expiry is a valid session: the expiry is what failed.
    let live = "fedcba9876543210fedcba9876543210";
    let in_an_hour = hookd::time::now_millis() + 3_600_000;
    app.app
        .store
        .session_create(&sha256_hex(live), &user, in_an_hour)
        .await
        .unwrap();
    assert_ok(&app.call(live, "webhook.list", json!([])).await);
}

#[tokio::test]
async fn a_null_session_with_http_basic_credentials_works() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let resp = app.call_basic(&name, &key, "webhook.list", json!([])).await;
    assert_eq!(assert_ok(&resp), &json!([]));
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "call", "params": [null, "topic.list"]});
    let (_, resp) = app.rpc_basic(&name, &key, body).await;
    assert!(assert_ok(&resp).is_array());
}

#[tokio::test]
async fn a_null_session_without_basic_credentials_is_access_denied() {
    let app = TestApp::spawn().await;
    let resp = app.request("call", json!([null, "webhook.list", []])).await;
    assert_app_error(&resp, 2);
    let resp = app.request("call", json!({"path": "webhook.list"})).await;
    assert_app_error(&resp, 2);
}

#[tokio::test]
async fn wrong_basic_credentials_are_access_denied() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let wrong_key = app.call_basic(&name, &"f".repeat(40), "webhook.list", json!([])).await;
    assert_app_error(&wrong_key, 2);
    let unknown_user = app.call_basic("nobody", &key, "webhook.list", json!([])).await;
    assert_app_error(&unknown_user, 2);

    for header in ["Basic not-base64!", "Bearer abc", "Basic"] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [null, "webhook.list", []]});
        let response = app
            .client
            .post(&app.endpoint)
            .header("Content-Type", "application/json")
            .header("Authorization", header)
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let resp: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_app_error(&resp, 2);
    }
}

#[tokio::test]
async fn an_unknown_resource_is_an_invalid_api_path() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    for path in ["nosuch.list", "nosuch", "", "webhooks.list", ".list"] {
        let resp = app.call(&session, path, json!([])).await;
        let message = assert_app_error(&resp, 3);
        assert!(message.starts_with("Invalid api path."), "{path}: {message}");
    }
}

#[tokio::test]
async fn an_unknown_method_of_a_known_resource_is_not_callable() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    for path in ["webhook.nosuch", "webhook", "webhook.", "topic.create", "webhook.List"] {
        let resp = app.call(&session, path, json!([])).await;
        let message = assert_app_error(&resp, 4);
        assert!(
            message.starts_with("Resource path is not callable."),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn a_missing_required_parameter_answers_6() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    let cases = [
        ("login", json!([])),
        ("login", json!(["someone"])),
        ("login", json!([null, "key"])),
        ("login", json!({"username": "someone"})),
        ("call", json!([])),
        ("call", json!([session])),
        ("call", json!([session, null, []])),
        ("call", json!([session, "webhook.create", []])),
        ("call", json!([session, "webhook.delete"])),
        ("call", json!([session, "webhook.update_status", []])),
        ("call", json!([session, "webhook.update_status", [5]])),
    ];
    for (method, params) in cases {
        let resp = app.request(method, params.clone()).await;
        let message = assert_app_error(&resp, 6);
        assert!(
            message.starts_with("Required parameter is missing."),
            "{method} {params}: {message}"
        );
    }
    // A request with no params at all.
    let (_, resp) = app.rpc(json!({"jsonrpc": "2.0", "id": 1, "method": "login"})).await;
    assert_app_error(&resp, 6);
}

#[tokio::test]
async fn sessions_survive_a_server_restart() {
    let mut app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    assert_ok(
        &app.create_webhook(&session, json!({"topics": "*", "url": "https://example.com/"}))
            .await,
    );
    app.restart().await;
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
}

#[tokio::test]
async fn a_removed_user_loses_its_sessions_and_its_key() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let session = app.login(&name, &key).await;
    assert_ok(&app.call_basic(&name, &key, "webhook.list", json!([])).await);

    assert!(app.app.store.user_remove(&name).await.unwrap());

    assert_app_error(&app.call(&session, "webhook.list", json!([])).await, 5);
    assert_app_error(&app.call_basic(&name, &key, "webhook.list", json!([])).await, 2);
    assert_app_error(&app.try_login(&name, &key).await, 2);
}

#[tokio::test]
async fn a_user_made_again_under_a_removed_name_does_not_inherit_the_old_key() {
    let app = TestApp::spawn().await;
    let code = unique("shop");
    let (name, old_key) = app.create_merchant_user(&code).await;
    assert_ok(&app.call_basic(&name, &old_key, "webhook.list", json!([])).await);
    assert!(app.app.store.user_remove(&name).await.unwrap());

    let merchant = app.app.store.merchant_by_code(&code).await.unwrap().unwrap();
    let new_key = hookd::domain::ApiKey::generate();
    let plain = new_key.expose().to_string();
    let hash = tokio::task::spawn_blocking(move || new_key.hash()).await.unwrap();
    let user_name = hookd::domain::UserName::parse(&name).unwrap();
    app.app
        .store
        .user_create(&user_name, hookd::domain::Role::Merchant, Some(merchant), &hash)
        .await
        .unwrap();

    assert_app_error(&app.call_basic(&name, &old_key, "webhook.list", json!([])).await, 2);
    assert_ok(&app.call_basic(&name, &plain, "webhook.list", json!([])).await);
}

#[tokio::test]
async fn only_an_admin_may_publish_events() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant_session(&unique("shop")).await;
    let admin = app.admin_session().await;
    let args = json!(["order:created", {"order_id": 1}]);
    let resp = app.call(&merchant, "event.publish", args.clone()).await;
    let message = assert_app_error(&resp, 2);
    assert!(message.starts_with("Access denied."), "{message}");
    let resp = app.call(&admin, "event.publish", args).await;
    assert_eq!(assert_ok(&resp)["payloads"], 0, "no webhooks, no payloads");
}
