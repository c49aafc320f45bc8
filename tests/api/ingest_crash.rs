//! Ingestion survives `kill -9` and shares a queue between nodes (CONTRACT §7.5): the real
//! `hookd serve` consumes a RabbitMQ queue while messages keep arriving; it is killed,
//! restarted, and every message is published exactly once (one increment id per message,
//! no gaps, no extras), however often the broker gave it. On PostgreSQL, two nodes consuming
//! one queue that holds every message twice publish each once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::Backend;
use crate::ingest::{metric, outcome, wait_settled};
use crate::ingest_support::*;
use crate::process::*;
use crate::receiver::{Received, TestReceiver};

/// The database of a process test on the suite's backend: a file in `dir`, or a fresh
/// PostgreSQL database (None, reported skipped, without `HOOKD_TEST_POSTGRES_URL`).
async fn database(dir: &Path, test: &str) -> Option<(String, Option<TestDatabase>)> {
    match Backend::from_env() {
        Backend::Sqlite => Some((format!("sqlite://{}", dir.join("hookd.db").display()), None)),
        Backend::Postgres => {
            let db = TestDatabase::create(test).await?;
            Some((db.url.clone(), Some(db)))
        }
    }
}

/// Each message's `n` → the increment ids it was delivered under.
fn publications(got: &[Received]) -> BTreeMap<i64, Vec<i64>> {
    let mut by_n: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in got {
        let n = r.json()["message"]["n"].as_i64().unwrap();
        let ids = by_n.entry(n).or_default();
        if !ids.contains(&r.increment_id()) {
            ids.push(r.increment_id());
        }
    }
    by_n
}

/// Waits until the receiver has seen every `n` of `0..count`.
async fn wait_all(receiver: &TestReceiver, count: i64, within: Duration) -> BTreeMap<i64, Vec<i64>> {
    let deadline = Instant::now() + within;
    loop {
        let by_n = publications(&receiver.received("/in/"));
        if by_n.len() as i64 >= count {
            return by_n;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} messages delivered within {within:?}",
            by_n.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message once: its own increment id, and the ids exactly 1..=count.
fn assert_once_each(by_n: &BTreeMap<i64, Vec<i64>>, count: i64) {
    let twice: Vec<_> = by_n.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "published more than once: {twice:?}");
    let mut ids: Vec<i64> = by_n.values().flatten().copied().collect();
    ids.sort();
    assert_eq!(ids, (1..=count).collect::<Vec<_>>(), "increment ids are 1..={count}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_during_ingestion_loses_no_message_and_publishes_none_twice() {
    const COUNT: i64 = 400;
    let Some(queue) = Queue::declare("ingest kill -9").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((database_url, _db)) = database(dir.path(), "ingest kill -9").await else {
        return;
    };
    let shop_key = user_add(dir.path(), &database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_RETRY_SCHEDULE", "100ms,200ms,400ms,800ms,1s".to_string()),
        // On PostgreSQL the killed node's delivery leases hold its payloads until they end.
        ("HOOKD_REQUEST_TIMEOUT", "1s".to_string()),
        ("HOOKD_LEASE", "3s".to_string()),
        ("HOOKD_INGEST", queue.url()),
    ];
    let receiver = TestReceiver::start().await;
    let mut first = Node::serve("first", dir.path(), &env).await;
    let shop = first.rpc("shop", &shop_key);
    let hook = json!({"topics": "*", "url": receiver.url("/in/")});
    shop.call_ok("webhook.create", json!([hook])).await;

    // Messages keep arriving (each with its own message id) while the node is killed.
    let queue = Arc::new(queue);
    let killed = Arc::new(AtomicBool::new(false));
    let putter = tokio::spawn({
        let (queue, killed) = (queue.clone(), killed.clone());
        async move {
            let mut put_before_kill = 0;
            for n in 0..COUNT {
                let message = json!({"topic": "order:created", "message": {"n": n}});
                queue.put(&Put::json(message).id(&format!("crash-{n}"))).await;
                if !killed.load(Ordering::SeqCst) {
                    put_before_kill = n + 1;
                }
            }
            put_before_kill
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received("/in/").len() < 40 {
        assert!(Instant::now() < deadline, "no deliveries before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ingested = metric(first.addr, &outcome("published")).await;
    first.kill();
    killed.store(true, Ordering::SeqCst);
    first.assert_no_panic();
    let put_before_kill = putter.await.unwrap();
    eprintln!(
        "ingest crash: killed with {put_before_kill} of {COUNT} messages put, about {ingested} published, {} deliveries",
        receiver.received("/in/").len()
    );

    let second = Node::serve("second", dir.path(), &env).await;
    let by_n = wait_all(&receiver, COUNT, Duration::from_secs(60)).await;
    queue.wait_empty(Duration::from_secs(20)).await;
    // Whatever the second node was given again (unacknowledged at the kill) it settled.
    let second_settled =
        metric(second.addr, &outcome("published")).await + metric(second.addr, &outcome("replayed")).await;
    eprintln!(
        "ingest crash: the restarted node published {} and replayed {}",
        metric(second.addr, &outcome("published")).await,
        metric(second.addr, &outcome("replayed")).await
    );
    assert!(second_settled >= 1.0);
    assert_once_each(&publications(&receiver.received("/in/")), COUNT);
    assert_eq!(by_n.len() as i64, COUNT);
    second.assert_no_panic();
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgresql_nodes_consuming_one_queue_publish_nothing_twice() {
    const COUNT: i64 = 150;
    if Backend::from_env() != Backend::Postgres {
        crate::skip::skipped(
            "ingest two nodes",
            "runs on PostgreSQL only (HOOKD_TEST_BACKEND=postgres)",
        );
        return;
    }
    let Some(queue) = Queue::declare("ingest two nodes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((database_url, _db)) = database(dir.path(), "ingest two nodes").await else {
        return;
    };
    let shop_key = user_add(dir.path(), &database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_INGEST", queue.url()),
    ];
    let receiver = TestReceiver::start().await;
    let a = Node::serve("a", dir.path(), &env).await;
    let b = Node::serve("b", dir.path(), &env).await;
    a.rpc("shop", &shop_key)
        .call_ok("webhook.create", json!([{"topics": "*", "url": receiver.url("/in/")}]))
        .await;
    // Every message twice, one after the other: the two copies go to either node.
    for n in 0..COUNT {
        let put = Put::json(json!({"topic": "order:created", "message": {"n": n}})).id(&format!("two-{n}"));
        queue.put(&put).await;
        queue.put(&put).await;
    }
    wait_settled(&[a.addr, b.addr], 2.0 * COUNT as f64).await;
    let published = metric(a.addr, &outcome("published")).await + metric(b.addr, &outcome("published")).await;
    let per_node = [
        metric(a.addr, &outcome("published")).await + metric(a.addr, &outcome("replayed")).await,
        metric(b.addr, &outcome("published")).await + metric(b.addr, &outcome("replayed")).await,
    ];
    eprintln!("ingest two nodes: messages settled per node {per_node:?}");
    assert_eq!(published, COUNT as f64, "each message published once over both nodes");
    assert!(per_node.iter().all(|n| *n > 0.0), "both nodes consumed: {per_node:?}");
    let by_n = wait_all(&receiver, COUNT, Duration::from_secs(30)).await;
    assert_once_each(&by_n, COUNT);
    a.assert_no_panic();
    b.assert_no_panic();
    queue.delete().await;
}
