//! Payloads a PostgreSQL node leases to itself as its publishes insert them (the hand-off,
//! `store::handoff`): they are sent without a claim, and a node stopped with SIGTERM gives
//! back those it had not started, so another node sends them at once rather than after
//! their lease (60 s).
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set; each run uses a fresh database.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::ledger::*;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

const EVENTS: u64 = 40;
/// The default `per_webhook_concurrency`.
const PER_WEBHOOK: usize = 16;

fn node_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_REQUEST_TIMEOUT", "3s".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
    ]
}

/// Pending payloads whose lease names this owner pattern.
async fn leased(conn: &mut sqlx::PgConnection, owner: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM deliveries WHERE lease_owner LIKE $1 AND status IN ('pending', 'retrying')",
    )
    .bind(owner)
    .fetch_one(conn)
    .await
    .expect("counting leases");
    n
}

/// A fresh database with an admin and a shop user, and a receiver whose `/slow/` answers
/// after `stall` (so a node's 16 slots stay busy and the rest wait in its hand-off).
struct Setup {
    db: TestDatabase,
    dir: tempfile::TempDir,
    admin_key: String,
    shop_key: String,
    env: Vec<(&'static str, String)>,
    receiver: TestReceiver,
}

impl Setup {
    async fn new(name: &str, stall: Duration) -> Option<Setup> {
        let db = TestDatabase::create(name).await?;
        let dir = tempfile::tempdir().unwrap();
        let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
        let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
        let env = node_env(&db.url);
        let receiver = TestReceiver::start().await;
        receiver.set("/slow/", Behaviour::Stall(stall));
        Some(Setup {
            db,
            dir,
            admin_key,
            shop_key,
            env,
            receiver,
        })
    }

    async fn node(&self, name: &str) -> Node {
        Node::serve(name, self.dir.path(), &self.env).await
    }

    /// The shop's webhook on `/slow/`, made through `node`; its id.
    async fn webhook(&self, node: &Node) -> serde_json::Value {
        let shop = node.rpc("shop", &self.shop_key);
        let hook = json!({"topics": TOPIC, "url": self.receiver.url("/slow/")});
        shop.call_ok("webhook.create", json!([hook])).await;
        shop.call_ok("webhook.list", json!([])).await[0]["webhook_id"].clone()
    }

    /// Publishes the events on `node` in one batch, which leases every payload to it at
    /// insert, and waits until its 16 slots have taken the first ones (the rest wait in its
    /// hand-off while `/slow/` stalls).
    async fn publish_and_fill_the_slots(&self, node: &Node) {
        let seqs: Vec<u64> = (0..EVENTS).collect();
        let outcomes = node.rpc("root", &self.admin_key).publish_batch(&seqs).await;
        assert!(outcomes.iter().all(|(_, o)| o.is_ok()), "{outcomes:?}");
        let first = self
            .receiver
            .wait_for("/slow/", PER_WEBHOOK, Duration::from_secs(10))
            .await;
        assert_eq!(first.len(), PER_WEBHOOK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_gracefully_gives_back_the_payloads_it_leased_at_publish_and_had_not_sent() {
    let Some(setup) = Setup::new("handoff", Duration::from_secs(1)).await else {
        return;
    };
    let receiver = &setup.receiver;
    let mut a = setup.node("A").await;
    setup.webhook(&a).await;

    // One JSON-RPC batch: one group commit, which leases every payload to A as it inserts them.
    let seqs: Vec<u64> = (0..EVENTS).collect();
    let acks = Acks::default();
    let started = Instant::now();
    for (seq, outcome) in a.rpc("root", &setup.admin_key).publish_batch(&seqs).await {
        acks.record(seq, started, outcome);
    }
    assert_eq!(acks.acked_count(), EVENTS as usize, "{:?}", acks.failed());
    let a_leases = format!("%-{}-%", a.pid());
    let mut conn = setup.db.connect().await;
    assert_eq!(
        leased(&mut conn, &a_leases).await,
        EVENTS as i64,
        "every payload leased to A at insert"
    );
    let first = receiver.wait_for("/slow/", 1, Duration::from_secs(10)).await;
    assert!(!first.is_empty(), "A sends what it leased");

    // SIGTERM while 16 are in flight and the rest wait: the attempts in flight finish, the
    // waiting payloads are given back.
    assert!(a.terminate(Duration::from_secs(15)).await, "A did not stop within 15 s");
    let sent_by_a = receiver.received("/slow/").len();
    assert!(
        (PER_WEBHOOK..EVENTS as usize).contains(&sent_by_a),
        "A stopped having sent {sent_by_a} of {EVENTS}: expected its slots' worth, not all"
    );
    assert_eq!(leased(&mut conn, "%").await, 0, "A left payloads leased");

    // B sends the rest long before a lease (60 s) could have run out.
    receiver.set("/slow/", Behaviour::Status(200));
    let _b = setup.node("B").await;
    let all = receiver
        .wait_for("/slow/", EVENTS as usize, Duration::from_secs(20))
        .await;
    let mut ids: Vec<i64> = all.iter().map(|r| r.increment_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (1..=EVENTS as i64).collect::<Vec<_>>(), "every payload arrives");
    assert_eq!(all.len(), EVENTS as usize, "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_waiting_in_a_node_s_hand_off_are_not_sent_once_another_node_deleted_their_webhook() {
    let Some(setup) = Setup::new("handoff_delete", Duration::from_millis(1500)).await else {
        return;
    };
    let receiver = &setup.receiver;
    let (a, b) = tokio::join!(setup.node("A"), setup.node("B"));
    let id = setup.webhook(&a).await;

    setup.publish_and_fill_the_slots(&a).await;
    // Deleted on B while the rest wait in A's hand-off.
    let deleted = b
        .rpc("shop", &setup.shop_key)
        .call_ok("webhook.delete", json!([id]))
        .await;
    assert_eq!(deleted, json!(true));

    // B's word makes A give them back (`hookd_changed`); should it not arrive, A's slots
    // come free after 1.5 s, and what waited is confirmed first, and found canceled.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        receiver.received("/slow/").len(),
        PER_WEBHOOK,
        "A sent payloads of a webhook deleted before they left its hand-off"
    );
    a.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_waiting_in_the_hand_off_follow_a_webhook_update_made_on_the_same_node() {
    let Some(setup) = Setup::new("handoff_update", Duration::from_millis(1500)).await else {
        return;
    };
    let a = setup.node("A").await;
    waiting_payloads_follow_an_update(&setup, &a, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_waiting_in_the_hand_off_follow_a_webhook_update_made_on_another_node() {
    // The payloads still wait in A's hand-off when the update lands through B, and only B's
    // word (`hookd_changed`) tells A: the confirmation a payload waiting past `FRESH` gets
    // checks its lease and that its webhook is active, not its URL. The stall leaves that
    // word two seconds to arrive (0.7 s, which kept the payloads fresh, was too short for a
    // loaded machine), within the nodes' 3 s request timeout.
    let Some(setup) = Setup::new("handoff_update_afar", Duration::from_secs(2)).await else {
        return;
    };
    let (a, b) = tokio::join!(setup.node("A"), setup.node("B"));
    waiting_payloads_follow_an_update(&setup, &a, &b).await;
    b.assert_no_panic();
}

/// Publishes on `a` (which leases every payload to itself) and, while the rest wait in its
/// hand-off, moves the webhook to another URL and makes it ordered through `through`; then
/// the waiting payloads must go to the new URL, one at a time in increment order.
async fn waiting_payloads_follow_an_update(setup: &Setup, a: &Node, through: &Node) {
    let receiver = &setup.receiver;
    let id = setup.webhook(a).await;
    setup.publish_and_fill_the_slots(a).await;
    receiver.set("/moved/", Behaviour::Stall(Duration::from_millis(50)));
    let change = json!({"url": receiver.url("/moved/"), "ordered": true});
    let updated = through
        .rpc("shop", &setup.shop_key)
        .call_ok("webhook.update", json!([id, change]))
        .await;
    assert_eq!(updated, json!(true));

    let rest = EVENTS as usize - PER_WEBHOOK;
    let moved = receiver.wait_for("/moved/", rest, Duration::from_secs(20)).await;
    let ids: Vec<i64> = moved.iter().map(|r| r.increment_id()).collect();
    assert_eq!(
        ids,
        (PER_WEBHOOK as i64 + 1..=EVENTS as i64).collect::<Vec<_>>(),
        "the rest arrive at the new URL in order"
    );
    assert_eq!(
        receiver.received("/slow/").len(),
        PER_WEBHOOK,
        "nothing handed before the update went to the old URL"
    );
    a.assert_no_panic();
}
