//! The hand-off through the trait (`store::handoff`): while a dispatcher runs, a publish
//! holds the fresh payloads of plain webhooks for it, up to each webhook's room, and hands
//! them over durable; no claim takes them; those that waited are confirmed only while still
//! queued, active and held; those given back are claimable at once. (PostgreSQL writes the
//! lease on the row, SQLite holds it in memory; `postgres/tests/handoff.rs` checks the rows.)

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::domain::{WebhookChange, WebhookId};
use crate::store::{Handoff, Store};

const TOPIC: &str = "order:created";

async fn change(store: &dyn Store, hook: WebhookId, v: serde_json::Value) {
    let change = WebhookChange::from_json(&v, &catalog(), false).unwrap();
    assert!(store.webhook_update(Scope::All, hook, &change).await.unwrap());
}

async fn claimed_increments(store: &dyn Store, hook: WebhookId, owner: &str) -> Vec<i64> {
    let now = now_millis();
    let claimed = store.delivery_claim(hook, owner, now, now + HOUR, 10).await.unwrap();
    claimed.iter().map(|c| c.increment_id).collect()
}

store_test! {
    async fn a_publish_hands_plain_webhooks_payloads_to_the_dispatcher_up_to_their_room(db, store) {
        let handoff = Arc::new(Handoff::default());
        store.accept_handoff(handoff.clone());
        let m = merchant(&*store, "shop").await;
        let plain = create_hook(&*store, m, TOPIC, true).await;
        let ordered = create_hook(&*store, m, TOPIC, true).await;
        let paced = create_hook(&*store, m, TOPIC, true).await;
        change(&*store, ordered, json!({"ordered": true})).await;
        change(&*store, paced, json!({"max_rate": 5})).await;

        // No dispatcher yet: nothing is handed, everything is claimed.
        assert!(publish(&*store, m, TOPIC).await.handed.is_empty());
        assert_eq!(claimed_increments(&*store, plain, "node-b").await, vec![1]);

        handoff.open("node-a", Duration::from_secs(60), Duration::from_secs(8), 2);
        let second = publish(&*store, m, TOPIC).await;
        assert_eq!(second.webhooks, vec![plain, ordered, paced]);
        assert_eq!(second.handed, vec![plain], "ordered and paced webhooks keep their claims");
        assert!(
            claimed_increments(&*store, plain, "node-b").await.is_empty(),
            "a handed payload is not claimed"
        );
        assert_eq!(claimed_increments(&*store, ordered, "node-b").await, vec![1, 2], "none held");
        let taken = handoff.take(plain, 10).fresh;
        assert_eq!(taken.len(), 1);
        let got = store.delivery_get(Scope::All, taken[0].id).await.unwrap().expect("stored");
        assert_eq!((taken[0].webhook_id, taken[0].increment_id, taken[0].attempts), (plain, 2, 0));
        assert_eq!((got.record.increment_id, &got.body), (2, &taken[0].body), "the stored payload");
        let hook = store.webhook_get(Scope::All, plain).await.unwrap().unwrap();
        assert_eq!(taken[0].webhook_version, hook.version, "the target it is sent with is current");

        // A room of two: two more wait, the next one is left for a claim.
        let mut handed = Vec::new();
        for _ in 0..3 {
            handed.push(publish(&*store, m, TOPIC).await.handed.len());
        }
        assert_eq!(handed, vec![1, 1, 0]);
        let waiting: Vec<i64> = handoff.take(plain, 10).fresh.iter().map(|c| c.increment_id).collect();
        assert_eq!(waiting, vec![3, 4]);
        assert_eq!(claimed_increments(&*store, plain, "node-b").await, vec![5]);

        // Stopped: nothing more is handed.
        handoff.close();
        assert!(publish(&*store, m, TOPIC).await.handed.is_empty());
    }
}

store_test! {
    async fn handed_payloads_that_waited_are_confirmed_only_while_queued_and_active_and_given_back_at_once(db, store) {
        let handoff = Arc::new(Handoff::default());
        store.accept_handoff(handoff.clone());
        handoff.open("node-a", Duration::from_secs(60), Duration::from_secs(8), 16);
        let m = merchant(&*store, "shop").await;
        let [kept, turned_off, deleted] = [
            create_hook(&*store, m, TOPIC, true).await,
            create_hook(&*store, m, TOPIC, true).await,
            create_hook(&*store, m, TOPIC, true).await,
        ];
        assert_eq!(publish(&*store, m, TOPIC).await.handed.len(), 3);
        let ids: Vec<DeliveryId> = [kept, turned_off, deleted]
            .iter()
            .map(|&w| handoff.take(w, 1).fresh[0].id)
            .collect();
        let off = StatusTarget::Id(turned_off);
        assert_eq!(store.webhook_set_active(Scope::All, &off, false).await.unwrap(), 1);
        assert!(store.webhook_delete(Scope::All, deleted).await.unwrap());

        let now = now_millis();
        let renewed = store.delivery_renew(&ids, "node-a", now, now + 2 * HOUR).await.unwrap();
        assert_eq!(renewed, vec![ids[0]]);
        // The lease now ends in two hours: a claim an hour and a half on still skips it.
        let later = now + HOUR + HOUR / 2;
        assert!(store.delivery_claim(kept, "node-b", later, later + HOUR, 10).await.unwrap().is_empty());

        // Given back: claimable at once.
        store.delivery_release(&ids[..1], "node-a").await.unwrap();
        let claimed = store.delivery_claim(kept, "node-b", now, now + HOUR, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[0]]);
    }
}
