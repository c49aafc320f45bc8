//! The delivery ledger of the process tests: what publishers were told (`Acks`) against
//! what a `TestReceiver` got, checked against CONTRACT.md §4.
//!
//! The one idea to know: an acknowledged publish must arrive; a failed one may or may not
//! (its outcome is unknown), so the checks key on increment ids, which must be exactly
//! 1..=N for a webhook whose `webhook.list` says `increment_id` N, whatever was acknowledged.

// Shared by several test binaries (`tests/pg_restart.rs` includes this file too).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::process::{Failure, Rpc};
use crate::receiver::{Received, TestReceiver};

/// What publishers learned: the seqs whose `event.publish` was acknowledged, and the ones
/// that failed (their outcome is unknown: either is allowed).
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<AcksInner>>);

#[derive(Default)]
pub struct AcksInner {
    pub acked: BTreeSet<u64>,
    /// (seq, when the request started, why it failed)
    pub failed: Vec<(u64, Instant, Failure)>,
}

impl Acks {
    pub fn record(&self, seq: u64, started: Instant, outcome: Result<i64, Failure>) {
        let mut inner = self.0.lock().unwrap();
        match outcome {
            Ok(_) => {
                inner.acked.insert(seq);
            }
            Err(e) => inner.failed.push((seq, started, e)),
        }
    }

    pub fn acked_count(&self) -> usize {
        self.0.lock().unwrap().acked.len()
    }

    pub fn acked(&self) -> BTreeSet<u64> {
        self.0.lock().unwrap().acked.clone()
    }

    pub fn failed(&self) -> Vec<(u64, Instant, Failure)> {
        self.0.lock().unwrap().failed.clone()
    }
}

/// `n` publishers, each sending `event.publish` with the next seq from `next` (with `pause`
/// between its requests) until `stop` turns true or the server stops answering; every
/// outcome goes to `acks`.
pub fn spawn_publishers(
    n: usize,
    admin: &Rpc,
    next: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    acks: &Acks,
    pause: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (admin, next, stop, acks) = (admin.clone(), next.clone(), stop.clone(), acks.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let seq = next.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    let outcome = admin.publish(seq).await;
                    let gone = matches!(outcome, Err(Failure::Transport(_)));
                    acks.record(seq, started, outcome);
                    if gone {
                        break; // the server is dead
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect()
}

/// One delivery request as the checks need it.
struct Seen {
    increment_id: i64,
    seq: Option<u64>,
    message_id: String,
}

fn seen(r: &Received) -> Seen {
    let body = r.json();
    Seen {
        increment_id: body["message"]["webhook_increment_id"]
            .as_i64()
            .expect("an increment id"),
        seq: body["message"]["seq"].as_u64(),
        message_id: r.header("webhook-id").unwrap_or_default().to_string(),
    }
}

/// Polls `receiver` until `prefix` got every increment id 1..=n and every acknowledged seq;
/// panics at `deadline` naming what is missing. Returns when it was complete.
pub async fn wait_delivered(
    receiver: &TestReceiver,
    prefix: &str,
    n: i64,
    acked: &BTreeSet<u64>,
    deadline: Instant,
) -> Instant {
    loop {
        let got: Vec<Seen> = receiver.received(prefix).iter().map(seen).collect();
        let ids: BTreeSet<i64> = got.iter().map(|s| s.increment_id).collect();
        let seqs: BTreeSet<u64> = got.iter().filter_map(|s| s.seq).collect();
        let missing_ids: Vec<i64> = (1..=n).filter(|i| !ids.contains(i)).collect();
        let missing_seqs: Vec<u64> = acked.difference(&seqs).copied().collect();
        if missing_ids.is_empty() && missing_seqs.is_empty() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: {} of increment ids 1..={n} and {} of {} acknowledged seqs never arrived \
             (first missing ids {:?}, seqs {:?})",
            missing_ids.len(),
            missing_seqs.len(),
            acked.len(),
            &missing_ids[..missing_ids.len().min(10)],
            &missing_seqs[..missing_seqs.len().min(10)],
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one webhook's receiver path got.
#[derive(Debug)]
pub struct Tally {
    /// The webhook's `increment_id` from `webhook.list`.
    pub n: i64,
    pub requests: usize,
    /// Requests beyond the first per increment id (redeliveries).
    pub duplicates: usize,
}

/// Checks CONTRACT.md §4 on everything `received`: the increment ids are exactly 1..=n
/// (gap-free, none beyond n); every request with one id carries the same body bytes and
/// `webhook-id` (a redelivery of one payload, not a second payload); no seq appears under
/// two ids (one payload per event); every acknowledged seq arrived.
#[track_caller]
pub fn check_delivered(prefix: &str, received: &[Received], n: i64, acked: &BTreeSet<u64>) -> Tally {
    let mut by_id: BTreeMap<i64, (&[u8], String)> = BTreeMap::new();
    let mut id_of_seq: BTreeMap<u64, i64> = BTreeMap::new();
    for r in received {
        let s = seen(r);
        let (body, message_id) = by_id
            .entry(s.increment_id)
            .or_insert((&r.body[..], s.message_id.clone()));
        assert_eq!(
            *body,
            &r.body[..],
            "{prefix}: two different bodies for increment id {}",
            s.increment_id
        );
        assert_eq!(
            *message_id, s.message_id,
            "{prefix}: id {} changed webhook-id",
            s.increment_id
        );
        let seq = s
            .seq
            .unwrap_or_else(|| panic!("{prefix}: a body without seq: {}", r.json()));
        let first = *id_of_seq.entry(seq).or_insert(s.increment_id);
        assert_eq!(first, s.increment_id, "{prefix}: seq {seq} was made into two payloads");
    }
    let ids: Vec<i64> = by_id.keys().copied().collect();
    let expected: Vec<i64> = (1..=n).collect();
    assert!(
        ids == expected,
        "{prefix}: increment ids are not exactly 1..={n}: {} distinct, min {:?}, max {:?}",
        ids.len(),
        ids.first(),
        ids.last()
    );
    let missing: Vec<&u64> = acked.iter().filter(|s| !id_of_seq.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{prefix}: acknowledged seqs never delivered: {missing:?}"
    );
    Tally {
        n,
        requests: received.len(),
        duplicates: received.len() - ids.len(),
    }
}
