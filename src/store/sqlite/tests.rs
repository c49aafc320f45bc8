//! Store-level tests of what is SQLite's own: the writer's batches (a failing job is undone
//! alone; a failed fsync answers no one and makes the store unready until a write
//! succeeds), taking over databases that sqlx's migrator made, database urls, and the
//! plans of the console list's reads. (The tests both backends pass, claims included, are
//! in `store/tests`.)

use std::sync::Arc;

use super::SqliteStore;
use crate::domain::{DeliveryId, DeliveryStatus, MerchantId, Role, WebhookId};
use crate::store::test_support::{merchant, new_hook, publish, try_publish};
use crate::store::{ClaimedDelivery, DeliveryUpdate, Scope, Store, StoreError};
use crate::time::{now_millis, Millis};

const HOUR: Millis = 3600 * 1000;
const TOPIC: &str = "order:created";

struct TestStore {
    store: Arc<SqliteStore>,
    merchant: MerchantId,
    _dir: tempfile::TempDir,
}

async fn setup() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let merchant = merchant(&store, "shop").await;
    TestStore {
        store: Arc::new(store),
        merchant,
        _dir: dir,
    }
}

impl TestStore {
    async fn webhook(&self, active: bool) -> WebhookId {
        self.store
            .webhook_create(self.merchant, &new_hook(TOPIC, active), i64::MAX)
            .await
            .unwrap()
            .unwrap()
    }

    async fn publish(&self, n: usize) {
        for _ in 0..n {
            publish(&*self.store, self.merchant, TOPIC).await;
        }
    }

    /// 60 publishes sent at once, so they share writer batches; every 20th (the 8th, 28th
    /// and 48th) names an unknown merchant, which breaks a foreign key and fails alone.
    /// Returns what the 57 others published.
    async fn publish_sixty_three_failing(&self) -> Vec<crate::store::Published> {
        let mut calls = Vec::new();
        for i in 0..60 {
            let merchant = if i % 20 == 7 { MerchantId(999) } else { self.merchant };
            let store = self.store.clone();
            calls.push(tokio::spawn(async move {
                try_publish(&*store, merchant, TOPIC, None, now_millis()).await
            }));
        }
        let mut published = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let result = call.await.unwrap();
            assert_eq!(result.is_err(), i % 20 == 7, "publish {i}: {result:?}");
            published.extend(result.ok());
        }
        published
    }

    async fn claim(&self, hook: WebhookId, now: Millis, limit: i64) -> Vec<ClaimedDelivery> {
        self.store
            .delivery_claim(hook, "me", now, now + HOUR, limit)
            .await
            .unwrap()
    }
}

fn outcome(c: &ClaimedDelivery, status: DeliveryStatus, at: Millis) -> DeliveryUpdate {
    let http = if status == DeliveryStatus::Success { 200 } else { 500 };
    crate::store::test_support::outcome(c, "me", status, Some(http), at)
}

fn increments(claimed: &[ClaimedDelivery]) -> Vec<i64> {
    claimed.iter().map(|c| c.increment_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_publish_is_undone_alone_in_its_batch() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    let published = t.publish_sixty_three_failing().await;
    assert_eq!(published.len(), 57);
    let claimed = t.claim(hook, now_millis(), 100).await;
    let mut incs = increments(&claimed);
    incs.sort_unstable();
    assert_eq!(incs, (1..=57).collect::<Vec<_>>(), "no gap left by the failed ones");
}

/// With a dispatcher running, the publishes of a batch that rolled back and ran again job
/// by job hold (and hand over) exactly the payloads that were stored: none is left held
/// without a payload, none stored is both handed and claimable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_run_again_job_by_job_hands_over_exactly_what_it_stored() {
    let t = setup().await;
    let handoff = Arc::new(crate::store::Handoff::default());
    t.store.accept_handoff(handoff.clone());
    handoff.open(
        "me",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(8),
        100,
    );
    let hook = t.webhook(true).await;
    let published = t.publish_sixty_three_failing().await;
    assert_eq!(published.iter().map(|p| p.handed.len()).sum::<usize>(), 57);
    assert!(
        t.claim(hook, now_millis(), 100).await.is_empty(),
        "every stored payload is held"
    );
    let taken = handoff.take(hook, 100);
    let mut incs = increments(&taken.fresh);
    incs.sort_unstable();
    assert_eq!(incs, (1..=57).collect::<Vec<_>>(), "handed: what was stored, once each");
    for d in &taken.fresh {
        let stored = t.store.delivery_get(Scope::All, d.id).await.unwrap().expect("stored");
        assert_eq!((stored.record.increment_id, &stored.body), (d.increment_id, &d.body));
    }
    // Given back, they are claimable; nothing else was left held.
    let ids: Vec<DeliveryId> = taken.fresh.iter().map(|d| d.id).collect();
    t.store.delivery_release(&ids, "me").await.unwrap();
    assert_eq!(t.claim(hook, now_millis(), 100).await.len(), 57);
}

#[tokio::test]
async fn a_failed_sync_answers_with_an_error_and_the_store_is_unready_until_a_write_succeeds() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    t.store.ping().await.unwrap();
    t.store.testing_fail_next_syncs(1);
    let failed = try_publish(&*t.store, t.merchant, TOPIC, None, now_millis()).await;
    assert!(matches!(failed, Err(StoreError::SyncFailed(_))), "{failed:?}");
    let unready = t.store.ping().await;
    assert!(matches!(unready, Err(StoreError::WritesFailing(_))), "{unready:?}");
    // A read still works; the next durable write makes the store ready again.
    assert!(t.store.webhook_get(Scope::All, hook).await.unwrap().is_some());
    t.publish(1).await;
    t.store.ping().await.unwrap();
}

#[tokio::test]
async fn an_outcome_recorded_again_after_a_failed_sync_counts_once() {
    let t = setup().await;
    let hook = t.webhook(true).await;
    t.publish(1).await;
    let now = now_millis();
    let c = t.claim(hook, now, 1).await;
    let update = outcome(&c[0], DeliveryStatus::Retrying, now);
    // The commit goes through but its fsync fails: the recorder hears an error and retries.
    t.store.testing_fail_next_syncs(1);
    assert!(t.store.delivery_record(std::slice::from_ref(&update)).await.is_err());
    for _ in 0..3 {
        t.store.delivery_record(std::slice::from_ref(&update)).await.unwrap();
    }
    let d = t.store.delivery_get(Scope::All, c[0].id).await.unwrap().unwrap();
    assert_eq!((d.record.attempts, d.attempts.len()), (1, 1));
}

/// Makes at `path` the database an older hookd left: sqlx's migrator applied 0001 (and
/// recorded it with `checksum`), and a payload was leased and attempted twice.
fn sqlx_era_database(path: &std::path::Path, checksum: &[u8]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    c.execute_batch(include_str!("../../../migrations/sqlite/0001_init.sql"))
        .unwrap();
    // sqlx's own table, as sqlx 0.8 makes it.
    c.execute_batch(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
           installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
           checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .unwrap();
    c.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'init', TRUE, ?1, 1000)",
        [checksum],
    )
    .unwrap();
    c.execute_batch(
        "INSERT INTO merchants (code, created_at) VALUES ('shop', 1), ('none', 1); \
         INSERT INTO webhooks (merchant_id, is_active, topics, url, extra_headers, secret_key, increment_id, created_at) \
           VALUES (1, 1, 'order:created', 'https://r.example/a', '', 'k', 1, 1), \
                  (1, 1, 'order:created', 'https://r.example/b', '', 'k', 0, 1); \
         INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) VALUES (1, 'order:created', 1), (1, 'order:created', 2); \
         INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, attempts, \
           next_attempt_at, lease_owner, lease_until, created_at) \
           VALUES (1, 1, 1, 'order:created', x'7b7d', 'retrying', 2, 0, 'old-node', 99, 1); \
         INSERT INTO delivery_attempts (delivery_id, attempted_at, http_status, duration_ms, response_prefix) \
           VALUES (1, 10, 500, 1, ''), (1, 20, 500, 1, '');",
    )
    .unwrap();
}

fn sha384(sql: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha384::digest(sql.as_bytes()).to_vec()
}

/// 0010 rebuilds `users` (SQLite cannot change its CHECK for the publisher role): users
/// keep their ids and keys, sessions survive the rebuild, and publishers can be stored.
#[tokio::test]
async fn the_publisher_migration_keeps_users_and_their_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx_era_database(&path, &sha384(include_str!("../../../migrations/sqlite/0001_init.sql")));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO users (id, name, role, merchant_id, key_hash, created_at) \
               VALUES (7, 'root', 'admin', NULL, 'h1', 1), (9, 'shopper', 'merchant', 1, 'h2', 1); \
             INSERT INTO sessions (id_hash, user_id, expires_at) VALUES ('s1', 7, 9000000000000), ('s2', 9, 9000000000000);",
        )
        .unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let shopper = store
        .session_user("s2", 0)
        .await
        .unwrap()
        .expect("the session survived")
        .user;
    assert_eq!(
        (shopper.id.0, shopper.name.as_str(), shopper.key_hash.as_str()),
        (9, "shopper", "h2")
    );
    assert_eq!(shopper.merchant_code.as_deref(), Some("shop"));
    assert_eq!(
        store.session_user("s1", 0).await.unwrap().unwrap().user.role,
        Role::Admin
    );
    let name = crate::domain::UserName::parse("pub").unwrap();
    let publisher = store
        .user_create_scoped(&name, Role::Publisher, None, &["shop".to_string()], "h3")
        .await
        .unwrap();
    assert_eq!(publisher.merchant_codes, ["shop"]);
    assert!(store.user_create(&name, Role::Publisher, None, "h4").await.is_err());
    // A user stays deletable, and its sessions go with it.
    assert!(store.user_remove("shopper").await.unwrap());
    assert!(store.session_user("s2", 0).await.unwrap().is_none());
}

#[tokio::test]
async fn a_database_migrated_by_sqlx_is_adopted_and_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx_era_database(&path, &sha384(include_str!("../../../migrations/sqlite/0001_init.sql")));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    let c = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = c
        .prepare("SELECT version FROM hookd_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 17, 18, 19],
        "0001 adopted, not run again; the rest applied"
    );
    let lease_columns: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('deliveries') WHERE name LIKE 'lease%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lease_columns, 0);
    let numbers: Vec<i64> = c
        .prepare("SELECT attempt_no FROM delivery_attempts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(numbers, vec![1, 2]);

    // The rows are kept, counted, and work as new ones do.
    let shop = MerchantId(1);
    assert_eq!(store.webhook_count(shop).await.unwrap(), 2);
    assert_eq!(store.webhook_count(MerchantId(2)).await.unwrap(), 0);
    assert_eq!(
        store.webhook_create(shop, &new_hook(TOPIC, true), 2).await.unwrap(),
        None
    );
    let claimed = store
        .delivery_claim(WebhookId(1), "me", now_millis(), now_millis() + HOUR, 10)
        .await
        .unwrap();
    assert_eq!((claimed.len(), claimed[0].attempts), (1, 2));
    store
        .delivery_record(&[outcome(&claimed[0], DeliveryStatus::Success, now_millis())])
        .await
        .unwrap();
    let d = store.delivery_get(Scope::All, claimed[0].id).await.unwrap().unwrap();
    assert_eq!(
        (d.record.status, d.record.attempts, d.attempts.len()),
        (DeliveryStatus::Success, 3, 3)
    );
    assert_eq!(publish(&store, shop, TOPIC).await.payloads, 2);
}

/// Whether SQLite fills a temporary b-tree (`OpenEphemeral`) to run `sql` (one parameter).
fn opens_a_temporary_btree(c: &rusqlite::Connection, sql: &str) -> bool {
    let mut explain = c.prepare(&format!("EXPLAIN {sql}")).unwrap();
    let opcodes: Vec<String> = explain
        .query_map(["pending"], |r| r.get(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    opcodes.iter().any(|op| op == "OpenEphemeral")
}

/// 0019 rewrites `deliveries.status`'s CHECK in place: the same five values pass and others
/// are refused, on the connection that migrated (the writer) and on one that had read the
/// old schema; neither fills a temporary b-tree to check an insert or a status update any
/// more; and the database stays sound.
#[tokio::test]
async fn the_status_check_migration_keeps_the_rule_without_temporary_btrees() {
    const INSERT: &str = "INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, \
        next_attempt_at, created_at) VALUES (1, 1, 1, 't', x'7b7d', ?1, 0, 0)";
    const UPDATE: &str = "UPDATE deliveries SET status = ?1 WHERE id = 1";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx_era_database(&path, &sha384(include_str!("../../../migrations/sqlite/0001_init.sql")));
    let before = rusqlite::Connection::open(&path).unwrap();
    assert!(opens_a_temporary_btree(&before, INSERT), "the old CHECK fills one");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let checks = |c: &rusqlite::Connection| -> Vec<String> {
        let mut found = Vec::new();
        for status in ["pending", "retrying", "success", "failed", "canceled"] {
            if let Err(e) = c.execute(UPDATE, [status]) {
                found.push(format!("{status} refused: {e}"));
            }
        }
        for status in ["done", "", "PENDING"] {
            match c.execute(UPDATE, [status]) {
                Err(e) if e.to_string().contains("CHECK constraint failed") => {}
                other => found.push(format!("{status:?} was not refused by the CHECK: {other:?}")),
            }
        }
        // After a statement has run: that is when a connection finds the schema changed.
        for sql in [INSERT, UPDATE] {
            if opens_a_temporary_btree(c, sql) {
                found.push(format!("{sql} fills a temporary b-tree"));
            }
        }
        found
    };
    let on_writer = store.writer.write(move |c, _| Ok(checks(c))).await.unwrap();
    assert!(on_writer.is_empty(), "on the writer: {on_writer:?}");
    let on_old = checks(&before);
    assert!(on_old.is_empty(), "on a connection opened before: {on_old:?}");
    let sound: String = before.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(sound, "ok");
}

#[tokio::test]
async fn a_database_whose_sqlx_history_differs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx_era_database(&path, &sha384("some other schema"));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let refused = store.migrate().await;
    assert!(
        matches!(refused, Err(StoreError::AdoptionRefused { version: 1, .. })),
        "{refused:?}"
    );
}

#[test]
fn database_urls_name_their_file() {
    use super::file_path;
    use std::path::PathBuf;
    assert_eq!(file_path("sqlite://hookd.db"), Some(PathBuf::from("hookd.db")));
    assert_eq!(
        file_path("sqlite:///var/lib/h.db?mode=rwc"),
        Some(PathBuf::from("/var/lib/h.db"))
    );
    assert_eq!(file_path("sqlite:rel/h.db"), Some(PathBuf::from("rel/h.db")));
    assert_eq!(file_path("sqlite::memory:"), None);
    assert_eq!(file_path("sqlite://h.db?mode=memory&cache=shared"), None);
    assert_eq!(
        file_path("sqlite:///tmp/my%20data/h.db"),
        Some(PathBuf::from("/tmp/my data/h.db"))
    );
    assert_eq!(file_path("sqlite://"), None);
    assert_eq!(file_path("postgres://x"), None);
}

/// The plan of a statement run with `params`, one line per step.
fn plan(c: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut explain = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let steps = explain.query_map(params, |r| r.get::<_, String>(3)).unwrap();
    steps.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
}

/// The console's list reads by index: the newest payload of each webhook is one step into
/// `deliveries_by_webhook` (not a scan of a webhook's history or of the table), and a
/// merchant's page starts in `webhooks_merchant` at the page's first id.
#[tokio::test]
async fn the_console_list_s_reads_use_their_indexes() {
    let t = setup().await;
    let c = rusqlite::Connection::open(t._dir.path().join("hookd.db")).unwrap();
    let latest = plan(&c, &super::deliveries::latest_sql(), rusqlite::params!["[1, 2, 3]", 1]);
    assert!(
        latest.contains("SEARCH d USING COVERING INDEX deliveries_by_webhook (webhook_id=?)"),
        "{latest}"
    );
    assert!(
        latest.contains("SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)"),
        "{latest}"
    );
    assert!(
        !latest.contains("SCAN deliveries") && !latest.contains("SCAN d"),
        "{latest}"
    );

    let (sql, values) = super::webhooks::page_query(Scope::Merchant(t.merchant), Some(WebhookId(7)), 51);
    let page = plan(&c, &sql, rusqlite::params_from_iter(values));
    assert!(
        page.contains("USING INDEX webhooks_merchant (merchant_id=? AND id>?)"),
        "{page}"
    );
    let (sql, values) = super::webhooks::page_query(Scope::All, Some(WebhookId(7)), 51);
    let page = plan(&c, &sql, rusqlite::params_from_iter(values));
    assert!(page.contains("SEARCH w USING INTEGER PRIMARY KEY (rowid>?)"), "{page}");
}
