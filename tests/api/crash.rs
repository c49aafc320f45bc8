//! Accepted means durable (CONTRACT.md §4): `kill -9` of the real `hookd serve` on SQLite,
//! while events are being published and delivered, loses no acknowledged event. After a
//! restart on the same file every payload arrives at least once, with gap-free increment ids,
//! and a redelivery repeats the same bytes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ledger::*;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

const PUBLISHERS: usize = 8;
/// Events published (and made undeliverable) for the webhook deleted before the kill.
const BEFORE_DELETE: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_while_publishing_loses_no_acknowledged_event_and_redelivers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let admin_key = user_add(dir.path(), &database_url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        (
            "HOOKD_RETRY_SCHEDULE",
            "100ms,200ms,400ms,800ms,1s,1s,1s,1s".to_string(),
        ),
    ];
    let receiver = TestReceiver::start().await;
    // A slow receiver keeps attempts in flight at the moment of the kill.
    receiver.set("/slow/", Behaviour::Stall(Duration::from_millis(40)));
    receiver.set("/gone/", Behaviour::Status(500));
    let paths = ["/fast/", "/slow/", "/also/"];

    let mut first = Node::serve("first", dir.path(), &env).await;
    let shop = first.rpc("shop", &shop_key);
    let admin = first.rpc("root", &admin_key);
    for path in paths.iter().chain(&["/gone/"]) {
        let hook = json!({"topics": TOPIC, "url": receiver.url(path)});
        shop.call_ok("webhook.create", json!([hook])).await;
    }

    // The webhook to delete gets payloads that keep failing, then is deleted.
    let acks = Acks::default();
    for seq in 0..BEFORE_DELETE {
        let started = Instant::now();
        acks.record(seq, started, admin.publish(seq).await);
    }
    assert_eq!(acks.acked_count() as u64, BEFORE_DELETE);
    receiver
        .wait_for("/gone/", BEFORE_DELETE as usize, Duration::from_secs(10))
        .await;
    let hooks = shop.call_ok("webhook.list", json!([])).await;
    let gone = hooks
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["url"] == receiver.url("/gone/"))
        .expect("the webhook to delete")["webhook_id"]
        .clone();
    assert_eq!(shop.call_ok("webhook.delete", json!([gone])).await, json!(true));

    // Eight publishers, without pause, until the kill.
    let next = Arc::new(AtomicU64::new(BEFORE_DELETE));
    let stop = Arc::new(AtomicBool::new(false));
    let publishers = spawn_publishers(PUBLISHERS, &admin, &next, &stop, &acks, Duration::ZERO);
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(15);
    while load_started.elapsed() < Duration::from_millis(1500) || acks.acked_count() < 100 {
        assert!(
            Instant::now() < deadline,
            "only {} publishes acknowledged in 15 s",
            acks.acked_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_before_kill = receiver.received("/").len();
    first.kill();
    stop.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await.expect("a publisher panicked");
    }
    first.assert_no_panic();
    let acked = acks.acked();
    let attempted = next.load(Ordering::SeqCst);
    let unknown = acks.failed().len();
    eprintln!(
        "crash: killed after {:?}: {} publishes acknowledged, {unknown} unanswered, \
         {delivered_before_kill} requests delivered before the kill",
        load_started.elapsed(),
        acked.len()
    );

    // Restart on the same file.
    let restarted_at = Instant::now();
    let second = Node::serve("second", dir.path(), &env).await;
    if let Some(line) = second.logged("released leases") {
        eprintln!("crash: {line}");
    }
    let shop = second.rpc("shop", &shop_key);
    let increments = shop.increment_ids().await;
    assert!(
        !increments.contains_key(&receiver.url("/gone/")),
        "the deleted webhook is back"
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut ns = Vec::new();
    for path in paths {
        let n = increments[&receiver.url(path)];
        wait_delivered(&receiver, path, n, &acked, deadline).await;
        ns.push(n);
    }
    let recovered = restarted_at.elapsed();
    for (path, n) in paths.iter().zip(&ns) {
        let tally = check_delivered(path, &receiver.received(path), *n, &acked);
        assert!(
            *n as u64 <= attempted,
            "{path}: {n} payloads from {attempted} publishes"
        );
        eprintln!("crash: {path} {tally:?}");
    }
    assert!(ns.iter().all(|n| *n == ns[0]), "every webhook got every event: {ns:?}");

    // The deleted webhook's payloads stayed cancelled across the restart: none is queued in
    // the file, and none reached the receiver from the new process.
    let db = rusqlite::Connection::open(hookd::store::sqlite::file_path(&database_url).unwrap()).unwrap();
    let queued: i64 = db
        .query_row(
            "SELECT count(*) FROM deliveries WHERE webhook_id = ?1 AND status IN ('pending', 'retrying')",
            [gone.as_i64().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(queued, 0, "the deleted webhook still has queued payloads");
    let late: Vec<_> = receiver
        .received("/gone/")
        .into_iter()
        .filter(|r| r.at >= restarted_at)
        .collect();
    assert!(
        late.is_empty(),
        "the deleted webhook got {} requests after the restart",
        late.len()
    );
    second.assert_no_panic();
    eprintln!("crash: all delivered {recovered:?} after the restart");
}
