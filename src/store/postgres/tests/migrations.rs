//! A database migrated by a newer hookd (a rolling upgrade): this build starts on it.

use super::*;

#[tokio::test]
async fn a_schema_with_migrations_newer_than_this_build_is_accepted_and_named() {
    let (db, store) = setup!();
    // What a newer hookd's migration leaves: a row this build has no file for, and what it added.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer hookd', true, '\\x00', 1)",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE webhooks ADD COLUMN from_a_newer_hookd text NOT NULL DEFAULT ''")
        .execute(&store.pool)
        .await
        .unwrap();

    // Starting again (every node migrates at start) succeeds and names the newer migration.
    assert_eq!(
        super::super::migrations::run(&store.pool).await.unwrap(),
        vec![99990001]
    );
    store.migrate().await.unwrap();

    // And the store works on that schema: a webhook made and published to.
    let m = merchant(&store, "shop").await;
    let hook = create_hook(&store, m, "order:created", true).await;
    publish(&store, m, "order:created").await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT increment_id FROM deliveries WHERE webhook_id = $1")
        .bind(hook.0)
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![1]);

    // A migration this build knows that failed half-way is still refused (not "newer").
    sqlx::query("UPDATE _sqlx_migrations SET success = false WHERE version = 1")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(store.migrate().await.is_err());
    db.drop_database().await;
}
