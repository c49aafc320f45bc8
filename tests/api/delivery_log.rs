//! The delivery log and its controls (CONTRACT.md §4, extension methods): `webhook.test`,
//! `webhook.deliveries` and `delivery.info`, and what another merchant may see of them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// A second merchant with a session and a webhook of its own: (session, webhook id).
async fn other_merchant(w: &World) -> (String, i64) {
    let session = w.app.merchant_session(&unique("other")).await;
    let resp = w
        .app
        .create_webhook(&session, json!({"topics": "*", "url": w.receiver.url("/other")}))
        .await;
    assert_eq!(assert_ok(&resp), &json!(true));
    let id = id_of(&w.app.list_webhooks(&session).await[0]);
    (session, id)
}

// --- webhook.test ---

#[tokio::test]
async fn webhook_test_sends_a_signed_test_ping_and_reports_its_outcome() {
    let w = World::start().await;
    let hook = w.hook_at("order:created", "/ping").await;
    let id = id_of(&hook);
    let secret = hook["secret_key"].as_str().unwrap().to_string();

    let resp = w.as_shop("webhook.test", json!([id])).await;
    let result = assert_ok(&resp);
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["http_status"], 200, "{result}");
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["increment_id"], 1, "{result}");
    let delivery = result["delivery_id"].as_i64().expect("a delivery_id");

    // The outcome was reported after the attempt, so the request has arrived.
    let got = w.receiver.received("/ping");
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["topic"], "test:ping");
    assert_eq!(body["merchant_code"], w.code);
    assert_eq!(body["message"]["webhook_increment_id"], 1);
    assert!(payload_timestamp(body["message"]["event_timestamp"].as_str().unwrap()).is_some());
    assert_eq!(
        got[0].header("x-plugin-hmac-sha256"),
        Some(plugin_signature(&secret, &got[0].body).as_str())
    );
    assert!(standard_webhooks_valid(&whsec(&secret), &got[0]));

    assert_eq!(w.increment_id(id).await, 1, "the ping took an increment id");
    let info = w.info(delivery).await;
    assert_eq!(info["topic"], "test:ping");
    assert_eq!(info["status"], "success");
    assert_eq!(info["body"].as_str().unwrap().as_bytes(), &got[0].body[..]);
}

#[tokio::test]
async fn webhook_test_against_a_failing_receiver_reports_failure_and_queues_a_retry() {
    let w = World::start_with(|c| schedule(c, "1m")).await;
    w.receiver.set("/ping500", Behaviour::Status(500));
    let id = id_of(&w.hook_at("*", "/ping500").await);

    let resp = w.as_shop("webhook.test", json!([id])).await;
    let result = assert_ok(&resp);
    assert_eq!(result["success"], false, "{result}");
    assert_eq!(result["status"], "retrying", "{result}");
    assert_eq!(result["http_status"], 500, "{result}");
    assert!(result["error"].as_str().unwrap_or_default().contains("500"), "{result}");
    let info = w.info(result["delivery_id"].as_i64().unwrap()).await;
    assert_eq!(info["status"], "retrying", "{info:#}");
    assert!(info["next_attempt_at"].is_string(), "{info:#}");
}

#[tokio::test]
async fn concurrent_webhook_tests_open_no_more_requests_than_the_per_webhook_concurrency() {
    let w = World::start_with(|c| c.app.delivery.per_webhook = 3).await;
    let id = id_of(&w.hook_at("order:created", "/busy").await);
    w.receiver.set("/busy", Behaviour::Stall(Duration::from_millis(150)));

    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [w.shop, "webhook.test", [id]]});
    let answers = w.app.rpc_concurrently(vec![body; 12]).await;
    for a in &answers {
        assert_eq!(assert_ok(a)["success"], true, "{a}");
    }
    assert_eq!(w.receiver.received("/busy").len(), 12);
    assert!(
        w.receiver.most_at_once() <= 3,
        "{} pings were open at once",
        w.receiver.most_at_once()
    );
    assert_eq!(w.increment_id(id).await, 12, "every ping took its own increment id");
}

#[tokio::test]
async fn webhook_test_of_an_unknown_or_another_merchant_s_webhook_is_not_found() {
    let w = World::start().await;
    let (_, theirs) = other_merchant(&w).await;

    let resp = w.as_shop("webhook.test", json!([theirs + 1000])).await;
    assert_app_error(&resp, 103);
    let resp = w.as_shop("webhook.test", json!([theirs])).await;
    assert_app_error(&resp, 103);
    assert!(w.receiver.received("/other").is_empty(), "nothing was sent");
}

// --- webhook.deliveries and delivery.info ---

#[tokio::test]
async fn webhook_deliveries_lists_payloads_newest_first_with_a_status_filter() {
    let w = World::start_with(|c| schedule(c, "1m")).await;
    let id = id_of(&w.hook_at("order:*", "/log").await);
    for n in 1..=3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    w.wait_deliveries(id, "three delivered", WAIT, |l| statuses(l) == ["success"; 3])
        .await;
    w.receiver.set("/log", Behaviour::Status(500));
    w.publish_ok("order:shipped", json!({"n": 4})).await;
    let list = w
        .wait_deliveries(id, "the fourth attempted", WAIT, |l| {
            l.len() == 4 && l[0]["attempts"] == 1
        })
        .await;

    let increments: Vec<i64> = list.iter().map(|d| d["increment_id"].as_i64().unwrap()).collect();
    assert_eq!(increments, [4, 3, 2, 1], "newest first");
    let ids: Vec<i64> = list.iter().map(|d| d["delivery_id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] > p[1]), "{ids:?}");
    for d in &list {
        for field in [
            "delivery_id",
            "increment_id",
            "topic",
            "status",
            "attempts",
            "next_attempt_at",
            "last_http_status",
            "last_error",
        ] {
            assert!(d.get(field).is_some(), "{field} in {d}");
        }
    }
    let retrying = &list[0];
    assert_eq!(retrying["topic"], "order:shipped");
    assert_eq!(retrying["status"], "retrying");
    assert_eq!(retrying["last_http_status"], 500);
    assert!(
        retrying["last_error"].as_str().unwrap_or_default().contains("500"),
        "{retrying}"
    );
    assert!(retrying["next_attempt_at"].is_string(), "{retrying}");
    let done = &list[3];
    assert_eq!(done["topic"], "order:created");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["last_http_status"], 200);
    assert!(done["last_error"].is_null(), "{done}");
    assert!(done["next_attempt_at"].is_null(), "{done}");

    let resp = w.as_shop("delivery.retry", json!([retrying["delivery_id"]])).await;
    let message = assert_app_error(&resp, 108);
    assert!(message.contains("retrying"), "{message}");

    let only = w.deliveries_where(id, json!("retrying")).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["increment_id"], 4);
    let only = w.deliveries_where(id, json!({"status": "success"})).await;
    assert_eq!(statuses(&only), ["success"; 3]);
    assert!(w.deliveries_where(id, json!("failed")).await.is_empty());
    let resp = w.as_shop("webhook.deliveries", json!([id, "nosuch"])).await;
    assert_invalid_data(&resp, "status");
}

#[tokio::test]
async fn delivery_info_shows_the_body_as_sent_and_every_attempt() {
    let w = World::start().await; // 200ms, 400ms, 800ms
    w.receiver.set("/info", Behaviour::Sequence(vec![500, 503]));
    let id = id_of(&w.hook_at("order:created", "/info").await);
    w.publish_ok("order:created", json!({"id": "A-1"})).await;
    let delivery = w.only_delivery(id).await;
    let info = w.wait_status(delivery, "success", WAIT).await;
    let got = w.receiver.received("/info");
    assert_eq!(got.len(), 3);

    assert_eq!(info["delivery_id"], delivery);
    assert_eq!(info["increment_id"], 1);
    assert_eq!(info["attempts"], 3);
    assert_eq!(info["body"].as_str().unwrap().as_bytes(), &got[0].body[..]);
    let log = attempt_log(&info);
    let statuses: Vec<&Value> = log.iter().map(|a| &a["http_status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)], "oldest first");
    let times: Vec<&str> = log.iter().map(|a| a["attempted_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] < p[1]), "{times:?}");
    // The receiver answers "answered N" while its sequence lasts, then "ok".
    let answers = [(500, "answered 500"), (503, "answered 503"), (200, "ok")];
    for (entry, (code, answer)) in log.iter().zip(answers) {
        assert!(entry["duration_ms"].is_i64(), "{entry}");
        assert_eq!(entry["response_body"], answer, "{entry}");
        if code == 200 {
            assert!(entry["error"].is_null(), "{entry}");
        } else {
            assert!(entry["error"].as_str().unwrap().contains(&code.to_string()), "{entry}");
        }
    }
}

#[tokio::test]
async fn another_merchant_cannot_see_a_merchant_s_deliveries() {
    let w = World::start().await;
    let id = id_of(&w.hook_at("order:created", "/mine").await);
    let (other, theirs) = other_merchant(&w).await;
    let resp = w
        .as_admin(
            "event.publish",
            json!(["order:created", {"id": 1}, {"merchant_code": w.code}]),
        )
        .await;
    assert_eq!(assert_ok(&resp)["payloads"], 1, "{resp}");
    let delivery = w.only_delivery(id).await;
    w.wait_status(delivery, "success", WAIT).await;

    let resp = w.app.call(&other, "delivery.info", json!([delivery])).await;
    assert_app_error(&resp, 107);
    let resp = w.app.call(&other, "delivery.retry", json!([delivery])).await;
    assert_app_error(&resp, 107);
    let resp = w.app.call(&other, "webhook.deliveries", json!([id])).await;
    assert_app_error(&resp, 103);
    let resp = w.app.call(&other, "webhook.deliveries", json!([theirs])).await;
    assert_eq!(assert_ok(&resp), &json!([]));
    let resp = w.as_shop("delivery.info", json!([delivery + 1000])).await;
    assert_app_error(&resp, 107);

    // The admin sees every merchant's deliveries.
    let resp = w.as_admin("delivery.info", json!([delivery])).await;
    assert_eq!(assert_ok(&resp)["status"], "success");
}

#[tokio::test]
async fn delivery_info_is_one_consistent_snapshot_while_attempts_are_recorded() {
    let w = World::start_with(|c| schedule(c, &["50ms"; 20].join(","))).await;
    w.receiver.set("/snap", Behaviour::Status(500));
    let id = id_of(&w.hook_at("order:created", "/snap").await);
    w.publish_ok("order:created", json!({"id": 1})).await;
    let delivery = w.only_delivery(id).await;

    // Read as fast as possible while the 21 attempts are written back.
    let deadline = std::time::Instant::now() + WAIT;
    let mut reads = 0;
    loop {
        let info = w.info(delivery).await;
        reads += 1;
        assert_eq!(
            attempt_log(&info).len() as u64,
            info["attempts"].as_u64().unwrap(),
            "read {reads}: attempt_log disagrees with attempts/status: {info:#}"
        );
        if info["status"] == "failed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not failed in time: {info:#}");
    }
}
