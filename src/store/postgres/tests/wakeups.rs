//! Wake-ups from one node's writes to another node's listener.

use super::*;

/// Waits until `wake` has announced all of `ids` (and a rescan, if `rescan`).
async fn wait_for(wake: &Wake, ids: &[WebhookId], rescan: bool) {
    let mut want: HashSet<WebhookId> = ids.iter().copied().collect();
    let mut rescan_wanted = rescan;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (mut got, scan) = wake.take();
            got.extend(wake.take_afar());
            for id in got {
                want.remove(&id);
            }
            rescan_wanted &= !scan;
            if want.is_empty() && !rescan_wanted {
                return;
            }
            wake.notified().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no wake-up for {want:?} (rescan still wanted: {rescan_wanted})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_cross_from_one_node_to_another_and_survive_a_reconnect() {
    let (db, publisher) = setup!();
    let listener = Arc::new(db.store().await);
    let m = merchant(&publisher, "shop").await;
    let hook = create_hook(&publisher, m, "order:created", true).await;
    let sleeper = create_hook(&publisher, m, "order:*", false).await;

    let wake = Arc::new(Wake::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn({
        let (listener, wake) = (listener.clone(), wake.clone());
        async move { listener.listen_wakeups(wake, stop_rx).await }
    });
    wait_for(&wake, &[], true).await; // listening (it asks for a scan once LISTEN is active)

    publish(&publisher, m, "order:created").await;
    wait_for(&wake, &[hook], false).await;
    publisher
        .webhook_set_active(Scope::All, &StatusTarget::Id(sleeper), true)
        .await
        .unwrap();
    wait_for(&wake, &[sleeper], false).await;
    let now = now_millis();
    let c = publisher.delivery_claim(hook, "n", now, now + HOUR, 1).await.unwrap();
    publisher
        .delivery_record(&[outcome(&c[0], "n", DeliveryStatus::Failed, Some(500), now)])
        .await
        .unwrap();
    let _ = (wake.take(), wake.take_afar());
    publisher.delivery_requeue(Scope::All, c[0].id, now).await.unwrap();
    wait_for(&wake, &[hook], false).await;

    // Cut the listener's connection: it reconnects, asks for a rescan, and hears again.
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'hookd-listener'",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true]);
    wait_for(&wake, &[], true).await;
    publish(&publisher, m, "order:created").await;
    wait_for(&wake, &[hook, sleeper], false).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the listener stops")
        .unwrap();
    admin.close().await.ok();
    drop((publisher, listener));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hears_other_nodes_publishes_but_not_its_own() {
    let (db, node) = setup!();
    let other = db.store().await;
    let m = merchant(&node, "shop").await;
    let own_hook = create_hook(&node, m, "order:created", true).await;
    let other_hook = create_hook(&node, m, "order:canceled", true).await;

    let wake = Arc::new(Wake::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let node = Arc::new(node);
    let task = tokio::spawn({
        let (node, wake) = (node.clone(), wake.clone());
        async move { node.listen_wakeups(wake, stop_rx).await }
    });
    wait_for(&wake, &[], true).await;

    // The node's own publish first, then the other node's: notifications arrive in commit
    // order, so once the second is heard the first would have been.
    publish(&*node, m, "order:created").await;
    publish(&other, m, "order:canceled").await;
    let mut heard = HashSet::new();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !heard.contains(&other_hook) {
            heard.extend(wake.take().0);
            heard.extend(wake.take_afar());
            if !heard.contains(&other_hook) {
                wake.notified().await;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "the other node's publish woke the node");
    assert!(
        !heard.contains(&own_hook),
        "its own publish did not wake it twice: {heard:?}"
    );

    // Other writers of the node (a re-activation) still announce through the listener.
    node.webhook_set_active(Scope::All, &StatusTarget::Id(own_hook), true)
        .await
        .unwrap();
    wait_for(&wake, &[own_hook], false).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the listener stops")
        .unwrap();
    drop((node, other));
    db.drop_database().await;
}

/// Waits until `wake` has been told to forget all of `ids` (and every webhook, if `all`).
async fn wait_forgotten(wake: &Wake, ids: &[WebhookId], all: bool) {
    let mut want: HashSet<WebhookId> = ids.iter().copied().collect();
    let mut all_wanted = all;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (got, every) = wake.take_forgotten();
            for id in got {
                want.remove(&id);
            }
            all_wanted &= !every;
            if want.is_empty() && !all_wanted {
                return;
            }
            wake.notified().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "not told to forget {want:?} (all still wanted: {all_wanted})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_updated_deleted_or_turned_off_on_one_node_are_forgotten_on_the_others() {
    let (db, changer) = setup!();
    let listener = Arc::new(db.store().await);
    let m = merchant(&changer, "shop").await;
    let [moved, deleted, disabled, paused_id, bulk] = [
        create_hook(&changer, m, "order:created", true).await,
        create_hook(&changer, m, "order:created", true).await,
        create_hook(&changer, m, "order:created", true).await,
        create_hook(&changer, m, "order:created", true).await,
        create_hook(&changer, m, "order:canceled", true).await,
    ];

    let wake = Arc::new(Wake::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn({
        let (listener, wake) = (listener.clone(), wake.clone());
        async move { listener.listen_wakeups(wake, stop_rx).await }
    });
    // Connected: whatever changed before is taken for all.
    wait_forgotten(&wake, &[], true).await;

    let url = crate::domain::WebhookChange::from_json(
        &serde_json::json!({"url": "https://moved.example/hook"}),
        &catalog(),
        false,
    )
    .unwrap();
    assert!(changer.webhook_update(Scope::All, moved, &url).await.unwrap());
    wait_forgotten(&wake, &[moved], false).await;
    assert!(
        wake.take_afar().contains(&moved),
        "woken, to claim what its hand-off gave back"
    );
    assert!(changer.webhook_delete(Scope::All, deleted).await.unwrap());
    assert!(changer.webhook_disable(disabled, "receiver gone").await.unwrap());
    assert!(
        !changer.webhook_disable(disabled, "again").await.unwrap(),
        "off already"
    );
    let paused = StatusTarget::Id(paused_id);
    assert_eq!(changer.webhook_set_active(Scope::All, &paused, false).await.unwrap(), 1);
    wait_forgotten(&wake, &[deleted, disabled, paused_id], false).await;
    let by_topic = StatusTarget::Topic("order:canceled".into());
    assert_eq!(
        changer.webhook_set_active(Scope::All, &by_topic, false).await.unwrap(),
        1
    );
    wait_forgotten(&wake, &[bulk], false).await;

    // A reconnect cannot know what it missed: it forgets every webhook.
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'hookd-listener'",
    )
    .bind(&db.name)
    .execute(&mut admin)
    .await
    .unwrap();
    wait_forgotten(&wake, &[], true).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the listener stops")
        .unwrap();
    admin.close().await.ok();
    drop((changer, listener));
    db.drop_database().await;
}
