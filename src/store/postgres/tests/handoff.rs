//! Leases written at insert (`store::handoff`): a publish leases the fresh payloads of plain
//! webhooks to its node's dispatcher, up to each webhook's room, and hands them over.

use super::*;
use crate::store::Handoff;

/// Each payload of `hook`: (id, increment id, body, lease owner, lease end), by id.
type Row = (i64, i64, Vec<u8>, Option<String>, Option<i64>);

async fn rows(store: &crate::store::postgres::PostgresStore, hook: WebhookId) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, increment_id, body, lease_owner, lease_until FROM deliveries WHERE webhook_id = $1 ORDER BY id",
    )
    .bind(hook.0)
    .fetch_all(&store.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_publish_leases_plain_webhooks_payloads_to_its_node_up_to_their_room() {
    let (db, store) = setup!();
    let handoff = Arc::new(Handoff::default());
    store.accept_handoff(handoff.clone());
    let m = merchant(&store, "shop").await;
    let plain = create_hook(&store, m, "order:*", true).await;
    let ordered = create_hook(&store, m, "order:*", true).await;
    let paced = create_hook(&store, m, "order:*", true).await;
    for (hook, set) in [(ordered, "ordered = TRUE"), (paced, "max_rate = 5")] {
        sqlx::query(&format!("UPDATE webhooks SET {set} WHERE id = $1"))
            .bind(hook.0)
            .execute(&store.pool)
            .await
            .unwrap();
    }

    // No dispatcher on this node yet: nothing is leased at insert.
    let first = publish(&store, m, "order:created").await;
    assert!(first.handed.is_empty());
    assert_eq!(rows(&store, plain).await[0].3, None);

    handoff.open("node-a", Duration::from_secs(60), Duration::from_secs(8), 2);
    let before = now_millis();
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let second = {
        let t = topic("order:created");
        let body = BodyTemplate::new(
            t.as_str(),
            "shop",
            serde_json::json!({"n": 2}).as_object().unwrap(),
            before,
        );
        let verdicts = Default::default();
        let mut req = request(m, &t, &body, &verdicts, None, before);
        req.trace = crate::domain::TraceParent::parse(traced);
        crate::store::publish_judged(&store, None, &req, &mut Vec::new())
            .await
            .unwrap()
    };
    assert_eq!(second.webhooks, vec![plain, ordered, paced]);
    assert_eq!(
        second.handed,
        vec![plain],
        "ordered and paced webhooks keep their claims"
    );
    let stored = rows(&store, plain).await;
    let (id, inc, body, owner, until) = stored[1].clone();
    assert_eq!((inc, owner.as_deref()), (2, Some("node-a")));
    let until = until.expect("a lease end");
    assert!(until >= before + 59_000 && until <= now_millis() + 61_000, "{until}");
    for hook in [ordered, paced] {
        assert_eq!(rows(&store, hook).await[1].3, None, "not leased");
    }
    // What waits in the hand-off is the stored payload, byte for byte.
    let taken = handoff.take(plain, 10).fresh;
    assert_eq!(taken.len(), 1);
    let t = &taken[0];
    assert_eq!(
        (t.id, t.webhook_id, t.increment_id, t.attempts),
        (DeliveryId(id), plain, 2, 0)
    );
    assert_eq!(t.body, body);
    assert_eq!(t.trace.as_deref(), Some(traced), "sent in the event's trace");
    let version: i64 = sqlx::query_scalar("SELECT version FROM webhooks WHERE id = $1")
        .bind(plain.0)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(t.webhook_version, version);
    // Leased: another node's claim passes it over; the first payload (unleased) it takes.
    let now = now_millis();
    let claimed = store
        .delivery_claim(plain, "node-b", now, now + HOUR, 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.increment_id).collect::<Vec<_>>(), vec![1]);

    // A room of two: two more wait in the hand-off, the next one is left for a claim.
    let handed: Vec<usize> = [
        publish(&store, m, "order:created").await,
        publish(&store, m, "order:created").await,
        publish(&store, m, "order:created").await,
    ]
    .iter()
    .map(|p| p.handed.len())
    .collect();
    assert_eq!(handed, vec![1, 1, 0]);
    let owners: Vec<Option<String>> = rows(&store, plain).await.into_iter().map(|r| r.3).skip(2).collect();
    assert_eq!(owners, vec![Some("node-a".into()), Some("node-a".into()), None]);
    let incs: Vec<i64> = handoff.take(plain, 10).fresh.iter().map(|c| c.increment_id).collect();
    assert_eq!(incs, vec![3, 4]);

    // Stopped: nothing more is leased.
    handoff.close();
    assert!(publish(&store, m, "order:created").await.handed.is_empty());
    drop(store);
    db.drop_database().await;
}

#[tokio::test]
async fn handed_payloads_that_waited_are_confirmed_only_while_queued_active_and_still_leased() {
    let (db, store) = setup!();
    let handoff = Arc::new(Handoff::default());
    store.accept_handoff(handoff.clone());
    handoff.open("node-a", Duration::from_secs(60), Duration::from_secs(8), 16);
    let m = merchant(&store, "shop").await;
    let [kept, turned_off, deleted, taken_over] = [
        create_hook(&store, m, "order:created", true).await,
        create_hook(&store, m, "order:created", true).await,
        create_hook(&store, m, "order:created", true).await,
        create_hook(&store, m, "order:created", true).await,
    ];
    let published = publish(&store, m, "order:created").await;
    assert_eq!(published.handed.len(), 4);
    let ids: Vec<DeliveryId> = [kept, turned_off, deleted, taken_over]
        .iter()
        .map(|&w| handoff.take(w, 1).fresh[0].id)
        .collect();
    store
        .webhook_set_active(Scope::All, &StatusTarget::Id(turned_off), false)
        .await
        .unwrap();
    assert!(store.webhook_delete(Scope::All, deleted).await.unwrap());
    // Its lease ran out and another node claimed it.
    sqlx::query("UPDATE deliveries SET lease_owner = 'node-b' WHERE id = $1")
        .bind(ids[3].0)
        .execute(&store.pool)
        .await
        .unwrap();

    let now = now_millis();
    let renewed = store.delivery_renew(&ids, "node-a", now, now + HOUR).await.unwrap();
    assert_eq!(renewed, vec![ids[0]]);
    let until: i64 = sqlx::query_scalar("SELECT lease_until FROM deliveries WHERE id = $1")
        .bind(ids[0].0)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(until >= now + HOUR - 1000, "the lease is extended: {until}");
    // A lease that ran out is not renewed, even if still named this node's.
    let later = now + 2 * HOUR;
    assert!(store
        .delivery_renew(&ids[..1], "node-a", later, later + HOUR)
        .await
        .unwrap()
        .is_empty());

    // Released: claimable at once.
    store.delivery_release(&ids[..1], "node-a").await.unwrap();
    let claimed = store.delivery_claim(kept, "node-c", now, now + HOUR, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[0]]);
    drop(store);
    db.drop_database().await;
}
