//! Recording attempts, the delivery log, retries and retention.

use super::*;

store_test! {
    async fn deliveries_are_listed_requeued_and_purged(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        for _ in 0..4 {
            publish(&*store, m, "order:created").await;
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
    }
}

store_test! {
    /// A write-back retried after an unclear failure (committed, but its fsync failed) must
    /// not count the attempt twice: recording the same attempt again changes nothing.
    async fn recording_the_same_attempt_twice_counts_it_once(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:created", true).await;
        publish(&*store, m, "order:created").await;
        let now = now_millis();
        let c = store.delivery_claim(hook, "n", now, now + HOUR, 1).await.unwrap();
        let first = outcome(&c[0], "n", DeliveryStatus::Retrying, Some(500), now);
        store.delivery_record(std::slice::from_ref(&first)).await.unwrap();
        store.delivery_record(std::slice::from_ref(&first)).await.unwrap();
        let d = store.delivery_get(Scope::All, c[0].id).await.unwrap().unwrap();
        assert_eq!((d.record.attempts, d.attempts.len()), (1, 1));

        // The second real attempt counts; recording it twice, or the first again, does not.
        let again = store
            .delivery_claim(hook, "n", now + 60_000, now + HOUR, 1)
            .await
            .unwrap();
        assert_eq!(again[0].attempts, 1);
        let second = outcome(&again[0], "n", DeliveryStatus::Failed, Some(500), now + 60_000);
        assert_eq!(second.attempt_no, 2);
        store.delivery_record(&[second.clone(), first]).await.unwrap();
        store.delivery_record(&[second]).await.unwrap();
        let d = store.delivery_get(Scope::All, c[0].id).await.unwrap().unwrap();
        assert_eq!(
            (d.record.status, d.record.attempts, d.attempts.len()),
            (DeliveryStatus::Failed, 2, 2)
        );
        assert_eq!(
            d.attempts.iter().map(|a| a.attempted_at).collect::<Vec<_>>(),
            vec![now, now + 60_000]
        );
    }
}
