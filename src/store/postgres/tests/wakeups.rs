//! Wake-ups from one node's writes to another node's listener.

use super::*;

/// Waits until `wake` has announced all of `ids` (and a rescan, if `rescan`).
async fn wait_for(wake: &Wake, ids: &[WebhookId], rescan: bool) {
    let woken = |w: &Wake| {
        let (mut got, scan) = w.take();
        got.extend(w.take_afar());
        (got, scan)
    };
    wait_named(wake, ids, rescan, woken, "a wake-up").await;
}

/// Waits until `wake` has been told to forget all of `ids` (and every webhook, if `all`).
async fn wait_forgotten(wake: &Wake, ids: &[WebhookId], all: bool) {
    wait_named(wake, ids, all, Wake::take_forgotten, "a forget").await;
}

/// Waits until `take` has named all of `ids` (and raised its flag, if `flag`).
async fn wait_named(
    wake: &Wake,
    ids: &[WebhookId],
    flag: bool,
    take: impl Fn(&Wake) -> (Vec<WebhookId>, bool),
    what: &str,
) {
    let mut want: HashSet<WebhookId> = ids.iter().copied().collect();
    let mut flag_wanted = flag;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (got, raised) = take(wake);
            for id in got {
                want.remove(&id);
            }
            flag_wanted &= !raised;
            if want.is_empty() && !flag_wanted {
                return;
            }
            wake.notified().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no {what} for {want:?} (the flag still wanted: {flag_wanted})"
    );
}

/// A store's wake-up listener running in the background, forwarding to `wake`.
struct Listening {
    wake: Arc<Wake>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    fn start(store: Arc<crate::store::postgres::PostgresStore>) -> Listening {
        let wake = Arc::new(Wake::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn({
            let wake = wake.clone();
            async move { store.listen_wakeups(wake, stop_rx).await }
        });
        Listening { wake, stop, task }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the listener stops")
            .unwrap();
    }
}

/// Cuts the listener's connection from the server side; how many were cut.
async fn cut_listeners(db: &TestDb, admin: &mut PgConnection) -> usize {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'hookd-listener'",
    )
    .bind(&db.name)
    .fetch_all(admin)
    .await
    .unwrap();
    killed.into_iter().filter(|k| *k).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_cross_from_one_node_to_another_and_survive_a_reconnect() {
    let (db, publisher) = setup!();
    let listener = Arc::new(db.store().await);
    let m = merchant(&publisher, "shop").await;
    let hook = create_hook(&publisher, m, "order:created", true).await;
    let sleeper = create_hook(&publisher, m, "order:*", false).await;

    let listening = Listening::start(listener.clone());
    let wake = &*listening.wake.clone();
    wait_for(wake, &[], true).await; // listening (it asks for a scan once LISTEN is active)

    publish(&publisher, m, "order:created").await;
    wait_for(wake, &[hook], false).await;
    publisher
        .webhook_set_active(Scope::All, &StatusTarget::Id(sleeper), true)
        .await
        .unwrap();
    wait_for(wake, &[sleeper], false).await;
    let now = now_millis();
    let c = publisher.delivery_claim(hook, "n", now, now + HOUR, 1).await.unwrap();
    publisher
        .delivery_record(&[outcome(&c[0], "n", DeliveryStatus::Failed, Some(500), now)])
        .await
        .unwrap();
    let _ = (wake.take(), wake.take_afar());
    publisher.delivery_requeue(Scope::All, c[0].id, now).await.unwrap();
    wait_for(wake, &[hook], false).await;

    // Cut the listener's connection: it reconnects, asks for a rescan, and hears again.
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    assert_eq!(cut_listeners(&db, &mut admin).await, 1);
    wait_for(wake, &[], true).await;
    publish(&publisher, m, "order:created").await;
    wait_for(wake, &[hook, sleeper], false).await;

    listening.stop().await;
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

    let node = Arc::new(node);
    let listening = Listening::start(node.clone());
    let wake = &*listening.wake.clone();
    wait_for(wake, &[], true).await;

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
    wait_for(wake, &[own_hook], false).await;

    listening.stop().await;
    drop((node, other));
    db.drop_database().await;
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

    let listening = Listening::start(listener.clone());
    let wake = &*listening.wake.clone();
    // Connected: whatever changed before is taken for all.
    wait_forgotten(wake, &[], true).await;

    let url = crate::domain::WebhookChange::from_json(
        &serde_json::json!({"url": "https://moved.example/hook"}),
        &catalog(),
        false,
    )
    .unwrap();
    assert!(changer.webhook_update(Scope::All, moved, &url).await.unwrap());
    wait_forgotten(wake, &[moved], false).await;
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
    wait_forgotten(wake, &[deleted, disabled, paused_id], false).await;
    let by_topic = StatusTarget::Topic("order:canceled".into());
    assert_eq!(
        changer.webhook_set_active(Scope::All, &by_topic, false).await.unwrap(),
        1
    );
    wait_forgotten(wake, &[bulk], false).await;

    // A reconnect cannot know what it missed: it forgets every webhook.
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    assert_eq!(cut_listeners(&db, &mut admin).await, 1);
    wait_forgotten(wake, &[], true).await;

    listening.stop().await;
    admin.close().await.ok();
    drop((changer, listener));
    db.drop_database().await;
}
