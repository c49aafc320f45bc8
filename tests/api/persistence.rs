//! What survives a restart, and what never reaches the disk in plain text.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn webhooks_survive_a_restart_on_the_same_database() {
    let mut app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let session = app.login(&name, &key).await;
    let headers = "X-Tenant: 42\r\nX-Other: yes";
    for data in [
        json!({"topics": "order:*", "url": "http://example.com", "secret_key": "2RUJ8NXLnLRrAj3"}),
        json!({"topics": ["order:created", "product:*"], "url": "https://example.com/h?x=1",
               "is_active": 0, "extra_headers": headers}),
    ] {
        assert_ok(&app.create_webhook(&session, data).await);
    }
    let before = app.list_webhooks(&session).await;
    let db = app.config.database_url.clone();

    app.restart().await;
    assert_eq!(app.config.database_url, db);
    assert_eq!(app.list_webhooks(&session).await, before);

    // A fresh login with the same key works against the restarted server too.
    let again = app.login(&name, &key).await;
    assert_eq!(app.list_webhooks(&again).await, before);

    // And what is made after the restart continues the ids.
    assert_ok(
        &app.create_webhook(&session, json!({"topics": "*", "url": "https://example.com/3"}))
            .await,
    );
    let after = app.list_webhooks(&session).await;
    assert_eq!(after.len(), 3);
    assert!(after[2]["webhook_id"].as_i64() > before[1]["webhook_id"].as_i64());
}

#[tokio::test]
async fn api_keys_and_session_ids_are_never_stored_in_plain_text() {
    let mut app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let session = app.login(&name, &key).await;
    assert_ok(&app.call_basic(&name, &key, "webhook.list", json!([])).await);
    assert_ok(
        &app.create_webhook(&session, json!({"topics": "*", "url": "https://example.com/"}))
            .await,
    );

    let nowhere = Vec::<String>::new();
    if app.backend() == Backend::Sqlite {
        assert!(
            app.sqlite_files().len() >= 2,
            "the database and its WAL are both searched"
        );
    }
    // While the server runs (on SQLite, recent writes sit in the WAL) …
    assert_eq!(app.where_stored(&key).await, nowhere, "the API key is stored");
    assert_eq!(app.where_stored(&session).await, nowhere, "the session id is stored");
    // … while what is stored instead is there (so the search itself works) …
    assert!(!app.where_stored(&sha256_hex(&session)).await.is_empty());

    // … and once the server has stopped and SQLite has moved everything into the main file.
    app.stop().await;
    if app.backend() == Backend::Sqlite {
        app.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").await;
    }
    assert!(!app.where_stored(&sha256_hex(&session)).await.is_empty());
    assert_eq!(app.where_stored(&key).await, nowhere);
    assert_eq!(app.where_stored(&session).await, nowhere);
}

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_until_the_first_stops() {
    let mut app = TestApp::spawn().await;
    if !matches!(app.backend(), Backend::Sqlite) {
        return; // PostgreSQL is made for several servers.
    }
    // Leases live in memory on SQLite, so two servers would send payloads twice.
    let refused = hookd::startup::Application::build(app.config.clone()).await;
    let err = refused.err().expect("a second server on the same file is refused");
    assert!(format!("{err:#}").contains("already running"), "{err:#}");
    // The first one keeps serving, and once it stops the file is free again.
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    app.login(&name, &key).await;
    app.restart().await;
    app.login(&name, &key).await;
}
