//! Migrations, merchants, users and sessions.

use super::*;

store_test! {
    async fn migrating_twice_is_fine(db, store) {
        store.migrate().await.unwrap();
        let other = db.store().await;
        other.migrate().await.unwrap();
        store.ping().await.unwrap();
    }
}

store_test! {
    async fn merchants_users_and_sessions_round_trip(db, store) {
        let shop = merchant(&*store, "shop1").await;
        assert_eq!(merchant(&*store, "shop1").await, shop, "ensure is idempotent");
        let other = merchant(&*store, "shop2").await;
        assert_eq!(store.merchant_by_code("shop1").await.unwrap(), Some(shop));
        assert_eq!(store.merchant_by_code("nope").await.unwrap(), None);
        assert_eq!(
            store.merchant_list().await.unwrap(),
            vec![(shop, "shop1".to_string()), (other, "shop2".to_string())]
        );

        let admin = store
            .user_create(&UserName::parse("root").unwrap(), Role::Admin, None, "hash-a")
            .await
            .unwrap();
        assert_eq!(
            (admin.role, admin.merchant_id, admin.merchant_code.clone()),
            (Role::Admin, None, None)
        );
        let alice = store
            .user_create(&UserName::parse("alice").unwrap(), Role::Merchant, Some(shop), "hash-b")
            .await
            .unwrap();
        assert_eq!(alice.merchant_id, Some(shop));
        assert_eq!(alice.merchant_code.as_deref(), Some("shop1"));
        assert_eq!(alice.key_hash, "hash-b");
        let taken = store
            .user_create(&UserName::parse("alice").unwrap(), Role::Merchant, Some(other), "x")
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict("user"))), "{taken:?}");

        let found = store.user_by_name("alice").await.unwrap().expect("alice exists");
        assert_eq!(
            (found.id, found.name.as_str(), found.role),
            (alice.id, "alice", Role::Merchant)
        );
        assert!(store.user_by_name("bob").await.unwrap().is_none());
        let names: Vec<String> = store.user_list().await.unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, vec!["root", "alice"]);

        let now = now_millis();
        store.session_create("live", &alice, now + HOUR).await.unwrap();
        store.session_create("old", &alice, now - 1).await.unwrap();
        store.session_create("root-s", &admin, now + HOUR).await.unwrap();
        assert_eq!(
            store.session_user("live", now).await.unwrap().map(|s| s.user.id),
            Some(alice.id)
        );
        assert!(store.session_user("old", now).await.unwrap().is_none(), "expired");
        assert!(store.session_user("nope", now).await.unwrap().is_none());
        assert_eq!(store.session_purge_expired(now).await.unwrap(), 1);

        assert!(store.user_remove("alice").await.unwrap());
        assert!(!store.user_remove("alice").await.unwrap());
        assert!(
            store.session_user("live", now).await.unwrap().is_none(),
            "sessions go with the user"
        );
        assert_eq!(
            store.session_user("root-s", now).await.unwrap().map(|s| s.user.role),
            Some(Role::Admin)
        );
    }
}

store_test! {
    async fn a_portal_link_opens_one_session_as_its_merchant(db, store) {
        use crate::domain::portal::{NewPortalLink, PortalGrant, Redeemed};
        let shop = merchant(&*store, "shop1").await;
        let admin = store
            .user_create(&UserName::parse("root").unwrap(), Role::Admin, None, "hash-a")
            .await
            .unwrap();
        let now = now_millis();
        let link = |hash: &str, read_only, expires_at| NewPortalLink {
            token_hash: hash.to_string(),
            merchant: shop,
            created_by: admin.id,
            read_only,
            expires_at,
        };
        store.portal_link_create(&link("t1", true, now + HOUR)).await.unwrap();
        store.portal_link_create(&link("t2", false, now - 1)).await.unwrap();
        store.portal_link_create(&link("t3", false, now - 1)).await.unwrap();

        let opened = store.portal_link_redeem("t1", "s1", now, now + HOUR).await.unwrap();
        assert_eq!(
            opened,
            Some(Redeemed::Session { merchant_code: "shop1".into(), read_only: true })
        );
        let again = store.portal_link_redeem("t1", "s1b", now, now + HOUR).await.unwrap();
        assert_eq!(again, None, "a link opens once");
        assert!(store.session_user("s1b", now).await.unwrap().is_none());

        let session = store.session_user("s1", now).await.unwrap().expect("the portal session");
        assert_eq!(session.portal, Some(PortalGrant { read_only: true }));
        assert_eq!(session.user.role, Role::Merchant, "it acts as a merchant user");
        assert_eq!(session.user.merchant_id, Some(shop));
        assert_eq!(session.user.merchant_code.as_deref(), Some("shop1"));
        assert_eq!(session.user.id, admin.id, "it belongs to the admin who made the link");

        let expired = store.portal_link_redeem("t2", "s2", now, now + HOUR).await.unwrap();
        assert_eq!(expired, Some(Redeemed::Expired { merchant_code: "shop1".into() }));
        assert!(store.session_user("s2", now).await.unwrap().is_none(), "no session from an expired link");
        assert_eq!(store.portal_link_redeem("t2", "s2", now, now + HOUR).await.unwrap(), None);

        store.session_purge_expired(now).await.unwrap();
        assert_eq!(
            store.portal_link_redeem("t3", "s3", now, now + HOUR).await.unwrap(),
            None,
            "expired links are purged with expired sessions"
        );
        let own = store.session_create("own", &admin, now + HOUR).await;
        own.unwrap();
        assert_eq!(store.session_user("own", now).await.unwrap().unwrap().portal, None);

        assert!(store.user_remove("root").await.unwrap());
        assert!(
            store.session_user("s1", now).await.unwrap().is_none(),
            "portal sessions end with the admin who made them"
        );
    }
}
