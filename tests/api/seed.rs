//! The seed document's example requests, sent byte for byte (numeric `"jsonrpc" : 2.0`,
//! the session id as the first param), with only the session id replaced by a real one.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const SEED_SESSION: &str = "be1c13ed4e03f0ed7f1e4053dfff9658";

const LIST: &str = r#"{
    "jsonrpc" : 2.0,
    "id" : 1234,
    "method" : "call",
    "params" : [
        "be1c13ed4e03f0ed7f1e4053dfff9658",
        "webhook.list",
        []
    ]
}"#;

const CREATE: &str = r#"{
    "jsonrpc" : 2.0,
    "id" : 1234,
    "method" : "call",
    "params" : [
        "be1c13ed4e03f0ed7f1e4053dfff9658",
        "webhook.create",
        [
            {
                "is_active" : 1,
                "topics" : "order:*",
                "url" : "http://example.com",
                "extra_headers" : "",
                "secret_key" : "2RUJ8NXLnLRrAj3"
            }
        ]
    ]
}"#;

const UPDATE_STATUS: &str = r#"{
    "jsonrpc" : 2.0,
    "id" : 1234,
    "method" : "call",
    "params" : [
        "be1c13ed4e03f0ed7f1e4053dfff9658",
        "webhook.update_status",
        [
            {
                "status" : 1
            }
        ]
    ]
}"#;

const DELETE: &str = r#"{
    "jsonrpc" : 2.0,
    "id" : 1234,
    "method" : "call",
    "params" : [
        "be1c13ed4e03f0ed7f1e4053dfff9658",
        "webhook.delete",
        [
            123
        ]
    ]
}"#;

async fn send_seed(app: &TestApp, example: &str, session: &str) -> Value {
    let (status, resp) = app.rpc_raw(example.replace(SEED_SESSION, session)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["jsonrpc"], "2.0");
    assert_eq!(resp["id"], 1234);
    resp
}

#[tokio::test]
async fn the_seed_examples_work_as_documented() {
    let app = TestApp::spawn().await;
    let code = unique("shop");
    let session = app.merchant_session(&code).await;

    assert_eq!(assert_ok(&send_seed(&app, CREATE, &session).await), &json!(true));

    let resp = send_seed(&app, LIST, &session).await;
    let listed = assert_ok(&resp).as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    let id = listed[0]["webhook_id"].clone();
    assert_eq!(
        listed[0],
        json!({"webhook_id": id, "description": "", "increment_id": 0, "is_active": 1, "topics": "order:*",
               "url": "http://example.com", "extra_headers": "", "secret_key": "2RUJ8NXLnLRrAj3",
               // CONTRACT §6.1's additions.
               "merchant_code": code, "disabled_reason": null, "ordered": false, "max_rate": null,
               "filter": null,
               // CONTRACT §7.3's.
               "signature_scheme": "hmac", "public_key": null})
    );

    assert_ok(&send_seed(&app, CREATE, &session).await);
    assert_ok(
        &app.call(&session, "webhook.update_status", json!([{"status": 0}]))
            .await,
    );
    assert_eq!(assert_ok(&send_seed(&app, UPDATE_STATUS, &session).await), &json!(true));
    let listed = app.list_webhooks(&session).await;
    assert!(listed.iter().all(|w| w["is_active"] == 1), "{listed:?}");

    // Webhook 123 exists only if this database has made that many.
    let exists = listed.iter().any(|w| w["webhook_id"] == 123);
    let resp = send_seed(&app, DELETE, &session).await;
    if exists {
        assert_eq!(assert_ok(&resp), &json!(true));
    } else {
        assert_eq!(assert_app_error(&resp, 103), "Webhook not exists.");
    }
    assert_eq!(app.list_webhooks(&session).await, listed);
}

#[tokio::test]
async fn the_seed_session_id_itself_is_an_expired_session() {
    let app = TestApp::spawn().await;
    let (status, resp) = app.rpc_raw(LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["id"], 1234);
    assert_app_error(&resp, 5);
}

#[tokio::test]
async fn the_seed_delete_example_deletes_webhook_123_when_it_exists() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    assert_ok(&send_seed(&app, CREATE, &session).await);
    // Move the id sequence on, so the next webhook is number 123.
    app.execute_sql(match app.backend() {
        Backend::Sqlite => "UPDATE sqlite_sequence SET seq = 122 WHERE name = 'webhooks'",
        Backend::Postgres => "ALTER TABLE webhooks ALTER COLUMN id RESTART WITH 123",
    })
    .await;
    assert_ok(&send_seed(&app, CREATE, &session).await);
    let ids: Vec<Value> = app
        .list_webhooks(&session)
        .await
        .iter()
        .map(|w| w["webhook_id"].clone())
        .collect();
    assert_eq!(ids[1], 123);

    assert_eq!(assert_ok(&send_seed(&app, DELETE, &session).await), &json!(true));
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
    assert_app_error(&send_seed(&app, DELETE, &session).await, 103);
}
