//! The operator metrics of issue 26 on `GET /metrics`: build info, API call durations by
//! method (a bounded label set whatever callers send), attempts by status class, publish
//! batch sizes, the age of the oldest due payload and the database pools' figures. Runs on
//! the suite's backend.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::delivery_support::*;
use crate::helpers::{assert_ok, Backend};
use crate::receiver::Behaviour;

async fn scrape(w: &World) -> String {
    let url = w.app.endpoint.replace("/api/jsonrpc", "/metrics");
    reqwest::get(&url).await.unwrap().text().await.unwrap()
}

/// The value of the sample line starting with `series ` (e.g. `name{label="x"}`).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until `done` holds (20 s at most); the last text.
async fn scrape_until(w: &World, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(w).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} not seen in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn calls_attempts_and_batches_are_measured_under_bounded_labels() {
    let w = World::start_with(|c| schedule(c, "20ms")).await;
    w.hook_at("order:created", "/fine").await;
    w.hook_at("order:created", "/broken").await;
    w.receiver.set("/broken", Behaviour::Sequence(vec![500]));
    let call = |n: i64| {
        json!({"jsonrpc": "2.0", "id": n, "method": "call",
               "params": [null, "event.publish", ["order:created", {"n": n}]]})
    };
    let (status, answers) = w
        .app
        .rpc_basic(&w.admin.0, &w.admin.1, json!([call(1), call(2), call(3)]))
        .await;
    assert_eq!(status, 200);
    for answer in answers.as_array().unwrap() {
        assert_ok(answer);
    }
    // Hostile method names are counted, but under "unknown", never as a label of their own.
    let hostile = json!({"jsonrpc": "2.0", "id": 9, "method": "x\"}<script>", "params": []});
    let _ = w.app.rpc_basic(&w.admin.0, &w.admin.1, hostile).await;
    w.receiver.wait_for("/fine", 3, Duration::from_secs(20)).await;
    w.receiver.wait_for("/broken", 4, Duration::from_secs(20)).await;

    let text = scrape_until(&w, "the 2xx attempts", |t| {
        value(t, "hookd_delivery_attempts_by_status_total{class=\"2xx\"}") == Some(6.0)
    })
    .await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&text, &format!("hookd_build_info{{version=\"{version}\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hookd_api_request_duration_seconds_count{method=\"event.publish\"}"
        ),
        Some(3.0),
        "each call of the batch on its own:\n{text}"
    );
    assert_eq!(
        value(&text, "hookd_api_request_duration_seconds_count{method=\"unknown\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("script"), "{text}");
    assert_eq!(
        value(&text, "hookd_delivery_attempts_by_status_total{class=\"5xx\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "hookd_delivery_attempts_by_status_total{class=\"none\"}"),
        Some(0.0),
        "{text}"
    );
    // Shared by every store of this test process: at least this test's three events.
    let batched = value(&text, "hookd_publish_batch_size_sum").unwrap_or(0.0);
    assert!(batched >= 3.0, "{text}");
    match Backend::from_env() {
        Backend::Sqlite => assert!(value(&text, "hookd_db_waiting{pool=\"writer\"}").is_some(), "{text}"),
        Backend::Postgres => {
            for pool in ["api", "work", "publish"] {
                let in_use = value(&text, &format!("hookd_db_connections_in_use{{pool=\"{pool}\"}}"));
                assert!(in_use.is_some_and(|n| n >= 0.0), "{pool}: {text}");
            }
            assert!(value(&text, "hookd_db_waiting{pool=\"publish\"}").is_some(), "{text}");
        }
    }
}

#[tokio::test]
async fn the_oldest_due_payload_s_wait_is_shown_and_goes_back_to_zero() {
    let w = World::start_with(|c| {
        c.app.delivery.per_webhook = 1;
    })
    .await;
    w.hook_at("order:created", "/slow").await;
    w.receiver.set("/slow", Behaviour::Stall(Duration::from_millis(1500)));
    for n in 0..3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    // One at a time, 1.5 s each: the others wait, due, and their wait grows.
    let text = scrape_until(&w, "a wait of a second", |t| {
        value(t, "hookd_queue_oldest_due_seconds").is_some_and(|s| s >= 1.0)
    })
    .await;
    assert!(text.contains("# TYPE hookd_queue_oldest_due_seconds gauge"), "{text}");
    w.receiver.wait_for("/slow", 3, Duration::from_secs(20)).await;
    scrape_until(&w, "no wait once all are sent", |t| {
        value(t, "hookd_queue_oldest_due_seconds") == Some(0.0)
    })
    .await;
}
