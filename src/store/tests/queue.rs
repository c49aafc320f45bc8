//! The work queue: claims never hand a payload out twice and leases run out, outcomes take
//! payloads out of the queue or back at their retry time, inactive or deleted webhooks have
//! nothing to claim, and `webhook.test`'s payload is held from the start; paced claims hand
//! out an ordered webhook's head alone and no more than a `max_rate` bucket holds, even to
//! concurrent claimers. (SQLite holds leases and buckets in memory, PostgreSQL on rows;
//! both behave alike through the trait.)

use super::*;
use crate::domain::{BodyTemplate, MerchantId, WebhookId};
use crate::store::{ClaimedDelivery, DeliveryUpdate, PacedClaim, Pacing, Store};

const TOPIC: &str = "order:created";

async fn publish_n(store: &dyn Store, m: MerchantId, n: usize) {
    for _ in 0..n {
        publish(store, m, TOPIC).await;
    }
}

async fn claim(store: &dyn Store, hook: WebhookId, now: Millis, limit: i64) -> Vec<ClaimedDelivery> {
    store.delivery_claim(hook, "me", now, now + HOUR, limit).await.unwrap()
}

const ORDERED: Pacing = Pacing {
    ordered: true,
    max_rate: None,
};

/// 20 per second: a token every 50 ms, a burst of 2.
const RATED: Pacing = Pacing {
    ordered: false,
    max_rate: Some(20.0),
};

async fn claim_paced(store: &dyn Store, hook: WebhookId, now: Millis, limit: i64, pacing: Pacing) -> PacedClaim {
    store
        .delivery_claim_paced(hook, "me", now, now + HOUR, limit, pacing)
        .await
        .unwrap()
}

fn done(c: &ClaimedDelivery, status: DeliveryStatus, at: Millis) -> DeliveryUpdate {
    let http = if status == DeliveryStatus::Success { 200 } else { 500 };
    outcome(c, "me", status, Some(http), at)
}

fn increments(claimed: &[ClaimedDelivery]) -> Vec<i64> {
    claimed.iter().map(|c| c.increment_id).collect()
}

store_test! {
    async fn the_due_count_counts_due_payloads_of_active_webhooks_up_to_the_cap(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 5).await;
        let now = now_millis() + 1;
        assert_eq!(store.queue_due_count(now, 1000).await.unwrap(), 5);
        assert_eq!(store.queue_due_count(now, 3).await.unwrap(), 3, "the cap bounds the count");
        let first = claim(&*store, hook, now, 1).await;
        store.delivery_record(&[done(&first[0], DeliveryStatus::Success, now)]).await.unwrap();
        assert_eq!(store.queue_due_count(now, 1000).await.unwrap(), 4, "a delivered payload is not due");
        store
            .webhook_set_active(Scope::All, &StatusTarget::Id(hook), false)
            .await
            .unwrap();
        assert_eq!(store.queue_due_count(now, 1000).await.unwrap(), 0, "an inactive webhook's wait");
    }
}

store_test! {
    async fn concurrent_claims_never_share_a_payload_and_leases_expire(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 200).await;
        let now = now_millis();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.delivery_claim(hook, "me", now, now + HOUR, 7).await.unwrap();
                    if batch.is_empty() {
                        break got;
                    }
                    got.extend(batch);
                }
            }));
        }
        let mut seen = HashSet::new();
        for task in tasks {
            for c in task.await.unwrap() {
                assert!(seen.insert(c.id), "payload {} handed out twice", c.id.0);
            }
        }
        assert_eq!(seen.len(), 200);
        assert!(claim(&*store, hook, now, 10).await.is_empty(), "all are leased");
        // Once the leases run out, the oldest come back first. (The scan forgets the claim
        // floors, as every poll does: publishing the 200 may take longer than their slack.)
        store.queue_scan(now + 2 * HOUR).await.unwrap();
        assert_eq!(increments(&claim(&*store, hook, now + 2 * HOUR, 3).await), vec![1, 2, 3]);
    }
}

store_test! {
    async fn an_outcome_takes_the_payload_out_of_the_queue_or_back_at_its_retry_time(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 3).await;
        let now = now_millis();
        let claimed = claim(&*store, hook, now, 10).await;
        assert_eq!(increments(&claimed), vec![1, 2, 3]);
        store
            .delivery_record(&[
                done(&claimed[0], DeliveryStatus::Success, now),
                done(&claimed[1], DeliveryStatus::Retrying, now),
            ])
            .await
            .unwrap();
        // The lease of the third is still held; the second waits for its retry time.
        assert!(claim(&*store, hook, now + 1000, 10).await.is_empty());
        let retried = claim(&*store, hook, now + 60_000, 10).await;
        assert_eq!(increments(&retried), vec![2]);
        assert_eq!(retried[0].attempts, 1);
        // A success is never claimed again, even after every lease has run out; the payload
        // due first is taken first. (The order within one claim's answer is the backend's.)
        // A lease that ran out is seen again once the queue scan ran, at the latest, as the
        // dispatcher scans every poll interval (see `ClaimFloors`).
        store.queue_scan(now + 2 * HOUR).await.unwrap();
        let late = claim(&*store, hook, now + 2 * HOUR, 1).await;
        assert_eq!(increments(&late), vec![3], "oldest due first");
        assert_eq!(increments(&claim(&*store, hook, now + 2 * HOUR, 10).await), vec![2]);
    }
}

store_test! {
    async fn inactive_or_deleted_webhooks_have_nothing_to_claim(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 2).await;
        let now = now_millis();
        store
            .webhook_set_active(Scope::All, &StatusTarget::Id(hook), false)
            .await
            .unwrap();
        assert!(claim(&*store, hook, now, 10).await.is_empty());
        store
            .webhook_set_active(Scope::All, &StatusTarget::Id(hook), true)
            .await
            .unwrap();
        assert_eq!(claim(&*store, hook, now, 1).await.len(), 1);
        assert!(store.webhook_delete(Scope::All, hook).await.unwrap());
        assert!(claim(&*store, hook, now + 2 * HOUR, 10).await.is_empty());
    }
}

store_test! {
    async fn a_test_payload_is_held_from_the_start(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        let now = now_millis();
        let message = json!({"test": true});
        let body = BodyTemplate::new("test:ping", "shop", message.as_object().unwrap(), now);
        let made = store
            .delivery_create_claimed(Scope::Merchant(m), hook, "test:ping", &body, "me", now + HOUR)
            .await
            .unwrap()
            .expect("the webhook exists");
        assert_eq!(made.increment_id, 1);
        assert!(claim(&*store, hook, now + 1000, 10).await.is_empty());
        store
            .delivery_record(&[done(&made, DeliveryStatus::Retrying, now)])
            .await
            .unwrap();
        assert_eq!(increments(&claim(&*store, hook, now + 60_000, 10).await), vec![1]);
    }
}

store_test! {
    async fn an_ordered_claim_takes_only_the_head_and_the_next_once_the_head_is_done(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 3).await;
        let now = now_millis();
        let head = claim_paced(&*store, hook, now, 10, ORDERED).await.claimed;
        assert_eq!(increments(&head), vec![1], "the head alone, however many are asked for");
        let leased = claim_paced(&*store, hook, now, 10, ORDERED).await;
        assert!(leased.claimed.is_empty(), "nothing while the head is leased: {:?}", increments(&leased.claimed));
        // The head fails and waits for its retry: the others wait behind it, and the claim
        // says until when.
        store.delivery_record(&[done(&head[0], DeliveryStatus::Retrying, now)]).await.unwrap();
        let waiting = claim_paced(&*store, hook, now + 1000, 10, ORDERED).await;
        assert_eq!((waiting.claimed.len(), waiting.next_at), (0, Some(now + 60_000)));
        let again = claim_paced(&*store, hook, now + 60_000, 10, ORDERED).await.claimed;
        assert_eq!(increments(&again), vec![1]);
        store.delivery_record(&[done(&again[0], DeliveryStatus::Success, now + 60_000)]).await.unwrap();
        let second = claim_paced(&*store, hook, now + 60_000, 10, ORDERED).await.claimed;
        assert_eq!(increments(&second), vec![2], "delivered: the next goes");
        store.delivery_record(&[done(&second[0], DeliveryStatus::Failed, now + 60_000)]).await.unwrap();
        let third = claim_paced(&*store, hook, now + 60_000, 10, ORDERED).await.claimed;
        assert_eq!(increments(&third), vec![3], "failed: the next goes too");
        // The unpaced claim of the same webhook is unchanged.
        assert!(claim(&*store, hook, now + 60_000, 10).await.is_empty());
    }
}

store_test! {
    async fn concurrent_ordered_claims_hand_out_the_head_once(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 5).await;
        let now = now_millis();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { claim_paced(&*store, hook, now, 5, ORDERED).await.claimed })
            })
            .collect();
        let mut got = Vec::new();
        for task in tasks {
            got.extend(increments(&task.await.unwrap()));
        }
        assert_eq!(got, vec![1], "one claimer gets the head, the others nothing");
    }
}

store_test! {
    async fn a_rate_bucket_gives_its_burst_then_a_token_per_interval(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 5).await;
        let t = now_millis();
        let first = claim_paced(&*store, hook, t, 10, RATED).await;
        assert_eq!((increments(&first.claimed), first.next_at), (vec![1, 2], Some(t + 50)));
        let empty = claim_paced(&*store, hook, t + 10, 10, RATED).await;
        assert_eq!((empty.claimed.len(), empty.next_at), (0, Some(t + 50)), "no token before then");
        assert_eq!(increments(&claim_paced(&*store, hook, t + 50, 10, RATED).await.claimed), vec![3]);
        let later = claim_paced(&*store, hook, t + 1000, 10, RATED).await;
        assert_eq!(increments(&later.claimed), vec![4, 5], "an idle bucket holds its burst, no more");
        // Only what is claimed is charged: an empty queue keeps the tokens.
        let idle = claim_paced(&*store, hook, t + 2000, 10, RATED).await;
        assert_eq!((idle.claimed.len(), idle.next_at), (0, None));
        publish_n(&*store, m, 3).await;
        let burst = claim_paced(&*store, hook, t + 2000, 10, RATED).await;
        assert_eq!(increments(&burst.claimed), vec![6, 7]);
        // Ordered and rated together: the head alone, when a token is there.
        let both = Pacing { ordered: true, ..RATED };
        let held = claim_paced(&*store, hook, t + 2000, 10, both).await;
        assert_eq!((held.claimed.len(), held.next_at), (0, Some(t + 2050)));
    }
}

store_test! {
    async fn concurrent_rated_claims_share_one_bucket(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        publish_n(&*store, m, 20).await;
        let t = now_millis();
        // Four claimers (on PostgreSQL: four connections, as four nodes would be) at the same
        // instants: each instant's tokens are handed out once in all.
        let mut total = 0;
        for (at, tokens) in [(t, 2), (t + 50, 1), (t + 150, 2)] {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { claim_paced(&*store, hook, at, 10, RATED).await.claimed.len() })
                })
                .collect();
            let mut got = 0;
            for task in tasks {
                got += task.await.unwrap();
            }
            assert_eq!(got, tokens, "claimed at +{} ms", at - t);
            total += got;
        }
        assert_eq!(total, 5);
    }
}

store_test! {
    async fn a_payload_committed_after_a_claim_with_an_earlier_time_is_still_claimed(db, store) {
        // Publishes take their time before their batch commits, and batches commit out of
        // order: claims must still find such a payload (PostgreSQL starts a webhook's claims
        // near the latest time it took, see `ClaimFloors`).
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, TOPIC, true).await;
        let now = now_millis();
        publish_at(&*store, m, TOPIC, None, now).await;
        assert_eq!(increments(&claim(&*store, hook, now + 10, 10).await), vec![1]);
        publish_at(&*store, m, TOPIC, None, now - 900).await;
        assert_eq!(
            increments(&claim(&*store, hook, now + 10, 10).await),
            vec![2],
            "committed later with a time 0.9 s before the last claimed: claimed at once"
        );
        publish_at(&*store, m, TOPIC, None, now - 60_000).await;
        let before_scan = claim(&*store, hook, now + 10, 10).await;
        store.queue_scan(now + 10).await.unwrap();
        let after_scan = claim(&*store, hook, now + 10, 10).await;
        let both: Vec<i64> = increments(&before_scan).into_iter().chain(increments(&after_scan)).collect();
        assert_eq!(both, vec![3], "a minute earlier: claimed once the queue scan ran, at the latest");
    }
}
