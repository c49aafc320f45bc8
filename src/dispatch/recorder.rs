//! Writes attempts' outcomes back to the store in batches, for the dispatcher (`worker`).
//!
//! The one idea to know: a batch's write has a fixed cost well above its per-outcome cost
//! (on PostgreSQL one statement and one commit, more than half a dozen outcomes' rows), so
//! a small batch waits a moment for more. It waits at most `LINGER` after its first outcome,
//! and only while it holds fewer than `GATHER`. An outcome that something waits for goes at
//! once: an ordered webhook's next payload is claimed only once its head's outcome is
//! written. Nothing else waits on the write: the receiver has answered, the slot is free,
//! and the payload's lease keeps it from being sent again meanwhile.
//!
//! Why: on two PostgreSQL nodes each node's recorder saw half the outcomes, so its batches
//! were half as large and the outcome writes per event doubled (issue 28,
//! docs/performance.md).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Engine;
use crate::domain::{DeliveryStatus, DeliveryUpdate};

/// Most outcomes written back in one transaction.
const MAX_BATCH: usize = 512;

/// A batch this large is written without waiting for more.
const GATHER: usize = 64;

/// How long a smaller batch waits for more after its first outcome arrived.
const LINGER: Duration = Duration::from_millis(5);

/// One attempt's outcome, as the dispatcher sends it.
pub struct Outcome {
    pub update: DeliveryUpdate,
    /// Something waits for this outcome to be written (an ordered webhook's next payload):
    /// its batch goes without lingering.
    pub urgent: bool,
}

/// Writes outcomes back until every sender is gone and all is written (or given up).
pub async fn run(engine: Arc<Engine>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    while let Some(batch) = gather(&mut rx).await {
        write(&engine, &batch).await;
    }
}

/// The next batch: what is queued, and, when that is small and nothing in it is urgent,
/// what arrives within `LINGER` of its first outcome. None once the channel is closed and
/// empty.
async fn gather(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Option<Vec<DeliveryUpdate>> {
    let first = rx.recv().await?;
    let until = Instant::now() + LINGER;
    let mut urgent = first.urgent;
    let mut batch = vec![first.update];
    while batch.len() < MAX_BATCH {
        let next = match rx.try_recv() {
            Ok(next) => next,
            Err(_) if urgent || batch.len() >= GATHER => break,
            Err(_) => match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => break,
            },
        };
        urgent |= next.urgent;
        batch.push(next.update);
    }
    Some(batch)
}

/// Writes one batch, trying again each second for a while when the store fails.
async fn write(engine: &Engine, batch: &[DeliveryUpdate]) {
    let mut tries = 0;
    loop {
        match engine.record_outcomes(batch).await {
            Ok(()) => {
                // A finished payload no longer holds its webhook's order: an ordered
                // lane's next head can be claimed now that the outcome is written
                // (its lane asked at the attempt's end and may have found it leased).
                let finished = batch.iter().filter(|u| u.status != DeliveryStatus::Retrying);
                engine
                    .wake
                    .recorded(finished.map(|u| u.webhook_id).collect::<HashSet<_>>());
                return;
            }
            Err(e) => {
                tries += 1;
                tracing::error!(error = ?e, tries, "recording delivery outcomes failed");
                if tries >= 30 {
                    // The leases will expire and the payloads be sent again: at-least-once.
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttemptLog, DeliveryId, WebhookId};

    fn outcome(id: i64, urgent: bool) -> Outcome {
        let attempt = AttemptLog {
            attempted_at: 0,
            http_status: Some(200),
            duration_ms: 1,
            response_prefix: String::new(),
            error: None,
            sent_headers: None,
        };
        let update = DeliveryUpdate {
            delivery_id: DeliveryId(id),
            webhook_id: WebhookId(1),
            attempt_no: 1,
            request: id,
            lease_owner: "node".into(),
            attempt,
            status: DeliveryStatus::Success,
            next_attempt_at: 0,
        };
        Outcome { update, urgent }
    }

    fn ids(batch: &[DeliveryUpdate]) -> Vec<i64> {
        batch.iter().map(|u| u.delivery_id.0).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_batch_waits_for_more_but_not_past_the_linger() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(outcome(1, false)).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER / 2).await;
            late.send(outcome(2, false)).unwrap();
            tokio::time::sleep(LINGER).await;
            late.send(outcome(3, false)).unwrap();
        });
        let started = Instant::now();
        assert_eq!(
            ids(&gather(&mut rx).await.unwrap()),
            vec![1, 2],
            "the one within the linger joins"
        );
        assert_eq!(started.elapsed(), LINGER, "and the batch goes when the linger ends");
        assert_eq!(ids(&gather(&mut rx).await.unwrap()), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_or_an_urgent_outcome_goes_at_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for id in 0..GATHER as i64 {
            tx.send(outcome(id, false)).unwrap();
        }
        let started = Instant::now();
        assert_eq!(gather(&mut rx).await.unwrap().len(), GATHER);
        tx.send(outcome(100, false)).unwrap();
        tx.send(outcome(101, true)).unwrap();
        assert_eq!(ids(&gather(&mut rx).await.unwrap()), vec![100, 101]);
        assert_eq!(started.elapsed(), Duration::ZERO, "neither waited");
        drop(tx);
        assert!(gather(&mut rx).await.is_none(), "closed and empty: done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_linger_with_what_came() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(outcome(1, false)).unwrap();
        drop(tx);
        let started = Instant::now();
        assert_eq!(ids(&gather(&mut rx).await.unwrap()), vec![1]);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
