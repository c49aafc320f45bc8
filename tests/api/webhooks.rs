//! The four webhook methods and `topic.list` (CONTRACT.md §3).

use serde_json::{json, Value};

use crate::helpers::*;

async fn merchant_app() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    (app, session)
}

async fn create_ok(app: &TestApp, session: &str, data: Value) {
    let resp = app.create_webhook(session, data.clone()).await;
    assert_eq!(assert_ok(&resp), &json!(true), "creating {data}");
}

/// The id of the only (or last) webhook listed.
async fn last_id(app: &TestApp, session: &str) -> i64 {
    app.list_webhooks(session).await.last().expect("a webhook")["webhook_id"]
        .as_i64()
        .unwrap()
}

async fn update_status(app: &TestApp, session: &str, args: Value) -> Value {
    app.call(session, "webhook.update_status", args).await
}

async fn active_flags(app: &TestApp, session: &str) -> Vec<i64> {
    app.list_webhooks(session)
        .await
        .iter()
        .map(|w| w["is_active"].as_i64().unwrap())
        .collect()
}

// --- create and list ---

#[tokio::test]
async fn creating_the_seed_example_lists_it_with_the_seven_seed_fields_and_the_lifecycle_ones() {
    let (app, session) = merchant_app().await;
    let seed = json!({"is_active": 1, "topics": "order:*", "url": "http://example.com",
                      "extra_headers": "", "secret_key": "2RUJ8NXLnLRrAj3"});
    create_ok(&app, &session, seed).await;

    let listed = app.list_webhooks(&session).await;
    assert_eq!(listed.len(), 1);
    let hook = listed[0].as_object().unwrap();
    let mut fields: Vec<&str> = hook.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "description",
            "disabled_reason",
            "extra_headers",
            "filter",
            "increment_id",
            "is_active",
            "max_rate",
            "merchant_code",
            "ordered",
            "public_key",
            "secret_key",
            "signature_scheme",
            "topics",
            "url",
            "webhook_id"
        ]
    );
    assert_eq!(
        (&hook["signature_scheme"], &hook["public_key"]),
        (&json!("hmac"), &Value::Null)
    );
    assert!(hook["webhook_id"].is_i64(), "{hook:?}");
    assert_eq!(hook["increment_id"], 0);
    assert_eq!(hook["is_active"], 1);
    assert_eq!(hook["topics"], "order:*");
    assert_eq!(hook["url"], "http://example.com");
    assert_eq!(hook["extra_headers"], "");
    assert_eq!(hook["secret_key"], "2RUJ8NXLnLRrAj3");
}

#[tokio::test]
async fn webhooks_are_listed_in_id_order() {
    let (app, session) = merchant_app().await;
    for i in 0..3 {
        create_ok(
            &app,
            &session,
            json!({"topics": "*", "url": format!("https://example.com/{i}")}),
        )
        .await;
    }
    let listed = app.list_webhooks(&session).await;
    let ids: Vec<i64> = listed.iter().map(|w| w["webhook_id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let urls: Vec<&str> = listed.iter().map(|w| w["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        [
            "https://example.com/0",
            "https://example.com/1",
            "https://example.com/2"
        ]
    );
}

#[tokio::test]
async fn url_and_extra_headers_come_back_exactly_as_given() {
    let (app, session) = merchant_app().await;
    let url = "https://example.com/respond.php?plugin=X&b=1";
    let headers = "X-One: 1\r\nX-Two:  two words \nAuthorization: Bearer abc\n";
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": url, "extra_headers": headers}),
    )
    .await;
    let hook = &app.list_webhooks(&session).await[0];
    assert_eq!(hook["url"], url);
    assert_eq!(hook["extra_headers"], headers);
}

#[tokio::test]
async fn topics_come_back_joined_with_commas_and_no_spaces() {
    let (app, session) = merchant_app().await;
    create_ok(
        &app,
        &session,
        json!({"topics": ["order:created", "product:*"], "url": "https://example.com/a"}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created, order:shipped", "url": "https://example.com/b"}),
    )
    .await;
    create_ok(&app, &session, json!({"topics": ["*"], "url": "https://example.com/c"})).await;
    let topics: Vec<Value> = app
        .list_webhooks(&session)
        .await
        .iter()
        .map(|w| w["topics"].clone())
        .collect();
    assert_eq!(
        topics,
        [
            json!("order:created,product:*"),
            json!("order:created,order:shipped"),
            json!("*")
        ]
    );
}

#[tokio::test]
async fn a_secret_key_is_generated_when_none_is_given() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/a"})).await;
    create_ok(
        &app,
        &session,
        json!({"topics": "*", "url": "https://example.com/b", "secret_key": null}),
    )
    .await;
    let listed = app.list_webhooks(&session).await;
    let secrets: Vec<&str> = listed.iter().map(|w| w["secret_key"].as_str().unwrap()).collect();
    for s in &secrets {
        assert!(s.len() >= 22, "at least 128 bits: {s}");
    }
    assert_ne!(secrets[0], secrets[1]);
}

#[tokio::test]
async fn defaults_are_active_and_no_extra_headers() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/"})).await;
    let hook = &app.list_webhooks(&session).await[0];
    assert_eq!(hook["is_active"], 1);
    assert_eq!(hook["extra_headers"], "");
    assert_eq!(hook["increment_id"], 0);
}

#[tokio::test]
async fn is_active_accepts_numbers_numeric_strings_and_booleans() {
    let (app, session) = merchant_app().await;
    let forms = [json!(0), json!(1), json!("0"), json!("1"), json!(false), json!(true)];
    for form in &forms {
        create_ok(
            &app,
            &session,
            json!({"topics": "*", "url": "https://example.com/", "is_active": form}),
        )
        .await;
    }
    assert_eq!(active_flags(&app, &session).await, [0, 1, 0, 1, 0, 1]);
}

#[tokio::test]
async fn invalid_webhook_data_is_refused_with_101_naming_the_problem() {
    let (app, session) = merchant_app().await;
    let url = "https://example.com/hook";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"topics": "*", "url": url, "color": "red"}), "color"),
        (json!({"url": url}), "topics"),
        (json!({"topics": null, "url": url}), "topics"),
        (json!({"topics": "*"}), "url"),
        (json!({"topics": 5, "url": url}), "topics"),
        (json!({"topics": {"order": "created"}, "url": url}), "topics"),
        (json!({"topics": ["order:created", 5], "url": url}), "topics"),
        (json!({"topics": "", "url": url}), "topics"),
        (json!({"topics": [], "url": url}), "topics"),
        (json!({"topics": "order:created,", "url": url}), "topics"),
        (json!({"topics": "order:nosuch", "url": url}), "order:nosuch"),
        (
            json!({"topics": ["order:created", "invoice:paid"], "url": url}),
            "invoice:paid",
        ),
        (json!({"topics": "nosuch:*", "url": url}), "nosuch:*"),
        (json!({"topics": "order", "url": url}), "'order'"),
        (json!({"topics": "order:**", "url": url}), "order:**"),
        (
            json!({"topics": format!("order:{}", "x".repeat(500)), "url": url}),
            "topic",
        ),
        (json!({"topics": "*", "url": 5}), "url"),
        (json!({"topics": "*", "url": ""}), "url"),
        (
            json!({"topics": "*", "url": format!("https://example.com/{}", "a".repeat(5000))}),
            "url",
        ),
        (json!({"topics": "*", "url": "ftp://example.com/hook"}), "ftp"),
        (json!({"topics": "*", "url": "javascript:alert(1)"}), "javascript"),
        (json!({"topics": "*", "url": "example.com/hook"}), "url"),
        (json!({"topics": "*", "url": "https://exa mple.com/"}), "url"),
        (json!({"topics": "*", "url": url, "is_active": "yes"}), "is_active"),
        (json!({"topics": "*", "url": url, "is_active": 2}), "is_active"),
        (json!({"topics": "*", "url": url, "extra_headers": 5}), "extra_headers"),
        (
            json!({"topics": "*", "url": url, "extra_headers": ["X-A: 1"]}),
            "extra_headers",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "X-A: 1\rX-B: 2"}),
            "extra_headers",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "X-A: 1\r\nX-B: 2\u{0}"}),
            "X-B",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "no colon here"}),
            "extra_headers",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "Bad Name: x"}),
            "Bad Name",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "Content-Type: text/plain"}),
            "Content-Type",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "content-length: 5"}),
            "content-length",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "X-A: 1\nHost: evil"}),
            "Host",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "X-Plugin-Hmac-Sha256: forged"}),
            "X-Plugin-Hmac-Sha256",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "webhook-signature: v1,x"}),
            "webhook-signature",
        ),
        (
            json!({"topics": "*", "url": url, "extra_headers": "Transfer-Encoding: chunked"}),
            "Transfer-Encoding",
        ),
        (json!({"topics": "*", "url": url, "secret_key": 5}), "secret_key"),
        (json!({"topics": "*", "url": url, "secret_key": ""}), "secret_key"),
        (
            json!({"topics": "*", "url": url, "secret_key": "x".repeat(1000)}),
            "secret_key",
        ),
        (json!("order:*"), "object"),
        (json!([{"topics": "*", "url": url}]), "object"),
    ];
    for (data, what) in cases {
        let resp = app.create_webhook(&session, data.clone()).await;
        assert_eq!(resp["error"]["code"], -32101, "{data}: {resp}");
        assert_invalid_data(&resp, what);
    }
    assert!(app.list_webhooks(&session).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn local_and_private_targets_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.app.allow_private_targets = false).await;
    let session = app.merchant_session(&unique("shop")).await;
    for url in [
        "http://localhost/",
        "http://LOCALHOST:8080/hook",
        "http://app.localhost/",
        "http://127.0.0.1/",
        "http://127.1.2.3:9000/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://localhost./",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
    ] {
        let resp = app.create_webhook(&session, json!({"topics": "*", "url": url})).await;
        assert_invalid_data(&resp, "url");
    }
    assert!(app.list_webhooks(&session).await.is_empty());
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/"})).await;
}

#[tokio::test]
async fn local_targets_are_accepted_when_private_targets_are_allowed() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "http://127.0.0.1:9/hook"})).await;
    create_ok(&app, &session, json!({"topics": "*", "url": "http://localhost:9/hook"})).await;
    assert_eq!(app.list_webhooks(&session).await.len(), 2);
}

#[tokio::test]
async fn the_per_merchant_limit_answers_106() {
    let app = TestApp::spawn_with(|c| c.app.max_webhooks_per_merchant = 2).await;
    let session = app.merchant_session(&unique("shop")).await;
    for i in 0..2 {
        create_ok(
            &app,
            &session,
            json!({"topics": "*", "url": format!("https://example.com/{i}")}),
        )
        .await;
    }
    let resp = app
        .create_webhook(&session, json!({"topics": "*", "url": "https://example.com/2"}))
        .await;
    let message = assert_app_error(&resp, 106);
    assert!(message.starts_with("Webhook not created. "), "{message}");
    assert!(message.contains('2'), "the message names the limit: {message}");
    assert_eq!(app.list_webhooks(&session).await.len(), 2);

    // The limit is per merchant.
    let other = app.merchant_session(&unique("shop")).await;
    create_ok(&app, &other, json!({"topics": "*", "url": "https://example.com/other"})).await;

    // Deleting one makes room again.
    let id = last_id(&app, &session).await;
    assert_ok(&app.call(&session, "webhook.delete", json!([id])).await);
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/3"})).await;
}

// --- update_status ---

#[tokio::test]
async fn update_status_by_webhook_id_changes_only_that_webhook() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/a"})).await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/b"})).await;
    let id = last_id(&app, &session).await;

    assert_eq!(
        assert_ok(&update_status(&app, &session, json!([id, 0])).await),
        &json!(true)
    );
    assert_eq!(active_flags(&app, &session).await, [1, 0]);
    // Setting the status it already has still succeeds.
    assert_eq!(
        assert_ok(&update_status(&app, &session, json!([id, 0])).await),
        &json!(true)
    );
    assert_eq!(
        assert_ok(&update_status(&app, &session, json!([id, 1])).await),
        &json!(true)
    );
    assert_eq!(active_flags(&app, &session).await, [1, 1]);
}

#[tokio::test]
async fn update_status_by_topic_changes_every_webhook_with_that_exact_entry() {
    let (app, session) = merchant_app().await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created,order:shipped", "url": "https://example.com/a"}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": "https://example.com/b"}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:*", "url": "https://example.com/c"}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "product:created", "url": "https://example.com/d"}),
    )
    .await;

    assert_ok(&update_status(&app, &session, json!(["order:created", 0])).await);
    assert_eq!(active_flags(&app, &session).await, [0, 0, 1, 1]);

    assert_ok(&update_status(&app, &session, json!(["order:*", "0"])).await);
    assert_eq!(active_flags(&app, &session).await, [0, 0, 0, 1]);

    assert_ok(&update_status(&app, &session, json!(["order:shipped", true])).await);
    assert_eq!(active_flags(&app, &session).await, [1, 0, 0, 1]);
}

#[tokio::test]
async fn update_status_accepts_the_object_forms() {
    let (app, session) = merchant_app().await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": "https://example.com/a"}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "product:created", "url": "https://example.com/b"}),
    )
    .await;
    let first = app.list_webhooks(&session).await[0]["webhook_id"].as_i64().unwrap();

    assert_ok(&update_status(&app, &session, json!([{"webhook_id": first, "status": 0}])).await);
    assert_eq!(active_flags(&app, &session).await, [0, 1]);

    assert_ok(&update_status(&app, &session, json!([{"topic": "product:created", "status": "0"}])).await);
    assert_eq!(active_flags(&app, &session).await, [0, 0]);

    assert_ok(&update_status(&app, &session, json!([{"webhook_id": first, "status": true}])).await);
    assert_eq!(active_flags(&app, &session).await, [1, 0]);
}

#[tokio::test]
async fn update_status_with_only_a_status_changes_all_of_the_callers_webhooks() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    let other = app.merchant_session(&unique("shop")).await;
    create_ok(
        &app,
        &session,
        json!({"topics": "*", "url": "https://example.com/a", "is_active": 0}),
    )
    .await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": "https://example.com/b", "is_active": 0}),
    )
    .await;
    create_ok(
        &app,
        &other,
        json!({"topics": "*", "url": "https://example.com/other", "is_active": 0}),
    )
    .await;

    // The seed's own example request.
    assert_eq!(
        assert_ok(&update_status(&app, &session, json!([{"status": 1}])).await),
        &json!(true)
    );
    assert_eq!(active_flags(&app, &session).await, [1, 1]);
    assert_eq!(
        active_flags(&app, &other).await,
        [0],
        "another merchant's webhook is untouched"
    );
}

#[tokio::test]
async fn update_status_accepts_every_documented_status_form() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/"})).await;
    let id = last_id(&app, &session).await;
    for (status, want) in [
        (json!(0), 0),
        (json!(1), 1),
        (json!("0"), 0),
        (json!("1"), 1),
        (json!(false), 0),
        (json!(true), 1),
    ] {
        assert_ok(&update_status(&app, &session, json!([id, status])).await);
        assert_eq!(active_flags(&app, &session).await, [want], "status {status}");
    }
}

#[tokio::test]
async fn a_bad_status_answers_100_and_changes_nothing() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/"})).await;
    let id = last_id(&app, &session).await;
    for status in [
        json!(2),
        json!(-1),
        json!("yes"),
        json!("active"),
        json!(0.5),
        json!([1]),
        json!({"on": 1}),
    ] {
        let resp = update_status(&app, &session, json!([id, status])).await;
        let message = assert_app_error(&resp, 100);
        assert!(
            message.starts_with("Error changing status for specified webhook. "),
            "{message}"
        );
        assert!(message.to_lowercase().contains("status"), "{message}");
        let resp = update_status(&app, &session, json!([{"webhook_id": id, "status": status}])).await;
        assert_app_error(&resp, 100);
    }
    assert_eq!(active_flags(&app, &session).await, [1]);
}

#[tokio::test]
async fn update_status_that_matches_nothing_answers_100() {
    let (app, session) = merchant_app().await;
    // No webhooks at all, even for the "all of mine" form.
    assert_app_error(&update_status(&app, &session, json!([{"status": 1}])).await, 100);

    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": "https://example.com/"}),
    )
    .await;
    let id = last_id(&app, &session).await;
    for args in [
        json!([id + 1000, 0]),
        json!(["order:shipped", 0]),
        json!(["order:nosuch", 0]),
        json!(["*", 0]),
        json!([{"webhook_id": id + 1000, "status": 0}]),
        json!([{"topic": "product:created", "status": 0}]),
    ] {
        let resp = update_status(&app, &session, args.clone()).await;
        let message = assert_app_error(&resp, 100);
        assert!(
            message.starts_with("Error changing status for specified webhook. "),
            "{args}: {message}"
        );
    }
    assert_eq!(active_flags(&app, &session).await, [1]);
}

// --- delete ---

#[tokio::test]
async fn delete_returns_true_and_the_webhook_is_gone() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/a"})).await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/b"})).await;
    let listed = app.list_webhooks(&session).await;
    let (first, second) = (listed[0].clone(), listed[1].clone());

    let resp = app.call(&session, "webhook.delete", json!([first["webhook_id"]])).await;
    assert_eq!(assert_ok(&resp), &json!(true));
    assert_eq!(app.list_webhooks(&session).await, [second]);
}

#[tokio::test]
async fn deleting_an_unknown_webhook_answers_103() {
    let (app, session) = merchant_app().await;
    for id in [json!(123), json!(0), json!(-1)] {
        let resp = app.call(&session, "webhook.delete", json!([id])).await;
        assert_eq!(assert_app_error(&resp, 103), "Webhook not exists.");
    }
}

#[tokio::test]
async fn deleting_a_webhook_twice_answers_103_the_second_time() {
    let (app, session) = merchant_app().await;
    create_ok(&app, &session, json!({"topics": "*", "url": "https://example.com/"})).await;
    let id = last_id(&app, &session).await;
    assert_ok(&app.call(&session, "webhook.delete", json!([id])).await);
    let resp = app.call(&session, "webhook.delete", json!([id])).await;
    assert_eq!(assert_app_error(&resp, 103), "Webhook not exists.");
    // A deleted webhook's status cannot be changed either.
    assert_app_error(&update_status(&app, &session, json!([id, 1])).await, 100);
}

#[tokio::test]
async fn a_deleted_webhooks_topics_no_longer_match_update_status() {
    let (app, session) = merchant_app().await;
    create_ok(
        &app,
        &session,
        json!({"topics": "order:created", "url": "https://example.com/"}),
    )
    .await;
    let id = last_id(&app, &session).await;
    assert_ok(&app.call(&session, "webhook.delete", json!([id])).await);
    assert_app_error(&update_status(&app, &session, json!(["order:created", 0])).await, 100);
}

// --- topic.list ---

#[tokio::test]
async fn topic_list_returns_the_catalog() {
    let (app, session) = merchant_app().await;
    let resp = app.call(&session, "topic.list", json!([])).await;
    let topics: Vec<&str> = assert_ok(&resp)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().expect("topics are strings"))
        .collect();
    assert_eq!(topics.len(), 53);
    for t in [
        "order:created",
        "order:shipped",
        "product:created",
        "test:ping",
        "tracker:exception",
        "webhook:disabled",
    ] {
        assert!(topics.contains(&t), "{t} is in the catalog");
    }
    let mut unique = topics.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), topics.len(), "no duplicates");
    assert!(topics
        .iter()
        .all(|t| t.split_once(':').is_some_and(|(r, e)| !r.is_empty() && !e.is_empty())));
}

#[tokio::test]
async fn concurrent_creates_never_exceed_the_per_merchant_limit() {
    let app = TestApp::spawn_with(|c| c.app.max_webhooks_per_merchant = 2).await;
    let session = app.merchant_session(&unique("shop")).await;
    let bodies = (0..12)
        .map(|i| {
            let data = json!({"topics": "*", "url": format!("https://example.com/{i}")});
            json!({"jsonrpc": "2.0", "id": i, "method": "call", "params": [session, "webhook.create", [data]]})
        })
        .collect();
    let answers = app.rpc_concurrently(bodies).await;
    let created = answers.iter().filter(|r| r["result"] == json!(true)).count();
    for resp in answers.iter().filter(|r| r["result"] != json!(true)) {
        assert_app_error(resp, 106);
    }
    assert_eq!(created, 2, "{answers:?}");
    assert_eq!(app.list_webhooks(&session).await.len(), 2);
}
