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

/// Publishes from the world's merchant without pause for `FOR`, while `other` publishes one
/// event at a time: `other`'s publish p95, and how many the first merchant published.
async fn contend(w: &World, other: &str) -> (Duration, u64) {
    const FOR: Duration = Duration::from_secs(3);
    let hostile = {
        let (client, endpoint) = (w.app.client.clone(), w.app.endpoint.clone());
        let (admin, code) = (w.admin.clone(), w.code.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + FOR;
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
    let deadline = Instant::now() + FOR;
    while Instant::now() < deadline || latencies.len() < 20 {
        let started = Instant::now();
        let resp = w
            .as_admin(
                "event.publish",
                json!(["order:created", {"n": latencies.len()}, {"merchant_code": other}]),
            )
            .await;
        latencies.push(started.elapsed());
        assert_eq!(assert_ok(&resp)["payloads"], 1);
    }
    let published = hostile.await.unwrap();
    latencies.sort();
    (latencies[latencies.len() * 95 / 100], published)
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

    // A webhook whose filter refuses everything cheaply, beside a plain one; and another
    // merchant with a plain webhook.
    let costly = w
        .hook(json!({"topics": "order:*", "url": w.receiver.url("/a"), "filter": "false"}))
        .await;
    let plain_a = w.hook_at("order:*", "/a-plain").await;
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

    // The other merchant's publish latency while the first publishes without pause: first
    // with the cheap filter (what this machine gives under this load), then with the
    // costly expression stored behind the API's back (as a row written before the rule
    // could be), which still runs, under its budget: false for every event, and quickly.
    let (cheap_p95, cheap_n) = contend(&w, &other).await;
    w.app
        .execute_sql(&format!(
            "UPDATE webhooks SET filter = '{stall}' WHERE id = {}",
            id_of(&costly)
        ))
        .await;
    let (costly_p95, costly_n) = contend(&w, &other).await;
    eprintln!(
        "filter_budget: other merchant's p95 {cheap_p95:?} beside a cheap filter, {costly_p95:?} beside the costly one"
    );
    // The bound is 250 ms; a machine busy with other tests may be slower than that
    // with no costly filter at all, so the bound is also twice what it gave then.
    let bound = Duration::from_millis(250).max(cheap_p95 * 2);
    assert!(
        costly_p95 < bound,
        "the other merchant's publish p95 is {costly_p95:?} beside the costly filter ({cheap_p95:?} beside a cheap one)"
    );
    assert!(costly_n >= 5, "the costly merchant kept publishing: {costly_n}");

    // Everything the filter let through (nothing) and everything plain was delivered.
    let published_a = (cheap_n + costly_n) as usize;
    let published_b = w.receiver.wait_for("/b", 1, Duration::from_secs(5)).await.len();
    assert!(published_b > 0);
    assert_eq!(
        w.receiver
            .wait_for("/a-plain", published_a, Duration::from_secs(30))
            .await
            .len(),
        published_a
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
