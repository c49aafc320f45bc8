//! The event catalog (CONTRACT §7.4, issue 24): `topic.describe`, admin `topic.define`,
//! messages checked against their topic's schema on `event.publish` (113 naming the path,
//! nothing stored), `webhook.test` sending the first topic's example, the AsyncAPI document,
//! and a topic defined on one PostgreSQL node used by another at once. Both backends.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "integer"}, "lines": {"type": "array", "items": {"type": "object",
            "required": ["sku"], "properties": {"sku": {"type": "string"}}}}}
    })
}

async fn describe(app: &TestApp, session: &str, topic: &str) -> Value {
    let resp = app.call(session, "topic.describe", json!([topic])).await;
    assert_ok(&resp)[0].clone()
}

#[tokio::test]
async fn define_then_describe_list_and_who_may() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let shop = app.merchant_session("shop1").await;

    // The seed: every topic of the file, the shipped ones with a schema and an example.
    let all = app.call(&shop, "topic.describe", json!([])).await;
    let all = assert_ok(&all).as_array().unwrap().clone();
    assert_eq!(all.len(), 53);
    let created = all.iter().find(|e| e["topic"] == "order:created").unwrap();
    assert!(created["schema"]["properties"]["order_id"].is_object(), "{created}");
    assert_eq!(created["example"]["order_id"], 1042);
    let canceled = all.iter().find(|e| e["topic"] == "order:canceled").unwrap();
    assert_eq!(
        canceled,
        &json!({"topic": "order:canceled", "description": "", "schema": null, "example": null})
    );

    let definition = json!({"topic": "parcel:weighed", "description": "A parcel was weighed",
        "schema": order_schema(), "example": {"order_id": 7}});
    assert_eq!(
        assert_ok(&app.call(&admin, "topic.define", json!([definition])).await),
        &json!(true)
    );
    let entry = describe(&app, &shop, "parcel:weighed").await;
    assert_eq!(entry["description"], "A parcel was weighed");
    assert_eq!(entry["schema"], order_schema());
    assert_eq!(entry["example"], json!({"order_id": 7}));

    // topic.list answers as before (sorted names), with the new topic.
    let list = app.call(&shop, "topic.list", json!([])).await;
    let list: Vec<String> = serde_json::from_value(assert_ok(&list).clone()).unwrap();
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(list, sorted);
    assert_eq!(list.len(), 54);
    assert!(list.contains(&"parcel:weighed".to_string()) && list.contains(&"test:ping".to_string()));

    // Absent fields keep their value; null clears.
    let resp = app
        .call(
            &admin,
            "topic.define",
            json!([{"topic": "parcel:weighed", "example": null}]),
        )
        .await;
    assert_ok(&resp);
    let entry = describe(&app, &shop, "parcel:weighed").await;
    assert_eq!(
        (entry["schema"].clone(), entry["example"].clone()),
        (order_schema(), Value::Null)
    );

    // A merchant may read the catalog but not change it; nothing changes.
    let resp = app
        .call(
            &shop,
            "topic.define",
            json!([{"topic": "parcel:weighed", "schema": null}]),
        )
        .await;
    assert_app_error(&resp, 2);
    let resp = app.call(&shop, "topic.define", json!([{"topic": "evil:new"}])).await;
    assert_app_error(&resp, 2);
    assert_eq!(describe(&app, &shop, "parcel:weighed").await["schema"], order_schema());
    let resp = app.call(&shop, "topic.describe", json!(["evil:new"])).await;
    assert_invalid_data(&resp, "topic 'evil:new' is not in the catalog");
    let resp = app.call(&shop, "topic.describe", json!([5])).await;
    assert!(resp["error"].is_object(), "{resp}");

    // A merchant can subscribe to the new topic.
    let receiver = TestReceiver::start().await;
    let hook = app
        .create_webhook(&shop, json!({"topics": "parcel:weighed", "url": receiver.url("/p")}))
        .await;
    assert_ok(&hook);
}

#[tokio::test]
async fn a_message_that_does_not_match_is_113_naming_the_path_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let shop = app.merchant_session("shop1").await;
    let receiver = TestReceiver::start().await;
    assert_ok(
        &app.create_webhook(&shop, json!({"topics": "order:*", "url": receiver.url("/o")}))
            .await,
    );
    let define = json!([{"topic": "order:created", "schema": order_schema()}]);
    assert_ok(&app.call(&admin, "topic.define", define).await);

    let resp = app
        .call(&admin, "event.publish", json!(["order:created", {"order_id": "x"}]))
        .await;
    let message = assert_app_error(&resp, 113);
    assert_eq!(
        message,
        r#"Message does not match its topic's schema. /order_id: "x" is not of type "integer""#
    );
    let resp = app
        .call(
            &admin,
            "event.publish",
            json!(["order:created", {"order_id": 1, "lines": [{"sku": 5}]}]),
        )
        .await;
    assert!(
        assert_app_error(&resp, 113).ends_with(r#"/lines/0/sku: 5 is not of type "string""#),
        "{resp}"
    );
    let resp = app.call(&admin, "event.publish", json!(["order:created", {}])).await;
    assert!(
        assert_app_error(&resp, 113).contains(r#"(root): "order_id" is a required property"#),
        "{resp}"
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM events").await, 0);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM deliveries").await, 0);

    // A matching message, and a topic without a schema, publish as ever.
    let ok = app
        .call(&admin, "event.publish", json!(["order:created", {"order_id": 1}]))
        .await;
    assert_eq!(assert_ok(&ok)["payloads"], 1);
    let ok = app
        .call(
            &admin,
            "event.publish",
            json!(["order:canceled", {"anything": [1, "x"]}]),
        )
        .await;
    assert_eq!(assert_ok(&ok)["payloads"], 1);
    let got = receiver.wait_for("/o", 2, WAIT).await;
    let ids: Vec<i64> = got.iter().map(|r| r.increment_id()).collect();
    assert_eq!(ids, [1, 2], "gap-free: the refused publishes took no increment id");

    // A changed schema applies to the next publish (the compiled one is replaced).
    // (The shipped example no longer matches such a schema: refused until it changes too.)
    let schema = json!({"properties": {"order_id": {"type": "string"}}});
    let define = json!([{"topic": "order:created", "schema": schema}]);
    assert_invalid_data(
        &app.call(&admin, "topic.define", define).await,
        r#"example does not match the schema: /order_id: 1042 is not of type "string""#,
    );
    let define = json!([{"topic": "order:created", "schema": schema, "example": {"order_id": "A-1"}}]);
    assert_ok(&app.call(&admin, "topic.define", define).await);
    let resp = app
        .call(&admin, "event.publish", json!(["order:created", {"order_id": 1}]))
        .await;
    assert!(
        assert_app_error(&resp, 113).ends_with(r#"/order_id: 1 is not of type "string""#),
        "{resp}"
    );
}

#[tokio::test]
async fn a_batch_of_publishes_checks_each_element() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let shop = app.merchant_session("shop1").await;
    let receiver = TestReceiver::start().await;
    assert_ok(
        &app.create_webhook(&shop, json!({"topics": "order:created", "url": receiver.url("/b")}))
            .await,
    );
    assert_ok(
        &app.call(
            &admin,
            "topic.define",
            json!([{"topic": "order:created", "schema": order_schema()}]),
        )
        .await,
    );
    let publish = |id: u64, message: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "call",
            "params": [admin.clone(), "event.publish", ["order:created", message]]})
    };
    let batch = json!([
        publish(1, json!({"order_id": 1})),
        publish(2, json!({"order_id": "two"})),
        publish(3, json!({"order_id": 3})),
    ]);
    let (status, resp) = app.rpc(batch).await;
    assert_eq!(status, 200);
    let answers = resp.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    let by_id = |id: u64| answers.iter().find(|a| a["id"] == id).unwrap();
    assert_ok(by_id(1));
    assert!(assert_app_error(by_id(2), 113).ends_with(r#"/order_id: "two" is not of type "integer""#));
    assert_ok(by_id(3));
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM events").await, 2);
    let got = receiver.wait_for("/b", 2, WAIT).await;
    let mut order_ids: Vec<i64> = got
        .iter()
        .map(|r| r.json()["message"]["order_id"].as_i64().unwrap())
        .collect();
    order_ids.sort();
    assert_eq!(order_ids, [1, 3]);
}

#[tokio::test]
async fn hostile_definitions_are_101_naming_what_is_wrong_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let receiver = TestReceiver::start().await;
    let remote = receiver.url("/schema.json");
    let mut deep = json!({"type": "integer"});
    for _ in 0..40 {
        deep = json!({"properties": {"a": deep}});
    }
    let cases = [
        (
            json!({"topic": "x:y", "schema": {"description": "x".repeat(70_000)}}),
            "more than the limit of 65536",
        ),
        (json!({"topic": "x:y", "schema": deep}), "nested deeper than 32 levels"),
        (
            json!({"topic": "x:y", "schema": {"$ref": remote}}),
            "schema: is not valid JSON Schema 2020-12",
        ),
        (
            json!({"topic": "x:y", "schema": {"properties": {"a": {"$ref": remote}}}}),
            "schema: is not valid",
        ),
        (
            json!({"topic": "x:y", "schema": {"type": "integr"}}),
            "schema: is not valid JSON Schema 2020-12",
        ),
        (
            json!({"topic": "x:y", "schema": {"minimum": "1"}}),
            "schema: is not valid",
        ),
        (
            json!({"topic": "x:y", "schema": "object"}),
            "schema: must be a JSON object",
        ),
        (
            json!({"topic": "x:y", "schema": {"$schema": "http://json-schema.org/draft-04/schema#"}}),
            "$schema must be",
        ),
        (
            json!({"topic": "x:y", "schema": {"pattern": "(a"}}),
            "schema: is not valid",
        ),
        (
            json!({"topic": "x:y", "schema": order_schema(), "example": {"order_id": "1"}}),
            r#"example does not match the schema: /order_id: "1" is not of type "integer""#,
        ),
        (
            json!({"topic": "x:y", "example": {"big": "x".repeat(70_000)}}),
            "example is",
        ),
        (
            json!({"topic": "x:y", "example": "text"}),
            "example must be a JSON object",
        ),
        (
            json!({"topic": "x:y", "description": "d".repeat(1001)}),
            "description is longer than 1000",
        ),
        (json!({"topic": "x:y", "description": "a\u{0}b"}), "control characters"),
        (json!({"topic": "X:y"}), "not of the form resource:event"),
        (json!({"topic": "x:y:z"}), "not of the form resource:event"),
        (json!({"topic": "x:*"}), "not of the form resource:event"),
        (json!({"topic": format!("x:{}", "y".repeat(200))}), "longer than 100"),
        (json!({"topic": "x:y", "owner": 1}), "unknown field 'owner'"),
        (json!({"topic": 5}), "topic must be a string"),
        (json!({"description": "no topic"}), "topic is required"),
        (json!(["x:y"]), "must be a JSON object"),
    ];
    for (definition, what) in cases {
        let resp = app.call(&admin, "topic.define", json!([definition])).await;
        assert_invalid_data(&resp, what);
    }
    assert!(
        receiver.received("/").is_empty(),
        "a schema made hookd fetch a remote $ref"
    );
    let resp = app.call(&admin, "topic.describe", json!(["x:y"])).await;
    assert_invalid_data(&resp, "not in the catalog");
    // A refused change to an existing topic leaves it as it was.
    let resp = app
        .call(
            &admin,
            "topic.define",
            json!([{"topic": "order:created", "schema": {"type": "integr"}}]),
        )
        .await;
    assert_invalid_data(&resp, "schema");
    let entry = describe(&app, &admin, "order:created").await;
    assert_eq!(entry["schema"]["properties"]["order_id"]["type"], "integer");
}

#[tokio::test]
async fn webhook_test_sends_the_example_of_the_first_topic() {
    let app = TestApp::spawn().await;
    let shop = app.merchant_session("shop1").await;
    let receiver = TestReceiver::start().await;
    let hook = |path: &str, topics: &str| json!({"topics": topics, "url": receiver.url(path)});
    assert_ok(
        &app.create_webhook(&shop, hook("/ex", "order:created,order:canceled"))
            .await,
    );
    assert_ok(
        &app.create_webhook(&shop, hook("/none", "order:canceled,order:created"))
            .await,
    );
    assert_ok(&app.create_webhook(&shop, hook("/pattern", "order:*")).await);
    let hooks = app.list_webhooks(&shop).await;
    for h in &hooks {
        let resp = app.call(&shop, "webhook.test", json!([h["webhook_id"]])).await;
        assert_eq!(assert_ok(&resp)["success"], true, "{resp}");
    }
    // Still a test:ping (never taken for a real order), with the example's shape.
    let ex = receiver.wait_for("/ex", 1, WAIT).await[0].json();
    assert_eq!(ex["topic"], "test:ping");
    assert_eq!(ex["message"]["order_id"], 1042);
    assert_eq!(ex["message"]["items"][0]["sku"], "MUG-RED");
    assert_eq!(ex["message"]["webhook_increment_id"], 1);
    for path in ["/none", "/pattern"] {
        let ping = receiver.wait_for(path, 1, WAIT).await[0].json();
        assert_eq!(ping["topic"], "test:ping", "{ping}");
        let fields: Vec<&String> = ping["message"].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["webhook_increment_id", "event_timestamp"], "{ping}");
    }
}

#[tokio::test]
async fn the_asyncapi_document_describes_every_topic_without_credentials() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let definition = json!({"topic": "parcel:weighed", "description": "A parcel was weighed <b>",
        "schema": order_schema(), "example": {"order_id": 7}});
    assert_ok(&app.call(&admin, "topic.define", json!([definition])).await);
    let doc = asyncapi(&app).await;
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"].as_object().unwrap().len(), 54);
    let channel = &doc["channels"]["parcel.weighed"];
    assert_eq!(channel["address"], "parcel:weighed");
    assert_eq!(channel["description"], "A parcel was weighed <b>");
    let message = &doc["components"]["messages"]["parcel.weighed"];
    let payload = &message["payload"];
    assert_eq!(payload["required"], json!(["topic", "merchant_code", "message"]));
    assert_eq!(payload["properties"]["message"]["allOf"][0], order_schema());
    assert!(payload["properties"]["message"]["allOf"][1]["properties"]["webhook_increment_id"].is_object());
    assert_eq!(message["examples"][0]["payload"]["message"]["order_id"], 7);
    assert_eq!(message["headers"]["$ref"], "#/components/schemas/DeliveryHeaders");
    let headers = &doc["components"]["schemas"]["DeliveryHeaders"]["properties"];
    for h in [
        "x-plugin-hmac-sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ] {
        assert!(headers[h]["description"].is_string(), "{h}");
    }
    assert_eq!(doc["operations"]["send.parcel.weighed"]["action"], "send");
    // The shipped schema is there without its $schema (an AsyncAPI Schema object).
    let shipped = &doc["components"]["messages"]["order.created"]["payload"]["properties"]["message"]["allOf"][0];
    assert!(shipped["properties"]["order_id"].is_object() && shipped.get("$schema").is_none());
    // rpc.discover's Topic schema carries the same descriptions.
    let (_, openrpc) = app
        .rpc(json!({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
        .await;
    let topics = &assert_ok(&openrpc)["components"]["schemas"]["Topic"]["oneOf"];
    let weighed = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["const"] == "parcel:weighed")
        .unwrap();
    assert_eq!(weighed["description"], "A parcel was weighed <b>");
    check_with_asyncapi_parser(&doc).await;
}

async fn asyncapi(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(format!("http://{}/catalog/asyncapi.json", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// Checked with the official `@asyncapi/parser` and `@asyncapi/specs`' JSON Schema when
/// `HOOKD_ASYNCAPI_CHECK` names a folder where they are installed (`.ci/run` does).
async fn check_with_asyncapi_parser(doc: &Value) {
    let Ok(root) = std::env::var("HOOKD_ASYNCAPI_CHECK") else {
        skipped("the AsyncAPI parser check", "set HOOKD_ASYNCAPI_CHECK (see .ci/run)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/asyncapi/validate.mjs");
    node_validates(script, &root, doc, "the AsyncAPI document").await;
}

/// Issue 24: a topic defined on one PostgreSQL node is used by another at once: its schema
/// applies to the other's next publish, and a merchant there can subscribe to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_defined_on_one_node_is_used_by_the_other_at_once() {
    let a = TestApp::spawn().await;
    if a.backend() != Backend::Postgres {
        skipped("two-node catalog", "two nodes share a database only on PostgreSQL");
        return;
    }
    let mut config = a.config.clone();
    config.listen = "127.0.0.1:0".into();
    let b = hookd::startup::Application::build(config).await.expect("node B");
    let b_url = format!("http://{}/api/jsonrpc", b.local_addr());
    let (stop_b, stopped) = tokio::sync::oneshot::channel::<()>();
    let node_b = tokio::spawn(b.run_until(async move {
        let _ = stopped.await;
    }));
    let on_b = |session: &str, path: &str, args: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [session, path, args]});
        let (client, url) = (a.client.clone(), b_url.clone());
        async move {
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()
        }
    };
    let admin = a.admin_session().await;
    let shop = a.merchant_session("shop1").await;
    // B compiles the shipped schema of order:created first (its cache holds it).
    let ok = on_b(&admin, "event.publish", json!(["order:created", {"order_id": 1}])).await;
    assert_ok(&ok);
    let schema = json!({"properties": {"order_id": {"type": "string"}}});
    let define = json!([{"topic": "order:created", "schema": schema, "example": null}]);
    assert_ok(&a.call(&admin, "topic.define", define).await);
    let resp = on_b(&admin, "event.publish", json!(["order:created", {"order_id": 2}])).await;
    assert!(
        assert_app_error(&resp, 113).ends_with(r#"/order_id: 2 is not of type "string""#),
        "{resp}"
    );
    assert_ok(
        &a.call(
            &admin,
            "topic.define",
            json!([{"topic": "parcel:weighed", "schema": order_schema()}]),
        )
        .await,
    );
    let receiver = TestReceiver::start().await;
    let hook = json!([{"topics": "parcel:weighed", "url": receiver.url("/w")}]);
    assert_ok(&on_b(&shop, "webhook.create", hook).await);
    let resp = on_b(&admin, "event.publish", json!(["parcel:weighed", {"order_id": "x"}])).await;
    assert_app_error(&resp, 113);
    let ok = on_b(&admin, "event.publish", json!(["parcel:weighed", {"order_id": 9}])).await;
    assert_eq!(assert_ok(&ok)["payloads"], 1);
    let described = on_b(&shop, "topic.describe", json!(["parcel:weighed"])).await;
    assert_eq!(assert_ok(&described)[0]["schema"], order_schema());
    let _ = stop_b.send(());
    node_b.await.unwrap().unwrap();
}

/// Arbitrary definitions never break the server: each is `true` or 101, and a 101 changes
/// nothing (the topic is not added).
#[test]
fn topic_define_takes_any_arguments_without_harm() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let admin = runtime.block_on(app.admin_session());
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
        prop_oneof![
            Just("object"),
            Just("integer"),
            Just("$ref"),
            Just("#/a"),
            Just("http://127.0.0.1:9/x")
        ]
        .prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_string()),
                        Just("properties".to_string()),
                        Just("required".to_string()),
                        Just("$ref".to_string()),
                        Just("items".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let definition = (
        prop_oneof![Just("fuzz:t".to_string()), "[a-z:*A-Z]{0,8}"],
        prop::option::of(value.clone()),
        prop::option::of(value.clone()),
        prop::option::of(value),
    )
        .prop_map(|(topic, description, schema, example)| {
            let mut d = json!({"topic": topic});
            for (k, v) in [("description", description), ("schema", schema), ("example", example)] {
                if let Some(v) = v {
                    d[k] = v;
                }
            }
            d
        });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&definition, |d| {
        runtime.block_on(async {
            let topic = d["topic"].as_str().unwrap().to_string();
            let before = app.call(&admin, "topic.describe", json!([topic])).await;
            let resp = app.call(&admin, "topic.define", json!([d.clone()])).await;
            let after = app.call(&admin, "topic.describe", json!([topic])).await;
            if resp["error"].is_null() {
                prop_assert_eq!(&resp["result"], &json!(true));
                prop_assert!(after["error"].is_null(), "{}", after);
            } else {
                prop_assert_eq!(&resp["error"]["code"], &json!(-32101), "{} for {}", resp, d);
                prop_assert_eq!(&before, &after, "a refused definition changed {}", topic);
            }
            Ok(())
        })
    });
    runtime.block_on(async {
        let admin = app.admin_session().await;
        app.assert_still_serving(&admin).await;
    });
    result.unwrap();
}

/// `/console/topics`: the catalog for people, every value escaped, no external assets.
#[tokio::test]
async fn the_console_lists_the_catalog_escaped() {
    let app = TestApp::spawn().await;
    let admin = app.admin_session().await;
    let hostile = "<script>alert(1)</script> & \"quotes\"";
    let definition = json!({"topic": "parcel:weighed", "description": hostile,
        "schema": {"type": "object", "properties": {"note": {"type": "string", "description": hostile}}},
        "example": {"note": "</pre><img src=x onerror=alert(1)>"}});
    assert_ok(&app.call(&admin, "topic.define", json!([definition])).await);
    let mut browser = crate::console_support::ConsoleClient::merchant(&app, "shop1").await;
    let page = browser.get("/console/topics").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("<code>order:created</code>") && body.contains("order_id"),
        "{body}"
    );
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;quotes&#34;"),
        "{body}"
    );
    assert!(!body.contains("<script>alert") && !body.contains("<img src=x"));
    assert!(
        !body.contains("src=\"http") && !body.contains("href=\"http"),
        "no external assets"
    );
    assert!(body.contains("href=\"/console/topics\""), "linked from the navigation");
    // Only a logged-in user sees it.
    let anonymous = crate::console_support::ConsoleClient::new(&app)
        .get("/console/topics")
        .await;
    assert_ne!(anonymous.status, 200);
}
