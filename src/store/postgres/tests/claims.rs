//! The work queue: claiming with leases across owners, due times, queue scans.

use super::*;
use crate::store::Pacing;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_owners_claiming_at_once_never_share_a_payload() {
    let (db, store) = setup!();
    let store = Arc::new(store);
    let second = Arc::new(db.store().await);
    let m = merchant(&*store, "shop").await;
    let hook = create_hook(&*store, m, "order:created", true).await;
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
        create_hook(&store, m, "order:created", true).await,
        create_hook(&store, m, "order:*", true).await,
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

#[tokio::test]
async fn recording_moves_payloads_and_ignores_lost_leases() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:created", true).await;
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
    // n2 sent it too, for the same attempt number: both requests are logged, n2's outcome
    // counts, once.
    store
        .delivery_record(&[outcome(&taken[3], "n2", DeliveryStatus::Success, Some(204), at + 10)])
        .await
        .unwrap();
    let both = get(c[3].id).await;
    assert_eq!(
        (both.record.status, both.record.attempts, both.record.last_http_status),
        (DeliveryStatus::Success, 1, Some(204))
    );
    assert_eq!(
        both.attempts.iter().map(|a| a.http_status).collect::<Vec<_>>(),
        vec![Some(200), Some(204)]
    );

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

/// Logs, at each commit that wrote a payload, the `synchronous_commit` that commit ran with
/// (a deferred trigger fires at COMMIT, after the statement set it).
const LOG_COMMIT_MODES: &str = "
    CREATE TABLE commit_modes (op TEXT NOT NULL, mode TEXT NOT NULL);
    CREATE FUNCTION log_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO commit_modes VALUES (TG_OP, current_setting('synchronous_commit'));
      RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER commit_mode AFTER INSERT OR UPDATE ON deliveries
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_commit_mode();";

/// The (operation, mode) pairs logged since the last call, distinct and sorted; the log is
/// emptied.
async fn commit_modes(conn: &mut PgConnection) -> Vec<(String, String)> {
    sqlx::query_as("DELETE FROM commit_modes RETURNING op, mode")
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn modes(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn a_claim_waits_for_its_flush_exactly_when_it_takes_a_payload_never_attempted() {
    let (db, store) = setup!();
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    sqlx::raw_sql(LOG_COMMIT_MODES).execute(&mut conn).await.unwrap();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:created", true).await;
    let paced = create_hook(&store, m, "order:shipped", true).await;

    // A publish of a node alone on its webhook commits waiting for its flush.
    publish(&store, m, "order:created").await;
    assert_eq!(commit_modes(&mut conn).await, modes(&[("INSERT", "on")]));

    // Claiming a payload never attempted: its publish may not be on disk yet.
    let now = now_millis();
    let first = store.delivery_claim(hook, "n1", now, now + HOUR, 1).await.unwrap();
    assert_eq!(first[0].attempts, 0);
    assert_eq!(commit_modes(&mut conn).await, modes(&[("UPDATE", "on")]));
    store
        .delivery_record(&[outcome(&first[0], "n1", DeliveryStatus::Retrying, Some(500), now)])
        .await
        .unwrap();
    assert_eq!(commit_modes(&mut conn).await, modes(&[("UPDATE", "on")]));

    // A retry alone: its payload was on disk before its first attempt was recorded.
    let later = now + 120_000;
    let retry = store.delivery_claim(hook, "n1", later, later + HOUR, 1).await.unwrap();
    assert_eq!(retry.iter().map(|c| c.attempts).collect::<Vec<_>>(), vec![1]);
    assert_eq!(commit_modes(&mut conn).await, modes(&[("UPDATE", "off")]));

    // Both in one claim, the retry last (due 60 s after `now`; this one half a second before,
    // above the claims' floor): the fresh one decides, whatever the rows' order.
    publish_at(&store, m, "order:created", None, now + 59_500).await;
    commit_modes(&mut conn).await;
    store.delivery_release(&[retry[0].id], "n1").await.unwrap();
    let both = store.delivery_claim(hook, "n2", later, later + HOUR, 5).await.unwrap();
    assert_eq!(
        both.iter().map(|c| (c.increment_id, c.attempts)).collect::<Vec<_>>(),
        vec![(1, 1), (2, 0)]
    );
    assert_eq!(commit_modes(&mut conn).await, modes(&[("UPDATE", "on")]));

    // A paced claim decides the same way.
    publish(&store, m, "order:shipped").await;
    commit_modes(&mut conn).await;
    let pacing = Pacing {
        ordered: true,
        max_rate: Some(10.0),
    };
    let claimed = (store.delivery_claim_paced(paced, "n1", later, later + HOUR, 5, pacing))
        .await
        .unwrap();
    assert_eq!(claimed.claimed.len(), 1);
    assert_eq!(commit_modes(&mut conn).await, modes(&[("UPDATE", "on")]));

    // Once a node has seen another publish to the webhook in between (by the increment ids
    // its next batch drew), its publishes commit without waiting for their flush (its
    // publisher waits after, see `sharing`): so the claims above that take what they stored
    // wait for their own flush. (Two in a row first: a runner idle for a second runs its
    // next batch the transactional way, which tells it nothing.)
    let other = db.store().await;
    publish(&store, m, "order:shipped").await;
    publish(&store, m, "order:shipped").await;
    publish(&other, m, "order:shipped").await;
    publish(&store, m, "order:shipped").await;
    assert_eq!(commit_modes(&mut conn).await, modes(&[("INSERT", "on")]));
    publish(&store, m, "order:shipped").await;
    assert_eq!(commit_modes(&mut conn).await, modes(&[("INSERT", "off")]));
    conn.close().await.ok();
    drop((store, other));
    db.drop_database().await;
}
