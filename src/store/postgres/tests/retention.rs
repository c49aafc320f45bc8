//! Retention in chunks: a purge pass takes every finished payload past retention, however
//! many chunks that is, with its attempts, and nothing else.

use super::*;

#[tokio::test]
async fn a_purge_pass_takes_every_finished_payload_in_chunks_and_leaves_the_rest() {
    let (db, store) = setup!();
    let m = merchant(&store, "shop").await;
    // 12,001 old finished payloads (three chunks), each with an attempt; one pending and one
    // recently finished, both kept.
    sqlx::query(
        "INSERT INTO deliveries (webhook_id, merchant_id, increment_id, topic, body, status, attempts, \
           next_attempt_at, created_at, finished_at) \
         SELECT 1, $1, g, 'order:created', '\\x7b7d', \
           CASE WHEN g <= 12001 THEN 'success' WHEN g = 12002 THEN 'pending' ELSE 'failed' END, 1, g, g, \
           CASE WHEN g <= 12001 THEN g WHEN g = 12002 THEN NULL ELSE 1000000 END \
         FROM generate_series(1, 12003) g",
    )
    .bind(m.0)
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, attempted_at, duration_ms, response_prefix) \
         SELECT id, 1, 1, 1, '' FROM deliveries",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    assert_eq!(store.purge_finished(500_000).await.unwrap(), 12_001);
    let left: Vec<i64> = sqlx::query_scalar("SELECT increment_id FROM deliveries ORDER BY id")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![12_002, 12_003]);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "attempts go with their payloads");
    assert_eq!(store.purge_finished(500_000).await.unwrap(), 0);
    db.drop_database().await;
}
