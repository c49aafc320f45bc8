//! hookd rides out a crash of its PostgreSQL server: during the outage requests may fail
//! but every one is answered (no hang, no crash), `/readyz` turns back to 200, publishing
//! works again, and every acknowledged event is delivered with gap-free increment ids.
//!
//! The server is stopped the way a crash stops it (`--mode immediate`: no shutdown
//! checkpoint, and recovery replays the WAL), so what committed without its WAL flush is
//! lost. A node alone on its webhooks, as here, commits each publish batch waiting for its
//! flush; one whose webhooks another node publishes to commits without waiting and waits
//! for the flush after (see `store/postgres/publisher.rs`). No batch may be acknowledged or
//! sent before its flush: an increment id sent and then lost would be given again to
//! another event, which `check_delivered` catches (two bodies for one id).
//!
//! It restarts the machine's PostgreSQL cluster (`pg_ctlcluster <version> main restart`), so
//! it is a test binary of its own: `cargo test` runs binaries one after another, never
//! beside the PostgreSQL tests of `tests/api`. Runs only when `HOOKD_TEST_POSTGRES_URL` is
//! set and `pg_ctlcluster` exists.

#[path = "api/ledger.rs"]
mod ledger;
#[path = "api/process.rs"]
mod process;
#[path = "api/receiver.rs"]
mod receiver;
#[path = "common/skip.rs"]
mod skip;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use ledger::*;
use process::*;
use receiver::TestReceiver;

const PUBLISHERS: usize = 4;
/// Acknowledged publishes wanted before the restart, and again after it.
const STEADY: usize = 200;

/// The one cluster version under /etc/postgresql, if `pg_ctlcluster` is there to drive it.
fn cluster_version() -> Option<String> {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let found = Command::new("pg_ctlcluster").arg("--version").output().is_ok();
    match (versions.as_slice(), found) {
        ([version], true) => Some(version.clone()),
        _ => None,
    }
}

/// Runs `pg_ctlcluster` on the cluster; `restart` is a crash's stop (`--mode immediate`).
fn pg_ctlcluster(version: &str, action: &str) -> std::process::Output {
    let mode: &[&str] = if action == "restart" {
        &["--mode", "immediate"]
    } else {
        &[]
    };
    Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .args(mode)
        .args([version, "main", action])
        .output()
        .unwrap_or_else(|e| panic!("running pg_ctlcluster {action}: {e}"))
}

/// Starts the cluster again if it is down when the test ends, however it ends.
struct PostgresGuard {
    version: String,
}

impl Drop for PostgresGuard {
    fn drop(&mut self) {
        if !pg_ctlcluster(&self.version, "status").status.success() {
            let out = pg_ctlcluster(&self.version, "start");
            eprintln!(
                "pg_restart: PostgreSQL was down at the end; started it: {:?}",
                out.status
            );
        }
    }
}

/// What a node's `/healthz` and `/readyz` answered while the test ran.
#[derive(Default)]
struct Probes {
    not_ready: usize,
    ready: usize,
    /// Requests that got no HTTP answer at all (a dead or hung node).
    unanswered: Vec<String>,
}

fn node_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKD_DATABASE_URL", database_url.to_string()),
        ("HOOKD_ALLOW_PRIVATE_TARGETS", "1".into()),
        ("HOOKD_RETRY_SCHEDULE", "100ms,200ms,400ms,800ms,1s,1s,1s,1s".into()),
        ("HOOKD_LEASE", "6s".into()),
        ("HOOKD_REQUEST_TIMEOUT", "2s".into()),
        ("HOOKD_POLL_INTERVAL", "200ms".into()),
        ("HOOKD_DB_MAX_CONNECTIONS", "8".into()),
        ("HOOKD_DB_ACQUIRE_TIMEOUT", "2s".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hookd_rides_out_a_postgresql_crash_and_delivers_every_acknowledged_event() {
    let Some(version) = cluster_version() else {
        skip::skipped("pg_restart", "no pg_ctlcluster or no single /etc/postgresql/<version>");
        return;
    };
    let Some(db) = TestDatabase::create("pg_restart").await else {
        return;
    };
    let _postgres = PostgresGuard {
        version: version.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let admin_key = user_add(dir.path(), &db.url, "root", &["--admin"]).await;
    let shop_key = user_add(dir.path(), &db.url, "shop", &["--merchant", "shop1"]).await;
    let env = node_env(&db.url);
    let receiver = TestReceiver::start().await;
    let (mut a, mut b) = tokio::join!(Node::serve("A", dir.path(), &env), Node::serve("B", dir.path(), &env));
    let shop = a.rpc("shop", &shop_key);
    let paths = ["/one/", "/two/"];
    for path in paths {
        let hook = json!({"topics": TOPIC, "url": receiver.url(path)});
        shop.call_ok("webhook.create", json!([hook])).await;
    }

    // Probes of both nodes and a steady publishing load, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let probes: Vec<Arc<Mutex<Probes>>> = vec![Default::default(), Default::default()];
    let mut tasks = Vec::new();
    for (node, probe) in [&a, &b].into_iter().zip(&probes) {
        let (rpc, probe, stop) = (node.rpc("-", "-"), probe.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                for path in ["/healthz", "/readyz"] {
                    let answer = rpc.get_status(path).await;
                    let mut p = probe.lock().unwrap();
                    match (path, answer) {
                        (_, Err(e)) => p.unanswered.push(format!("{path}: {e:?}")),
                        ("/readyz", Ok(200)) => p.ready += 1,
                        ("/readyz", Ok(_)) => p.not_ready += 1,
                        (_, Ok(status)) => assert_eq!(status, 200, "{path}"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let admins = [a.rpc("root", &admin_key), b.rpc("root", &admin_key)];
    let acks = Acks::default();
    let next = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    for _ in 0..PUBLISHERS {
        let (admins, acks, next, stop) = (admins.clone(), acks.clone(), next.clone(), stop.clone());
        let slowest = slowest.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                let started = Instant::now();
                let outcome = admins[(seq % 2) as usize].publish(seq).await;
                let mut slowest = slowest.lock().unwrap();
                *slowest = (*slowest).max(started.elapsed());
                acks.record(seq, started, outcome);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.acked_count() < STEADY {
        assert!(
            Instant::now() < deadline,
            "only {} publishes acknowledged",
            acks.acked_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Crash PostgreSQL under the load, and start it again.
    let acked_before = acks.acked_count();
    let restart_began = Instant::now();
    let out = tokio::task::spawn_blocking(move || pg_ctlcluster(&version, "restart"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctlcluster restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restarted_in = restart_began.elapsed();

    // Both nodes report ready again, then publishing works on both.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready_at = Instant::now();
    for admin in &admins {
        while admin.get_status("/readyz").await.ok() != Some(200) {
            assert!(Instant::now() < deadline, "/readyz not 200 within 30 s of the restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ready_at = Instant::now();
    }
    let acked_at_ready = acks.acked_count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.acked_count() < acked_at_ready + STEADY {
        assert!(Instant::now() < deadline, "publishing did not resume after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a probe or publisher panicked");
    }

    // Every request was answered; errors only around the outage.
    let failed = acks.failed();
    let unanswered: Vec<_> = failed.iter().filter(|f| matches!(f.2, Failure::Transport(_))).collect();
    assert!(unanswered.is_empty(), "publishes without an answer: {unanswered:?}");
    let late: Vec<_> = failed.iter().filter(|f| f.1 > ready_at).collect();
    assert!(
        late.is_empty(),
        "publishes failed after both nodes were ready: {late:?}"
    );
    for (node, probe) in [&a, &b].into_iter().zip(&probes) {
        let p = probe.lock().unwrap();
        assert!(
            p.unanswered.is_empty(),
            "node {} stopped answering: {:?}",
            node.name,
            p.unanswered
        );
        eprintln!(
            "pg_restart: node {} /readyz: {} times 503, {} times 200",
            node.name, p.not_ready, p.ready
        );
    }
    assert!(a.is_running() && b.is_running(), "a node exited");
    let acked = acks.acked();
    eprintln!(
        "pg_restart: restart took {restarted_in:?}; ready {:?} after it began; {} acknowledged \
         ({acked_before} before the restart), {} failed, slowest publish {:?}",
        ready_at - restart_began,
        acked.len(),
        failed.len(),
        *slowest.lock().unwrap()
    );

    let increments = admins[0].increment_ids().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for path in paths {
        let n = increments[&receiver.url(path)];
        wait_delivered(&receiver, path, n, &acked, deadline).await;
    }
    for path in paths {
        let n = increments[&receiver.url(path)];
        let tally = check_delivered(path, &receiver.received(path), n, &acked);
        eprintln!("pg_restart: {path} {tally:?}");
    }
    eprintln!(
        "pg_restart: all delivered {:?} after the restart began",
        restart_began.elapsed()
    );
    a.assert_no_panic();
    b.assert_no_panic();
}
