//! A full disk (issue 9): publishes that cannot be stored are answered with an error that
//! says so (not a bare -32603), `/readyz` reports the node unready, nothing acknowledged is
//! lost, and once there is room again the node recovers by itself.
//!
//! The database lives on a small tmpfs mounted for the test, so this needs root (as CI
//! runs); elsewhere it says it was skipped.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ledger::*;
use crate::process::*;
use crate::receiver::{Behaviour, TestReceiver};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "resizing the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_said_as_such_reported_unready_and_loses_nothing_acknowledged() {
    let Some(disk) = SmallDisk::mount("3m") else {
        crate::helpers::skipped("the full-disk test", "mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", disk.dir.path().join("hookd.db").display());
    let admin_key = user_add(home.path(), &database_url, "root", &["--admin"]).await;
    let shop_key = user_add(home.path(), &database_url, "shop", &["--merchant", "shop1"]).await;
    let env = [
        ("HOOKD_DATABASE_URL", database_url.clone()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".to_string()),
        ("HOOKD_REQUEST_TIMEOUT", "10s".to_string()),
        ("HOOKD_RETRY_SCHEDULE", "200ms,200ms,500ms,1s,1s,1s,1s,1s".to_string()),
    ];
    // The receiver holds every delivery while the disk fills, so no outcome write (small
    // enough to fit where a publish no longer does) clears the failure before it is checked;
    // the held attempts time out after 10 s and are retried once the disk has room.
    let receiver = TestReceiver::start().await;
    receiver.set("/in/", Behaviour::Stall(Duration::from_secs(30)));
    let node = Node::serve("full", home.path(), &env).await;
    let shop = node.rpc("shop", &shop_key);
    shop.call_ok(
        "webhook.create",
        json!([{"topics": TOPIC, "url": receiver.url("/in/")}]),
    )
    .await;
    let admin = node.rpc("root", &admin_key);

    // Publish ~20 KB events until the disk is full.
    let pad = "x".repeat(20_000);
    let acks = Acks::default();
    let mut refusal = None;
    for seq in 0..2_000u64 {
        let started = Instant::now();
        let answer = admin
            .call("event.publish", json!([TOPIC, {"seq": seq, "pad": pad}]))
            .await;
        match answer {
            Ok(r) => acks.record(seq, started, Ok(r["event_id"].as_i64().unwrap())),
            Err(Failure::Rpc(text)) => {
                refusal = Some(text);
                break;
            }
            Err(e) => panic!("the node stopped answering: {e:?}\n{}", node.log_tail()),
        }
    }
    let refusal = refusal.expect("a 3 MB disk filled up");
    assert!(
        refusal.contains("storage is full"),
        "the error says what is wrong: {refusal}"
    );
    assert_eq!(
        admin.get_status("/readyz").await.unwrap(),
        503,
        "a node whose writes fail is not ready"
    );
    assert_eq!(admin.get_status("/healthz").await.unwrap(), 200, "but it is up");
    let acked = acks.acked();
    assert!(acked.len() > 10, "some publishes went in first ({})", acked.len());
    eprintln!("full disk: {} publishes acknowledged, then: {refusal}", acked.len());

    // Room again: the next write succeeds and the node is ready by itself.
    disk.resize("64m");
    receiver.set("/in/", Behaviour::Status(200));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 10_000;
    loop {
        seq += 1;
        let started = Instant::now();
        if let Ok(r) = admin.call("event.publish", json!([TOPIC, {"seq": seq}])).await {
            acks.record(seq, started, Ok(r["event_id"].as_i64().unwrap()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishing never recovered:\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        admin.get_status("/readyz").await.unwrap(),
        200,
        "ready again after a good write"
    );

    // Every acknowledged event arrives, with gap-free ids.
    let acked = acks.acked();
    let n = shop.increment_ids().await[&receiver.url("/in/")];
    wait_delivered(&receiver, "/in/", n, &acked, Instant::now() + Duration::from_secs(60)).await;
    check_delivered("/in/", &receiver.received("/in/"), n, &acked);
    node.assert_no_panic();
}
