//! What happens after a failed attempt (CONTRACT.md §4): the retry schedule, `failed` when
//! it is used up, `delivery.retry`, redirects and timeouts as failures, payloads of
//! deactivated and deleted webhooks, and payloads that survive a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// A fixed wait, used only to show that something does NOT happen.
const QUIET: Duration = Duration::from_millis(1500);

// --- the schedule ---

#[tokio::test]
async fn a_failing_payload_is_retried_on_the_schedule_then_marked_failed() {
    let w = World::start().await; // 200ms, 400ms, 800ms
    w.receiver.set("/fail", Behaviour::Status(500));
    let hook = id_of(&w.hook_at("order:created", "/fail").await);
    w.publish_ok("order:created", json!({"id": 1})).await;

    let got = w.receiver.wait_for("/fail", 4, WAIT).await;
    let delivery = w.only_delivery(hook).await;
    let info = w.wait_status(delivery, "failed", WAIT).await;

    for (i, step_ms) in [200u64, 400, 800].into_iter().enumerate() {
        let gap = got[i + 1].at - got[i].at;
        // Each step is jittered by ±10 %; due times are kept in whole milliseconds, hence
        // the 2 ms of slack.
        let min = Duration::from_millis(step_ms * 9 / 10 - 2);
        assert!(
            gap >= min && gap < min + Duration::from_millis(1500),
            "retry {} came {gap:?} after the attempt before it, expected {step_ms} ms ± 10 %",
            i + 1
        );
    }
    assert_eq!(info["attempts"], 4, "{info:#}");
    assert!(info["next_attempt_at"].is_null(), "{info:#}");
    assert_eq!(info["last_http_status"], 500);
    let log = attempt_log(&info);
    assert_eq!(log.len(), 4, "{info:#}");
    for entry in log {
        assert_eq!(entry["http_status"], 500, "{entry}");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(error.contains("500"), "{entry}");
    }

    let secret = w.webhook(hook).await["secret_key"].as_str().unwrap().to_string();
    for r in &got {
        assert_eq!(r.body, got[0].body, "every attempt sends the same bytes");
        assert_eq!(r.header("webhook-id"), got[0].header("webhook-id"));
        assert_eq!(
            r.header("x-plugin-hmac-sha256"),
            Some(plugin_signature(&secret, &r.body).as_str())
        );
        assert!(standard_webhooks_valid(&whsec(&secret), r));
    }
    assert_eq!(info["body"].as_str().unwrap().as_bytes(), &got[0].body[..]);

    tokio::time::sleep(QUIET).await;
    assert_eq!(w.receiver.received("/fail").len(), 4, "no fifth attempt");
}

#[tokio::test]
async fn a_failed_payload_can_be_retried_by_hand_with_the_same_body_and_increment_id() {
    let w = World::start_with(|c| schedule(c, "200ms")).await;
    w.receiver.set("/manual", Behaviour::Status(500));
    let hook = id_of(&w.hook_at("order:created", "/manual").await);
    w.publish_ok("order:created", json!({"id": 1})).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "failed", WAIT).await;
    let failed = w.receiver.received("/manual");
    assert_eq!(failed.len(), 2, "two attempts with a one-retry schedule");

    w.receiver.set("/manual", Behaviour::Status(200));
    let resp = w.as_shop("delivery.retry", json!([delivery])).await;
    assert_eq!(assert_ok(&resp), &json!(true));
    let got = w.receiver.wait_for("/manual", 3, WAIT).await;
    assert_eq!(got[2].body, failed[0].body, "the same bytes as before");
    assert_eq!(got[2].increment_id(), 1);
    assert_eq!(got[2].header("webhook-id"), failed[0].header("webhook-id"));
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["attempts"], 3, "{info:#}");
    assert_eq!(attempt_log(&info)[2]["http_status"], 200);
    assert_eq!(w.increment_id(hook).await, 1, "a retry takes no new increment id");

    // A success can be sent again too (CONTRACT §7.7; tests/api/merchant_portal.rs).
    let resp = w.as_shop("delivery.retry", json!([delivery + 1000])).await;
    assert_app_error(&resp, 107);
}

// --- failures the receiver causes ---

#[tokio::test]
async fn redirects_are_not_followed() {
    let w = World::start_with(|c| schedule(c, "1m")).await;
    w.receiver
        .set("/moved", Behaviour::Redirect(w.receiver.url("/elsewhere")));
    let hook = id_of(&w.hook_at("order:created", "/moved").await);
    w.publish_ok("order:created", json!({"id": 1})).await;

    let delivery = w.only_delivery(hook).await;
    let info = w.wait_attempts(delivery, 1, WAIT).await;
    let attempt = &attempt_log(&info)[0];
    assert_eq!(attempt["http_status"], 302, "{info:#}");
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(error.contains("redirect"), "the error names the redirect: {info:#}");
    assert_eq!(info["status"], "retrying", "a 3xx is a failure");
    // The attempt is over, so a followed redirect would already have arrived.
    assert_eq!(w.receiver.received("/moved").len(), 1);
    assert!(w.receiver.received("/elsewhere").is_empty());
}

#[tokio::test]
async fn a_stalled_receiver_times_out_and_later_attempts_proceed_once_it_recovers() {
    let w = World::start_with(|c| {
        schedule(c, "200ms,200ms,200ms,200ms,200ms");
        c.app.delivery.client.request_timeout = Duration::from_millis(500);
    })
    .await;
    w.receiver.set("/slow", Behaviour::Stall(Duration::from_secs(3)));
    let hook = id_of(&w.hook_at("order:created", "/slow").await);
    w.publish_ok("order:created", json!({"id": 1})).await;

    let delivery = w.only_delivery(hook).await;
    let info = w.wait_attempts(delivery, 1, WAIT).await;
    w.receiver.set("/slow", Behaviour::Status(200));
    let first = &attempt_log(&info)[0];
    assert!(first["http_status"].is_null(), "{info:#}");
    let error = first["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{info:#}");
    let took = first["duration_ms"].as_i64().unwrap();
    assert!(
        (450..2500).contains(&took),
        "the attempt was cut at about 500 ms: {took}"
    );

    let info = w.wait_status(delivery, "success", WAIT).await;
    let log = attempt_log(&info);
    let (last, earlier) = log.split_last().unwrap();
    assert_eq!(last["http_status"], 200, "{info:#}");
    assert!(last["error"].is_null(), "{info:#}");
    for entry in earlier {
        assert!(
            entry["error"].as_str().unwrap_or_default().contains("timed out"),
            "{info:#}"
        );
    }
}

// --- deactivated and deleted webhooks ---

#[tokio::test]
async fn inactive_webhooks_get_no_payloads() {
    let w = World::start().await;
    let active = id_of(&w.hook_at("order:created", "/on").await);
    let inactive = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/off"), "is_active": 0}))
            .await,
    );
    let published = w.publish_ok("order:created", json!({"id": 1})).await;
    assert_eq!(published["payloads"], 1, "{published}");
    w.receiver.wait_for("/on", 1, WAIT).await;

    w.set_active(active, false).await;
    let published = w.publish_ok("order:created", json!({"id": 2})).await;
    assert_eq!(published["payloads"], 0, "{published}");

    assert_eq!(w.increment_id(active).await, 1);
    assert_eq!(w.increment_id(inactive).await, 0);
    assert!(w.deliveries(inactive).await.is_empty());
    assert!(w.receiver.received("/off").is_empty());
    assert_eq!(w.receiver.received("/on").len(), 1);
}

#[tokio::test]
async fn a_payload_waiting_for_a_retry_is_kept_while_its_webhook_is_inactive() {
    let w = World::start_with(|c| schedule(c, "1s,1s,1s")).await;
    w.receiver.set("/pause", Behaviour::Sequence(vec![500]));
    let hook = id_of(&w.hook_at("order:created", "/pause").await);
    w.publish_ok("order:created", json!({"id": 1})).await;
    let first = w.receiver.wait_for("/pause", 1, WAIT).await.remove(0);
    // The retry is due 1 s after the first attempt: deactivate well before that.
    w.set_active(hook, false).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_info(delivery, "first attempt recorded", WAIT, |i| i["attempts"] == 1)
        .await;
    assert_eq!(w.receiver.received("/pause").len(), 1, "deactivated before the retry");

    tokio::time::sleep(QUIET).await;
    let info = w.info(delivery).await;
    assert_eq!(info["status"], "retrying", "{info:#}");
    assert_eq!(info["attempts"], 1, "nothing is sent while inactive: {info:#}");
    assert_eq!(w.receiver.received("/pause").len(), 1);

    w.set_active(hook, true).await;
    let got = w.receiver.wait_for("/pause", 2, WAIT).await;
    assert_eq!(got[1].body, first.body);
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["attempts"], 2, "{info:#}");
}

#[tokio::test]
async fn a_deleted_webhook_s_queued_payloads_are_canceled_and_never_sent() {
    let w = World::start_with(|c| schedule(c, "1s,1s,1s")).await;
    w.receiver.set("/gone", Behaviour::Status(500));
    let hook = id_of(&w.hook_at("order:created", "/gone").await);
    w.publish_ok("order:created", json!({"id": 1})).await;
    w.receiver.wait_for("/gone", 1, WAIT).await;
    let delivery = w.only_delivery(hook).await;

    let resp = w.as_shop("webhook.delete", json!([hook])).await;
    assert_eq!(assert_ok(&resp), &json!(true));
    let check = |info: &serde_json::Value| {
        assert_eq!(info["status"], "canceled", "{info:#}");
        assert!(info["next_attempt_at"].is_null(), "{info:#}");
    };
    let resp = w.as_admin("delivery.info", json!([delivery])).await;
    check(assert_ok(&resp));

    // Past the time the retry was due.
    tokio::time::sleep(QUIET).await;
    let resp = w.as_admin("delivery.info", json!([delivery])).await;
    check(assert_ok(&resp));
    assert_eq!(w.receiver.received("/gone").len(), 1, "nothing sent after the delete");
}

// --- restarts ---

#[tokio::test]
async fn payloads_waiting_for_a_retry_are_delivered_after_a_restart() {
    let mut w = World::start_with(|c| schedule(c, "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms")).await;
    w.receiver.set("/durable", Behaviour::Status(500));
    let hook = id_of(&w.hook_at("order:created", "/durable").await);
    for i in 0..5 {
        w.publish_ok("order:created", json!({"n": i})).await;
    }
    let list = w
        .wait_deliveries(hook, "each attempted", WAIT, |l| {
            l.iter().all(|d| d["attempts"].as_i64().unwrap() >= 1)
        })
        .await;
    assert_eq!(list.len(), 5);
    assert!(statuses(&list).iter().all(|s| *s == "retrying"), "{list:#?}");

    w.app.restart().await;
    // Every request before this instant was answered 500.
    let fixed_at = std::time::Instant::now();
    w.receiver.set("/durable", Behaviour::Status(200));
    let list = w
        .wait_deliveries(hook, "all delivered", WAIT, |l| {
            statuses(l).iter().all(|s| *s == "success")
        })
        .await;
    assert_eq!(list.len(), 5);
    let after_restart = w.receiver.received("/durable").len();

    let ids: BTreeSet<i64> = w
        .receiver
        .received("/durable")
        .iter()
        .filter(|r| r.at > fixed_at)
        .map(|r| r.increment_id())
        .collect();
    assert!(
        ids.is_superset(&(1..=5).collect()),
        "every payload arrived after the restart: {ids:?}"
    );
    assert_eq!(w.increment_id(hook).await, 5);

    // Increment ids carry on after the restart.
    w.publish_ok("order:created", json!({"n": 6})).await;
    let got = w.receiver.wait_for("/durable", after_restart + 1, WAIT).await;
    assert_eq!(got.last().unwrap().increment_id(), 6);
    assert_eq!(w.increment_id(hook).await, 6);
}
