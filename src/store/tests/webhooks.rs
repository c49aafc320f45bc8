//! Webhook creation, listing, scoping, status changes and deletion.

use super::*;

store_test! {
    async fn webhooks_are_scoped_listed_switched_and_deleted(db, store) {
        let (a, b) = (merchant(&*store, "a").await, merchant(&*store, "b").await);
        let hook = NewWebhook::from_json(
            &json!({"topics": ["order:created", "order:*"], "url": "https://r.example/x?y=1",
                    "extra_headers": "X-One: 1\r\nX-Two: 2", "secret_key": "s3cr3t-s3cr3t-s3cr3t"}),
            &catalog(),
            false,
        )
        .unwrap();
        let a1 = store
            .webhook_create(a, &hook, i64::MAX)
            .await
            .unwrap()
            .expect("no webhook limit");
        let a2 = create_hook(&*store, a, "product:created", false).await;
        let b1 = create_hook(&*store, b, "order:created", true).await;

        let got = store
            .webhook_get(Scope::Merchant(a), a1)
            .await
            .unwrap()
            .expect("own webhook");
        assert_eq!(got.topics, "order:created,order:*");
        assert_eq!(got.url, "https://r.example/x?y=1");
        assert_eq!(got.extra_headers, "X-One: 1\r\nX-Two: 2");
        assert_eq!(got.secret_key, "s3cr3t-s3cr3t-s3cr3t");
        assert_eq!((got.increment_id, got.is_active, got.merchant_id), (0, true, a));
        assert!(
            store.webhook_get(Scope::Merchant(b), a1).await.unwrap().is_none(),
            "another merchant's"
        );
        assert!(store.webhook_get(Scope::All, a1).await.unwrap().is_some());

        let ids = |v: Vec<crate::domain::Webhook>| v.into_iter().map(|w| w.id).collect::<Vec<_>>();
        assert_eq!(ids(store.webhook_list(Scope::All).await.unwrap()), vec![a1, a2, b1]);
        assert_eq!(ids(store.webhook_list(Scope::Merchant(a)).await.unwrap()), vec![a1, a2]);
        assert_eq!(store.webhook_count(a).await.unwrap(), 2);

        // By id, only within the scope.
        assert_eq!(
            store
                .webhook_set_active(Scope::Merchant(b), &StatusTarget::Id(a2), true)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .webhook_set_active(Scope::Merchant(a), &StatusTarget::Id(a2), true)
                .await
                .unwrap(),
            1
        );
        assert!(store.webhook_get(Scope::All, a2).await.unwrap().unwrap().is_active);
        // By topic: the exact entry, within the scope.
        let order = StatusTarget::Topic("order:created".into());
        assert_eq!(
            store
                .webhook_set_active(Scope::Merchant(a), &order, false)
                .await
                .unwrap(),
            1
        );
        assert!(!store.webhook_get(Scope::All, a1).await.unwrap().unwrap().is_active);
        assert!(store.webhook_get(Scope::All, b1).await.unwrap().unwrap().is_active);
        assert_eq!(store.webhook_set_active(Scope::All, &order, false).await.unwrap(), 2);
        let prefix = StatusTarget::Topic("order:*".into());
        assert_eq!(store.webhook_set_active(Scope::All, &prefix, true).await.unwrap(), 1);
        let none = StatusTarget::Topic("order:shipped".into());
        assert_eq!(store.webhook_set_active(Scope::All, &none, true).await.unwrap(), 0);

        // Deleting cancels the queued payloads, and leaves finished ones alone.
        publish(&*store, a, "order:created").await;
        publish(&*store, a, "order:created").await;
        let claimed = store
            .delivery_claim(a1, "n1", now_millis(), now_millis() + HOUR, 1)
            .await
            .unwrap();
        store
            .delivery_record(&[outcome(
                &claimed[0],
                "n1",
                DeliveryStatus::Success,
                Some(200),
                now_millis(),
            )])
            .await
            .unwrap();
        assert!(
            !store.webhook_delete(Scope::Merchant(b), a1).await.unwrap(),
            "another merchant's"
        );
        assert!(store.webhook_delete(Scope::Merchant(a), a1).await.unwrap());
        assert!(
            !store.webhook_delete(Scope::Merchant(a), a1).await.unwrap(),
            "already gone"
        );
        assert!(store.webhook_get(Scope::All, a1).await.unwrap().is_none());
        let statuses: Vec<DeliveryStatus> = payloads(&*store, a1).await.into_iter().map(|p| p.status).collect();
        assert_eq!(statuses, vec![DeliveryStatus::Success, DeliveryStatus::Canceled]);
        assert!(store
            .queue_scan(now_millis())
            .await
            .unwrap()
            .iter()
            .all(|(w, _)| *w != a1));
    }
}

store_test! {
    /// The per-merchant limit holds when creates race, and deleting makes room again.
    async fn the_webhook_limit_holds_under_concurrent_creates(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let second = db.store().await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let node = if i % 2 == 0 { store.clone() } else { second.clone() };
            tasks.push(tokio::spawn(async move {
                node.webhook_create(m, &new_hook("order:created", true), 5).await.unwrap()
            }));
        }
        let mut made = Vec::new();
        for task in tasks {
            made.extend(task.await.unwrap());
        }
        assert_eq!(made.len(), 5, "{made:?}");
        assert_eq!(store.webhook_count(m).await.unwrap(), 5);
        assert_eq!(store.webhook_list(Scope::Merchant(m)).await.unwrap().len(), 5);
        assert_eq!(store.webhook_count(other).await.unwrap(), 0);
        assert!(store
            .webhook_create(other, &new_hook("*", true), 1)
            .await
            .unwrap()
            .is_some());

        assert!(!store.webhook_delete(Scope::Merchant(other), made[0]).await.unwrap());
        assert_eq!(store.webhook_count(m).await.unwrap(), 5, "not deleted: still counted");
        assert!(store.webhook_delete(Scope::Merchant(m), made[0]).await.unwrap());
        assert_eq!(store.webhook_count(m).await.unwrap(), 4);
        let hook = new_hook("*", true);
        assert!(store.webhook_create(m, &hook, 5).await.unwrap().is_some(), "room again after a delete");
        assert!(store.webhook_create(m, &hook, 5).await.unwrap().is_none());
    }
}

store_test! {
    /// The console's list pages by id: each page starts after the last one shown, within the
    /// scope, and the pages together are the whole list once.
    async fn webhooks_are_paged_by_id_within_the_scope(db, store) {
        let (a, b) = (merchant(&*store, "a").await, merchant(&*store, "b").await);
        let mut of_a = Vec::new();
        let mut every = Vec::new();
        for i in 0..7 {
            let owner = if i % 3 == 2 { b } else { a };
            let id = create_hook(&*store, owner, "order:created", true).await;
            if owner == a {
                of_a.push(id);
            }
            every.push(id);
        }
        let ids = |v: Vec<crate::domain::Webhook>| v.into_iter().map(|w| w.id).collect::<Vec<_>>();
        let walk = |scope: Scope| {
            let store = store.clone();
            async move {
                let (mut seen, mut after) = (Vec::new(), None);
                loop {
                    let page = ids(store.webhook_page(scope, after, 2).await.unwrap());
                    assert!(page.len() <= 2);
                    let Some(last) = page.last().copied() else { break };
                    seen.extend(page);
                    after = Some(last);
                }
                seen
            }
        };
        assert_eq!(walk(Scope::Merchant(a)).await, of_a);
        assert_eq!(walk(Scope::All).await, every);
        assert_eq!(ids(store.webhook_page(Scope::All, None, 100).await.unwrap()), every);
        assert_eq!(
            ids(store.webhook_page(Scope::Merchant(b), Some(of_a[0]), 1).await.unwrap()),
            vec![every[2]],
            "after any id, the scope's next"
        );
        assert!(store
            .webhook_page(Scope::Merchant(b), Some(every[6]), 10)
            .await
            .unwrap()
            .is_empty());
    }
}
