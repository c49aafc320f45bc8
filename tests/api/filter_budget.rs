//! A merchant's costly filter must not hold up another merchant's publishes (issue: one
//! filter took 56 s of CPU per event on the shared publish path). Through the API, with a
//! real receiver, on either backend (`HOOKD_TEST_BACKEND`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;

/// The 1.8 KB expression: a macro over 900 literal elements, each turn matching the
/// topic against a pattern that compiles to megabytes (regex compiled per call, before).
fn stall_expression() -> String {
    format!(
        "[{}].exists(i, topic.matches(\"\\\\w{{300}}\"))",
        vec!["0"; 900].join(",")
    )
}

async fn publish_for(w: &World, code: &str, n: u64) -> Value {
    w.as_admin(
        "event.publish",
        json!(["order:created", {"n": n}, {"merchant_code": code}]),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_costly_filter_is_refused_and_one_stored_earlier_does_not_hold_up_another_merchant() {
    let w = World::start().await;
    let stall = stall_expression();
    assert!(stall.len() > 1800, "{}", stall.len());

    // Through the API the expression is refused, saying why; nothing is stored.
    let data = json!({"topics": "order:*", "url": w.receiver.url("/a"), "filter": stall});
    let resp = w.app.create_webhook(&w.shop, data).await;
    assert_invalid_data(&resp, "filter: a list literal has 900 elements, more than 256");
    assert!(w.app.list_webhooks(&w.shop).await.is_empty());

    // One stored before that rule (written straight into the database) still runs, under
    // its budget: false for every event, and quickly.
    let costly = w
        .hook(json!({"topics": "order:*", "url": w.receiver.url("/a"), "filter": "true"}))
        .await;
    let plain_a = w.hook_at("order:*", "/a-plain").await;
    w.app
        .execute_sql(&format!(
            "UPDATE webhooks SET filter = '{stall}' WHERE id = {}",
            id_of(&costly)
        ))
        .await;

    // Another merchant with a plain webhook.
    let other = unique("other");
    let other_session = w.app.merchant_session(&other).await;
    let resp = w
        .app
        .create_webhook(
            &other_session,
            json!({"topics": "order:*", "url": w.receiver.url("/b")}),
        )
        .await;
    assert_eq!(assert_ok(&resp), &json!(true));

    // The first merchant publishes without pause while the other publishes one event at a
    // time and times each answer.
    let hostile = {
        let (client, endpoint) = (w.app.client.clone(), w.app.endpoint.clone());
        let (admin, code) = (w.admin.clone(), w.code.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut n = 0;
            while Instant::now() < deadline {
                let body = json!({"jsonrpc": "2.0", "id": n, "method": "call", "params": [
                    null, "event.publish", ["order:created", {"n": n}, {"merchant_code": code}]]});
                let sent = (client.post(&endpoint).basic_auth(&admin.0, Some(&admin.1)))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send();
                let resp: Value = serde_json::from_slice(&sent.await.unwrap().bytes().await.unwrap()).unwrap();
                assert_eq!(
                    assert_ok(&resp)["payloads"],
                    1,
                    "only the plain webhook: the costly filter is false"
                );
                n += 1;
            }
            n
        })
    };
    let mut latencies = Vec::new();
    for n in 0..60 {
        let started = Instant::now();
        let resp = publish_for(&w, &other, n).await;
        latencies.push(started.elapsed());
        assert_eq!(assert_ok(&resp)["payloads"], 1);
    }
    let published_a = hostile.await.unwrap();
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100];
    assert!(
        p95 < Duration::from_millis(250),
        "the other merchant's publish p95 is {p95:?} (max {:?})",
        latencies.last()
    );
    assert!(published_a >= 5, "the costly merchant kept publishing: {published_a}");

    // Everything the filter let through (nothing) and everything plain was delivered.
    assert_eq!(w.receiver.wait_for("/b", 60, Duration::from_secs(20)).await.len(), 60);
    assert_eq!(
        w.receiver
            .wait_for("/a-plain", published_a as usize, Duration::from_secs(20))
            .await
            .len(),
        published_a as usize
    );
    assert_eq!(w.increment_id(id_of(&costly)).await, 0);
    assert_eq!(w.increment_id(id_of(&plain_a)).await, published_a as i64);
    let metrics = reqwest::get(format!("http://{}/metrics", w.app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("# TYPE hookd_filter_over_budget counter"), "{metrics}");
}
