//! Pacing a webhook's deliveries (CONTRACT §6.2), with a real receiver, on the backend the
//! suite runs on: `ordered` webhooks get their payloads one at a time in increment order,
//! a failing head holding the rest back; `max_rate` caps the arrival rate (across two nodes
//! on PostgreSQL too); and concurrency adapts to a receiver that answers 429 when crowded.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;
use crate::process::{user_add, Node, TestDatabase};
use crate::receiver::{Behaviour, Received, TestReceiver};

const TOPIC: &str = "order:created";
const WAIT: Duration = Duration::from_secs(30);

/// The most arrivals within any half-open window of `window`.
fn most_within(arrivals: &[Instant], window: Duration) -> usize {
    (0..arrivals.len())
        .map(|i| arrivals[i..].iter().take_while(|&&t| t - arrivals[i] < window).count())
        .max()
        .unwrap_or(0)
}

fn increments(received: &[Received]) -> Vec<i64> {
    received.iter().map(Received::increment_id).collect()
}

#[tokio::test]
async fn an_ordered_webhook_gets_one_payload_at_a_time_in_increment_order_behind_a_failing_head() {
    // Five attempts a payload: 100 ms apart.
    let w = World::start_with(|c| schedule(c, "100ms,100ms,100ms,100ms")).await;
    // One head fails three times, then succeeds; the other fails all five and becomes failed.
    w.receiver.set("/recovers", Behaviour::Sequence(vec![500, 503, 500]));
    w.receiver.set("/gives-up", Behaviour::Sequence(vec![500; 5]));
    let recovers = id_of(
        &w.hook(json!({"topics": TOPIC, "url": w.receiver.url("/recovers"), "ordered": true}))
            .await,
    );
    let gives_up = id_of(
        &w.hook(json!({"topics": TOPIC, "url": w.receiver.url("/gives-up"), "ordered": true}))
            .await,
    );
    for n in 1..=10 {
        w.publish_ok(TOPIC, json!({"n": n})).await;
    }
    let got = w.receiver.wait_for("/recovers", 13, WAIT).await;
    assert_eq!(increments(&got), [vec![1; 4], (2..=10).collect()].concat());
    let got = w.receiver.wait_for("/gives-up", 14, WAIT).await;
    assert_eq!(
        increments(&got),
        [vec![1; 5], (2..=10).collect()].concat(),
        "nothing passes the head until it has failed"
    );
    w.wait_deliveries(gives_up, "all delivered but the head", WAIT, |list| {
        statuses(list).iter().filter(|&&s| s == "success").count() == 9
    })
    .await;
    w.wait_deliveries(recovers, "all delivered", WAIT, |list| {
        statuses(list).iter().all(|&s| s == "success")
    })
    .await;
    // Each webhook had one request open at a time (and the two lanes may overlap).
    assert!(w.receiver.most_at_once() <= 2, "{} at once", w.receiver.most_at_once());
    assert_eq!(w.receiver.received("").len(), 27, "nothing sent twice");
}

#[tokio::test]
async fn an_ordered_webhook_sends_its_next_payload_once_the_head_is_done_not_at_the_next_scan() {
    // Queue scans far apart: only the dispatcher's own bookkeeping can move the order along.
    let w = World::start_with(|c| c.app.delivery.poll_interval = Duration::from_secs(10)).await;
    let id = id_of(
        &w.hook(json!({"topics": TOPIC, "url": w.receiver.url("/in-order"), "ordered": true}))
            .await,
    );
    // The head is held at the receiver while the rest queue up behind it.
    w.receiver
        .set("/in-order", Behaviour::Stall(Duration::from_millis(500)));
    for n in 1..=20 {
        w.publish_ok(TOPIC, json!({"n": n})).await;
    }
    w.receiver.set("/in-order", Behaviour::Status(200));
    let started = Instant::now();
    let got = w.receiver.wait_for("/in-order", 20, WAIT).await;
    assert_eq!(increments(&got), (1..=20).collect::<Vec<_>>());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "20 ordered payloads took {:?}: the next one waited for a queue scan",
        started.elapsed()
    );
    w.wait_deliveries(id, "all delivered", WAIT, |list| {
        statuses(list).iter().all(|&s| s == "success")
    })
    .await;
}

/// Waits for `n` arrivals and checks they kept to 5 a second: the bucket's burst at 5/s is
/// one token, so no half-open second holds more than 5 (one more allowed for timing noise),
/// and 20 take at least 19 × 200 ms less that slack.
async fn assert_kept_to_five_a_second(receiver: &TestReceiver, path: &str, n: usize) {
    let got = receiver.wait_for(path, n, WAIT).await;
    let arrivals: Vec<Instant> = got.iter().map(|r| r.at).collect();
    let span = arrivals[n - 1] - arrivals[0];
    assert!(span >= Duration::from_millis(3500), "{n} arrivals took only {span:?}");
    let most = most_within(&arrivals, Duration::from_secs(1));
    assert!(most <= 6, "{most} arrivals within one second at max_rate 5");
    let mut incs = increments(&got);
    incs.sort();
    assert_eq!(incs, (1..=n as i64).collect::<Vec<_>>(), "each payload once");
}

#[tokio::test]
async fn max_rate_caps_the_arrival_rate() {
    let w = World::start().await;
    w.hook(json!({"topics": TOPIC, "url": w.receiver.url("/paced"), "max_rate": 5}))
        .await;
    let other = w.hook_at(TOPIC, "/free").await;
    for n in 1..=20 {
        w.publish_ok(TOPIC, json!({"n": n})).await;
    }
    // A webhook without a cap is not held back by its neighbour's.
    let free = w.receiver.wait_for("/free", 20, Duration::from_secs(3)).await;
    assert_eq!(free.len(), 20, "webhook {}", id_of(&other));
    assert_kept_to_five_a_second(&w.receiver, "/paced", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_holds_across_two_nodes_sharing_postgresql() {
    let Some(db) = TestDatabase::create("steering_pacing").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let receiver = TestReceiver::start().await;
    let env = vec![
        ("HOOKD_DATABASE_URL", db.url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_POLL_INTERVAL", "100ms".to_string()),
    ];
    let (a, b) = tokio::join!(Node::serve("A", dir.path(), &env), Node::serve("B", dir.path(), &env));
    let shop = a.rpc("shop", &shop_key);
    shop.call_ok(
        "webhook.create",
        json!([{"topics": TOPIC, "url": receiver.url("/paced"), "max_rate": 5}]),
    )
    .await;
    // Both nodes dispatch, and publishes on both wake both: with a bucket per node the
    // webhook would get 10 a second.
    let (pa, pb) = (a.rpc("root", &admin_key), b.rpc("root", &admin_key));
    for n in 0..20u64 {
        let node = if n % 2 == 0 { &pa } else { &pb };
        node.publish(n).await.expect("publishing");
    }
    assert_kept_to_five_a_second(&receiver, "/paced", 20).await;
    a.assert_no_panic();
    b.assert_no_panic();
}

/// Every attempt of every payload of the webhook, oldest first: (when, HTTP status).
async fn attempts(w: &World, hook: i64) -> Vec<(String, i64)> {
    let mut all = Vec::new();
    for d in w.deliveries(hook).await {
        let info = w.info(d["delivery_id"].as_i64().unwrap()).await;
        for a in attempt_log(&info) {
            let at = a["attempted_at"].as_str().or(a["at"].as_str()).unwrap_or_default();
            all.push((at.to_string(), a["http_status"].as_i64().unwrap_or(0)));
        }
    }
    all.sort();
    all
}

fn share_429(attempts: &[(String, i64)]) -> f64 {
    attempts.iter().filter(|(_, s)| *s == 429).count() as f64 / attempts.len().max(1) as f64
}

#[tokio::test]
async fn concurrency_shrinks_for_a_crowded_receiver_and_everything_is_delivered() {
    let w = World::start_with(|c| {
        c.app.delivery.per_webhook = 16;
        schedule(c, &["100ms"; 30].join(","));
    })
    .await;
    let crowded = Behaviour::Crowded {
        max_open: 2,
        hold: Duration::from_millis(30),
    };
    w.receiver.set("/crowded", crowded);
    let hook = id_of(&w.hook_at(TOPIC, "/crowded").await);
    // A backlog at once: one JSON-RPC batch of 120 publishes.
    let batch: Vec<Value> = (0..120)
        .map(|n| {
            json!({"jsonrpc": "2.0", "id": n, "method": "call",
                   "params": [null, "event.publish", [TOPIC, {"n": n}]]})
        })
        .collect();
    let (_, answers) = w.app.rpc_basic(&w.admin.0, &w.admin.1, Value::Array(batch)).await;
    for answer in answers.as_array().expect("a batch answer") {
        assert_ok(answer);
    }
    w.wait_deliveries(hook, "all delivered", Duration::from_secs(60), |list| {
        list.len() == 120 && statuses(list).iter().all(|&s| s == "success")
    })
    .await;
    let log = attempts(&w, hook).await;
    let (warm_up, rest) = log.split_at(40);
    let (early, late) = (share_429(warm_up), share_429(rest));
    println!(
        "429 share: {early:.2} in the first 40 attempts, {late:.2} in the {} after",
        rest.len()
    );
    assert!(
        late < 0.4 && late + 0.1 < early,
        "429 share: {early:.2} in the first 40 attempts, {late:.2} after ({} attempts)",
        log.len()
    );
}
