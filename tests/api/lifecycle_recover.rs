//! Issue 27, `webhook.recover` bounded: one call queues at most 1,000 failed payloads again
//! (oldest first) and says how many remain, and a webhook gets at most 5,000 queued again
//! within a minute; a call past that is refused (109) saying how many remain and when to
//! retry. On the backend the suite runs on.

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;

const TOPIC: &str = "order:created";
const SINCE: &str = "2000-01-01T00:00:00+00:00";

/// Every payload of the webhook marked failed, behind the API's back (as if each had used
/// up its retries).
async fn fail_all(w: &World, hook: i64) {
    w.app
        .execute_sql(&format!(
            "UPDATE deliveries SET status = 'failed', finished_at = 1 WHERE webhook_id = {hook}"
        ))
        .await;
}

async fn recover(w: &World, hook: i64) -> Value {
    w.as_shop("webhook.recover", json!([hook, {"since": SINCE}])).await
}

#[tokio::test]
async fn a_recovery_queues_at_most_a_thousand_a_call_and_five_thousand_a_minute() {
    let w = World::start().await;
    // Paced to one an hour, so the payloads wait in the queue rather than go out.
    let hook = id_of(
        &w.hook(json!({"topics": TOPIC, "url": w.receiver.url("/r"), "max_rate": 1.0 / 3600.0}))
            .await,
    );
    for first in (0..2500).step_by(1000) {
        let batch: Vec<Value> = (first..(first + 1000).min(2500))
            .map(|n| {
                json!({"jsonrpc": "2.0", "id": n, "method": "call",
                       "params": [null, "event.publish", [TOPIC, {"n": n}]]})
            })
            .collect();
        let (_, answers) = w.app.rpc_basic(&w.admin.0, &w.admin.1, Value::Array(batch)).await;
        assert!(answers.as_array().unwrap().iter().all(|a| a["error"].is_null()));
    }
    fail_all(&w, hook).await;

    recover_2500_in_three_calls(&w, hook).await;
    let failed = w.deliveries_where(hook, json!({"status": "failed"})).await;
    assert!(failed.is_empty(), "{} still failed", failed.len());
    assert_eq!(
        assert_ok(&recover(&w, hook).await),
        &json!({"requeued": 0, "remaining": 0})
    );

    // Failed again: the minute's budget (2,500 spent) has 2,500 left, in calls of 1,000.
    fail_all(&w, hook).await;
    recover_2500_in_three_calls(&w, hook).await;
    // And once more within the minute: refused, nothing queued.
    fail_all(&w, hook).await;
    let message = assert_app_error(&recover(&w, hook).await, 109);
    assert!(message.starts_with("Webhook busy. "), "{message}");
    assert!(
        message.contains("at most 5000")
            && message.contains("2500 failed payload(s) remain")
            && message.contains("retry in"),
        "{message}"
    );
    let failed = format!("SELECT count(*) FROM deliveries WHERE webhook_id = {hook} AND status = 'failed'");
    assert_eq!(w.app.query_i64(&failed).await, 2500, "the refused call queued nothing");
}

/// Recovers a webhook's 2,500 failed payloads: three calls, each saying what remains.
async fn recover_2500_in_three_calls(w: &World, hook: i64) {
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(assert_ok(&recover(w, hook).await).clone());
    }
    assert_eq!(
        answers,
        [
            json!({"requeued": 1000, "remaining": 1500}),
            json!({"requeued": 1000, "remaining": 500}),
            json!({"requeued": 500, "remaining": 0}),
        ]
    );
}
