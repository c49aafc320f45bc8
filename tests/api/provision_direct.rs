//! Standard JSON-RPC beside `call` (CONTRACT §7.1): every `resource.method` is callable as
//! the JSON-RPC method itself, params by position or by name, authenticated by HTTP Basic
//! or `Authorization: Bearer <session id>`, with the same answers and codes as through
//! `call`; batches and notifications work for them too; `login` and `call` answer byte for
//! byte as before.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Posts `body` with `Authorization: <auth>` (None: no header): status and raw text.
async fn post(app: &TestApp, auth: Option<String>, body: &Value) -> (StatusCode, String) {
    let mut request = app
        .client
        .post(&app.endpoint)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn bearer(app: &TestApp, session: &str, body: Value) -> Value {
    let (status, text) = post(app, Some(format!("Bearer {session}")), &body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

#[tokio::test]
async fn resource_methods_are_callable_directly_with_basic_or_bearer() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let (user, key) = app.create_merchant_user(&code).await;
    let session = app.login(&user, &key).await;
    let hook = json!({"topics": "order:created", "url": "https://a.example/"});
    // By position with Basic, by name with Bearer.
    let (_, made) = app
        .rpc_basic(&user, &key, request("webhook.create", json!([hook])))
        .await;
    assert_eq!(assert_ok(&made), true);
    assert_eq!(made["id"], 7);
    let by_name = bearer(&app, &session, request("webhook.create", json!({"webhook": hook}))).await;
    assert_eq!(assert_ok(&by_name), true);
    let listed = bearer(&app, &session, request("webhook.list", json!([]))).await;
    let hooks = assert_ok(&listed).as_array().unwrap().clone();
    assert_eq!(hooks.len(), 2);
    // Without params at all, and with optional params by name.
    let (_, listed) = app
        .rpc_basic(
            &user,
            &key,
            json!({"jsonrpc": "2.0", "id": 1, "method": "webhook.list"}),
        )
        .await;
    assert_eq!(assert_ok(&listed).as_array().unwrap().len(), 2);
    let id = hooks[0]["webhook_id"].clone();
    let status = bearer(
        &app,
        &session,
        request("webhook.update_status", json!({"target": id, "status": 0})),
    )
    .await;
    assert_eq!(assert_ok(&status), true);
    // The same answer as through call.
    let via_call = app.call(&session, "webhook.list", json!([])).await;
    assert_eq!(
        assert_ok(&via_call),
        &assert_ok(&bearer(&app, &session, request("webhook.list", json!([]))).await).clone()
    );
}

#[tokio::test]
async fn direct_calls_answer_errors_with_the_codes_of_call() {
    let app = TestApp::spawn().await;
    let (user, key) = app.create_merchant_user(&unique("shop-")).await;
    let session = app.login(&user, &key).await;
    // No credentials: 2; an unknown session: 5; a wrong key: 2.
    let (_, text) = post(&app, None, &request("webhook.list", json!([]))).await;
    assert_app_error(&serde_json::from_str(&text).unwrap(), 2);
    assert_app_error(
        &bearer(&app, &"0".repeat(32), request("webhook.list", json!([]))).await,
        5,
    );
    let (_, wrong) = app.rpc_basic(&user, "wrong", request("webhook.list", json!([]))).await;
    assert_app_error(&wrong, 2);
    // Bad data: the same 101 as through call.
    let bad = json!({"topics": "nope:nope", "url": "https://a.example/"});
    let direct = bearer(&app, &session, request("webhook.create", json!([bad]))).await;
    let via_call = app.call(&session, "webhook.create", json!([bad])).await;
    assert_eq!(direct["error"], via_call["error"]);
    assert_invalid_data(&direct, "topic");
    // Missing argument: 6; unknown parameter name and too many: -32602.
    assert_app_error(&bearer(&app, &session, request("webhook.delete", json!([]))).await, 6);
    let unknown = bearer(&app, &session, request("webhook.delete", json!({"id": 1}))).await;
    assert!(assert_error(&unknown, -32602).contains("Invalid params"));
    assert!(
        unknown["error"]["data"].as_str().unwrap().contains("webhook_id"),
        "{unknown}"
    );
    assert_error(
        &bearer(&app, &session, request("webhook.delete", json!([1, 2]))).await,
        -32602,
    );
    // A merchant calling an admin method directly: 2. Unknown methods: -32601.
    assert_app_error(&bearer(&app, &session, request("user.list", json!([]))).await, 2);
    for method in ["webhook.nosuch", "nosuch.list", "Webhook.list"] {
        assert_error(&bearer(&app, &session, request(method, json!([]))).await, -32601);
    }
}

#[tokio::test]
async fn batches_and_notifications_work_for_direct_methods() {
    let app = TestApp::spawn().await;
    let code = unique("shop-");
    let shop = app.merchant_session(&code).await;
    assert_ok(
        &app.create_webhook(&shop, json!({"topics": "order:created", "url": "https://a.example/"}))
            .await,
    );
    let (admin, key) = app.create_admin().await;
    let publish = |id: Option<i64>, n: i64| {
        let mut r = json!({"jsonrpc": "2.0", "method": "event.publish",
            "params": ["order:created", {"n": n}, {"merchant_code": code}]});
        if let Some(id) = id {
            r["id"] = json!(id);
        }
        r
    };
    let batch = json!([
        publish(Some(1), 1),
        publish(None, 2),
        publish(Some(3), 3),
        {"jsonrpc": "2.0", "id": 4, "method": "topic.list"},
        {"jsonrpc": "2.0", "id": 5, "method": "call", "params": [null, "webhook.list", []]},
    ]);
    let (status, answers) = app.rpc_basic(&admin, &key, batch).await;
    assert_eq!(status, StatusCode::OK);
    let answers = answers.as_array().unwrap();
    let ids: Vec<i64> = answers.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 3, 4, 5], "the notification gets no answer");
    for a in answers {
        assert_ok(a);
    }
    assert_eq!(answers[0]["result"]["payloads"], 1);
    // The notification was carried out all the same.
    let deliveries = app.call(&shop, "delivery.list", json!([])).await;
    assert_eq!(assert_ok(&deliveries).as_array().unwrap().len(), 3);
    // Only notifications: 204, nothing to read.
    let (status, text) = post(
        &app,
        Some(format!("Bearer {}", app.login(&admin, &key).await)),
        &json!([publish(None, 4)]),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
}

#[tokio::test]
async fn login_and_call_answer_byte_for_byte_as_the_seed_does() {
    let app = TestApp::spawn().await;
    let (user, key) = app.create_merchant_user(&unique("shop-")).await;
    let (status, text) = post(
        &app,
        None,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": [user, key]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let session: Value = serde_json::from_str(&text).unwrap();
    let session = session["result"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        format!(r#"{{"jsonrpc":"2.0","id":1,"error":null,"result":"{session}"}}"#)
    );
    let hook = json!({"topics": "order:created", "url": "https://a.example/"});
    let (_, text) = post(
        &app,
        None,
        &json!({"jsonrpc": 2.0, "id": "x", "method": "call", "params": [session, "webhook.create", [hook]]}),
    )
    .await;
    assert_eq!(text, r#"{"jsonrpc":"2.0","id":"x","error":null,"result":true}"#);
    let (_, text) = post(
        &app,
        None,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "call", "params": [session, "webhook.delete", [999999]]}),
    )
    .await;
    assert_eq!(
        text,
        r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32103,"message":"Webhook not exists."}}"#
    );
    // A Bearer header changes nothing for call, which names its session itself.
    let (_, text) = post(
        &app,
        Some("Bearer 00000000000000000000000000000000".into()),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "call", "params": [session, "topic.list"]}),
    )
    .await;
    assert!(
        text.starts_with(r#"{"jsonrpc":"2.0","id":3,"error":null,"result":["#),
        "{text}"
    );
}

#[tokio::test]
async fn every_resource_method_rpc_discover_describes_is_callable_directly() {
    let app = TestApp::spawn().await;
    let (admin, key) = app.create_admin().await;
    let doc = app.request("rpc.discover", json!([])).await;
    let methods = assert_ok(&doc)["methods"].as_array().unwrap().clone();
    let direct: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .filter(|n| n.contains('.') && *n != "rpc.discover")
        .collect();
    assert!(direct.len() >= 20, "{direct:?}");
    for name in direct {
        let (_, resp) = app.rpc_basic(&admin, &key, request(name, json!([]))).await;
        let code = resp["error"]["code"].as_i64();
        assert!(
            ![Some(-32601), Some(-32003), Some(-32004), Some(-32603)].contains(&code),
            "{name} is described but not served directly: {resp}"
        );
    }
}
