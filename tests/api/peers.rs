//! Peer links (`HOOKD_PEER_LISTEN`, src/cluster): two `hookd serve` processes on one
//! PostgreSQL database, each forwarding a merchant's publishes to the merchant's owner node.
//! Whichever node a publish reaches, it is stored once, by the owner, with gap-free ids,
//! filters judged and idempotency keys kept; a link that does not prove the cluster's secret
//! or sends garbage is closed and stores nothing (what it forwarded before the garbage is
//! answered first); and when the owner is killed the other node stores the publishes itself.
//!
//! Runs only when `HOOKD_TEST_POSTGRES_URL` is set; each run uses a fresh database.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use hookd::cluster::wire;

use crate::process::*;
use crate::receiver::TestReceiver;

const EVENTS: u64 = 200;

fn node_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
        ("HOOKD_DB_MAX_CONNECTIONS", "8".into()),
        ("HOOKD_PEER_LISTEN", "127.0.0.1:0".into()),
        // A stopped node's leases run out soon (what it held is sent by the other).
        ("HOOKD_LEASE", "6s".into()),
    ]
}

/// A counter's value on the node's `/metrics` (0 when absent).
async fn counter(node: &Node, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("a metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn events_stored(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(conn)
        .await
        .expect("counting events")
}

/// Two nodes with peer links on a fresh database, each having seen the other.
struct Pair {
    db: TestDatabase,
    _dir: tempfile::TempDir,
    admin_key: String,
    shop_key: String,
    receiver: TestReceiver,
    a: Node,
    b: Node,
}

async fn two_nodes(test: &str) -> Option<Pair> {
    let db = TestDatabase::create(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let env = node_env(&db.url);
    let receiver = TestReceiver::start().await;
    let (a, b) = tokio::join!(Node::serve("A", dir.path(), &env), Node::serve("B", dir.path(), &env));
    // Each node records where it takes links; each reads the other within a beat (2 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.logged("peer links: 2 nodes live").is_none() || b.logged("peer links: 2 nodes live").is_none() {
        assert!(
            Instant::now() < deadline,
            "the nodes never saw each other:\n{}",
            a.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Pair {
        db,
        _dir: dir,
        admin_key,
        shop_key,
        receiver,
        a,
        b,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_s_publishes_are_stored_by_its_owner_node_whichever_node_takes_them() {
    let Some(Pair {
        db,
        _dir,
        admin_key,
        shop_key,
        receiver,
        a,
        b,
    }) = two_nodes("peers").await
    else {
        return;
    };
    let mut conn = db.connect().await;
    let peers: Vec<(String, String)> = sqlx::query_as("SELECT node, address FROM peers ORDER BY node")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(peers.len(), 2, "both nodes recorded: {peers:?}");

    let shop = a.rpc("shop", &shop_key);
    shop.call_ok(
        "webhook.create",
        json!([{"topics": TOPIC, "url": receiver.url("/all/")}]),
    )
    .await;
    let filter = "message.seq < 10";
    shop.call_ok(
        "webhook.create",
        json!([{"topics": TOPIC, "url": receiver.url("/few/"), "filter": filter}]),
    )
    .await;

    // Publishes alternate between the nodes, several at once.
    let (admin_a, admin_b) = (a.rpc("root", &admin_key), b.rpc("root", &admin_key));
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let (admin_a, admin_b) = (admin_a.clone(), admin_b.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for seq in (worker..EVENTS).step_by(8) {
                let node = if seq % 2 == 0 { &admin_a } else { &admin_b };
                ids.push(
                    node.publish(seq)
                        .await
                        .unwrap_or_else(|e| panic!("publish {seq}: {e:?}")),
                );
            }
            ids
        }));
    }
    let mut event_ids = Vec::new();
    for t in tasks {
        event_ids.extend(t.await.unwrap());
    }
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len() as u64, EVENTS, "each publish made its own event");

    // One node forwarded its half, the other stored it: every publish reached the owner.
    let name = "hookd_peer_publishes";
    let forwarded = (
        counter(&a, &format!("{name}_forwarded_total")).await,
        counter(&b, &format!("{name}_forwarded_total")).await,
    );
    let taken = (
        counter(&a, &format!("{name}_taken_total")).await,
        counter(&b, &format!("{name}_taken_total")).await,
    );
    let half = (EVENTS / 2) as f64;
    assert!(
        (forwarded == (half, 0.0) && taken == (0.0, half)) || (forwarded == (0.0, half) && taken == (half, 0.0)),
        "forwarded {forwarded:?}, taken {taken:?}"
    );
    let owner_is_a = taken.0 > 0.0;

    // Everything arrives once, ids gap-free; the filter was judged for forwarded ones too.
    let all = receiver
        .wait_for("/all/", EVENTS as usize, Duration::from_secs(30))
        .await;
    let mut seqs: Vec<u64> = all
        .iter()
        .map(|r| r.json()["message"]["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>());
    let mut ids: Vec<i64> = all.iter().map(|r| r.increment_id()).collect();
    ids.sort();
    assert_eq!(ids, (1..=EVENTS as i64).collect::<Vec<_>>());
    let few = receiver.wait_for("/few/", 10, Duration::from_secs(30)).await;
    let mut few_seqs: Vec<u64> = few
        .iter()
        .map(|r| r.json()["message"]["seq"].as_u64().unwrap())
        .collect();
    few_seqs.sort();
    assert_eq!(
        few_seqs,
        (0..10).collect::<Vec<_>>(),
        "the filter's events, from both nodes"
    );

    // An idempotency key holds across nodes and the link.
    let publish_keyed = |admin: &Rpc| {
        let admin = admin.clone();
        async move {
            admin
                .call_ok(
                    "event.publish",
                    json!([TOPIC, {"seq": 1000}, {"idempotency_key": "once"}]),
                )
                .await
        }
    };
    let first = publish_keyed(&admin_a).await;
    let again = publish_keyed(&admin_b).await;
    assert_eq!(first["event_id"], again["event_id"], "{first} / {again}");

    // Hostile links: no handshake, a wrong proof, garbage after a good handshake. Each is
    // closed and stores nothing; the nodes keep serving.
    // A node's name on the peers table holds its process id.
    let owner_pid = if owner_is_a { a.pid() } else { b.pid() };
    let owner_address: String = sqlx::query_scalar("SELECT address FROM peers WHERE node LIKE $1")
        .bind(format!("%-{owner_pid}-%"))
        .fetch_one(&mut conn)
        .await
        .expect("the owner's peer address");
    let before = events_stored(&mut conn).await;
    let closed = |mut s: TcpStream| async move {
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) if Instant::now() < deadline => continue,
                _ => panic!("the owner kept a hostile link open"),
            }
        }
    };
    let mut s = TcpStream::connect(&owner_address).await.unwrap();
    s.write_all(&[b'x'; 64]).await.unwrap();
    closed(s).await;
    let mut s = TcpStream::connect(&owner_address).await.unwrap();
    let refused = wire::dial_handshake(&mut s, b"a guessed secret").await;
    assert!(refused.is_err(), "a wrong secret was taken");
    closed(s).await;
    let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM peer_secret")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    for garbage in [
        [&5u32.to_be_bytes()[..], b"{nope"].concat(),
        u32::MAX.to_be_bytes().to_vec(),
        [&2u32.to_be_bytes()[..], b"{}"].concat(),
    ] {
        let mut s = TcpStream::connect(&owner_address).await.unwrap();
        wire::dial_handshake(&mut s, &secret).await.expect("the right secret");
        s.write_all(&garbage).await.unwrap();
        closed(s).await;
    }
    assert_eq!(
        events_stored(&mut conn).await,
        before,
        "a hostile link stored something"
    );
    // A forwarded publish, then garbage in the same write: what the owner took is answered
    // before it closes the link.
    let merchant: i64 = sqlx::query_scalar("SELECT id FROM merchants WHERE code = 'shop1'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let now = hookd::time::now_millis();
    let message = json!({"seq": 2500});
    let job = wire::Job {
        merchant: hookd::domain::MerchantId(merchant),
        topic: TOPIC.into(),
        body: hookd::domain::BodyTemplate::new(TOPIC, "shop1", message.as_object().unwrap(), now),
        key: None,
        now,
        verdicts: vec![(filter.into(), false)],
        trace: None,
        schema: None,
        key_check: None,
    };
    let mut bytes = Vec::new();
    wire::push_frame(&mut bytes, &wire::Request { id: 7, job });
    bytes.extend_from_slice(&[&5u32.to_be_bytes()[..], b"{nope"].concat());
    let mut s = TcpStream::connect(&owner_address).await.unwrap();
    wire::dial_handshake(&mut s, &secret).await.expect("the right secret");
    s.write_all(&bytes).await.unwrap();
    let mut replies = wire::FrameReader::new(s);
    let reply = tokio::time::timeout(Duration::from_secs(10), replies.next::<wire::Reply>())
        .await
        .expect("answered in time")
        .expect("a well-formed reply")
        .expect("a reply before the link closed");
    assert_eq!(reply.id, 7);
    assert!(
        matches!(
            reply.answer,
            wire::Answer::Published {
                payloads: 1,
                replayed: false,
                ..
            }
        ),
        "{:?}",
        reply.answer
    );
    let end = tokio::time::timeout(Duration::from_secs(10), replies.next::<wire::Reply>())
        .await
        .expect("the link closed in time");
    assert!(matches!(end, Ok(None)), "after the garbage: {end:?}");
    assert_eq!(
        events_stored(&mut conn).await,
        before + 1,
        "the one good frame stored once"
    );

    admin_a.publish(2000).await.expect("A still publishes");
    admin_b.publish(2001).await.expect("B still publishes");

    // Delivered before the kill (the owner holds their leases).
    receiver
        .wait_for("/all/", EVENTS as usize + 4, Duration::from_secs(30))
        .await;

    // The owner killed: the other node stores its publishes itself, at once.
    let (mut owner, other) = if owner_is_a { (a, b) } else { (b, a) };
    owner.kill();
    let admin_other = other.rpc("root", &admin_key);
    let mut failed = Vec::new();
    for seq in 3000..3050 {
        // A publish caught by the kill may answer "outcome unknown"; none after the link is seen down.
        if let Err(e) = admin_other.publish(seq).await {
            failed.push((seq, e));
        }
    }
    assert!(
        failed.len() <= 1 && failed.iter().all(|(s, _)| *s == 3000),
        "publishes failed after the owner died: {failed:?}"
    );
    let acked = (3000..3050).filter(|s| failed.iter().all(|(f, _)| f != s)).count();
    let after = receiver
        .wait_for("/all/", EVENTS as usize + 4 + acked, Duration::from_secs(30))
        .await;
    let late = after
        .iter()
        .filter(|r| r.json()["message"]["seq"].as_u64().unwrap() >= 3000)
        .count();
    assert!(
        late >= acked,
        "{late} of the {acked} publishes acknowledged after the kill arrived"
    );
    other.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_stopping_answers_what_it_was_forwarded_and_the_other_node_takes_over() {
    let Some(Pair {
        db: _db,
        _dir,
        admin_key,
        shop_key,
        receiver,
        a,
        b,
    }) = two_nodes("peers_stop").await
    else {
        return;
    };
    a.rpc("shop", &shop_key)
        .call_ok(
            "webhook.create",
            json!([{"topics": TOPIC, "url": receiver.url("/all/")}]),
        )
        .await;
    // Which node owns the merchant: the one that stores what the other forwards.
    let (admin_a, admin_b) = (a.rpc("root", &admin_key), b.rpc("root", &admin_key));
    admin_a.publish(0).await.unwrap();
    admin_b.publish(1).await.unwrap();
    let owner_is_a = counter(&a, "hookd_peer_publishes_taken_total").await > 0.0;
    let (mut owner, other, admin_other) = if owner_is_a { (a, b, admin_b) } else { (b, a, admin_a) };

    // Publishes go on through the other node while the owner stops (SIGTERM): none fails,
    // whether the owner stored it (before and while it drains) or the other node did.
    let publishing = tokio::spawn(async move {
        let mut failed = Vec::new();
        let started = Instant::now();
        let mut seq = 2;
        while started.elapsed() < Duration::from_secs(8) {
            if let Err(e) = admin_other.publish(seq).await {
                failed.push((seq, e));
            }
            seq += 1;
        }
        (seq - 2, failed)
    });
    tokio::time::sleep(Duration::from_millis(500)).await; // some publishes forwarded first
    assert!(owner.terminate(Duration::from_secs(30)).await, "the owner did not stop");
    let (published, failed) = publishing.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {published} publishes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(owner.logged("peer links").is_some());
    let all = receiver
        .wait_for("/all/", published as usize + 2, Duration::from_secs(90))
        .await;
    let mut ids: Vec<i64> = all.iter().map(|r| r.increment_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        (1..=published as i64 + 2).collect::<Vec<_>>(),
        "every acknowledged publish arrives, ids gap-free"
    );
    other.assert_no_panic();
}
