//! Several `hookd serve` processes on one PostgreSQL database (CONTRACT.md §4): sessions
//! work on every node, increment ids stay gap-free under publishing on both, and when one
//! node is killed the other finishes its work once the leases expire, with no more
//! duplicates than the leases the dead node held.
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set; each run uses a fresh database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ledger::*;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

const EVENTS: u64 = 3000;
/// Publishing stops early after this long (a loaded machine), to keep the test short.
const PUBLISH_FOR: Duration = Duration::from_secs(30);
const BATCH: u64 = 10;
const PUBLISHERS: usize = 8;
/// Node B is killed once this many publishes are acknowledged, or after `KILL_BY`.
const KILL_AFTER: usize = 1000;
const KILL_BY: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(6);
/// The default `per_webhook_concurrency`: what one node may have in flight per webhook.
const PER_WEBHOOK: usize = 16;

/// Each node's connections carry its name (`application_name` hookd-A, hookd-B, …), so the
/// test can tell when a killed node's backends are gone.
fn node_env(database_url: &str, node: &str) -> Vec<(&'static str, String)> {
    let mut url = url::Url::parse(database_url).expect("the test database URL");
    url.query_pairs_mut()
        .append_pair("application_name", &format!("hookd-{node}"));
    vec![
        ("HOOKD_DATABASE_URL", url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_RETRY_SCHEDULE", "100ms,200ms,400ms,800ms,1s,1s,1s,1s".into()),
        ("HOOKD_LEASE", format!("{}s", LEASE.as_secs())),
        ("HOOKD_REQUEST_TIMEOUT", "2s".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
        ("HOOKD_DB_MAX_CONNECTIONS", "8".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_database_and_the_survivor_finishes_a_killed_node_s_work() {
    let Some(db) = TestDatabase::create("multinode").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let (env_a, env_b) = (node_env(&db.url, "A"), node_env(&db.url, "B"));
    let receiver = TestReceiver::start().await;
    // A slow receiver: each node always has attempts in flight, so B dies holding leases
    // (and some of its attempts have already arrived: those come again from A).
    receiver.set("/two/", Behaviour::Stall(Duration::from_millis(100)));
    let (a, mut b) = tokio::join!(
        Node::serve("A", dir.path(), &env_a),
        Node::serve("B", dir.path(), &env_b)
    );

    // A session made on one node works on the other.
    let (shop_a, shop_b) = (a.rpc("shop", &shop_key), b.rpc("shop", &shop_key));
    let session = shop_a.login().await;
    shop_b
        .call_session(&session, "webhook.list", json!([]))
        .await
        .expect("A's session on B");
    let session = shop_b.login().await;
    shop_a
        .call_session(&session, "webhook.list", json!([]))
        .await
        .expect("B's session on A");

    let paths = ["/one/", "/two/"];
    for path in paths {
        let hook = json!({"topics": TOPIC, "url": receiver.url(path)});
        shop_a.call_ok("webhook.create", json!([hook])).await;
    }

    // Batches of publishes, alternating between the nodes while B lives.
    let (admin_a, admin_b) = (a.rpc("root", &admin_key), b.rpc("root", &admin_key));
    let acks = Acks::default();
    let next = Arc::new(AtomicU64::new(0));
    let b_dead = Arc::new(AtomicBool::new(false));
    let load_started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (admin_a, admin_b) = (admin_a.clone(), admin_b.clone());
            let (acks, next, b_dead) = (acks.clone(), next.clone(), b_dead.clone());
            tokio::spawn(async move {
                loop {
                    let start = next.fetch_add(BATCH, Ordering::SeqCst);
                    if start >= EVENTS || load_started.elapsed() > PUBLISH_FOR {
                        return;
                    }
                    let seqs: Vec<u64> = (start..(start + BATCH).min(EVENTS)).collect();
                    // Taken before the choice, so a batch sent to B started before the kill.
                    let started = Instant::now();
                    let to_b = (start / BATCH) % 2 == 1 && !b_dead.load(Ordering::SeqCst);
                    let node = if to_b { &admin_b } else { &admin_a };
                    for (seq, outcome) in node.publish_batch(&seqs).await {
                        acks.record(seq, started, outcome);
                    }
                }
            })
        })
        .collect();
    while acks.acked_count() < KILL_AFTER && load_started.elapsed() < KILL_BY {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(acks.acked_count() > 0, "nothing acknowledged in {KILL_BY:?}");

    // Kill B at a moment it holds leases (with /two/ answering in 100 ms, an attempt holds
    // its lease at least that long); what it holds then is stranded until the leases expire.
    let b_pid = b.pid();
    let b_leases = format!("%-{b_pid}-%");
    let mut conn = db.connect().await;
    let wait_until = Instant::now() + KILL_BY;
    loop {
        let (held,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM deliveries WHERE lease_owner LIKE $1 AND status IN ('pending', 'retrying')",
        )
        .bind(&b_leases)
        .fetch_one(&mut conn)
        .await
        .expect("counting B's leases");
        if held > 0 || Instant::now() > wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b_dead.store(true, Ordering::SeqCst);
    b.kill();
    let killed_at = Instant::now();
    let killed_unix_ms = unix_ms();
    // A statement B sent just before it died still runs to its end and commits (an outcome
    // write would end some of B's leases): B's leases are read once its backends are gone.
    loop {
        let (backends,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'hookd-B%'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("counting B's backends");
        if backends == 0 {
            break;
        }
        assert!(
            killed_at.elapsed() < KILL_BY,
            "B's {backends} backends outlived it by {KILL_BY:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stranded: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, webhook_id, lease_until FROM deliveries \
         WHERE lease_owner LIKE $1 AND status IN ('pending', 'retrying')",
    )
    .bind(&b_leases)
    .fetch_all(&mut conn)
    .await
    .expect("reading B's leases");
    for p in publishers {
        p.await.expect("a publisher panicked");
    }
    let published_in = load_started.elapsed();
    let published_at = Instant::now();
    b.assert_no_panic();
    let acked = acks.acked();
    let failed = acks.failed();
    let published = acked.len() + failed.len();
    assert!(
        failed.iter().all(|(_, started, _)| *started < killed_at),
        "a publish to A failed: {:?}",
        failed.iter().find(|(_, started, _)| *started >= killed_at)
    );
    eprintln!(
        "multinode: {published} publishes in {published_in:?}: {} acknowledged, {} unanswered \
         (in flight to B at the kill); B held {} leases when killed",
        acked.len(),
        failed.len(),
        stranded.len()
    );

    // Everything arrives; ids are gap-free; B's stranded payloads are sent by A.
    let increments = admin_a.increment_ids().await;
    let deadline = Instant::now() + LEASE + Duration::from_secs(20);
    let mut complete = killed_at;
    for path in paths {
        let n = increments[&receiver.url(path)];
        complete = complete.max(wait_delivered(&receiver, path, n, &acked, deadline).await);
    }
    let mut duplicates = 0;
    for path in paths {
        let n = increments[&receiver.url(path)];
        let tally = check_delivered(path, &receiver.received(path), n, &acked);
        eprintln!("multinode: {path} {tally:?}");
        duplicates += tally.duplicates;
    }
    // B's leases are its attempts in flight, plus attempts the receiver had already got whose
    // outcome B had not written back yet (a lane's slot frees when the receiver answers; the
    // lease covers the write-back, whose wait grows with the database's load). Of the leased
    // payloads the receiver never got, B had at most PER_WEBHOOK per webhook in flight, and
    // four times as many waiting in its hand-off (leased at insert, not yet started).
    let all = receiver.received("/");
    // When the receiver got payload `id` (its webhook-id), each time.
    let arrivals = |id: &i64| -> Vec<Instant> {
        let message_id = format!("msg_{id}");
        let of_id = all
            .iter()
            .filter(|r| r.header("webhook-id") == Some(message_id.as_str()));
        of_id.map(|r| r.at).collect()
    };
    let unsent = stranded
        .iter()
        .filter(|(id, _, _)| !arrivals(id).iter().any(|at| *at <= killed_at))
        .count();
    eprintln!(
        "multinode: of B's {} leases, {unsent} were of payloads the receiver had not got",
        stranded.len()
    );
    let bound = 5 * PER_WEBHOOK * paths.len();
    assert!(
        unsent <= bound,
        "B held {unsent} leases of payloads not yet sent, more than its {bound} slots and hand-off room"
    );
    // Only what B held can come twice, each at most once more.
    assert!(
        duplicates <= stranded.len(),
        "{duplicates} duplicate deliveries, more than the {} leases B held",
        stranded.len()
    );

    let mut taken_over = Vec::new();
    for (id, webhook, lease_until) in &stranded {
        let after_kill = arrivals(id)
            .into_iter()
            .filter(|at| *at > killed_at)
            .map(|at| at - killed_at)
            .min();
        let after =
            after_kill.unwrap_or_else(|| panic!("B's stranded delivery {id} (webhook {webhook}) was never sent again"));
        // A waited for B's lease: it sent the payload only once the lease had run out.
        let expires = Duration::from_millis((lease_until - killed_unix_ms).max(0) as u64);
        assert!(
            after + Duration::from_millis(50) >= expires,
            "A sent B's leased delivery {id} {after:?} after the kill, its lease ran {expires:?}"
        );
        taken_over.push(after);
    }
    taken_over.sort();
    assert!(
        !stranded.is_empty(),
        "B held no leases when killed: takeover not exercised"
    );
    let last = *taken_over.last().unwrap();
    eprintln!(
        "multinode: A resent B's {} stranded payloads {:?}..{last:?} after the kill",
        stranded.len(),
        taken_over[0]
    );
    assert!(
        last <= LEASE + Duration::from_secs(5),
        "A took {last:?} to take over B's leases"
    );
    eprintln!(
        "multinode: {duplicates} duplicates in all; everything delivered {:?} after the kill, \
         {:?} after the last publish",
        complete - killed_at,
        complete.saturating_duration_since(published_at)
    );
    a.assert_no_panic();
}

/// Wall-clock now in unix milliseconds (how leases are stored).
fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("a clock after 1970").as_millis() as i64
}
