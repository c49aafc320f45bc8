//! The plans of the merchant portal's reads (CONTRACT §7.7), on a normal-size table with
//! statistics: the statements hookd runs (`portal::SAMPLES_SQL`, `lifecycle::search_query`)
//! are explained, so dropping an index or changing a query so it no longer fits one fails
//! here. `bench/plans/health_plan.sh` shows the same plans with 1M attempts.

use super::lifecycle::search_query;
use super::portal::SAMPLES_SQL;
use crate::domain::MerchantId;
use crate::store::test_support::merchant;
use crate::store::{Scope, Store};

const DAY: i64 = 86_400_000;
/// Payloads loaded (three attempts each), over two merchants, 20 webhooks and 60 days.
const PAYLOADS: i64 = 12_000;

/// The plan of a statement run with `params`, one line per step.
fn plan(c: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut explain = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let steps = explain.query_map(params, |r| r.get::<_, String>(3)).unwrap();
    steps.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
}

/// A migrated database with `PAYLOADS` payloads and their attempts, analyzed.
async fn loaded() -> (tempfile::TempDir, rusqlite::Connection, MerchantId, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.db");
    let store = super::SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let shop = merchant(&store, "shop").await;
    let other = merchant(&store, "other").await;
    drop(store);
    let now = crate::time::now_millis();
    let start = now - 60 * DAY;
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&format!(
        "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {PAYLOADS} - 1) \
         INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, attempts, \
           next_attempt_at, created_at) \
         SELECT i % 20 + 1, CASE WHEN i % 2 = 0 THEN {shop} ELSE {other} END, i / 20 + 1, 'order:created', \
           x'7b7d', 'success', 3, 0, {start} + i * (60 * {DAY} / {PAYLOADS}) FROM g; \
         INSERT INTO delivery_attempts (delivery_id, attempt_no, request, attempted_at, http_status, \
           duration_ms, response_prefix, webhook_id, sent_headers) \
         SELECT d.id, n.n, 0, d.created_at + n.n, CASE WHEN n.n = 3 THEN 200 ELSE 500 END, 7, '', \
           d.webhook_id, '' FROM deliveries d, (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) n; \
         ANALYZE;",
        shop = shop.0,
        other = other.0,
    ))
    .unwrap();
    (dir, c, shop, now)
}

/// Health reads one webhook's last 24 hours as one range of `delivery_attempts_health`,
/// without touching the table or sorting.
#[tokio::test]
async fn the_health_query_is_one_range_of_its_covering_index() {
    let (_dir, c, _, now) = loaded().await;
    let health = plan(&c, SAMPLES_SQL, rusqlite::params![7, now - DAY, now + 1, 100_000]);
    assert!(
        health.contains(
            "SEARCH delivery_attempts USING COVERING INDEX delivery_attempts_health \
             (webhook_id=? AND attempted_at>? AND attempted_at<?)"
        ),
        "{health}"
    );
    assert!(!health.contains("TEMP B-TREE"), "no sort: {health}");
}

/// A merchant's time range is one range of `deliveries_by_merchant_time`, newest first
/// without a sort, however old it is: its first page and a later one.
#[tokio::test]
async fn the_deliveries_time_range_is_one_range_of_its_index_anywhere_in_history() {
    let (_dir, c, shop, now) = loaded().await;
    for filter in crate::store::test_support::old_week_filters(now) {
        let (sql, values) = search_query(Scope::Merchant(shop), &filter);
        let page = plan(&c, &sql, rusqlite::params_from_iter(values));
        assert!(
            page.contains("SEARCH deliveries USING INDEX deliveries_by_merchant_time (merchant_id=? AND "),
            "{filter:?}: {page}"
        );
        assert!(!page.contains("TEMP B-TREE"), "no sort: {filter:?}: {page}");
    }
}
