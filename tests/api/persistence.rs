//! What survives a restart, and what never reaches the disk in plain text.

use serde_json::json;

use crate::helpers::*;

/// The files holding `needle` (exact bytes, or its uppercase hex form).
fn files_containing(app: &TestApp, needle: &str) -> Vec<String> {
    let forms = [needle.to_string(), needle.to_uppercase()];
    app.database_bytes()
        .into_iter()
        .filter(|(_, bytes)| {
            forms
                .iter()
                .any(|f| bytes.windows(f.len()).any(|w| w == f.as_bytes()))
        })
        .map(|(path, _)| path.display().to_string())
        .collect()
}

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
        &app.create_webhook(
            &session,
            json!({"topics": "*", "url": "https://example.com/3"}),
        )
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
        &app.create_webhook(
            &session,
            json!({"topics": "*", "url": "https://example.com/"}),
        )
        .await,
    );

    // While running (recent writes sit in the WAL) …
    assert!(
        app.database_bytes().len() >= 2,
        "the database and its WAL are there"
    );
    assert_eq!(
        files_containing(&app, &key),
        Vec::<String>::new(),
        "the API key is on disk"
    );
    assert_eq!(
        files_containing(&app, &session),
        Vec::<String>::new(),
        "the session id is on disk"
    );
    // … and what is stored instead is really there (so the search itself works).
    assert!(!files_containing(&app, &sha256_hex(&session)).is_empty());

    // … and after a shutdown has checkpointed everything into the main file.
    app.stop().await;
    assert_eq!(files_containing(&app, &key), Vec::<String>::new());
    assert_eq!(files_containing(&app, &session), Vec::<String>::new());
}
