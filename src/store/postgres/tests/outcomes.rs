//! Recording attempts, the delivery log, retries and retention.

use super::*;

#[tokio::test]
async fn recording_moves_payloads_and_ignores_lost_leases() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = store
        .webhook_create(m, &new_hook("order:created", true), i64::MAX)
        .await
        .unwrap()
        .expect("no webhook limit");
    for _ in 0..5 {
        publish(&store, m, "order:created").await;
    }
    let now = now_millis();
    let c = store.delivery_claim(hook, "n1", now, now + 1000, 5).await.unwrap();
    assert_eq!(c.len(), 5);
    // Payload 5's lease ran out and another node took it over.
    let taken = store
        .delivery_claim(hook, "n2", now + 2000, now + HOUR, 5)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|c| c.id).collect::<Vec<_>>(),
        c.iter().map(|c| c.id).collect::<Vec<_>>()
    );

    let at = now + 3000;
    store
        .delivery_record(&[
            outcome(&c[0], "n2", DeliveryStatus::Success, Some(200), at),
            outcome(&c[1], "n2", DeliveryStatus::Retrying, Some(500), at),
            outcome(&c[2], "n2", DeliveryStatus::Failed, None, at),
            outcome(&c[3], "n1", DeliveryStatus::Success, Some(200), at),
        ])
        .await
        .unwrap();
    store.delivery_record(&[]).await.unwrap();
    let get = |id: DeliveryId| {
        let store = &store;
        async move { store.delivery_get(Scope::All, id).await.unwrap().unwrap() }
    };
    let ok = get(c[0].id).await;
    assert_eq!(
        (ok.record.status, ok.record.attempts, ok.record.last_http_status),
        (DeliveryStatus::Success, 1, Some(200))
    );
    assert_eq!(ok.record.last_error, None);
    let retry = get(c[1].id).await;
    assert_eq!(
        (retry.record.status, retry.record.next_attempt_at),
        (DeliveryStatus::Retrying, at + 60_000)
    );
    assert_eq!(retry.record.last_error.as_deref(), Some("HTTP 500"));
    let failed = get(c[2].id).await;
    assert_eq!(
        (failed.record.status, failed.record.last_http_status),
        (DeliveryStatus::Failed, None)
    );
    // n1 lost its lease: the attempt is logged, the state is n2's to set.
    let lost = get(c[3].id).await;
    assert_eq!((lost.record.status, lost.record.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(lost.attempts.len(), 1);
    assert_eq!(lost.attempts[0].response_prefix, "answer 4");

    // A retrying payload is claimable again when due, and counts its attempts.
    let again = store
        .delivery_claim(hook, "n3", at + 60_000, at + HOUR, 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|c| (c.increment_id, c.attempts)).collect::<Vec<_>>(),
        vec![(2, 1)]
    );
    store
        .delivery_record(&[outcome(
            &again[0],
            "n3",
            DeliveryStatus::Success,
            Some(204),
            at + 61_000,
        )])
        .await
        .unwrap();
    let done = get(c[1].id).await;
    assert_eq!(
        (done.record.status, done.record.attempts, done.attempts.len()),
        (DeliveryStatus::Success, 2, 2)
    );
    assert!(
        done.attempts[0].attempted_at < done.attempts[1].attempted_at,
        "oldest first"
    );

    // A canceled payload stays canceled.
    store.webhook_delete(Scope::All, hook).await.unwrap();
    store
        .delivery_record(&[outcome(&taken[4], "n2", DeliveryStatus::Success, Some(200), at)])
        .await
        .unwrap();
    assert_eq!(get(c[4].id).await.record.status, DeliveryStatus::Canceled);
    drop(store);
    db.drop_database().await;
}

#[tokio::test]
async fn deliveries_are_listed_requeued_and_purged() {
    let (db, store) = setup!();
    let (m, other) = (merchant(&store, "shop").await, merchant(&store, "other").await);
    let hook = store
        .webhook_create(m, &new_hook("order:created", true), i64::MAX)
        .await
        .unwrap()
        .expect("no webhook limit");
    for _ in 0..4 {
        publish(&store, m, "order:created").await;
    }
    let now = now_millis();
    let c = store.delivery_claim(hook, "n", now, now + HOUR, 4).await.unwrap();
    store
        .delivery_record(&[
            outcome(&c[0], "n", DeliveryStatus::Failed, Some(500), now),
            outcome(&c[1], "n", DeliveryStatus::Success, Some(200), now),
        ])
        .await
        .unwrap();

    let filter = |status, before| DeliveryFilter {
        status,
        before,
        limit: 100,
    };
    let incs = |v: Vec<crate::store::DeliveryRecord>| v.into_iter().map(|r| r.increment_id).collect::<Vec<_>>();
    assert_eq!(
        incs(
            store
                .delivery_list(Scope::Merchant(m), hook, &filter(None, None))
                .await
                .unwrap()
        ),
        vec![4, 3, 2, 1]
    );
    assert_eq!(
        incs(
            store
                .delivery_list(Scope::All, hook, &filter(Some(DeliveryStatus::Failed), None))
                .await
                .unwrap()
        ),
        vec![1]
    );
    assert_eq!(
        incs(
            store
                .delivery_list(Scope::All, hook, &filter(None, Some(c[2].id.0)))
                .await
                .unwrap()
        ),
        vec![2, 1]
    );
    let two = DeliveryFilter {
        status: None,
        before: None,
        limit: 2,
    };
    assert_eq!(
        incs(store.delivery_list(Scope::All, hook, &two).await.unwrap()),
        vec![4, 3]
    );
    assert!(store
        .delivery_list(Scope::Merchant(other), hook, &filter(None, None))
        .await
        .unwrap()
        .is_empty());

    let detail = store.delivery_get(Scope::Merchant(m), c[0].id).await.unwrap().unwrap();
    assert_eq!(detail.body, c[0].body);
    assert_eq!(detail.record.topic, "order:created");
    assert_eq!(detail.attempts[0].http_status, Some(500));
    assert!(store
        .delivery_get(Scope::Merchant(other), c[0].id)
        .await
        .unwrap()
        .is_none());

    assert_eq!(
        store
            .delivery_requeue(Scope::Merchant(other), c[0].id, now)
            .await
            .unwrap(),
        Requeue::NotFound
    );
    assert_eq!(
        store
            .delivery_requeue(Scope::All, DeliveryId(987_654), now)
            .await
            .unwrap(),
        Requeue::NotFound
    );
    assert_eq!(
        store.delivery_requeue(Scope::Merchant(m), c[1].id, now).await.unwrap(),
        Requeue::NotFailed(DeliveryStatus::Success)
    );
    assert_eq!(
        store
            .delivery_requeue(Scope::Merchant(m), c[0].id, now + 5)
            .await
            .unwrap(),
        Requeue::Requeued(hook)
    );
    let requeued = store.delivery_get(Scope::All, c[0].id).await.unwrap().unwrap().record;
    assert_eq!(
        (requeued.status, requeued.next_attempt_at, requeued.increment_id),
        (DeliveryStatus::Retrying, now + 5, 1)
    );
    assert_eq!(
        store.delivery_requeue(Scope::All, c[0].id, now).await.unwrap(),
        Requeue::NotFailed(DeliveryStatus::Retrying)
    );

    // Only finished payloads finished before the cut go; queued ones stay whatever their age.
    assert_eq!(store.purge_finished(now).await.unwrap(), 0);
    assert_eq!(store.purge_finished(now + 1).await.unwrap(), 1);
    assert_eq!(
        incs(
            store
                .delivery_list(Scope::All, hook, &filter(None, None))
                .await
                .unwrap()
        ),
        vec![4, 3, 1]
    );
    drop(store);
    db.drop_database().await;
}
