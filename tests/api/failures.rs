//! Store failures under a running server: the database is broken on purpose from outside,
//! and the API must answer 102 (create), 104 (delete) or -32603 (anything else), keep the
//! data consistent, and never send the internal cause to the client.

use serde_json::{json, Value};

use crate::helpers::*;

async fn app_with_one_webhook() -> (TestApp, String, Vec<Value>) {
    let app = TestApp::spawn().await;
    let session = app.merchant_session(&unique("shop")).await;
    let data = json!({"topics": "order:created,product:*", "url": "https://example.com/a"});
    assert_ok(&app.create_webhook(&session, data).await);
    let listed = app.list_webhooks(&session).await;
    (app, session, listed)
}

#[track_caller]
fn assert_no_internals(resp: &Value) {
    let text = resp.to_string().to_lowercase();
    for leak in [
        "boom",
        "sqlite",
        "no such table",
        "webhooks_hidden",
        "trigger",
        "constraint",
    ] {
        assert!(!text.contains(leak), "the response leaks '{leak}': {resp}");
    }
}

#[tokio::test]
async fn a_failing_insert_answers_102_and_writes_nothing() {
    let (app, session, before) = app_with_one_webhook().await;
    app.fail_on("INSERT", "webhook_topics").await;

    let data = json!({"topics": "order:created", "url": "https://example.com/b"});
    let resp = app.create_webhook(&session, data.clone()).await;
    let message = assert_app_error(&resp, 102);
    assert_eq!(message, "An unexpected error occurred while creating the webhook.");
    assert_no_internals(&resp);
    assert_eq!(app.list_webhooks(&session).await, before, "no half-written webhook");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM webhooks").await, 1);

    // Once the database is healthy again, so is create.
    app.stop_failing("INSERT", "webhook_topics").await;
    assert_ok(&app.create_webhook(&session, data).await);
    assert_eq!(app.list_webhooks(&session).await.len(), 2);
}

#[tokio::test]
async fn a_failing_delete_answers_104_and_keeps_the_webhook() {
    let (app, session, before) = app_with_one_webhook().await;
    app.fail_on("DELETE", "webhooks").await;

    let id = before[0]["webhook_id"].clone();
    let resp = app.call(&session, "webhook.delete", json!([id])).await;
    let message = assert_app_error(&resp, 104);
    assert_eq!(message, "An unexpected error occurred while deleting the webhook.");
    assert_no_internals(&resp);
    assert_eq!(app.list_webhooks(&session).await, before);
    // update_status by topic still finds it: its subscription index is intact.
    assert_ok(
        &app.call(&session, "webhook.update_status", json!(["product:*", 1]))
            .await,
    );

    app.stop_failing("DELETE", "webhooks").await;
    assert_ok(&app.call(&session, "webhook.delete", json!([id])).await);
    assert!(app.list_webhooks(&session).await.is_empty());
}

#[tokio::test]
async fn a_failing_read_or_update_answers_internal_error_without_details() {
    let (app, session, before) = app_with_one_webhook().await;
    app.execute_sql("ALTER TABLE webhooks RENAME TO webhooks_hidden").await;

    let id = before[0]["webhook_id"].clone();
    for (path, args) in [
        ("webhook.list", json!([])),
        ("webhook.update_status", json!([id, 0])),
        ("webhook.update_status", json!(["order:created", 0])),
        ("webhook.update_status", json!([{"status": 0}])),
    ] {
        let resp = app.call(&session, path, args.clone()).await;
        assert_eq!(assert_error(&resp, -32603), "Internal error", "{path} {args}");
        assert_no_internals(&resp);
    }
    // What does not need the broken table still works.
    app.assert_still_serving(&session).await;

    app.execute_sql("ALTER TABLE webhooks_hidden RENAME TO webhooks").await;
    assert_eq!(app.list_webhooks(&session).await, before);
}

#[tokio::test]
async fn a_failing_session_lookup_answers_internal_error_not_access_granted() {
    let (app, session, _) = app_with_one_webhook().await;
    app.execute_sql("ALTER TABLE sessions RENAME TO sessions_hidden").await;
    let resp = app.call(&session, "webhook.list", json!([])).await;
    assert_eq!(assert_error(&resp, -32603), "Internal error");
    assert_no_internals(&resp);
    app.execute_sql("ALTER TABLE sessions_hidden RENAME TO sessions").await;
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
}
