//! Two `hookd serve` nodes on one PostgreSQL database under more publishes than their pools
//! hold connections (issue 27, item 4): a burst is queued, not failed, and every
//! acknowledged event arrives; when PostgreSQL connections die under a publish, the answer
//! says whether anything was stored, and a retry with the same idempotency key never makes
//! a second payload.
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set; each run uses a fresh database.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ledger::*;
use crate::process::*;
use crate::receiver::TestReceiver;

const CLIENTS: u64 = 48;
const PUBLISHES_EACH: u64 = 250;

/// A node with a pool far smaller than the clients hitting it.
fn node_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_RETRY_SCHEDULE", "100ms,200ms,400ms,800ms,1s,1s,1s,1s".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
        ("HOOKD_DB_MAX_CONNECTIONS", "3".into()),
        ("HOOKD_DB_ACQUIRE_TIMEOUT", "1s".into()),
    ]
}

/// Two nodes, an admin key, and one webhook on `path` of a fresh receiver.
async fn two_nodes(db: &TestDatabase, dir: &std::path::Path, path: &str) -> (Node, Node, String, TestReceiver) {
    let admin_key = user_add(dir, &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir, &db.url, "shop", &["--merchant", "shop1"]).await;
    let env = node_env(&db.url);
    let (a, b) = tokio::join!(Node::serve("A", dir, &env), Node::serve("B", dir, &env));
    let receiver = TestReceiver::start().await;
    let hook = json!({"topics": TOPIC, "url": receiver.url(path)});
    a.rpc("shop", &shop_key).call_ok("webhook.create", json!([hook])).await;
    (a, b, admin_key, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_burst_on_two_nodes_with_small_pools_is_queued_and_never_failed() {
    let Some(db) = TestDatabase::create("overload_burst").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin_key, receiver) = two_nodes(&db, dir.path(), "/burst/").await;
    let nodes = [a.rpc("root", &admin_key), b.rpc("root", &admin_key)];

    let acks = Acks::default();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (node, acks) = (nodes[(client % 2) as usize].clone(), acks.clone());
            tokio::spawn(async move {
                for i in 0..PUBLISHES_EACH {
                    let seq = client * PUBLISHES_EACH + i;
                    let sent = Instant::now();
                    acks.record(seq, sent, node.publish(seq).await);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("a client panicked");
    }
    let failed = acks.failed();
    eprintln!(
        "overload: {} publishes in {:?}, {} failed",
        CLIENTS * PUBLISHES_EACH,
        started.elapsed(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} publishes failed; the first: {:?}",
        failed.len(),
        CLIENTS * PUBLISHES_EACH,
        failed.iter().take(3).map(|(seq, _, e)| (seq, e)).collect::<Vec<_>>()
    );

    let acked = acks.acked();
    let n = nodes[0].increment_ids().await[&receiver.url("/burst/")];
    assert_eq!(n, acked.len() as i64, "one payload per acknowledged publish");
    wait_delivered(
        &receiver,
        "/burst/",
        n,
        &acked,
        Instant::now() + Duration::from_secs(120),
    )
    .await;
    check_delivered("/burst/", &receiver.received("/burst/"), n, &acked);
    a.assert_no_panic();
    b.assert_no_panic();
}

/// What one failed publish told its client.
#[derive(Debug, PartialEq)]
enum Told {
    /// Nothing was stored: a retry is safe.
    NothingStored,
    /// The outcome is unknown: retry with the same idempotency key.
    OutcomeUnknown,
    /// Anything else (a bare "Internal error", a transport failure…).
    Other(String),
}

fn told(failure: &Failure) -> Told {
    let Failure::Rpc(text) = failure else {
        return Told::Other(format!("{failure:?}"));
    };
    let Ok(answer) = serde_json::from_str::<Value>(text) else {
        return Told::Other(text.clone());
    };
    let error = &answer["error"];
    let said = format!("{} {}", error["message"], error["data"]);
    match error["code"].as_i64() {
        Some(-32603) if said.contains("nothing was stored") => Told::NothingStored,
        Some(-32603) if said.contains("outcome is unknown") && said.contains("same idempotency key") => {
            Told::OutcomeUnknown
        }
        _ => Told::Other(text.clone()),
    }
}

const KEYED_CLIENTS: u64 = 8;
const KEYED_EACH: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_while_postgres_connections_die_say_whether_anything_was_stored_and_retries_never_duplicate() {
    let Some(db) = TestDatabase::create("overload_terminate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin_key, receiver) = two_nodes(&db, dir.path(), "/kill/").await;
    let nodes = [a.rpc("root", &admin_key), b.rpc("root", &admin_key)];
    let db_name = db.url.rsplit('/').next().unwrap().to_string();

    // Every server connection to the test database is terminated, again and again, while
    // the clients publish.
    let stop = Arc::new(AtomicBool::new(false));
    let mut admin = db.connect().await;
    let killer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut killed = 0_i64;
            while !stop.load(Ordering::SeqCst) {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&db_name)
                .fetch_one(&mut admin)
                .await
                .expect("terminating the nodes' connections");
                killed += n;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            killed
        }
    });

    // Each client publishes its events with idempotency keys, retrying each until stored.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..KEYED_CLIENTS)
        .map(|client| {
            let nodes = nodes.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                for i in 0..KEYED_EACH {
                    let seq = client * KEYED_EACH + i;
                    let key = format!("event-{seq}");
                    let deadline = Instant::now() + Duration::from_secs(60);
                    for attempt in 0.. {
                        let node = &nodes[((client + attempt) % 2) as usize];
                        let args = json!([TOPIC, {"seq": seq}, {"idempotency_key": key}]);
                        match node.call("event.publish", args).await {
                            Ok(_) => break,
                            Err(e) => answers.lock().unwrap().push((seq, told(&e))),
                        }
                        assert!(Instant::now() < deadline, "seq {seq} was never stored");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("a client panicked");
    }
    stop.store(true, Ordering::SeqCst);
    let killed = killer.await.expect("the killer panicked");

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let count = |t: Told| answers.iter().filter(|(_, a)| *a == t).count();
    eprintln!(
        "overload: {killed} connections terminated; {} failed publishes: {} nothing stored, {} outcome unknown",
        answers.len(),
        count(Told::NothingStored),
        count(Told::OutcomeUnknown)
    );
    assert!(killed > 0, "no connection was terminated");
    let other: Vec<_> = answers.iter().filter(|(_, a)| matches!(a, Told::Other(_))).collect();
    assert!(
        other.is_empty(),
        "{} failed publishes said neither 'nothing was stored' nor 'outcome unknown'; the first: {:?}",
        other.len(),
        &other[..other.len().min(3)]
    );

    // Every event stored exactly once, however often it was retried.
    let all: BTreeSet<u64> = (0..KEYED_CLIENTS * KEYED_EACH).collect();
    // The first reads after the killing may meet pooled connections it ended: those are
    // answered "unavailable, retry", so read until one succeeds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let n = loop {
        match nodes[0].call("webhook.list", serde_json::json!([])).await {
            Ok(hooks) => {
                let url = receiver.url("/kill/");
                let hook = hooks
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|h| h["url"] == url.as_str())
                    .cloned();
                break hook.expect("the webhook is listed")["increment_id"].as_i64().unwrap();
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "webhook.list kept failing: {e:?}");
                assert!(matches!(told(&e), Told::NothingStored), "a read answered {e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(n, all.len() as i64, "one payload per event, retries included");
    wait_delivered(&receiver, "/kill/", n, &all, Instant::now() + Duration::from_secs(60)).await;
    check_delivered("/kill/", &receiver.received("/kill/"), n, &all);
    a.assert_no_panic();
    b.assert_no_panic();
}
