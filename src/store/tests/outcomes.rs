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
        // (A success can be sent again too, CONTRACT §7.7: tests/api/delivery_retry.rs.)
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

store_test! {
    /// A payload sent twice for one attempt (claimed again once the first lease ran out,
    /// while the first request was still out): both requests are in the log, but the
    /// payload counts one attempt and keeps the outcome written first; the late one, a
    /// failure, moves nothing back.
    async fn an_attempt_whose_lease_was_lost_is_logged_but_moves_nothing(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:created", true).await;
        publish(&*store, m, "order:created").await;
        let now = now_millis();
        let first = store.delivery_claim(hook, "slow", now, now + 1000, 1).await.unwrap();
        let second = store
            .delivery_claim(hook, "fast", now + 2000, now + HOUR, 1)
            .await
            .unwrap();
        assert_eq!(second.len(), 1, "the first lease ran out");
        let fast = outcome(&second[0], "fast", DeliveryStatus::Success, Some(200), now + 2100);
        let slow = outcome(&first[0], "slow", DeliveryStatus::Retrying, Some(500), now + 2500);
        store.delivery_record(&[fast]).await.unwrap();
        store.delivery_record(std::slice::from_ref(&slow)).await.unwrap();
        // Recorded again (a retried write-back): nothing more.
        store.delivery_record(&[slow]).await.unwrap();
        let d = store.delivery_get(Scope::All, second[0].id).await.unwrap().unwrap();
        assert_eq!(
            (d.record.status, d.record.attempts, d.record.last_http_status),
            (DeliveryStatus::Success, 1, Some(200))
        );
        let log: Vec<_> = d.attempts.iter().map(|a| (a.attempted_at, a.http_status)).collect();
        assert_eq!(log, vec![(now + 2100, Some(200)), (now + 2500, Some(500))]);
        assert!(store
            .delivery_claim(hook, "n", now + HOUR, now + 2 * HOUR, 1)
            .await
            .unwrap()
            .is_empty());
    }
}

store_test! {
    /// `failing_since` follows the outcomes: set by the first failure after a success, kept
    /// by later failures, cleared by a success (or by hookd turning the webhook off); each
    /// batch reports the webhooks it saw fail that are failing, with their run's start.
    async fn outcomes_keep_each_webhook_s_failing_since(db, store) {
        use crate::store::Failing;
        let m = merchant(&*store, "shop").await;
        let (a, b) = (
            create_hook(&*store, m, "order:created", true).await,
            create_hook(&*store, m, "order:created", true).await,
        );
        for _ in 0..7 {
            publish(&*store, m, "order:created").await;
        }
        let now = now_millis();
        let ca = store.delivery_claim(a, "n", now, now + HOUR, 7).await.unwrap();
        let cb = store.delivery_claim(b, "n", now, now + HOUR, 7).await.unwrap();
        let (fail, ok) = (DeliveryStatus::Retrying, DeliveryStatus::Success);
        let failing = |webhook, since| Failing { webhook, since };

        // A fails (from 1000), B succeeds: only A is reported.
        let got = store
            .delivery_record(&[outcome(&ca[0], "n", fail, Some(500), 1000), outcome(&cb[0], "n", ok, Some(200), 1000)])
            .await
            .unwrap();
        assert_eq!(got, vec![failing(a, 1000)]);
        // Later failures keep the run's start; a failing batch of B starts B's.
        let got = store
            .delivery_record(&[outcome(&ca[1], "n", fail, Some(500), 2000), outcome(&cb[1], "n", fail, None, 2500)])
            .await
            .unwrap();
        assert_eq!(got, vec![failing(a, 1000), failing(b, 2500)]);
        // A success ends A's run: the next failure starts a new one.
        assert!(store.delivery_record(&[outcome(&ca[2], "n", ok, Some(200), 3000)]).await.unwrap().is_empty());
        let got = store.delivery_record(&[outcome(&ca[3], "n", fail, Some(500), 4000)]).await.unwrap();
        assert_eq!(got, vec![failing(a, 4000)]);
        // A success then a failure in one batch: the run starts at that failure.
        let got = store
            .delivery_record(&[outcome(&ca[5], "n", fail, Some(503), 6000), outcome(&ca[4], "n", ok, Some(200), 5000)])
            .await
            .unwrap();
        assert_eq!(got, vec![failing(a, 6000)]);
        // Turned off, its run is over; the same for a status change by the merchant.
        assert!(store.webhook_disable(a, "410 Gone").await.unwrap());
        let got = store.delivery_record(&[outcome(&ca[6], "n", fail, Some(410), 7000)]).await.unwrap();
        assert_eq!(got, vec![failing(a, 7000)]);
        store.webhook_set_active(Scope::All, &StatusTarget::Id(b), true).await.unwrap();
        let got = store.delivery_record(&[outcome(&cb[2], "n", fail, Some(500), 8000)]).await.unwrap();
        assert_eq!(got, vec![failing(b, 8000)]);
        // A deleted webhook is not reported.
        assert!(store.webhook_delete(Scope::All, b).await.unwrap());
        assert!(store.delivery_record(&[outcome(&cb[3], "n", fail, Some(500), 9000)]).await.unwrap().is_empty());
    }
}

store_test! {
    /// The console's list reads the last outcome of a page of webhooks in one call: the
    /// newest payload of each, none for a webhook without any, nothing of another merchant's.
    async fn the_newest_payload_of_each_webhook_is_read_in_one_call(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let busy = create_hook(&*store, m, "order:created", true).await;
        let quiet = create_hook(&*store, m, "product:created", true).await;
        let theirs = create_hook(&*store, other, "order:created", true).await;
        for _ in 0..3 {
            publish(&*store, m, "order:created").await;
        }
        publish(&*store, other, "order:created").await;
        let now = now_millis();
        let c = store.delivery_claim(busy, "n", now, now + HOUR, 3).await.unwrap();
        store
            .delivery_record(&[
                outcome(&c[0], "n", DeliveryStatus::Success, Some(200), now),
                outcome(&c[2], "n", DeliveryStatus::Failed, Some(500), now),
            ])
            .await
            .unwrap();

        let latest = store
            .delivery_latest(Scope::Merchant(m), &[theirs, quiet, busy, busy])
            .await
            .unwrap();
        assert_eq!(latest.len(), 1, "only the merchant's webhook with payloads: {latest:?}");
        let newest = &latest[0];
        assert_eq!((newest.webhook_id, newest.id, newest.increment_id), (busy, c[2].id, 3));
        assert_eq!(newest.status, DeliveryStatus::Failed);
        assert_eq!(newest.last_http_status, Some(500));
        assert_eq!(newest.last_error.as_deref(), Some("HTTP 500"));

        // A newer payload takes its place; an admin sees every merchant's, by webhook id.
        publish(&*store, m, "order:created").await;
        let all = store.delivery_latest(Scope::All, &[theirs, quiet, busy]).await.unwrap();
        let seen: Vec<_> = all.iter().map(|d| (d.webhook_id, d.increment_id, d.status)).collect();
        assert_eq!(
            seen,
            vec![(busy, 4, DeliveryStatus::Pending), (theirs, 1, DeliveryStatus::Pending)]
        );
        assert!(store
            .delivery_latest(Scope::Merchant(other), &[busy, quiet])
            .await
            .unwrap()
            .is_empty());
        assert!(store.delivery_latest(Scope::All, &[]).await.unwrap().is_empty());

        // One page at most per call.
        let many: Vec<_> = (1..=crate::store::LATEST_MAX_WEBHOOKS as i64 + 1)
            .map(crate::domain::WebhookId)
            .collect();
        assert!(matches!(
            store.delivery_latest(Scope::All, &many).await,
            Err(StoreError::TooManyIds { given: 51, max: 50 })
        ));
        assert!(store
            .delivery_latest(Scope::All, &many[1..])
            .await
            .is_ok());
    }
}
