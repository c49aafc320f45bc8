//! CONTRACT §7.6 with a collector: `hookd serve` (the real binary) with `HOOKD_OTLP_ENDPOINT`
//! pointing at an OTLP/HTTP receiver inside the test, which decodes the protobuf export
//! requests. Checks span names, parent links and trace ids from the caller's `traceparent` to
//! each attempt (retries included) and the `traceparent` the webhook receiver saw; and that a
//! collector that is down never holds deliveries up. Both backends (`HOOKD_TEST_BACKEND`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::helpers::Backend;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An OTLP/HTTP trace receiver: keeps every span it is sent.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
                    let mut kept = kept.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            kept.extend(scope.spans);
                        }
                    }
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { addr, spans }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received.
    async fn wait(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
            assert!(Instant::now() < deadline, "no {what} within 20 s; spans: {names:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

/// The database for a process test on the suite's backend (None: skipped), and its URL.
async fn database(dir: &std::path::Path, test: &str) -> Option<(Option<TestDatabase>, String)> {
    match Backend::from_env() {
        Backend::Sqlite => Some((None, format!("sqlite://{}", dir.join("hookd.db").display()))),
        Backend::Postgres => {
            let db = TestDatabase::create(test).await?;
            let url = db.url.clone();
            Some((Some(db), url))
        }
    }
}

/// A node exporting to `otlp`, with an admin and a merchant "shop1" (their keys).
async fn node(dir: &std::path::Path, database_url: &str, otlp: String) -> (Node, String, String) {
    let admin_key = user_add(dir, database_url, "root", &["--admin"]).await;
    let shop_key = user_add(dir, database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_RETRY_SCHEDULE", "50ms,50ms".to_string()),
        ("HOOKD_OTLP_ENDPOINT", otlp),
        // Batches leave every 100 ms rather than every 5 s (the SDK's own setting).
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    (Node::serve("traced", dir, &env).await, admin_key, shop_key)
}

async fn publish_traced(node: &Node, admin_key: &str, traceparent: Option<&str>, n: u64) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                      "params": [null, "event.publish", [TOPIC, {"n": n}]]});
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/api/jsonrpc", node.addr))
        .basic_auth("root", Some(admin_key))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&request.send().await.unwrap().bytes().await.unwrap()).unwrap();
    assert!(answer["result"]["event_id"].is_i64(), "{answer}");
}

#[tokio::test]
async fn spans_link_the_caller_s_trace_to_the_api_call_and_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, database_url)) = database(dir.path(), "spans_link_the_caller_s_trace").await else {
        return;
    };
    let collector = Collector::start().await;
    let (node, admin_key, shop_key) = node(dir.path(), &database_url, format!("http://{}", collector.addr)).await;
    let receiver = TestReceiver::start().await;
    receiver.set("/traced", Behaviour::Sequence(vec![500]));
    node.rpc("shop", &shop_key)
        .call_ok(
            "webhook.create",
            json!([{"topics": TOPIC, "url": receiver.url("/traced?token=secret")}]),
        )
        .await;
    publish_traced(&node, &admin_key, Some(PARENT), 1).await;
    let got = receiver.wait_for("/traced", 2, Duration::from_secs(20)).await;

    let trace = hex::decode("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let spans = collector
        .wait("the request, publish and two attempt spans", |spans| {
            spans.iter().filter(|s| s.trace_id == trace).count() >= 4
        })
        .await;
    let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let named = |name: &str| -> Vec<&Span> { in_trace.iter().copied().filter(|s| s.name == name).collect() };
    let server = named("POST /api/jsonrpc");
    assert_eq!(server.len(), 1, "{in_trace:?}");
    assert_eq!(
        server[0].parent_span_id,
        hex::decode("00f067aa0ba902b7").unwrap(),
        "the caller's span is the parent"
    );
    assert_eq!(server[0].kind, 2, "SERVER");
    assert_eq!(
        attr(server[0], "http.response.status_code"),
        Some(AnyValue::IntValue(200))
    );
    let publish = named("event.publish");
    assert_eq!(publish.len(), 1, "{in_trace:?}");
    assert_eq!(publish[0].parent_span_id, server[0].span_id);
    assert_eq!(
        attr(publish[0], "rpc.system"),
        Some(AnyValue::StringValue("jsonrpc".into()))
    );
    let attempts = named("POST");
    assert_eq!(
        attempts.len(),
        2,
        "one span per attempt, the retry in the same trace: {in_trace:?}"
    );
    let mut statuses = Vec::new();
    for a in &attempts {
        assert_eq!(
            a.parent_span_id, publish[0].span_id,
            "an attempt is a child of its publish"
        );
        assert_eq!(a.kind, 3, "CLIENT");
        let Some(AnyValue::StringValue(url)) = attr(a, "url.full") else {
            panic!("no url.full: {a:?}")
        };
        assert!(
            url.ends_with("/traced") && !url.contains("token"),
            "no query string: {url}"
        );
        statuses.push(attr(a, "http.response.status_code"));
    }
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(statuses, [Some(AnyValue::IntValue(200)), Some(AnyValue::IntValue(500))]);
    // The receiver saw each attempt's own span as the parent.
    let mut sent: Vec<String> = got
        .iter()
        .map(|r| r.header("traceparent").expect("a traceparent").to_string())
        .collect();
    let mut expected: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{}-{}-01", hex::encode(&a.trace_id), hex::encode(&a.span_id)))
        .collect();
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected);
    // No secret or body in any attribute.
    for span in &spans {
        for kv in &span.attributes {
            let text = format!("{:?}", kv.value);
            assert!(!text.contains("secret") && !text.contains(&admin_key), "{kv:?}");
        }
    }
    node.assert_no_panic();
}

#[tokio::test]
async fn a_collector_that_is_down_holds_no_delivery_up() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, database_url)) = database(dir.path(), "a_collector_that_is_down").await else {
        return;
    };
    // A port nothing listens on: every export is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (mut node, admin_key, shop_key) = node(dir.path(), &database_url, down).await;
    let receiver = TestReceiver::start().await;
    node.rpc("shop", &shop_key)
        .call_ok(
            "webhook.create",
            json!([{"topics": TOPIC, "url": receiver.url("/down")}]),
        )
        .await;
    let started = Instant::now();
    for n in 0..40 {
        publish_traced(&node, &admin_key, (n % 2 == 0).then_some(PARENT), n).await;
    }
    let got = receiver.wait_for("/down", 40, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 40);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "40 events took {:?}",
        started.elapsed()
    );
    assert!(node.is_running(), "{}", node.log_tail());
    node.assert_no_panic();
}
