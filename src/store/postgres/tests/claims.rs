//! The work queue: claiming with leases across owners, due times, queue scans.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_owners_claiming_at_once_never_share_a_payload() {
    let (db, store) = setup!();
    let store = Arc::new(store);
    let second = Arc::new(db.store().await);
    let m = merchant(&*store, "shop").await;
    let hook = store
        .webhook_create(m, &new_hook("order:created", true), i64::MAX)
        .await
        .unwrap()
        .expect("no webhook limit");
    let total = 300;
    for _ in 0..total {
        publish(&*store, m, "order:created").await;
    }
    let now = now_millis();
    let mut handles = Vec::new();
    for (i, node) in [store.clone(), second.clone(), store.clone(), second.clone()]
        .into_iter()
        .enumerate()
    {
        handles.push(tokio::spawn(async move {
            let owner = format!("owner-{}", i % 2);
            let mut got: Vec<ClaimedDelivery> = Vec::new();
            loop {
                let batch = node.delivery_claim(hook, &owner, now, now + HOUR, 7).await.unwrap();
                if batch.is_empty() {
                    break got;
                }
                let incs: Vec<i64> = batch.iter().map(|c| c.increment_id).collect();
                assert!(incs.windows(2).all(|w| w[0] < w[1]), "sorted by increment id: {incs:?}");
                got.extend(batch);
            }
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        for c in h.await.unwrap() {
            assert!(seen.insert(c.id), "payload {} handed out twice", c.id.0);
            assert_eq!(c.attempts, 0);
        }
    }
    assert_eq!(seen.len(), total);
    // Leased, so nothing is left to claim or to scan until the leases run out.
    assert!(store
        .delivery_claim(hook, "late", now, now + HOUR, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.queue_scan(now).await.unwrap().is_empty());
    let expired = store
        .delivery_claim(hook, "late", now + 2 * HOUR, now + 3 * HOUR, 5)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|c| c.increment_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    drop((store, second));
    db.drop_database().await;
}

#[tokio::test]
async fn claims_respect_due_times_and_inactive_webhooks() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let (a, b) = (
        store
            .webhook_create(m, &new_hook("order:created", true), i64::MAX)
            .await
            .unwrap()
            .expect("no webhook limit"),
        store
            .webhook_create(m, &new_hook("order:*", true), i64::MAX)
            .await
            .unwrap()
            .expect("no webhook limit"),
    );
    let now = now_millis();
    publish_at(&store, m, "order:created", None, now).await;
    publish_at(&store, m, "order:created", None, now + 10_000).await;
    assert_eq!(store.queue_scan(now).await.unwrap(), vec![(a, now), (b, now)]);

    store
        .webhook_set_active(Scope::All, &StatusTarget::Id(b), false)
        .await
        .unwrap();
    assert!(
        store
            .delivery_claim(b, "n", now, now + HOUR, 10)
            .await
            .unwrap()
            .is_empty(),
        "inactive"
    );
    assert_eq!(store.queue_scan(now).await.unwrap(), vec![(a, now)]);

    let first = store.delivery_claim(a, "n", now, now + HOUR, 10).await.unwrap();
    assert_eq!(
        first.iter().map(|c| c.increment_id).collect::<Vec<_>>(),
        vec![1],
        "the second is not due"
    );
    assert_eq!(
        store.queue_scan(now).await.unwrap(),
        vec![(a, now + 10_000)],
        "the earliest unleased"
    );
    assert_eq!(
        store
            .delivery_claim(a, "n", now + 10_000, now + HOUR, 10)
            .await
            .unwrap()[0]
            .increment_id,
        2
    );

    // webhook.test: its payload takes the next increment id and is leased at once.
    let body = BodyTemplate::new("test:ping", "shop", &serde_json::Map::new(), now);
    let test = store
        .delivery_create_claimed(Scope::Merchant(m), b, "test:ping", &body, "tester", now + HOUR)
        .await;
    let test = test.unwrap().expect("the webhook exists");
    assert_eq!((test.increment_id, test.attempts), (3, 0));
    assert!(String::from_utf8(test.body.clone())
        .unwrap()
        .contains("\"webhook_increment_id\":3"));
    let gone = store
        .delivery_create_claimed(Scope::Merchant(MerchantId(999)), b, "test:ping", &body, "t", now)
        .await;
    assert!(gone.unwrap().is_none());
    store
        .webhook_set_active(Scope::All, &StatusTarget::Id(b), true)
        .await
        .unwrap();
    let rest = store
        .delivery_claim(b, "n", now + 20_000, now + HOUR, 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.increment_id).collect::<Vec<_>>(),
        vec![1, 2],
        "the test payload is leased"
    );

    drop(store);
    db.drop_database().await;
}
