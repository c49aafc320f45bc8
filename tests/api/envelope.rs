//! The JSON-RPC 2.0 envelope (CONTRACT.md §1): response shape, both endpoint spellings,
//! standard errors, batches, notifications and the body size limit.

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// A server and a logged-in merchant session, to show the server still serves.
async fn serving_app() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    (app, session)
}

fn topic_list(id: Value, session: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "call", "params": [session, "topic.list", []]})
}

#[tokio::test]
async fn a_success_carries_jsonrpc_the_id_a_null_error_and_the_result() {
    let (app, session) = serving_app().await;
    for id in [json!(7), json!("req-7"), json!(null)] {
        let (status, resp) = app.rpc(topic_list(id.clone(), &session)).await;
        assert_eq!(status, StatusCode::OK);
        let obj = resp.as_object().expect("a single response is an object");
        assert_eq!(obj["jsonrpc"], "2.0", "{resp}");
        assert_eq!(obj["id"], id, "{resp}");
        assert!(obj.get("error").is_some_and(Value::is_null), "{resp}");
        assert!(obj["result"].is_array(), "{resp}");
    }
}

#[tokio::test]
async fn the_numeric_jsonrpc_2_0_of_the_seed_examples_is_accepted() {
    let (app, session) = serving_app().await;
    let body =
        format!(r#"{{"jsonrpc" : 2.0, "id" : 1234, "method" : "call", "params" : ["{session}", "topic.list", []]}}"#);
    let (status, resp) = app.rpc_raw(body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["id"], 1234);
    assert!(assert_ok(&resp).is_array());
}

#[tokio::test]
async fn the_endpoint_answers_the_same_with_a_trailing_slash() {
    let (app, session) = serving_app().await;
    let with_slash = format!("{}/", app.endpoint);
    let (status, resp) = app
        .rpc_raw_to(
            &with_slash,
            serde_json::to_vec(&topic_list(json!(1), &session)).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, without) = app.rpc(topic_list(json!(1), &session)).await;
    assert_eq!(resp, without);
    assert!(assert_ok(&resp).is_array());

    let (status, resp) = app.rpc_raw_to(&with_slash, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&resp, -32600);
}

#[tokio::test]
async fn an_empty_body_is_an_invalid_request_with_a_null_id_and_http_200() {
    let (app, session) = serving_app().await;
    for body in ["", "   \n"] {
        let (status, resp) = app.rpc_raw(body).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(resp["jsonrpc"], "2.0");
        assert!(resp.get("id").is_some_and(Value::is_null), "{resp}");
        assert_eq!(assert_error(&resp, -32600), "Invalid Request");
        app.assert_still_serving(&session).await;
    }

    // The platform's client probes a base URL with a bare POST, no Content-Type at all.
    let response = app.client.post(&app.endpoint).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let resp: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(resp["error"]["code"], -32600);
    assert!(resp["id"].is_null());
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let (app, session) = serving_app().await;
    for body in [
        r#"{"jsonrpc": "2.0", "id": 1, "method": "login""#,
        "{not json}",
        r#"[{"jsonrpc": "2.0", "id": 1, "method": "login"},"#,
        "nul",
        &"[".repeat(100_000),
        &format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
    ] {
        let (status, resp) = app.rpc_raw(body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(assert_error(&resp, -32700), "Parse error", "{body}");
        assert!(resp["id"].is_null(), "{resp}");
        app.assert_still_serving(&session).await;
    }
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_parse_error() {
    let (app, session) = serving_app().await;
    let mut body = br#"{"jsonrpc": "2.0", "id": 1, "method": "login", "params": [""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0x80]);
    body.extend_from_slice(br#"", "x"]}"#);
    let (status, resp) = app.rpc_raw(body).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&resp, -32700);
    assert!(resp["id"].is_null());
    app.assert_still_serving(&session).await;
}

#[tokio::test]
async fn requests_that_break_the_envelope_rules_are_invalid_requests() {
    let (app, session) = serving_app().await;
    let cases = [
        ("a number", json!(42)),
        ("a string", json!("call")),
        ("null", json!(null)),
        ("a boolean", json!(true)),
        ("no method", json!({"jsonrpc": "2.0", "id": 1, "params": []})),
        (
            "a method that is not a string",
            json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
        ),
        ("no jsonrpc", json!({"id": 1, "method": "login", "params": ["a", "b"]})),
        (
            "jsonrpc 1.0",
            json!({"jsonrpc": "1.0", "id": 1, "method": "login", "params": ["a", "b"]}),
        ),
        (
            "numeric jsonrpc 2.1",
            json!({"jsonrpc": 2.1, "id": 1, "method": "login", "params": ["a", "b"]}),
        ),
        (
            "an unknown member",
            json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": [], "auth": "x"}),
        ),
        (
            "params that are a string",
            json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": "a,b"}),
        ),
        (
            "an array id",
            json!({"jsonrpc": "2.0", "id": [1], "method": "login", "params": ["a", "b"]}),
        ),
        (
            "an object id",
            json!({"jsonrpc": "2.0", "id": {"n": 1}, "method": "login", "params": ["a", "b"]}),
        ),
        (
            "a boolean id",
            json!({"jsonrpc": "2.0", "id": true, "method": "login", "params": ["a", "b"]}),
        ),
    ];
    for (what, body) in cases {
        let (status, resp) = app.rpc(body).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(resp["error"]["code"], -32600, "{what}: {resp}");
        assert_eq!(resp["error"]["message"], "Invalid Request", "{what}: {resp}");
        assert!(resp.get("result").is_none_or(Value::is_null), "{what}: {resp}");
        app.assert_still_serving(&session).await;
    }
}

#[tokio::test]
async fn an_id_of_the_wrong_type_is_answered_with_a_null_id() {
    let app = TestApp::spawn().await;
    let (_, resp) = app
        .rpc(json!({"jsonrpc": "2.0", "id": [1], "method": "login", "params": ["a", "b"]}))
        .await;
    assert_error(&resp, -32600);
    assert!(resp.get("id").is_some_and(Value::is_null), "{resp}");
}

#[tokio::test]
async fn a_method_other_than_login_call_and_the_resource_methods_is_method_not_found() {
    let (app, session) = serving_app().await;
    for method in ["webhook.nosuch", "Login", "CALL", "logout", ""] {
        let (status, resp) = app
            .rpc(json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": []}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(assert_error(&resp, -32601), "Method not found", "{method}");
        assert_eq!(resp["id"], 3);
        app.assert_still_serving(&session).await;
    }
}

#[tokio::test]
async fn wrong_parameter_types_and_too_many_parameters_are_invalid_params() {
    let (app, session) = serving_app().await;
    let cases = [
        ("login", json!([1, 2])),
        ("login", json!(["name", ["key"]])),
        ("login", json!(["name", "key", "extra"])),
        ("login", json!({"username": "name", "api_key": "key", "otp": "1"})),
        ("call", json!([42, "webhook.list", []])),
        ("call", json!([session, 5, []])),
        ("call", json!([session, "webhook.list", [], "extra"])),
        ("call", json!([session, "webhook.list", [1]])),
        ("call", json!([session, "topic.list", ["x"]])),
        ("call", json!([session, "webhook.delete", ["abc"]])),
        ("call", json!([session, "webhook.delete", [{"webhook_id": 1}]])),
        ("call", json!([session, "webhook.delete", [1, 2]])),
        (
            "call",
            json!([session, "webhook.create", [{"topics": "*", "url": "http://example.com"}, 2]]),
        ),
    ];
    for (method, params) in cases {
        let resp = app.request(method, params.clone()).await;
        assert_eq!(assert_error(&resp, -32602), "Invalid params", "{method} {params}");
        app.assert_still_serving(&session).await;
    }
}

#[tokio::test]
async fn a_batch_answers_each_request_with_an_id_in_order_and_runs_notifications() {
    let (app, session) = serving_app().await;
    let batch = json!([
        topic_list(json!(1), &session),
        {"jsonrpc": "2.0", "method": "call",
         "params": [session, "webhook.create", [{"topics": "order:created", "url": "http://example.com/n"}]]},
        1,
        {"jsonrpc": "2.0", "id": "x", "method": "nosuch"},
        {"jsonrpc": "2.0", "id": 3, "method": "login", "params": ["nobody", "nokey"]},
        {"jsonrpc": "2.0", "id": 4, "method": "call", "params": [session, "webhook.list", []]},
    ]);
    let (status, resp) = app.rpc(batch).await;
    assert_eq!(status, StatusCode::OK);
    let answers = resp.as_array().expect("a batch gets an array");
    assert_eq!(answers.len(), 5, "{resp}");
    assert_eq!(answers[0]["id"], 1);
    assert!(assert_ok(&answers[0]).is_array());
    assert!(answers[1]["id"].is_null());
    assert_error(&answers[1], -32600);
    assert_eq!(answers[2]["id"], "x");
    assert_error(&answers[2], -32601);
    assert_eq!(answers[3]["id"], 3);
    assert_app_error(&answers[3], 2);
    assert_eq!(answers[4]["id"], 4);
    // The notification before it ran, in order.
    let listed = assert_ok(&answers[4]).as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["url"], "http://example.com/n");
}

#[tokio::test]
async fn an_empty_batch_is_a_single_invalid_request() {
    let (app, session) = serving_app().await;
    let (status, resp) = app.rpc_raw("[]").await;
    assert_eq!(status, StatusCode::OK);
    assert!(resp.is_object(), "not an array: {resp}");
    assert_error(&resp, -32600);
    assert!(resp["id"].is_null());
    app.assert_still_serving(&session).await;
}

#[tokio::test]
async fn a_batch_of_only_notifications_gets_no_body_but_is_carried_out() {
    let (app, session) = serving_app().await;
    let create = |url: &str| {
        json!({"jsonrpc": "2.0", "method": "call",
               "params": [session, "webhook.create", [{"topics": "*", "url": url}]]})
    };
    let (status, resp) = app
        .rpc(json!([create("http://example.com/1"), create("http://example.com/2")]))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(resp.is_null(), "no body: {resp}");
    let urls: Vec<Value> = app
        .list_webhooks(&session)
        .await
        .iter()
        .map(|w| w["url"].clone())
        .collect();
    assert_eq!(urls, [json!("http://example.com/1"), json!("http://example.com/2")]);

    // A single notification gets no body either.
    let (status, resp) = app.rpc(create("http://example.com/3")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(resp.is_null());
    assert_eq!(app.list_webhooks(&session).await.len(), 3);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_with_a_json_rpc_error() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let session = app.merchant_session(&unique("shop")).await;
    let padding = "x".repeat(5000);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": ["someone", padding]});
    let (status, resp) = app.rpc(body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
    assert!(resp["id"].is_null(), "{resp}");
    assert!(resp["error"]["code"].is_i64(), "{resp}");
    assert!(
        resp["error"].to_string().contains("limit"),
        "the error says why: {resp}"
    );
    app.assert_still_serving(&session).await;

    // Just under the limit is fine.
    let padding = "x".repeat(3500);
    let (status, resp) = app
        .rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "login", "params": ["someone", padding]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_app_error(&resp, 2);
}

#[tokio::test]
async fn a_body_far_over_the_default_limit_is_answered_not_dropped() {
    let (app, session) = serving_app().await;
    let padding = "x".repeat(3 * 1024 * 1024);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "login", "params": ["someone", padding]});
    let (status, resp) = app.rpc(body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp["error"]["code"].is_i64(), "{resp}");
    app.assert_still_serving(&session).await;
}
