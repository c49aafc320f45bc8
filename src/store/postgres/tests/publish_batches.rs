//! Group commit of publishes: what a batch must keep of each publish alone.

use super::*;
use crate::domain::records::IDEMPOTENCY_WINDOW_MS;
use crate::domain::SchemaChecked;
use crate::store::postgres::batch::Job;
use crate::store::postgres::publisher::{run_batch, run_batch_with};
use crate::store::postgres::sharing::Sharing;
use crate::store::{Published, StoreError, StoreResult};

fn job(m: MerchantId, key: Option<&str>, now: Millis) -> Job {
    let t = topic("order:created");
    let message = serde_json::json!({"n": 1});
    Job {
        merchant: m.0,
        body: BodyTemplate::new(t.as_str(), "shop", message.as_object().unwrap(), now),
        topic: t,
        key: key.map(str::to_owned),
        now,
        verdicts: Default::default(),
        schema: SchemaChecked::Unconfirmed,
        trace: None,
        key_check: None,
    }
}

/// The increment ids of `hook`'s payloads, ascending.
async fn sorted_increments(store: &dyn crate::store::Store, hook: WebhookId) -> Vec<i64> {
    let mut ids: Vec<i64> = payloads(store, hook).await.iter().map(|d| d.increment_id).collect();
    ids.sort_unstable();
    ids
}

fn checked(m: MerchantId, now: Millis, version: Option<i64>) -> Job {
    Job {
        schema: SchemaChecked::Version(version),
        ..job(m, None, now)
    }
}

#[tokio::test]
async fn a_publish_checked_against_a_catalog_version_that_moved_stores_nothing_and_says_so() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:*", true).await;
    sqlx::query(
        "INSERT INTO topic_catalog (topic, description, version, updated_at) VALUES ('order:created', '', 3, 0) \
         ON CONFLICT (topic) DO UPDATE SET version = 3",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let now = now_millis();
    // The stored version; an older one; "no entry" while there is one; nothing to confirm.
    let jobs = vec![
        checked(m, now, Some(3)),
        checked(m, now, Some(2)),
        checked(m, now, None),
        job(m, None, now),
    ];
    let mut conn = store.pool.acquire().await.unwrap();
    let results = run_batch(&mut conn, &jobs).await.expect("the transaction itself holds");
    for stale in [&results[1], &results[2]] {
        assert!(matches!(stale, Err(StoreError::CatalogMoved)), "{stale:?}");
    }
    for stored in [&results[0], &results[3]] {
        assert_eq!(stored.as_ref().expect("stored").webhooks, vec![hook]);
    }
    let ids = sorted_increments(&store, hook).await;
    assert_eq!(ids, vec![1, 2], "the refused publishes took no id");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(events, 2, "and made no event");
    db.drop_database().await;
}

/// Remembered callers' keys are checked by the statement that inserts the events (and, for a
/// replay, which inserts nothing, by a read of their own): in one batch, the publishes of a
/// caller whose key was rotated are refused, new or replayed, and store nothing; the
/// others are stored with gap-free ids.
#[tokio::test]
async fn a_batch_refuses_only_the_publishes_whose_remembered_key_was_rotated() {
    use crate::domain::{KeyCheck, Role, UserName};
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:*", true).await;
    let user = |name: &'static str| {
        let store = &store;
        async move {
            let name = UserName::parse(name).unwrap();
            store
                .user_create(&name, Role::Publisher, None, "hash-1")
                .await
                .unwrap()
                .id
        }
    };
    let (kept, rotated) = (user("kept").await, user("rotated").await);
    let now = now_millis();
    let by = |caller, key: Option<&str>| Job {
        key_check: Some(KeyCheck {
            user: caller,
            key_hash: "hash-1".into(),
        }),
        ..job(m, key, now)
    };
    let mut conn = store.pool.acquire().await.unwrap();
    let first = run_batch(&mut conn, &[by(rotated, Some("k1"))]).await.unwrap();
    assert!(first[0].is_ok(), "{first:?}");
    assert!(store.user_rotate_key("rotated", "hash-2").await.unwrap());

    let jobs = [
        by(kept, None),
        by(rotated, None),
        by(rotated, Some("k1")),
        by(kept, Some("k2")),
    ];
    let results = run_batch(&mut conn, &jobs).await.expect("the transaction itself holds");
    for refused in [&results[1], &results[2]] {
        assert!(matches!(refused, Err(StoreError::KeyRevoked)), "{results:?}");
    }
    for stored in [&results[0], &results[3]] {
        assert_eq!(stored.as_ref().expect("stored").webhooks, vec![hook]);
    }
    let ids = sorted_increments(&store, hook).await;
    assert_eq!(ids, vec![1, 2, 3], "the refused publishes took no id");
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_publishes_on_three_webhooks_take_ids_one_to_two_hundred() {
    let (db, store) = setup!();
    let store = Arc::new(store);
    let second = Arc::new(db.store().await);
    let m = merchant(&*store, "shop").await;
    let mut hooks = Vec::new();
    for _ in 0..3 {
        hooks.push(create_hook(&*store, m, "order:created", true).await);
    }
    let mut handles = Vec::new();
    for i in 0..200 {
        // Two nodes, so batches of both contend for the webhooks' rows (taken in id order:
        // out of order, two batches could each hold one the other waits for).
        let node = if i % 2 == 0 { store.clone() } else { second.clone() };
        handles.push(tokio::spawn(async move { publish(&*node, m, "order:created").await }));
    }
    let mut events = HashSet::new();
    for h in handles {
        let p = h.await.unwrap();
        assert_eq!((p.payloads, p.webhooks.clone()), (3, hooks.clone()));
        assert!(events.insert(p.event_id), "one event per publish");
    }
    for &hook in &hooks {
        let ids = sorted_increments(&*store, hook).await;
        assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "gap-free, no id twice");
        let hook_row = store.webhook_get(Scope::All, hook).await.unwrap().unwrap();
        assert_eq!(hook_row.increment_id, 200);
    }
    db.drop_database().await;
}

#[tokio::test]
async fn a_batch_with_one_failing_publish_still_stores_the_others() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:*", true).await;
    let now = now_millis();
    // A key PostgreSQL cannot store as text (a NUL byte): its lookup fails, and with it the
    // batch.
    let jobs = vec![job(m, None, now), job(m, Some("bad\0key"), now), job(m, Some("k"), now)];
    let mut conn = store.pool.acquire().await.unwrap();
    let results = run_batch(&mut conn, &jobs).await.expect("the transaction itself holds");
    assert!(results[1].is_err(), "the bad publish fails");
    let good: Vec<_> = [&results[0], &results[2]]
        .into_iter()
        .map(|r| r.as_ref().expect("the others are stored").clone())
        .collect();
    assert_eq!(good[0].webhooks, vec![hook]);
    assert_eq!(good[1].webhooks, vec![hook]);
    let ids = sorted_increments(&store, hook).await;
    assert_eq!(ids, vec![1, 2], "the failed publish took no id");
    // The keyed one really committed: publishing the key again replays it.
    let again = publish_at(&store, m, "order:created", Some("k"), now + 1).await;
    assert_eq!((again.event_id, again.replayed), (good[1].event_id, true));
    db.drop_database().await;
}

#[tokio::test]
async fn two_publishes_with_one_key_in_one_batch_make_one_event() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:created", true).await;
    let now = now_millis();
    // An earlier event with key "old" whose window has passed: its key is free again.
    let old = publish_at(&store, m, "order:created", Some("old"), now - IDEMPOTENCY_WINDOW_MS - 1).await;
    let kept = publish_at(&store, m, "order:created", Some("kept"), now - 1000).await;
    let jobs = vec![
        job(m, Some("k"), now),
        job(m, None, now),
        job(m, Some("k"), now),
        job(m, Some("old"), now),
        job(m, Some("kept"), now),
    ];
    let mut conn = store.pool.acquire().await.unwrap();
    let r: Vec<Published> = run_batch(&mut conn, &jobs)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!((r[0].replayed, r[0].payloads), (false, 1));
    assert_eq!((r[2].event_id, r[2].replayed, r[2].payloads), (r[0].event_id, true, 1));
    assert!(!r[1].replayed);
    assert!(
        !r[3].replayed && r[3].event_id != old.event_id,
        "an expired key makes a new event"
    );
    assert_eq!((r[4].event_id, r[4].replayed), (kept.event_id, true));
    let ids = sorted_increments(&store, hook).await;
    assert_eq!(ids, (1..=5).collect::<Vec<_>>(), "two earlier, three new payloads");
    db.drop_database().await;
}

/// Opens a transaction on `conn` holding the webhook's row lock, as a batch of another node would.
async fn hold_row(conn: &mut PgConnection, hook: WebhookId) {
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    sqlx::query("SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE")
        .bind(hook.0)
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_batch_locks_only_the_filtered_webhooks_its_events_pass() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let refuses = filtered_hook(&store, m, "order:created", "message.n < 0").await;
    let passes = filtered_hook(&store, m, "order:created", "message.n >= 0").await;
    let plain = create_hook(&store, m, "order:created", true).await;
    // Another transaction holds the refusing webhook's row: the publish does not wait for it.
    let mut other = store.pool.acquire().await.unwrap();
    hold_row(&mut other, refuses).await;
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        publish_message(&store, m, "order:created", serde_json::json!({"n": 1}), None),
    )
    .await
    .expect("not held up by a webhook whose filter refuses the event");
    assert_eq!(first.webhooks, vec![passes, plain]);
    sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
    // The one it passes is locked, though: held elsewhere, the publish waits for it, then
    // reads the webhook as that transaction left it; here its filter changed to refuse.
    hold_row(&mut other, passes).await;
    let second = tokio::spawn({
        let store = Arc::new(db.store().await);
        async move { publish_message(&*store, m, "order:created", serde_json::json!({"n": 2}), None).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a webhook the event passes is locked by the batch"
    );
    sqlx::query("UPDATE webhooks SET filter = 'message.n == 5' WHERE id = $1")
        .bind(passes.0)
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.webhooks,
        vec![plain],
        "tried against the filter as changed meanwhile"
    );
    let ids: Vec<i64> = payloads(&store, passes).await.iter().map(|d| d.increment_id).collect();
    assert_eq!(ids, vec![1]);
    let third = publish_message(&store, m, "order:created", serde_json::json!({"n": 5}), None).await;
    assert_eq!(third.webhooks, vec![passes, plain]);
    let ids: Vec<i64> = payloads(&store, passes).await.iter().map(|d| d.increment_id).collect();
    assert_eq!(ids, vec![1, 2], "gap-free");
    assert!(payloads(&store, refuses).await.is_empty());
    db.drop_database().await;
}

/// Publishes `{"n": 2}` while `other` holds `hook`'s row, runs `change` on `other` and commits:
/// what the publish made once it could go on.
async fn publish_while_changed(
    db: &TestDb,
    other: &mut PgConnection,
    m: MerchantId,
    hook: WebhookId,
    change: &str,
) -> Published {
    hold_row(other, hook).await;
    let waiting = tokio::spawn({
        let store = Arc::new(db.store().await);
        async move { publish_message(&*store, m, "order:created", serde_json::json!({"n": 2}), None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the publish waits for the webhook's lock");
    sqlx::query(change).bind(hook.0).execute(&mut *other).await.unwrap();
    sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the publish goes on once the lock is let go")
        .unwrap()
}

#[tokio::test]
async fn an_unfiltered_webhook_changed_while_a_batch_waits_for_it_is_taken_as_it_is_now() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let changed = create_hook(&store, m, "order:created", true).await;
    let plain = create_hook(&store, m, "order:created", true).await;
    let mut other = store.pool.acquire().await.unwrap();
    // Given a filter: the batch, which had locked and written, runs again and judges the
    // event by the filter, which lets it through.
    let set = "UPDATE webhooks SET filter = 'message.n == 2' WHERE id = $1";
    let first = publish_while_changed(&db, &mut other, m, changed, set).await;
    assert_eq!(first.webhooks, vec![changed, plain], "judged by the new filter");
    assert_eq!(sorted_increments(&store, changed).await, vec![1]);
    // Turned off: nothing for it.
    sqlx::query("UPDATE webhooks SET filter = NULL WHERE id = $1")
        .bind(changed.0)
        .execute(&store.pool)
        .await
        .unwrap();
    let off = "UPDATE webhooks SET is_active = false WHERE id = $1";
    let second = publish_while_changed(&db, &mut other, m, changed, off).await;
    assert_eq!(second.webhooks, vec![plain]);
    assert_eq!(sorted_increments(&store, changed).await, vec![1], "nothing for it");
    // Left as it was: the publish waited, then numbered after what the other batch left.
    let bumped = "UPDATE webhooks SET increment_id = increment_id + 10 WHERE id = $1";
    let third = publish_while_changed(&db, &mut other, m, plain, bumped).await;
    assert_eq!(third.webhooks, vec![plain]);
    assert_eq!(sorted_increments(&store, plain).await, vec![1, 2, 13]);
    db.drop_database().await;
}

#[tokio::test]
async fn a_batch_renders_each_payload_s_body_with_its_own_increment_id() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let one = create_hook(&store, m, "order:*", true).await;
    let two = create_hook(&store, m, "order:created", true).await;
    let now = now_millis();
    let mut jobs = vec![job(m, None, now), job(m, None, now + 1)];
    let message = serde_json::json!({"text": "naïve \"quoted\" \u{1F600}"});
    jobs[1].body = BodyTemplate::new("order:created", "shop", message.as_object().unwrap(), now + 1);
    let mut conn = store.pool.acquire().await.unwrap();
    let results = run_batch(&mut conn, &jobs).await.unwrap();
    for r in &results {
        let r = r.as_ref().unwrap();
        assert_eq!((r.payloads, r.webhooks.clone()), (2, vec![one, two]));
    }
    for hook in [one, two] {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT increment_id, body FROM deliveries WHERE webhook_id = $1 ORDER BY increment_id")
                .bind(hook.0)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 2);
        for ((increment, body), job) in rows.iter().zip(&jobs) {
            assert_eq!(
                *body,
                job.body.render(*increment),
                "the body the node would have rendered"
            );
        }
    }
    db.drop_database().await;
}

/// A runner alone on its webhook sees each batch's ids follow its last; once another writer
/// drew ids of that webhook between two of its batches, it counts the webhook shared (and
/// commits without waiting for the flush, then flushes: see `sharing`). Both ways store
/// every publish, and the ids stay gap-free.
#[tokio::test]
async fn a_runner_tells_another_writer_on_its_webhook_by_the_ids_it_draws() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:*", true).await;
    let now = now_millis();
    let mut mine = store.pool.acquire().await.unwrap();
    let mut other = store.pool.acquire().await.unwrap();
    let mut sharing = Sharing::default();
    let stored = |results: Vec<StoreResult<Published>>| results.into_iter().all(|r| r.is_ok_and(|p| p.payloads == 1));
    for _ in 0..3 {
        let results = run_batch_with(&mut mine, &[job(m, None, now), job(m, None, now)], &mut sharing).await;
        assert!(stored(results.unwrap()));
    }
    assert!(
        !sharing.shared(std::time::Instant::now()),
        "ids 1 to 6, one batch after the other"
    );
    assert!(stored(run_batch(&mut other, &[job(m, None, now)]).await.unwrap()));
    assert!(stored(
        run_batch_with(&mut mine, &[job(m, None, now)], &mut sharing)
            .await
            .unwrap()
    ));
    assert!(
        sharing.shared(std::time::Instant::now()),
        "id 7 went to the other writer"
    );
    assert!(stored(
        run_batch_with(&mut mine, &[job(m, None, now)], &mut sharing)
            .await
            .unwrap()
    ));
    assert!(stored(run_batch(&mut other, &[job(m, None, now)]).await.unwrap()));
    assert_eq!(sorted_increments(&store, hook).await, (1..=10).collect::<Vec<i64>>());
    drop((mine, other));
    db.drop_database().await;
}

/// A commit made without waiting for its flush (as `batch::Commit::AloneUnflushed` makes), and
/// the WAL position just past it.
async fn commit_unflushed(conn: &mut PgConnection) -> String {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO unflushed DEFAULT VALUES")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn flush_waits_for_the_commit_before_it() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("CREATE TABLE unflushed (n BIGSERIAL)")
        .execute(&mut conn)
        .await
        .unwrap();
    // The WAL writer flushes an asynchronous commit within `wal_writer_delay` (200 ms), so
    // one round could pass by luck; twenty in a row without a flush do not (the transaction
    // id this replaced left the WAL unflushed in 49 of 50 such rounds).
    for round in 0..20 {
        let written = commit_unflushed(&mut conn).await;
        crate::store::postgres::publisher::flush(&mut conn).await.unwrap();
        let flushed: bool = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn")
            .bind(&written)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(flushed, "round {round}: WAL not flushed past {written} after flush");
    }
    drop(conn);
    db.drop_database().await;
}
