//! Two `hookd serve` processes on one PostgreSQL database whose clocks disagree by a minute
//! (libfaketime puts one 30 s ahead, the other 30 s behind): every payload still arrives
//! exactly once, and the attempt log holds one row for every request the receiver saw.
//! Leases and due times are the database's clock's, not a node's.
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set and Debian's `faketime` is installed
//! (without it the test says SKIPPED, except under CI, where it fails); each run uses a fresh
//! database.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::helpers::skipped;
use crate::ledger::*;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

const EVENTS: u64 = 1000;
const BATCH: u64 = 50;
/// How far each node's clock is moved: A this far ahead, B this far behind.
const SKEW_SECS: i64 = 30;
const LEASE: Duration = Duration::from_secs(20);

/// A node's environment with its wall clock moved by `skew` (`+30s`, `-30s`). Only the
/// wall clock: the monotonic clock (tokio's timers) keeps running true.
fn node_env(database_url: &str, lib: &Path, skew: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_LEASE", format!("{}s", LEASE.as_secs())),
        ("HOOKD_REQUEST_TIMEOUT", "2s".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
        ("HOOKD_DB_MAX_CONNECTIONS", "8".into()),
        ("LD_PRELOAD", lib.display().to_string()),
        ("FAKETIME", skew.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_whose_clocks_disagree_send_each_payload_once_and_log_every_request() {
    let Some(db) = TestDatabase::create("clock_skew").await else {
        return;
    };
    let Some(lib) = libfaketime() else {
        let why = "no libfaketime (apt-get install faketime)";
        assert!(std::env::var_os("CI").is_none(), "clock_skew: {why}, and CI is set");
        skipped("clock_skew", why);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let receiver = TestReceiver::start().await;
    // Each attempt holds its lease a little while, so the nodes' claims overlap.
    receiver.set("/skew", Behaviour::Stall(Duration::from_millis(20)));
    let (ahead, behind) = (format!("+{SKEW_SECS}s"), format!("-{SKEW_SECS}s"));
    let (env_a, env_b) = (node_env(&db.url, &lib, &ahead), node_env(&db.url, &lib, &behind));
    let (a, b) = tokio::join!(
        Node::serve("A", dir.path(), &env_a),
        Node::serve("B", dir.path(), &env_b)
    );
    a.rpc("shop", &shop_key)
        .call_ok(
            "webhook.create",
            json!([{"topics": TOPIC, "url": receiver.url("/skew")}]),
        )
        .await;

    // Batches of publishes, alternating between the nodes.
    let (admin_a, admin_b) = (a.rpc("root", &admin_key), b.rpc("root", &admin_key));
    let acks = Acks::default();
    let publishers: Vec<_> = (0..EVENTS / BATCH)
        .map(|n| {
            let admin = if n % 2 == 0 { admin_a.clone() } else { admin_b.clone() };
            let acks = acks.clone();
            tokio::spawn(async move {
                let seqs: Vec<u64> = (n * BATCH..(n + 1) * BATCH).collect();
                let started = Instant::now();
                for (seq, outcome) in admin.publish_batch(&seqs).await {
                    acks.record(seq, started, outcome);
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("a publisher panicked");
    }
    // A publish answered "nothing was stored" (a node's first connections slow to open on a
    // loaded machine) is retried, as a client is told to: what this test is about is the
    // skew, not load, which `overload` covers. Anything else is a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let acked = acks.acked();
        let retry: Vec<u64> = (acks.failed().iter())
            .filter(|(seq, _, e)| !acked.contains(seq) && format!("{e:?}").contains("nothing was stored"))
            .map(|(seq, _, _)| *seq)
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .collect();
        if retry.is_empty() || Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        for (seq, outcome) in admin_a.publish_batch(&retry).await {
            acks.record(seq, started, outcome);
        }
    }
    let acked = acks.acked();
    assert_eq!(acked.len() as u64, EVENTS, "publishes failed: {:?}", acks.failed());

    let n = admin_a.increment_ids().await[&receiver.url("/skew")];
    assert_eq!(n, EVENTS as i64);
    wait_delivered(&receiver, "/skew", n, &acked, Instant::now() + Duration::from_secs(60)).await;

    // Both clocks really were moved, and both nodes delivered: the senders' clocks show in
    // each request's `webhook-timestamp`.
    let received = receiver.received("/skew");
    let offsets: Vec<i64> = received.iter().map(sender_offset).collect();
    assert!(
        offsets.iter().any(|o| *o >= SKEW_SECS - 5) && offsets.iter().any(|o| *o <= 5 - SKEW_SECS),
        "not both skewed nodes delivered (sender clock offsets seen: {:?})",
        offsets.iter().collect::<std::collections::BTreeSet<_>>()
    );

    // Every payload finishes, and its log then holds the requests the receiver saw.
    let mut conn = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (queued, logged) = loop {
        let (queued, logged): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM deliveries WHERE status <> 'success'), \
                    (SELECT count(*) FROM delivery_attempts)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("counting payloads and attempts");
        let requests = receiver.received("/skew").len() as i64;
        if (queued == 0 && logged == requests) || Instant::now() > deadline {
            break (queued, logged);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tally = check_delivered("/skew", &receiver.received("/skew"), n, &acked);
    eprintln!("clock_skew: {tally:?}, {logged} attempts logged");
    assert_eq!(queued, 0, "payloads not delivered successfully");
    assert_eq!(
        tally.duplicates, 0,
        "{} of {n} payloads were sent twice or more",
        tally.duplicates
    );
    assert_eq!(
        logged, tally.requests as i64,
        "the attempt log holds {logged} attempts, the receiver saw {} requests",
        tally.requests
    );
    a.assert_no_panic();
    b.assert_no_panic();
}

/// How far the sender's clock was ahead of this one's (in whole seconds) when it sent `r`,
/// by its `webhook-timestamp` header.
fn sender_offset(r: &crate::receiver::Received) -> i64 {
    let sent: i64 = r
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("a webhook-timestamp header");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = now.saturating_sub(r.at.elapsed()).as_secs() as i64;
    sent - at
}
