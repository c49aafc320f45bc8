//! Ingestion (CONTRACT §7.5, `HOOKD_INGEST`) against the real RabbitMQ and NATS JetStream, on
//! the suite's backend: a message put into a queue or stream is published as by
//! `event.publish` and reaches an HTTP receiver; invalid ones are acknowledged and counted by
//! reason; a message given twice is published once; one the database cannot store now is
//! handed back and published later; a connection the broker closes is made again. The kill -9 and two-node tests are in `ingest_crash`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hookd::config::Config;
use hookd::domain::broker_url::IngestSource;
use serde_json::json;

use crate::brokers_support::{broker_name, rabbitmqctl};
use crate::delivery_support::*;
use crate::helpers::*;
use crate::ingest_support::*;

pub const WAIT: Duration = Duration::from_secs(20);
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn ingest_from(url: &str) -> impl FnOnce(&mut Config) + '_ {
    move |c| c.ingest = vec![IngestSource::parse(url).unwrap()]
}

/// The value of `series` (e.g. `hookd_ingest_messages_total{outcome="published"}`) on the
/// server's `/metrics`.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn outcome(name: &str) -> String {
    format!("hookd_ingest_messages_total{{outcome=\"{name}\"}}")
}

/// Waits until the nodes have settled `n` messages (published, replayed or rejected).
pub async fn wait_settled(addrs: &[SocketAddr], n: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut settled = 0.0;
        for addr in addrs {
            for o in ["published", "replayed", "rejected"] {
                settled += metric(*addr, &outcome(o)).await;
            }
        }
        if settled >= n {
            assert_eq!(settled, n, "more messages settled than were put");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{settled} of {n} messages settled within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn order(n: i64) -> serde_json::Value {
    json!({"topic": "order:created", "message": {"n": n}})
}

fn ns_of(got: &[crate::receiver::Received]) -> BTreeSet<i64> {
    got.iter().map(|r| r.json()["message"]["n"].as_i64().unwrap()).collect()
}

fn increments(got: &[crate::receiver::Received]) -> BTreeSet<i64> {
    got.iter().map(|r| r.increment_id()).collect()
}

#[tokio::test]
async fn a_message_from_a_rabbitmq_queue_is_published_like_event_publish_with_its_trace() {
    let Some(queue) = Queue::declare("amqp ingest").await else {
        return;
    };
    let w = World::start_with(ingest_from(&queue.url())).await;
    w.hook_at("order:*", "/in/").await;
    let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
    queue.put(&Put::json(order(1)).id("m-1").trace(&traceparent)).await;
    let mut keyed = order(2);
    keyed["idempotency_key"] = json!("k-2");
    queue.put(&Put::json(keyed)).await;
    let mut named = order(3);
    named["merchant_code"] = json!(w.code);
    queue.put(&Put::json(named)).await;

    let got = w.receiver.wait_for("/in/", 3, WAIT).await;
    assert_eq!(ns_of(&got), BTreeSet::from([1, 2, 3]));
    assert_eq!(increments(&got), BTreeSet::from([1, 2, 3]));
    for r in &got {
        assert_eq!(r.json()["topic"], "order:created");
        assert!(r.header("webhook-signature").is_some());
    }
    let first = got.iter().find(|r| r.json()["message"]["n"] == 1).unwrap();
    let sent = first.header("traceparent").unwrap_or_default();
    assert!(sent.contains(TRACE_ID), "the message's trace is carried: {sent}");
    // The message id and the given key are the events' idempotency keys.
    for (key, n) in [("m-1", 1), ("k-2", 2)] {
        let again = w
            .as_admin(
                "event.publish",
                json!(["order:created", {"n": n}, {"idempotency_key": key}]),
            )
            .await;
        assert_ok(&again);
    }
    wait_settled(&[w.app.addr], 3.0).await;
    assert_eq!(w.receiver.received("/in/").len(), 3, "the replays made no payload");
    queue.wait_empty(WAIT).await;
    queue.delete().await;
}

#[tokio::test]
async fn invalid_messages_are_acknowledged_counted_by_reason_and_publish_nothing() {
    let Some(queue) = Queue::declare("amqp ingest rejects").await else {
        return;
    };
    let w = World::start_with(|c| {
        ingest_from(&queue.url())(c);
        c.app.max_message_bytes = 1024;
    })
    .await;
    w.hook_at("*", "/in/").await;
    let cases: Vec<(Put, &str)> = vec![
        (Put::raw(b"not json at all"), "not_json"),
        (
            Put::json(json!({"topic": "order:created", "message": {}, "extra": 1})),
            "shape",
        ),
        (Put::json(json!({"message": {}})), "shape"),
        (Put::json(json!({"topic": "nope:never", "message": {}})), "topic"),
        (
            Put::json(json!({"topic": "order:created", "message": {}, "merchant_code": "nobody-here"})),
            "merchant",
        ),
        (
            Put::json(json!({"topic": "order:created", "message": {"big": "x".repeat(2000)}})),
            "too_big",
        ),
        (Put::json(json!({"topic": "order:created", "message": [1]})), "invalid"),
    ];
    for (put, _) in &cases {
        queue.put(put).await;
    }
    queue.put(&Put::json(order(1))).await;
    wait_settled(&[w.app.addr], cases.len() as f64 + 1.0).await;
    let got = w.receiver.wait_for("/in/", 1, WAIT).await;
    assert_eq!(
        increments(&got),
        BTreeSet::from([1]),
        "only the valid message was published"
    );
    for reason in ["not_json", "shape", "topic", "merchant", "too_big", "invalid", "schema"] {
        let want = cases.iter().filter(|(_, r)| *r == reason).count() as f64;
        let series = format!("hookd_ingest_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(w.app.addr, &series).await, want, "{series}");
    }
    assert_eq!(metric(w.app.addr, &outcome("given_back")).await, 0.0);
    queue.wait_empty(WAIT).await;
    queue.delete().await;
}

#[tokio::test]
async fn a_message_given_twice_is_published_once_by_message_id_or_body() {
    let Some(queue) = Queue::declare("amqp ingest twice").await else {
        return;
    };
    let w = World::start_with(ingest_from(&queue.url())).await;
    w.hook_at("*", "/in/").await;
    for _ in 0..2 {
        queue.put(&Put::json(order(1)).id("same-id")).await;
        queue.put(&Put::json(order(2))).await; // no id: the body's hash is the key
    }
    queue.put(&Put::json(order(3)).id("other-id")).await;
    wait_settled(&[w.app.addr], 5.0).await;
    assert_eq!(metric(w.app.addr, &outcome("published")).await, 3.0);
    assert_eq!(metric(w.app.addr, &outcome("replayed")).await, 2.0);
    let got = w.receiver.wait_for("/in/", 3, WAIT).await;
    assert_eq!(ns_of(&got), BTreeSet::from([1, 2, 3]));
    assert_eq!(increments(&got), BTreeSet::from([1, 2, 3]));
    queue.delete().await;
}

#[tokio::test]
async fn a_message_from_a_jetstream_consumer_is_published_once_with_its_trace() {
    let Some(subject) = Subject::create("nats ingest").await else {
        return;
    };
    let w = World::start_with(ingest_from(&subject.url())).await;
    w.hook_at("*", "/in/").await;
    let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
    subject.put(&Put::json(order(1)).id("n-1").trace(&traceparent)).await;
    // The same body twice without an id: JetStream keeps both, hookd publishes one.
    subject.put(&Put::json(order(2))).await;
    subject.put(&Put::json(order(2))).await;
    subject.put(&Put::raw(b"{")).await;
    wait_settled(&[w.app.addr], 4.0).await;
    let got = w.receiver.wait_for("/in/", 2, WAIT).await;
    assert_eq!(ns_of(&got), BTreeSet::from([1, 2]));
    assert_eq!(increments(&got), BTreeSet::from([1, 2]));
    let first = got.iter().find(|r| r.json()["message"]["n"] == 1).unwrap();
    assert!(first.header("traceparent").unwrap_or_default().contains(TRACE_ID));
    assert_eq!(metric(w.app.addr, &outcome("replayed")).await, 1.0);
    assert_eq!(
        metric(w.app.addr, "hookd_ingest_rejected_total{reason=\"not_json\"}").await,
        1.0
    );
    subject.wait_acked(WAIT).await;
    subject.delete().await;
}

#[tokio::test]
async fn a_stopped_server_consumes_again_from_where_its_durable_consumer_was() {
    let Some(subject) = Subject::create("nats ingest restart").await else {
        return;
    };
    let mut w = World::start_with(ingest_from(&subject.url())).await;
    w.hook_at("*", "/in/").await;
    subject.put(&Put::json(order(1))).await;
    w.receiver.wait_for("/in/", 1, WAIT).await;
    w.app.restart().await;
    subject.put(&Put::json(order(2))).await;
    let got = w.receiver.wait_for("/in/", 2, WAIT).await;
    assert_eq!(increments(&got), BTreeSet::from([1, 2]));
    subject.delete().await;
}

#[tokio::test]
async fn ingestion_goes_on_after_the_broker_closes_the_connection() {
    let vhost = broker_name("hookd-test-in-vh");
    if let Err(why) = rabbitmqctl(&["add_vhost", &vhost]).await {
        skipped(
            "amqp ingest reconnect",
            &format!("rabbitmqctl cannot add a vhost: {why}"),
        );
        return;
    }
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"])
        .await
        .unwrap();
    let base = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let Some(queue) = Queue::declare_at(&base, "amqp ingest reconnect").await else {
        return;
    };
    let w = World::start_with(ingest_from(&queue.url())).await;
    w.hook_at("*", "/in/").await;
    queue.put(&Put::json(order(1))).await;
    w.receiver.wait_for("/in/", 1, WAIT).await;

    rabbitmqctl(&["close_all_connections", "-p", &vhost, "closed by the test"])
        .await
        .unwrap();
    // The test's own connection went too.
    let again = Queue::declare_at(&base, "amqp ingest reconnect").await.unwrap();
    let again = Queue {
        name: queue.name.clone(),
        ..again
    };
    again.put(&Put::json(order(2))).await;
    let got = w.receiver.wait_for("/in/", 2, WAIT).await;
    assert_eq!(increments(&got), BTreeSet::from([1, 2]));
    let _ = rabbitmqctl(&["delete_vhost", &vhost]).await;
}

#[tokio::test]
async fn a_message_the_database_cannot_store_now_is_handed_back_and_published_once_it_can() {
    let Some(queue) = Queue::declare("amqp ingest transient").await else {
        return;
    };
    let w = World::start_with(ingest_from(&queue.url())).await;
    w.hook_at("*", "/in/").await;
    w.app.fail_on("INSERT", "events").await;
    queue.put(&Put::json(order(1)).id("held-back")).await;
    let deadline = Instant::now() + WAIT;
    while metric(w.app.addr, &outcome("given_back")).await < 2.0 {
        assert!(Instant::now() < deadline, "the message was not handed back twice");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(metric(w.app.addr, &outcome("rejected")).await, 0.0, "not dropped");
    assert!(w.receiver.received("/in/").is_empty());
    w.app.stop_failing("INSERT", "events").await;
    wait_settled(&[w.app.addr], 1.0).await;
    let got = w.receiver.wait_for("/in/", 1, WAIT).await;
    assert_eq!(increments(&got), BTreeSet::from([1]));
    queue.wait_empty(WAIT).await;
    queue.delete().await;
}
