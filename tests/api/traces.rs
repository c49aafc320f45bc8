//! CONTRACT §7.6: a `traceparent` on `event.publish` is stored with the event and carried to
//! every attempt of its payloads (same trace id, a span id of each attempt's own); without
//! one, or with an invalid one (ignored, not an error), each event starts a trace; retries
//! stay in their event's trace. Runs on the suite's backend (SQLite or PostgreSQL).

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::assert_ok;
use crate::receiver::{Behaviour, Received};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A JSON-RPC body posted as the admin with these extra headers: the answer.
async fn post_as_admin(w: &World, body: Value, headers: &[(&str, &str)]) -> Value {
    let mut request = w
        .app
        .client
        .post(&w.app.endpoint)
        .basic_auth(&w.admin.0, Some(&w.admin.1))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the API answers");
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON answer")
}

async fn publish_with(w: &World, headers: &[(&str, &str)], n: i64) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                      "params": [null, "event.publish", ["order:created", {"n": n}]]});
    post_as_admin(w, body, headers).await
}

/// The `traceparent` a delivery request carried, split: (trace id, span id, flags); it must
/// be the only one, and valid.
fn trace_of(r: &Received) -> (String, String, String) {
    let all: Vec<_> = r.headers.get_all("traceparent").iter().collect();
    assert_eq!(all.len(), 1, "one traceparent header: {:?}", r.headers);
    let text = all[0].to_str().unwrap();
    let parts: Vec<&str> = text.split('-').collect();
    assert_eq!(parts.len(), 4, "{text}");
    assert_eq!(parts[0], "00", "{text}");
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    assert!(hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2), "{text}");
    assert!(parts[1] != "0".repeat(32) && parts[2] != "0".repeat(16), "{text}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[tokio::test]
async fn a_publish_s_traceparent_reaches_every_attempt_retries_included() {
    let w = World::start_with(|c| schedule(c, "20ms,20ms")).await;
    w.hook_at("order:created", "/traced").await;
    w.receiver.set("/traced", Behaviour::Sequence(vec![500, 503]));
    assert_ok(&publish_with(&w, &[("traceparent", PARENT)], 1).await);
    let got = w.receiver.wait_for("/traced", 3, Duration::from_secs(20)).await;
    let traces: Vec<_> = got.iter().map(trace_of).collect();
    for (trace, span, flags) in &traces {
        assert_eq!(trace, PARENT_TRACE, "every attempt is in the caller's trace");
        assert_ne!(span, PARENT_SPAN, "each attempt has a span id of its own");
        assert_eq!(flags, "01");
    }
    let mut spans: Vec<_> = traces.iter().map(|t| t.1.clone()).collect();
    spans.dedup();
    assert_eq!(spans.len(), 3, "a new span id per attempt: {traces:?}");
}

#[tokio::test]
async fn without_a_valid_traceparent_each_event_starts_a_trace_its_retries_keep() {
    let w = World::start_with(|c| schedule(c, "20ms,20ms,20ms")).await;
    w.hook_at("order:created", "/fresh").await;
    // The first request to /fresh fails: that event's retry must stay in its trace.
    w.receiver.set("/fresh", Behaviour::Sequence(vec![500]));
    // None, then hostile or malformed ones: ignored, never an error.
    let long = format!("00-{}", "a".repeat(10_000));
    let invalid: [&[(&str, &str)]; 5] = [
        &[],
        &[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
        &[("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")],
        &[("traceparent", &long)],
        // Two headers: which one is meant cannot be told, so neither is used.
        &[("traceparent", PARENT), ("traceparent", PARENT)],
    ];
    for (n, headers) in invalid.iter().enumerate() {
        let answer = publish_with(&w, headers, n as i64).await;
        assert_eq!(assert_ok(&answer)["payloads"], 1, "{answer}");
    }
    // Each event in one trace of its own, the retried one included.
    let got = w
        .receiver
        .wait_for("/fresh", 1 + invalid.len(), Duration::from_secs(20))
        .await;
    let mut by_event: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for r in &got {
        by_event.entry(r.increment_id()).or_default().push(trace_of(r).0);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (increment, traces) in &by_event {
        assert!(
            traces.iter().all(|t| t == &traces[0]),
            "payload {increment}: {traces:?}"
        );
        assert_ne!(traces[0], PARENT_TRACE, "payload {increment} took an ignored header");
        assert!(
            seen.insert(traces[0].clone()),
            "a trace of its own per event: {by_event:?}"
        );
    }
    assert_eq!(by_event.len(), invalid.len());
    assert!(
        by_event.values().any(|t| t.len() == 2),
        "one event was retried: {by_event:?}"
    );
}

#[tokio::test]
async fn each_publish_of_a_batch_and_a_webhook_s_own_traceparent_header_give_way_to_the_caller_s() {
    let w = World::start().await;
    w.hook(json!({"topics": "order:created", "url": w.receiver.url("/batch"),
                  "extra_headers": "traceparent: 00-11111111111111111111111111111111-1111111111111111-01"}))
        .await;
    let call = |n: i64| {
        json!({"jsonrpc": "2.0", "id": n, "method": "call",
               "params": [null, "event.publish", ["order:created", {"n": n}]]})
    };
    let answers = post_as_admin(&w, json!([call(1), call(2)]), &[("traceparent", PARENT)]).await;
    for answer in answers.as_array().expect("a batch answer") {
        assert_ok(answer);
    }
    let got = w.receiver.wait_for("/batch", 2, Duration::from_secs(20)).await;
    for r in &got {
        assert_eq!(trace_of(r).0, PARENT_TRACE, "{:?}", r.headers);
    }
}
