//! The plans of the merchant portal's reads (CONTRACT §7.7) on a normal-size table with
//! statistics: the statements hookd runs (`portal::SAMPLES_SQL`, `lifecycle::search_query`)
//! are explained, so dropping an index or changing a query so it no longer fits one fails
//! here. Sequential scans are turned off for the session, so the few thousand rows of a test
//! give the plan the 1M of `bench/plans/health_plan.sh` give.

use sqlx::postgres::PgArguments;
use sqlx::Row;

use super::*;
use crate::store::postgres::lifecycle::search_query;
use crate::store::postgres::portal::SAMPLES_SQL;

const DAY: Millis = 86_400_000;
/// Payloads loaded (three attempts each), over two merchants, 20 webhooks and 60 days.
const PAYLOADS: i64 = 12_000;

/// The plan of `sql` run with `args`, one line per step.
async fn plan(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>, sql: &str, args: PgArguments) -> String {
    sqlx::query_with(&format!("EXPLAIN {sql}"), args)
        .fetch_all(&mut **conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_portal_s_reads_are_ranges_of_their_indexes() {
    let (db, store) = setup!();
    let shop = merchant(&store, "shop").await;
    let other = merchant(&store, "other").await;
    let now = now_millis();
    sqlx::query(
        "INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, attempts, \
           next_attempt_at, created_at) \
         SELECT i % 20 + 1, CASE WHEN i % 2 = 0 THEN $1 ELSE $2 END, i / 20 + 1, 'order:created', \
           '\\x7b7d', 'success', 3, 0, $3 + i * (60 * $4 / $5) \
         FROM generate_series(0, $5 - 1) i",
    )
    .bind(shop.0)
    .bind(other.0)
    .bind(now - 60 * DAY)
    .bind(DAY)
    .bind(PAYLOADS)
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, request, attempted_at, http_status, \
           duration_ms, response_prefix, webhook_id, sent_headers) \
         SELECT d.id, n, 0, d.created_at + n, CASE WHEN n = 3 THEN 200 ELSE 500 END, 7, '', d.webhook_id, '' \
         FROM deliveries d, generate_series(1, 3) n",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE").execute(&store.pool).await.unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();

    // Health: one webhook's last 24 hours, read from the index alone, already in order.
    let mut args = PgArguments::default();
    for v in [7, now - DAY, now + 1, 100_000] {
        sqlx::Arguments::add(&mut args, v).unwrap();
    }
    let health = plan(&mut conn, SAMPLES_SQL, args).await;
    assert!(
        health.contains("Index Only Scan Backward using delivery_attempts_health on delivery_attempts"),
        "{health}"
    );
    assert!(!health.contains("Sort"), "{health}");

    // The deliveries page's time range, however old: its first page, a later one, and a
    // range open at its end, each one backward range of `deliveries_by_merchant_time`.
    for filter in crate::store::test_support::old_week_filters(now) {
        let (sql, args) = search_query(Scope::Merchant(shop), &filter).unwrap();
        let page = plan(&mut conn, &sql, args).await;
        assert!(
            page.contains("Index Scan Backward using deliveries_by_merchant_time on deliveries"),
            "{filter:?}: {page}"
        );
        assert!(!page.contains("Sort"), "no sort: {filter:?}: {page}");
    }
    drop(conn);
    db.drop_database().await;
}

/// The outcome write (`queue::RECORD_SQL`) finds a batch's payloads by primary key while
/// `deliveries` is small and its queue holds every row, as on a new database under load.
/// Joined instead by a scan of the queue (`deliveries_queue`) or of the table, as it was,
/// each write read every queued payload: 1,194 buffers a call on two nodes.
#[tokio::test]
async fn the_outcome_write_finds_its_payloads_by_primary_key_while_the_table_is_small() {
    let (db, store) = setup!();
    let shop = merchant(&store, "shop").await;
    let hook = create_hook(&store, shop, "order:*", true).await;
    queue_payloads(&store, hook, shop, 1000).await;
    let mut conn = store.pool.acquire().await.unwrap();
    let args = record_args();
    // Planned with the batch's values, and once for every call (PostgreSQL may settle on
    // either; the dispatcher's connections always do, see `pools::hot_path`), both joins
    // (the attempt log's and the outcome's) read `deliveries` by primary key only.
    for generic in [false, true] {
        if generic {
            sqlx::query("SET plan_cache_mode = force_generic_plan")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let write = plan(&mut conn, crate::store::postgres::queue::RECORD_SQL, args.clone()).await;
        assert_eq!(
            write.matches("deliveries_pkey").count(),
            2,
            "generic {generic}: {write}"
        );
        for line in write
            .lines()
            .filter(|l| l.contains("Scan") && l.contains(" deliveries"))
        {
            assert!(
                line.contains("deliveries_pkey") || line.contains("Bitmap Heap Scan on deliveries"),
                "generic {generic}: {line}\n{write}"
            );
        }
    }
    // The plan made once for every call, as the dispatcher's connections make it
    // (`pools::hot_path`; EXPLAIN with values plans with them, so the statement is prepared
    // here), whatever the batch's size: each payload meets its own outcome by its id (merged,
    // hashed or looked up), never by comparing every payload with every outcome (a join
    // filter on the ids), which made a batch of 263 take 46 ms.
    sqlx::raw_sql(&format!(
        "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; PREPARE record({}) AS {}",
        (1..=15)
            .map(|n| record_param(n).sql_type())
            .collect::<Vec<_>>()
            .join(", "),
        crate::store::postgres::queue::RECORD_SQL
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let values: Vec<&str> = (1..=15).map(|n| record_param(n).literal()).collect();
    let generic = plan(
        &mut conn,
        &format!("EXECUTE record({})", values.join(", ")),
        PgArguments::default(),
    )
    .await;
    assert!(generic.contains("deliveries_pkey"), "{generic}");
    assert!(
        !generic
            .lines()
            .any(|l| l.contains("Join Filter") && (l.contains("d.id = u.id") || l.contains("u.id = d.id"))),
        "{generic}"
    );
    drop(conn);
    db.drop_database().await;
}

/// Queues `n` payloads of `hook`, due now.
async fn queue_payloads(store: &crate::store::postgres::PostgresStore, hook: WebhookId, shop: MerchantId, n: i64) {
    sqlx::query(
        "INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, attempts, \
           next_attempt_at, created_at) \
         SELECT $1, $2, i, 'order:created', '\\x7b7d', 'pending', 0, $3, $3 FROM generate_series(1, $4) i",
    )
    .bind(hook.0)
    .bind(shop.0)
    .bind(now_millis())
    .bind(n)
    .execute(&store.pool)
    .await
    .unwrap();
}

/// What parameter `n` of `queue::RECORD_SQL` holds in these tests' batch of three outcomes.
#[derive(Clone, Copy)]
enum RecordParam {
    /// The payloads' ids (5, 6, 7).
    Ids,
    /// A text per outcome.
    Texts,
    /// The node's clock.
    Clock,
    /// The webhooks whose `failing_since` the batch clears (one).
    Cleared,
    /// A number per outcome.
    Numbers,
}

fn record_param(n: usize) -> RecordParam {
    match n {
        1 => RecordParam::Ids,
        2 | 3 | 9 | 10 | 14 => RecordParam::Texts,
        13 => RecordParam::Clock,
        15 => RecordParam::Cleared,
        _ => RecordParam::Numbers,
    }
}

impl RecordParam {
    fn sql_type(self) -> &'static str {
        match self {
            RecordParam::Texts => "TEXT[]",
            RecordParam::Clock => "BIGINT",
            RecordParam::Ids | RecordParam::Cleared | RecordParam::Numbers => "BIGINT[]",
        }
    }

    /// The value as an SQL literal (for `EXECUTE`, which takes no bound parameters).
    fn literal(self) -> &'static str {
        match self {
            RecordParam::Ids => "'{5,6,7}'",
            RecordParam::Texts => "'{x,x,x}'",
            RecordParam::Clock => "0",
            RecordParam::Cleared => "'{1}'",
            RecordParam::Numbers => "'{0,0,0}'",
        }
    }
}

/// Arguments for `queue::RECORD_SQL`: a batch of three outcomes.
fn record_args() -> PgArguments {
    let now = now_millis();
    let mut args = PgArguments::default();
    let (ids, numbers, texts) = (vec![5_i64, 6, 7], vec![now; 3], vec!["x"; 3]);
    for n in 1..=15 {
        match record_param(n) {
            RecordParam::Ids => sqlx::Arguments::add(&mut args, &ids).unwrap(),
            RecordParam::Texts => sqlx::Arguments::add(&mut args, &texts).unwrap(),
            RecordParam::Clock => sqlx::Arguments::add(&mut args, now).unwrap(),
            RecordParam::Cleared => sqlx::Arguments::add(&mut args, vec![1_i64]).unwrap(),
            RecordParam::Numbers => sqlx::Arguments::add(&mut args, &numbers).unwrap(),
        }
    }
    args
}

/// The dispatcher's and the publisher's connections plan each statement once, and that
/// plan reads `deliveries` by index even when it is made while the table is young and
/// small (`pools::hot_path`). Planned anew on every call, the outcome write spent more on
/// planning than on running; planned once with PostgreSQL's defaults on a table of 30 rows
/// (as autovacuum first analyzes it), it scanned the whole table on every call until the
/// next ANALYZE.
#[tokio::test]
async fn the_hot_path_plans_once_and_through_indexes_even_on_a_young_table() {
    let (db, store) = setup!();
    let shop = merchant(&store, "shop").await;
    let hook = create_hook(&store, shop, "order:*", true).await;
    for pool in [&store.work, &store.publisher.pool] {
        let mut conn = pool.acquire().await.unwrap();
        let (mode, seqscan): (String, String) =
            sqlx::query_as("SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!((mode.as_str(), seqscan.as_str()), ("force_generic_plan", "off"));
    }
    queue_payloads(&store, hook, shop, 30).await;
    sqlx::query("ANALYZE deliveries").execute(&store.pool).await.unwrap();
    let mut conn = store.work.acquire().await.unwrap();
    let write = plan(&mut conn, crate::store::postgres::queue::RECORD_SQL, record_args()).await;
    assert_eq!(write.matches("deliveries_pkey").count(), 2, "{write}");
    assert!(!write.contains("Seq Scan on deliveries"), "{write}");
    drop(conn);
    // API requests keep PostgreSQL's defaults.
    let (mode,): (String,) = sqlx::query_as("SELECT current_setting('plan_cache_mode')")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode, "auto");
    db.drop_database().await;
}
