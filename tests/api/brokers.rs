//! Broker destinations (CONTRACT §7.5) against the real RabbitMQ and NATS JetStream: the
//! same body, increment ids, signature headers (as message headers) and attempt log as HTTP,
//! the broker's refusal as a failed attempt, and a connection the broker closed made again.

use std::time::Duration;

use serde_json::json;

use crate::brokers_support::*;
use crate::delivery_support::*;
use crate::helpers::*;

fn increment_of(got: &Got) -> i64 {
    got.json()["message"]["webhook_increment_id"]
        .as_i64()
        .expect("webhook_increment_id")
}

#[tokio::test]
async fn amqp_webhooks_get_the_signed_body_in_order_with_the_message_id_and_a_logged_success() {
    let Some(rabbit) = Rabbit::connect("amqp delivery").await else {
        return;
    };
    rabbit.declare("orders").await;
    let w = World::start().await;
    let hook = w
        .hook(json!({"topics": "order:*", "url": rabbit.url("orders"), "ordered": true}))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for n in 1..=3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    let got = rabbit.wait_for(3).await;
    assert_eq!(got.iter().map(increment_of).collect::<Vec<_>>(), [1, 2, 3]);
    for (n, message) in got.iter().enumerate() {
        let body = message.json();
        assert_eq!(body["topic"], "order:created");
        assert_eq!(body["message"]["n"], n as i64 + 1);
        let msg_id = message.message_id.as_deref().expect("a message id");
        assert!(msg_id.starts_with("msg_"), "{msg_id}");
        assert_eq!(message.header("webhook-id"), Some(msg_id));
        assert!(message
            .header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,")));
        assert!(message.header("x-plugin-hmac-sha256").is_some());
        assert!(message.header("webhook-timestamp").is_some());
    }
    let delivery = w.deliveries(id).await[0]["delivery_id"].as_i64().unwrap();
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["attempt_log"].as_array().map(Vec::len), Some(1), "{info:#}");
}

#[tokio::test]
async fn a_missing_exchange_is_a_failed_attempt_with_the_brokers_reason_then_retried() {
    let Some(rabbit) = Rabbit::connect("amqp missing exchange").await else {
        return;
    };
    let w = World::start_with(|c| schedule(c, "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s")).await;
    let hook = w.hook(json!({"topics": "*", "url": rabbit.url("k")})).await;
    let id = hook["webhook_id"].as_i64().unwrap();
    w.publish_ok("order:created", json!({"n": 1})).await;
    let delivery = w.only_delivery(id).await;
    let info = w
        .wait_info(delivery, "a failed attempt", WAIT, |i| {
            i["attempt_log"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let error = info["attempt_log"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("NOT_FOUND") && error.contains(&rabbit.exchange),
        "{info:#}"
    );
    assert!(!error.contains("guest:guest"), "{error}");
    // Once the exchange exists, the next retry goes through on a new channel.
    rabbit.declare("k").await;
    w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(increment_of(&rabbit.wait_for(1).await[0]), 1);
}

#[tokio::test]
async fn an_unroutable_message_is_a_failed_attempt() {
    let Some(rabbit) = Rabbit::connect("amqp unroutable").await else {
        return;
    };
    rabbit.declare("bound").await;
    let w = World::start().await;
    let hook = w.hook(json!({"topics": "*", "url": rabbit.url("not-bound")})).await;
    w.publish_ok("order:created", json!({})).await;
    let delivery = w.only_delivery(hook["webhook_id"].as_i64().unwrap()).await;
    let info = w
        .wait_info(delivery, "a failed attempt", WAIT, |i| {
            i["attempt_log"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert!(
        info["attempt_log"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unroutable"),
        "{info:#}"
    );
}

#[tokio::test]
async fn deliveries_go_on_after_the_broker_closes_the_connection() {
    let vhost = broker_name("hookd-test-vh");
    if let Err(why) = rabbitmqctl(&["add_vhost", &vhost]).await {
        skipped("amqp reconnect", &format!("rabbitmqctl cannot add a vhost: {why}"));
        return;
    }
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"])
        .await
        .unwrap();
    let base = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let Some(rabbit) = Rabbit::connect_to(&base, "amqp reconnect").await else {
        return;
    };
    rabbit.declare("k").await;
    let w = World::start().await;
    let url = format!("{base}?exchange={}&routing_key=k", rabbit.exchange);
    w.hook(json!({"topics": "*", "url": url, "ordered": true})).await;
    w.publish_ok("order:created", json!({"n": 1})).await;
    rabbit.wait_for(1).await;

    rabbitmqctl(&["close_all_connections", "-p", &vhost, "closed by the test"])
        .await
        .unwrap();
    // The test's own connection went too.
    let Some(again) = Rabbit::connect_to(&base, "amqp reconnect").await else {
        return;
    };
    let again = Rabbit {
        exchange: rabbit.exchange.clone(),
        queue: rabbit.queue.clone(),
        ..again
    };
    w.publish_ok("order:created", json!({"n": 2})).await;
    let got = again.wait_for(1).await;
    assert_eq!(increment_of(&got[0]), 2);
    let _ = rabbitmqctl(&["delete_vhost", &vhost]).await;
}

#[tokio::test]
async fn nats_webhooks_get_the_signed_body_in_order_acked_by_the_stream() {
    let Some(stream) = Stream::connect("nats delivery").await else {
        return;
    };
    stream.create().await;
    let w = World::start().await;
    let hook = w
        .hook(json!({"topics": "*", "url": stream.url(), "ordered": true}))
        .await;
    for n in 1..=3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    let got = stream.wait_for(3).await;
    assert_eq!(got.iter().map(increment_of).collect::<Vec<_>>(), [1, 2, 3]);
    for message in &got {
        let msg_id = message.message_id.as_deref().expect("Nats-Msg-Id");
        assert_eq!(message.header("webhook-id"), Some(msg_id));
        assert!(message.header("webhook-signature").is_some());
    }
    let delivery = w.deliveries(hook["webhook_id"].as_i64().unwrap()).await[0]["delivery_id"]
        .as_i64()
        .unwrap();
    w.wait_status(delivery, "success", WAIT).await;
    stream.delete().await;
}

#[tokio::test]
async fn a_subject_no_stream_takes_is_a_failed_attempt() {
    let Some(stream) = Stream::connect("nats missing stream").await else {
        return;
    };
    let w = World::start_with(|c| c.app.delivery.client.request_timeout = Duration::from_secs(2)).await;
    let hook = w.hook(json!({"topics": "*", "url": stream.url()})).await;
    w.publish_ok("order:created", json!({})).await;
    let delivery = w.only_delivery(hook["webhook_id"].as_i64().unwrap()).await;
    let info = w
        .wait_info(delivery, "a failed attempt", WAIT, |i| {
            i["attempt_log"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let error = info["attempt_log"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("JetStream"), "{info:#}");
}

#[tokio::test]
async fn bad_broker_urls_are_refused_with_a_reason_and_change_nothing() {
    let app = TestApp::spawn_with(|c| c.app.allow_private_targets = false).await;
    let shop = app.merchant_session(&unique("shop")).await;
    let cases = [
        ("amqp://mq.example.com/", "exchange"),
        ("amqp://mq.example.com:99999/?exchange=x", "url"),
        ("amqp://mq.example.com/?exchange=x&password=secret", "password"),
        ("amqp://mq.example.com/a/b?exchange=x", "vhost"),
        ("amqp://guest:guest@127.0.0.1:5672/?exchange=x", "loopback"),
        ("amqp://10.1.2.3/?exchange=x", "private"),
        ("nats://localhost:4222/a", "local"),
        ("nats://mq.example.com/a.>", "subject"),
        ("nats://mq.example.com/", "subject"),
        ("amqps://mq.example.com/?exchange=x", "scheme"),
    ];
    for (url, what) in cases {
        let resp = app.create_webhook(&shop, json!({"topics": "*", "url": url})).await;
        eprintln!("{url}: {resp}");
        assert_invalid_data(&resp, what);
    }
    assert!(app.list_webhooks(&shop).await.is_empty());
}
