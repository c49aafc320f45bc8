//! The webhook lifecycle: update, secret rotation, payload ranges, recovery and the
//! merchant-wide delivery log.

use super::*;
use crate::domain::{DeliverySearch, KeyPair, Recovered, RotateOutcome, SecretKey, SignatureScheme, WebhookChange};

fn change(v: serde_json::Value) -> WebhookChange {
    WebhookChange::from_json(&v, &catalog(), false).expect("a valid change")
}

store_test! {
    async fn updates_keep_the_id_and_sequence_and_move_the_version(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        publish(&*store, m, "order:created").await;
        let before = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!((before.merchant_code.as_str(), before.increment_id), ("shop", 1));

        let c = change(json!({"url": "https://new.example/h", "topics": "product:*",
                              "extra_headers": "X-New: 1", "is_active": 0}));
        assert!(!store.webhook_update(Scope::Merchant(other), hook, &c).await.unwrap(), "another merchant's");
        assert!(!store.webhook_update(Scope::All, crate::domain::WebhookId(9999), &c).await.unwrap());
        assert!(store.webhook_update(Scope::Merchant(m), hook, &c).await.unwrap());
        let after = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(after.url, "https://new.example/h");
        assert_eq!(after.topics, "product:*");
        assert_eq!(after.extra_headers, "X-New: 1");
        assert!(!after.is_active);
        assert_eq!(after.increment_id, 1);
        assert_eq!(after.secret_key, before.secret_key);
        assert!(after.version > before.version);

        // The subscription index follows the new topics.
        assert!(store.webhook_update(Scope::All, hook, &change(json!({"is_active": true}))).await.unwrap());
        assert_eq!(publish(&*store, m, "order:created").await.payloads, 0);
        assert_eq!(publish(&*store, m, "product:created").await.payloads, 1);
        let incs: Vec<i64> = payloads(&*store, hook).await.iter().map(|p| p.increment_id).collect();
        assert_eq!(incs, vec![1, 2]);
        // A claim reports the version, so dispatchers see the change.
        let now = now_millis();
        let claimed = store.delivery_claim(hook, "n", now, now + HOUR, 10).await.unwrap();
        let version = store.webhook_get(Scope::All, hook).await.unwrap().unwrap().version;
        assert!(claimed.iter().all(|c| c.webhook_version == version));
    }
}

store_test! {
    async fn steering_settings_are_kept_and_a_status_change_clears_the_disabled_reason(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:created", true).await;
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!((got.ordered, got.max_rate, got.filter.clone(), got.disabled_reason.clone()), (false, None, None, None));

        let c = change(json!({"ordered": true, "max_rate": 2.5, "filter": "topic == 'order:created'"}));
        assert!(store.webhook_update(Scope::All, hook, &c).await.unwrap());
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!((got.ordered, got.max_rate), (true, Some(2.5)));
        assert_eq!(got.filter.as_deref(), Some("topic == 'order:created'"));
        // Other changes keep them; null clears max_rate and filter.
        assert!(store.webhook_update(Scope::All, hook, &change(json!({"url": "https://x.example/"}))).await.unwrap());
        assert_eq!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().max_rate, Some(2.5));
        let c = change(json!({"max_rate": null, "filter": null, "ordered": false}));
        assert!(store.webhook_update(Scope::All, hook, &c).await.unwrap());
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!((got.ordered, got.max_rate, got.filter), (false, None, None));

        // Turned off by hookd once; the reason shows until a caller sets the status.
        assert!(store.webhook_disable(hook, "410 Gone at 2026-12-01T00:00:00Z").await.unwrap());
        assert!(!store.webhook_disable(hook, "again").await.unwrap(), "already off");
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert!(!got.is_active);
        assert_eq!(got.disabled_reason.as_deref(), Some("410 Gone at 2026-12-01T00:00:00Z"));
        assert!(store.webhook_update(Scope::All, hook, &change(json!({"url": "https://y.example/"}))).await.unwrap());
        assert!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().disabled_reason.is_some());
        store.webhook_set_active(Scope::All, &StatusTarget::Id(hook), true).await.unwrap();
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert!(got.is_active && got.disabled_reason.is_none());
        // And through webhook.update's is_active.
        assert!(store.webhook_disable(hook, "failing since 5 days").await.unwrap());
        assert!(store.webhook_update(Scope::All, hook, &change(json!({"is_active": 1}))).await.unwrap());
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert!(got.is_active && got.disabled_reason.is_none());
    }
}

store_test! {
    /// The `webhook:disabled` announcement is stored with the turn-off (see `app::announce`).
    async fn a_turn_off_leaves_its_announcement_pending_until_it_is_done(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        let on = create_hook(&*store, other, "order:created", true).await;
        let url = store.webhook_get(Scope::All, hook).await.unwrap().unwrap().url;
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty(), "none before");

        let before = now_millis();
        assert!(store.webhook_disable(hook, "410 Gone at noon").await.unwrap());
        let after = now_millis();
        let pending = store.webhook_announcements_pending(100).await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        let a = &pending[0];
        assert_eq!((a.webhook_id, a.merchant_code.as_str()), (hook, "shop"));
        assert_eq!((a.url.as_str(), a.reason.as_str()), (url.as_str(), "410 Gone at noon"));
        assert!((before..=after).contains(&a.disabled_at), "{a:?} not in {before}..={after}");

        // Done, and done again: nothing pending, no error.
        store.webhook_announcement_done(hook, a.disabled_at).await.unwrap();
        store.webhook_announcement_done(hook, a.disabled_at).await.unwrap();
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty());
        // Turning it off again while off changes nothing, so nothing is pending again.
        assert!(!store.webhook_disable(hook, "again").await.unwrap());
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty());
        assert!(!store.webhook_disable(crate::domain::WebhookId(9999), "gone").await.unwrap());
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty());
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(got.disabled_reason.as_deref(), Some("410 Gone at noon"), "the first reason kept");

        // On again, off again: a new announcement, which the old one's done does not end.
        store.webhook_set_active(Scope::All, &StatusTarget::Id(hook), true).await.unwrap();
        while now_millis() == a.disabled_at {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(store.webhook_disable(hook, "failing for 5 days").await.unwrap());
        assert!(store.webhook_disable(on, "410 Gone").await.unwrap());
        let pending = store.webhook_announcements_pending(100).await.unwrap();
        let ids: Vec<_> = pending.iter().map(|p| (p.webhook_id, p.merchant_code.as_str())).collect();
        assert_eq!(ids, [(hook, "shop"), (on, "other")], "lowest id first");
        assert!(pending[0].disabled_at > a.disabled_at);
        assert_eq!(pending[0].reason, "failing for 5 days");
        store.webhook_announcement_done(hook, a.disabled_at).await.unwrap();
        assert_eq!(store.webhook_announcements_pending(100).await.unwrap(), pending, "a stale done");
        assert_eq!(store.webhook_announcements_pending(1).await.unwrap(), pending[..1], "the limit");

        // A caller's status change ends a pending announcement with the reason, either way.
        store.webhook_set_active(Scope::All, &StatusTarget::Id(hook), true).await.unwrap();
        assert!(store.webhook_update(Scope::All, on, &change(json!({"is_active": 1}))).await.unwrap());
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty());
        store.webhook_set_active(Scope::All, &StatusTarget::Id(hook), false).await.unwrap();
        assert!(store.webhook_announcements_pending(100).await.unwrap().is_empty(), "a caller's turn-off");
        // Other changes keep it.
        assert!(store.webhook_disable(on, "410 Gone again").await.unwrap());
        assert!(store.webhook_update(Scope::All, on, &change(json!({"url": "https://z.example/"}))).await.unwrap());
        let pending = store.webhook_announcements_pending(100).await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!((pending[0].webhook_id, pending[0].url.as_str()), (on, "https://z.example/"));
    }
}

store_test! {
    async fn rotations_keep_each_previous_key_until_its_own_expiry(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        let old = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        let pair = KeyPair::generate();
        let key = |s: &str| SecretKey::parse(s).unwrap();
        let (k1, k2, k3, k4) = (&key("key-1"), &key("key-2"), &key("key-3"), &key("key-4"));
        macro_rules! rotate {
            ($key:expr, $now:expr, $until:expr) => {
                store.webhook_rotate_secret(Scope::Merchant(m), hook, $key, &pair, $now, $until).await.unwrap()
            };
        }
        assert_eq!(
            store.webhook_rotate_secret(Scope::Merchant(other), hook, k1, &pair, 0, 5).await.unwrap(),
            RotateOutcome::NotFound,
            "another merchant's"
        );
        assert_eq!(rotate!(k1, 0, 1000), RotateOutcome::Rotated);
        assert_eq!(rotate!(k2, 10, 500), RotateOutcome::Rotated);
        assert_eq!(rotate!(k3, 20, 800), RotateOutcome::Rotated);
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(got.secret_key, "key-3");
        let previous: Vec<(&str, i64)> =
            got.previous_keys.iter().map(|k| (k.secret_key.as_str(), k.expires_at)).collect();
        assert_eq!(previous, [("key-2", 800), ("key-1", 500), (old.secret_key.as_str(), 1000)]);
        assert!(got.version > old.version);
        assert_eq!((got.signing_key, got.public_key), (None, None), "\"hmac\" has no pair");

        assert_eq!(
            rotate!(k4, 30, 900),
            RotateOutcome::Refused(crate::domain::rotation::TooManyPrevious { oldest_expires_at: 500 })
        );
        assert_eq!(store.webhook_get(Scope::All, hook).await.unwrap().unwrap().secret_key, "key-3", "unchanged");
        assert_eq!(rotate!(k4, 500, 900), RotateOutcome::Rotated, "key-1 expired");
        let got = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        let previous: Vec<&str> = got.previous_keys.iter().map(|k| k.secret_key.as_str()).collect();
        assert_eq!(previous, ["key-3", "key-2", old.secret_key.as_str()]);
    }
}

store_test! {
    async fn key_pairs_are_made_switched_and_rotated(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:created", true).await;
        let on = change(json!({"signature_scheme": "hmac+ed25519"}));
        assert!(store.webhook_update(Scope::All, hook, &on).await.unwrap());
        let first = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(first.signature_scheme, SignatureScheme::HmacEd25519);
        let first_pair = on.key_pair.clone().unwrap();
        assert_eq!(first.signing_key.as_deref(), Some(first_pair.private.as_str()));
        assert_eq!(first.public_key.as_deref(), Some(first_pair.public.as_str()));
        assert!(store.webhook_update(Scope::All, hook, &change(json!({"signature_scheme": "hmac+ed25519"}))).await.unwrap());
        let again = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(again.public_key, first.public_key, "switching on again keeps the pair");

        let next = KeyPair::generate();
        let key = SecretKey::parse("rotated").unwrap();
        assert_eq!(store.webhook_rotate_secret(Scope::All, hook, &key, &next, 0, i64::MAX).await.unwrap(), RotateOutcome::Rotated);
        let rotated = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(rotated.public_key.as_deref(), Some(next.public.as_str()));
        assert_eq!(rotated.previous_keys[0].signing_key.as_deref(), Some(first_pair.private.as_str()));

        assert!(store.webhook_update(Scope::All, hook, &change(json!({"signature_scheme": "hmac"}))).await.unwrap());
        let off = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!((off.signature_scheme, off.signing_key, off.public_key), (SignatureScheme::Hmac, None, None));
    }
}

store_test! {
    async fn payload_ranges_follow_increment_ids(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        for _ in 0..5 {
            publish(&*store, m, "order:created").await;
        }
        let range = store.payload_range(Scope::Merchant(m), hook, 2, 4, 100).await.unwrap();
        assert_eq!(range.iter().map(|p| p.increment_id).collect::<Vec<_>>(), vec![2, 3, 4]);
        let body: serde_json::Value = serde_json::from_slice(&range[0].body).unwrap();
        assert_eq!(body["message"]["webhook_increment_id"], 2);
        assert_eq!(range[0].topic, "order:created");
        assert_eq!(range[0].status, DeliveryStatus::Pending);
        let limited = store.payload_range(Scope::All, hook, 1, i64::MAX, 2).await.unwrap();
        assert_eq!(limited.iter().map(|p| p.increment_id).collect::<Vec<_>>(), vec![1, 2]);
        assert!(store.payload_range(Scope::Merchant(other), hook, 1, 5, 100).await.unwrap().is_empty());
    }
}

store_test! {
    async fn recovery_requeues_failed_payloads_since_a_time(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let hook = create_hook(&*store, m, "order:created", true).await;
        let now = now_millis();
        publish_at(&*store, m, "order:created", None, now - 2 * HOUR).await;
        publish_at(&*store, m, "order:created", None, now - 2 * HOUR).await;
        publish_at(&*store, m, "order:created", None, now - HOUR).await;
        let c = store.delivery_claim(hook, "n", now, now + HOUR, 3).await.unwrap();
        assert_eq!(c.len(), 3);
        store
            .delivery_record(&[
                outcome(&c[0], "n", DeliveryStatus::Failed, Some(500), now),
                outcome(&c[1], "n", DeliveryStatus::Success, Some(200), now),
                outcome(&c[2], "n", DeliveryStatus::Failed, Some(500), now),
            ])
            .await
            .unwrap();
        assert_eq!(store.delivery_recover(Scope::Merchant(other), hook, 0, now, 10).await.unwrap(), None);
        let since = now - HOUR - 1000;
        let one = Recovered { requeued: 1, remaining: 0 };
        assert_eq!(store.delivery_recover(Scope::Merchant(m), hook, since, now, 10).await.unwrap(), Some(one));
        let statuses: Vec<DeliveryStatus> = payloads(&*store, hook).await.iter().map(|p| p.status).collect();
        assert_eq!(statuses, vec![DeliveryStatus::Failed, DeliveryStatus::Success, DeliveryStatus::Retrying]);
        assert_eq!(store.delivery_recover(Scope::All, hook, 0, now, 10).await.unwrap(), Some(one));
        let again = store.delivery_claim(hook, "n2", now, now + HOUR, 10).await.unwrap();
        assert_eq!(again.iter().map(|c| c.increment_id).collect::<Vec<_>>(), vec![1, 3]);
    }
}

store_test! {
    async fn recovery_takes_at_most_its_limit_oldest_first_and_counts_what_is_left(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:created", true).await;
        let now = now_millis();
        for n in 0..5 {
            publish_at(&*store, m, "order:created", None, now - HOUR + n * 1000).await;
        }
        let c = store.delivery_claim(hook, "n", now, now + HOUR, 5).await.unwrap();
        let failed: Vec<_> = c.iter().map(|c| outcome(c, "n", DeliveryStatus::Failed, Some(500), now)).collect();
        store.delivery_record(&failed).await.unwrap();
        let left = |requeued, remaining| Some(Recovered { requeued, remaining });
        assert_eq!(store.delivery_recover(Scope::All, hook, 0, now, 2).await.unwrap(), left(2, 3));
        assert_eq!(store.delivery_recover(Scope::All, hook, 0, now, 0).await.unwrap(), left(0, 3), "a count");
        assert_eq!(store.delivery_recover(Scope::All, hook, 0, now, 2).await.unwrap(), left(2, 1));
        let again = store.delivery_claim(hook, "n2", now, now + HOUR, 10).await.unwrap();
        let mut increments: Vec<i64> = again.iter().map(|c| c.increment_id).collect();
        increments.sort();
        assert_eq!(increments, vec![1, 2, 3, 4], "the oldest first");
        assert_eq!(store.delivery_recover(Scope::All, hook, 0, now, 2).await.unwrap(), left(1, 0));
    }
}

store_test! {
    async fn the_delivery_log_spans_a_merchant_s_webhooks(db, store) {
        let (m, other) = (merchant(&*store, "shop").await, merchant(&*store, "other").await);
        let a = store.webhook_create(m, &new_hook("order:*", true), i64::MAX).await.unwrap().unwrap();
        let b = store.webhook_create(m, &new_hook("product:created", true), i64::MAX).await.unwrap().unwrap();
        let o = store.webhook_create(other, &new_hook("*", true), i64::MAX).await.unwrap().unwrap();
        let first = publish(&*store, m, "order:created").await;
        publish(&*store, m, "product:created").await;
        publish(&*store, other, "order:created").await;
        publish(&*store, m, "order:canceled").await;
        let search = |f: DeliverySearch| {
            let store = store.clone();
            async move { store.delivery_search(Scope::Merchant(m), &DeliverySearch { limit: 100, ..f }).await.unwrap() }
        };
        let all = search(DeliverySearch::default()).await;
        let hooks: Vec<_> = all.iter().map(|r| r.webhook_id).collect();
        assert_eq!(hooks, vec![a, b, a], "newest first, only the merchant's");
        let topics = search(DeliverySearch { topic: Some("product:created".into()), ..Default::default() }).await;
        assert_eq!(topics.iter().map(|r| r.webhook_id).collect::<Vec<_>>(), vec![b]);
        let event = search(DeliverySearch { event_id: Some(first.event_id.0), ..Default::default() }).await;
        assert_eq!((event.len(), event[0].topic.as_str()), (1, "order:created"));
        let older = search(DeliverySearch { before: Some(all[0].id.0), ..Default::default() }).await;
        assert_eq!(older.len(), 2);
        assert!(search(DeliverySearch { status: Some(DeliveryStatus::Failed), ..Default::default() }).await.is_empty());
        let admin = store.delivery_search(Scope::All, &DeliverySearch { limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(admin.iter().map(|r| r.webhook_id).collect::<Vec<_>>(), vec![a, o]);
    }
}

store_test! {
    async fn a_time_range_page_goes_on_after_its_cursor_delivery_was_purged(db, store) {
        let m = merchant(&*store, "shop").await;
        let hook = create_hook(&*store, m, "order:*", true).await;
        let t0 = 1_000_000;
        for i in 0..3 {
            publish_at(&*store, m, "order:created", None, t0 + i * 1_000).await;
        }
        let range = DeliverySearch { since: Some(0), until: Some(t0 + 10_000), limit: 10, ..Default::default() };
        let page = |before: Option<i64>| {
            let (store, range) = (store.clone(), range.clone());
            async move {
                let rows = store.delivery_search(Scope::Merchant(m), &DeliverySearch { before, ..range }).await.unwrap();
                rows.iter().map(|r| r.increment_id).collect::<Vec<_>>()
            }
        };
        let all = store.delivery_search(Scope::Merchant(m), &range).await.unwrap();
        assert_eq!(all.iter().map(|r| r.increment_id).collect::<Vec<_>>(), vec![3, 2, 1]);
        // The middle one is delivered and purged; a page that continues from it still
        // finds the older one.
        let claimed = store.delivery_claim(hook, "n1", t0 + 5_000, t0 + 65_000, 10).await.unwrap();
        let middle = claimed.iter().find(|c| c.increment_id == 2).unwrap();
        store.delivery_record(&[outcome(middle, "n1", DeliveryStatus::Success, Some(200), t0 + 5_000)]).await.unwrap();
        assert_eq!(store.purge_finished(t0 + 6_000).await.unwrap(), 1);
        assert_eq!(page(Some(all[1].id.0)).await, vec![1]);
        assert_eq!(page(Some(all[0].id.0)).await, vec![1], "an existing cursor as before");
    }
}
