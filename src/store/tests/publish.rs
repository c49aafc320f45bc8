//! Publishing: fan-out, gap-free increment ids under concurrency, idempotency keys, filters.

use super::*;
use crate::domain::WebhookChange;
use crate::store::DeliveryRecord;

store_test! {
    async fn publishing_fans_out_by_exact_prefix_and_wildcard_topics(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let exact = create_hook(&*store, m, "order:created", true).await;
        let prefix = create_hook(&*store, m, "order:*", true).await;
        let all = create_hook(&*store, m, "*", true).await;
        let product = create_hook(&*store, m, "product:created", true).await;
        let both = create_hook(&*store, m, "order:created,order:*,*", true).await;
        let inactive = create_hook(&*store, m, "*", false).await;
        let foreign = create_hook(&*store, other, "*", true).await;

        for round in 1..=3 {
            let p = publish(&*store, m, "order:created").await;
            assert_eq!(
                p.webhooks,
                vec![exact, prefix, all, both],
                "one payload per matching webhook"
            );
            assert_eq!((p.payloads, p.replayed), (4, false));
            assert_eq!(
                store
                    .webhook_get(Scope::All, exact)
                    .await
                    .unwrap()
                    .unwrap()
                    .increment_id,
                round
            );
        }
        let p = publish(&*store, m, "product:created").await;
        assert_eq!(p.webhooks, vec![all, product, both]);
        let p = publish(&*store, m, "order:shipped").await;
        assert_eq!(p.webhooks, vec![prefix, all, both]);

        for (hook, expected) in [
            (exact, 3),
            (prefix, 4),
            (all, 5),
            (product, 1),
            (both, 5),
            (inactive, 0),
            (foreign, 0),
        ] {
            let made = payloads(&*store, hook).await;
            let increments: Vec<i64> = made.iter().map(|p| p.increment_id).collect();
            assert_eq!(increments, (1..=expected).collect::<Vec<_>>(), "webhook {hook}");
            for p in &made {
                let body: serde_json::Value =
                    serde_json::from_slice(&store.delivery_get(Scope::All, p.id).await.unwrap().unwrap().body).unwrap();
                assert_eq!(body["message"]["webhook_increment_id"], json!(p.increment_id));
                assert_eq!(body["topic"], json!(p.topic));
                assert_eq!(p.status, DeliveryStatus::Pending);
            }
        }
    }
}

store_test! {
    async fn concurrent_publishers_on_two_nodes_take_gap_free_increment_ids(db, store) {
        let second = db.store().await;
        let m = merchant(&*store, "shop").await;
        // Overlapping subscriptions, so every publisher locks several shared webhook rows.
        let hooks = [
            create_hook(&*store, m, "order:created", true).await,
            create_hook(&*store, m, "order:*", true).await,
            create_hook(&*store, m, "*", true).await,
            create_hook(&*store, m, "product:created,order:created", true).await,
        ];
        let (tasks, per_task) = (8, 50);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let node = if t % 2 == 0 { store.clone() } else { second.clone() };
            handles.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    let p = publish(&*node, m, "order:created").await;
                    assert_eq!(p.payloads, 4);
                }
            }));
        }
        for h in handles {
            h.await.expect("a publisher panicked");
        }
        let total = tasks * per_task;
        for hook in hooks {
            let mut increments: Vec<i64> = payloads(&*store, hook).await.iter().map(|p| p.increment_id).collect();
            increments.sort_unstable();
            assert_eq!(
                increments,
                (1..=total).collect::<Vec<i64>>(),
                "webhook {hook}: no gaps, no repeats"
            );
            assert_eq!(
                store.webhook_get(Scope::All, hook).await.unwrap().unwrap().increment_id,
                total
            );
        }
    }
}

store_test! {
    async fn an_idempotency_key_makes_one_event_even_when_raced(db, store) {
        let second = db.store().await;
        let m = merchant(&*store, "shop").await;
        let other = merchant(&*store, "other").await;
        let hook = create_hook(&*store, m, "*", true).await;
        let now = now_millis();

        let first = publish_at(&*store, m, "order:created", Some("k1"), now).await;
        assert!(!first.replayed);
        let again = publish_at(&*store, m, "order:created", Some("k1"), now + HOUR).await;
        assert_eq!(
            again,
            Published {
                event_id: first.event_id,
                payloads: 1,
                webhooks: vec![],
                replayed: true,
                handed: vec![],
            }
        );
        assert!(
            !publish_at(&*store, other, "order:created", Some("k1"), now)
                .await
                .replayed,
            "keys are per merchant"
        );
        assert!(!publish_at(&*store, m, "order:created", Some("k2"), now).await.replayed);
        // After the 24-hour window the key is free again.
        let later = publish_at(&*store, m, "order:created", Some("k1"), now + 25 * HOUR).await;
        assert!(!later.replayed);
        assert_ne!(later.event_id, first.event_id);
        assert_eq!(payloads(&*store, hook).await.len(), 3);

        // Sixteen racing publishes with one key, over two nodes: one event, one payload.
        let mut handles = Vec::new();
        for t in 0..16 {
            let node = if t % 2 == 0 { store.clone() } else { second.clone() };
            handles.push(tokio::spawn(async move {
                publish_at(&*node, m, "order:created", Some("race"), now).await
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        assert_eq!(results.iter().filter(|p| !p.replayed).count(), 1);
        assert_eq!(results.iter().map(|p| p.event_id).collect::<HashSet<_>>().len(), 1);
        assert!(results.iter().all(|p| p.payloads == 1));
        let increments: Vec<i64> = payloads(&*store, hook).await.iter().map(|p| p.increment_id).collect();
        assert_eq!(increments, vec![1, 2, 3, 4]);
    }
}

fn increments(made: &[DeliveryRecord]) -> Vec<i64> {
    made.iter().map(|p| p.increment_id).collect()
}

store_test! {
    async fn a_filter_decides_which_events_make_payloads_and_the_ids_stay_gap_free(db, store) {
        let m = merchant(&*store, "shop").await;
        let big = filtered_hook(&*store, m, "order:*", "message.total > 100").await;
        let created = filtered_hook(&*store, m, "*", "topic == \"order:created\"").await;
        let vip = filtered_hook(&*store, m, "*", "message.customer.vip").await;
        let plain = create_hook(&*store, m, "*", true).await;

        let p = publish_message(&*store, m, "order:created", json!({"total": 150}), None).await;
        assert_eq!((p.webhooks.clone(), p.payloads), (vec![big, created, plain], 3));
        let p = publish_message(&*store, m, "order:shipped", json!({"total": 50}), None).await;
        assert_eq!((p.webhooks.clone(), p.payloads), (vec![plain], 1));
        let p = publish_message(&*store, m, "order:shipped", json!({"total": 101.5}), None).await;
        assert_eq!(p.webhooks, vec![big, plain]);
        let p = publish_message(&*store, m, "order:created", json!({"total": "lots"}), None).await;
        assert_eq!(p.webhooks, vec![created, plain], "a wrong type is false, not an error");
        let p = publish_message(&*store, m, "order:created", json!({"customer": {"vip": true}}), None).await;
        assert_eq!(p.webhooks, vec![created, vip, plain]);

        for (hook, expected) in [(big, 2), (created, 3), (vip, 1), (plain, 5)] {
            let made = payloads(&*store, hook).await;
            assert_eq!(increments(&made), (1..=expected).collect::<Vec<_>>(), "webhook {hook}");
            assert_eq!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().increment_id, expected);
            for p in &made {
                let body: serde_json::Value =
                    serde_json::from_slice(&store.delivery_get(Scope::All, p.id).await.unwrap().unwrap().body).unwrap();
                assert_eq!(body["message"]["webhook_increment_id"], json!(p.increment_id));
            }
        }

        // A replay answers as the first publish did, filters and all, and makes nothing.
        let first = publish_message(&*store, m, "order:created", json!({"total": 1}), Some("k")).await;
        let again = publish_message(&*store, m, "order:created", json!({"total": 1000}), Some("k")).await;
        assert_eq!((first.payloads, again.payloads, again.replayed), (2, 2, true));
        assert_eq!(payloads(&*store, big).await.len(), 2);
    }
}

store_test! {
    async fn concurrent_filtered_publishes_on_two_nodes_take_gap_free_ids(db, store) {
        let second = db.store().await;
        let m = merchant(&*store, "shop").await;
        let even = filtered_hook(&*store, m, "order:created", "message.n % 2 == 0").await;
        let odd = filtered_hook(&*store, m, "order:*", "message.n % 2 == 1").await;
        let all = create_hook(&*store, m, "order:created", true).await;
        let (tasks, per_task): (i64, i64) = (8, 40);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let node = if t % 2 == 0 { store.clone() } else { second.clone() };
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let n = t * per_task + i;
                    let p = publish_message(&*node, m, "order:created", json!({ "n": n }), None).await;
                    assert_eq!(p.payloads, 2, "one of the filtered webhooks and the plain one");
                }
            }));
        }
        for h in handles {
            h.await.expect("a publisher panicked");
        }
        let total = tasks * per_task;
        for (hook, expected) in [(even, total / 2), (odd, total / 2), (all, total)] {
            let mut got = increments(&payloads(&*store, hook).await);
            got.sort_unstable();
            assert_eq!(got, (1..=expected).collect::<Vec<i64>>(), "webhook {hook}: no gaps, no repeats");
            assert_eq!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().increment_id, expected);
        }
    }
}

store_test! {
    async fn a_changed_filter_applies_to_the_next_publish(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = filtered_hook(&*store, m, "order:created", "message.total > 100").await;
        assert_eq!(publish_message(&*store, m, "order:created", json!({"total": 5}), None).await.payloads, 0);
        let change = WebhookChange::from_json(&json!({"filter": "message.total < 10"}), &catalog(), false).unwrap();
        assert!(store.webhook_update(Scope::All, hook, &change).await.unwrap());
        assert_eq!(publish_message(&*store, m, "order:created", json!({"total": 5}), None).await.payloads, 1);
        let change = WebhookChange::from_json(&json!({"filter": null}), &catalog(), false).unwrap();
        assert!(store.webhook_update(Scope::All, hook, &change).await.unwrap());
        assert_eq!(publish_message(&*store, m, "order:created", json!({"total": 500}), None).await.payloads, 1);
        assert_eq!(increments(&payloads(&*store, hook).await), vec![1, 2]);
    }
}

store_test! {
    /// The store never evaluates a filter (its write path serves every merchant): a publish
    /// that did not judge a matched webhook's filter stores nothing and is told which.
    async fn a_publish_without_the_verdict_of_a_matched_filter_stores_nothing_and_names_it(db, store) {
        use crate::domain::filter::Verdicts;
        use crate::domain::BodyTemplate;
        let m = merchant(&*store, "shop").await;
        let big = filtered_hook(&*store, m, "order:*", "message.total > 100").await;
        let plain = create_hook(&*store, m, "order:*", true).await;
        let _elsewhere = filtered_hook(&*store, m, "product:*", "message.x == 1").await;
        let t = topic("order:created");
        let now = now_millis();
        let body = BodyTemplate::new(t.as_str(), "shop", json!({"total": 150}).as_object().unwrap(), now);
        let no_verdicts = Verdicts::default();
        let mut req = request(m, &t, &body, &no_verdicts, Some("k1"), now);
        match store.event_publish(&req).await {
            Err(StoreError::FiltersUnjudged(filters)) => {
                assert_eq!(filters.iter().map(|f| &**f).collect::<Vec<_>>(), vec!["message.total > 100"])
            }
            other => panic!("{other:?}"),
        }
        assert!(payloads(&*store, plain).await.is_empty(), "nothing stored, not even the plain webhook's");
        assert_eq!(store.webhook_get(Scope::All, big).await.unwrap().unwrap().increment_id, 0);
        // The verdict given is the one used, whatever the filter would say.
        let refused = Verdicts::judge("order:created", &BodyTemplate::new(t.as_str(), "shop", json!({"total": 1}).as_object().unwrap(), now), [&"message.total > 100".into()]);
        req.verdicts = &refused;
        let p = store.event_publish(&req).await.unwrap();
        assert_eq!((p.webhooks.clone(), p.replayed), (vec![plain], false));
        // The idempotency key was not taken by the refused attempt: a replay now is this one.
        let again = store.event_publish(&req).await.unwrap();
        assert_eq!((again.event_id, again.replayed), (p.event_id, true));
    }
}

store_test! {
    async fn a_publish_with_a_key_check_stores_nothing_once_the_key_was_rotated_or_the_user_removed(db, store) {
        use crate::domain::filter::Verdicts;
        use crate::domain::{BodyTemplate, KeyCheck, Role, UserName};
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:*", true).await;
        let name = UserName::parse("feed").unwrap();
        let user = store.user_create(&name, Role::Publisher, None, "hash-1").await.unwrap();
        let t = topic("order:created");
        let now = now_millis();
        let body = BodyTemplate::new(t.as_str(), "shop", json!({"n": 1}).as_object().unwrap(), now);
        let check = KeyCheck { user: user.id, key_hash: "hash-1".into() };
        let no_verdicts = Verdicts::default();
        let mut req = request(m, &t, &body, &no_verdicts, Some("k1"), now);
        req.key_check = Some(&check);
        let first = store.event_publish(&req).await.expect("the key is the user's");
        assert_eq!(first.webhooks, vec![hook]);

        assert!(store.user_rotate_key("feed", "hash-2").await.unwrap());
        // Neither a new event nor the replay of the stored one is answered to the old key.
        for key in [Some("k1"), Some("k2"), None] {
            req.idempotency_key = key;
            let refused = store.event_publish(&req).await;
            assert!(matches!(refused, Err(StoreError::KeyRevoked)), "{key:?}: {refused:?}");
        }
        let new = KeyCheck { key_hash: "hash-2".into(), ..check.clone() };
        req.key_check = Some(&new);
        req.idempotency_key = None;
        let second = store.event_publish(&req).await.expect("the new key publishes");
        assert_ne!(second.event_id, first.event_id);

        assert!(store.user_remove("feed").await.unwrap());
        let refused = store.event_publish(&req).await;
        assert!(matches!(refused, Err(StoreError::KeyRevoked)), "{refused:?}");
        let ids: Vec<i64> = payloads(&*store, hook).await.iter().map(|d| d.increment_id).collect();
        assert_eq!(ids.len(), 2, "only the two accepted publishes made payloads: {ids:?}");
        assert_eq!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().increment_id, 2);
    }
}
