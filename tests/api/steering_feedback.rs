//! Delivery that listens to the receiver (CONTRACT.md §6.2): `Retry-After` on 429/503 sets
//! the next attempt's delay (clamped to 1 s … 24 h), 410 Gone turns the webhook off with a
//! reason while its payloads wait, a webhook failing for `HOOKD_DISABLE_AFTER` is turned off
//! the same way, and each turn-off is announced as a `webhook:disabled` event that the
//! merchant's other webhooks receive, once, even when hookd stops between turning the
//! webhook off and publishing. Real misbehaving receivers; both backends.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// A fixed wait, used only to show that something does NOT happen.
const QUIET: Duration = Duration::from_millis(1500);

/// A schedule whose steps are far shorter than any Retry-After: 100 ms, twenty times.
fn short_steps(c: &mut hookd::config::Config) {
    schedule(c, &["100ms"; 20].join(","));
}

/// The gap between the first and the second request on `path`.
async fn gap_after_first(w: &World, path: &str) -> Duration {
    let got = w.receiver.wait_for(path, 2, WAIT).await;
    got[1].at - got[0].at
}

/// Polls `webhook.list` until webhook `id` is off; its entity.
async fn wait_disabled(w: &World, id: i64, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let hook = w.webhook(id).await;
        if hook["is_active"] == 0 {
            return hook;
        }
        assert!(Instant::now() < deadline, "webhook {id} still on: {hook:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `webhook:disabled` payloads a watcher on `path` received, as their messages without
/// the fields every payload has (`webhook_increment_id`, `event_timestamp`).
fn announcements(w: &World, path: &str) -> Vec<Value> {
    w.receiver
        .received(path)
        .iter()
        .map(|r| {
            let body = r.json();
            assert_eq!(body["topic"], "webhook:disabled", "{body}");
            assert_eq!(body["merchant_code"], w.code.as_str(), "{body}");
            let mut message = body["message"].clone();
            let fields = message.as_object_mut().expect("an object");
            assert!(fields.remove("webhook_increment_id").is_some(), "{body}");
            assert!(fields.remove("event_timestamp").is_some(), "{body}");
            message
        })
        .collect()
}

/// `hookd_webhooks_disabled_total` from `GET /metrics`.
async fn disabled_total(w: &World) -> u64 {
    let url = w.app.endpoint.replace("/api/jsonrpc", "/metrics");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hookd_webhooks_disabled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no hookd_webhooks_disabled_total in:\n{text}"))
}

// --- Retry-After ---

#[tokio::test]
async fn a_retry_after_in_seconds_or_as_an_http_date_replaces_the_schedule_s_step() {
    let w = World::start_with(short_steps).await;
    w.receiver.set("/seconds", Behaviour::RetryAfter(429, "2".into()));
    // Three seconds ahead, in whole seconds: a wait of 2 … 3 s.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    w.receiver.set("/date", Behaviour::RetryAfter(503, date));
    let seconds = id_of(&w.hook_at("order:created", "/seconds").await);
    w.hook_at("order:created", "/date").await;
    w.publish_ok("order:created", json!({"n": 1})).await;

    w.receiver.wait_for("/seconds", 1, WAIT).await;
    w.receiver.wait_for("/date", 1, WAIT).await;
    // Answer the second attempts normally.
    w.receiver.set("/seconds", Behaviour::Status(200));
    w.receiver.set("/date", Behaviour::Status(200));

    let gap = gap_after_first(&w, "/seconds").await;
    assert!(
        gap >= Duration::from_millis(1990) && gap < Duration::from_millis(3500),
        "Retry-After: 2 was followed, not the 100 ms step: {gap:?}"
    );
    let gap = gap_after_first(&w, "/date").await;
    assert!(
        gap >= Duration::from_millis(1500) && gap < Duration::from_millis(4500),
        "the HTTP date was followed: {gap:?}"
    );

    // Still an attempt: logged and counted, with the wait in its error text.
    let delivery = w.only_delivery(seconds).await;
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["attempts"], 2, "{info:#}");
    let first = &attempt_log(&info)[0];
    assert_eq!(first["http_status"], 429, "{info:#}");
    assert_eq!(first["error"], "HTTP 429 (Retry-After: 2s)", "{info:#}");
}

#[tokio::test]
async fn a_retry_after_is_held_to_one_second_and_one_day() {
    let w = World::start_with(short_steps).await;
    w.receiver.set("/zero", Behaviour::RetryAfter(429, "0".into()));
    w.receiver.set("/week", Behaviour::RetryAfter(503, "604800".into()));
    w.receiver.set("/junk", Behaviour::RetryAfter(503, "soon".into()));
    w.hook_at("order:created", "/zero").await;
    let week = id_of(&w.hook_at("order:created", "/week").await);
    w.hook_at("order:created", "/junk").await;
    let before = unix_now();
    w.publish_ok("order:created", json!({"n": 1})).await;

    w.receiver.wait_for("/zero", 1, WAIT).await;
    w.receiver.set("/zero", Behaviour::Status(200));
    let gap = gap_after_first(&w, "/zero").await;
    assert!(gap >= Duration::from_millis(990), "0 s became 1 s: {gap:?}");

    // An unparseable value: the schedule's 100 ms step.
    let gap = gap_after_first(&w, "/junk").await;
    assert!(gap < Duration::from_millis(900), "the schedule applied: {gap:?}");

    // A week became a day.
    let delivery = w.only_delivery(week).await;
    let info = w.wait_attempts(delivery, 1, WAIT).await;
    let next = info["next_attempt_at"].as_str().unwrap_or_else(|| panic!("{info:#}"));
    let next = hookd::time::parse_timestamp(next).unwrap() / 1000;
    let day = 24 * 3600;
    assert!(
        (before + day - 5..=unix_now() + day + 5).contains(&next),
        "next attempt a day away: {info:#}"
    );
    assert_eq!(info["status"], "retrying");
}

// --- 410 Gone ---

#[tokio::test]
async fn a_410_turns_the_webhook_off_its_payloads_wait_and_go_out_once_it_is_on_again() {
    // One attempt at a time, so the payloads behind the first wait in the queue.
    let w = World::start_with(|c| c.app.delivery.per_webhook = 1).await;
    w.receiver
        .set("/gone", Behaviour::StallThen(Duration::from_millis(500), 410));
    let gone = w.hook_at("order:created", "/gone").await;
    let (id, url) = (id_of(&gone), gone["url"].clone());
    let watcher = id_of(&w.hook_at("webhook:disabled", "/watch").await);
    for n in 1..=3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }

    let hook = wait_disabled(&w, id, WAIT).await;
    let reason = hook["disabled_reason"].as_str().unwrap_or_else(|| panic!("{hook:#}"));
    assert!(reason.starts_with("410 Gone from the receiver at 20"), "{reason}");

    // The merchant's watcher hears of it, once; the disabled webhook does not.
    w.receiver.wait_for("/watch", 1, WAIT).await;
    let said = announcements(&w, "/watch");
    assert_eq!(said, [json!({"webhook_id": id, "url": url, "reason": reason})]);
    assert_eq!(disabled_total(&w).await, 1);

    // Nothing failed, nothing more was sent, and new events make no payload for it.
    let published = w.publish_ok("order:created", json!({"n": 4})).await;
    assert_eq!(published["payloads"], 0, "{published}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(w.receiver.received("/gone").len(), 1);
    let list = w.deliveries(id).await;
    assert_eq!(list.len(), 3, "{list:#?}");
    assert!(!statuses(&list).contains(&"failed"), "{list:#?}");
    let attempts: Vec<i64> = list.iter().map(|d| d["attempts"].as_i64().unwrap()).collect();
    assert_eq!(attempts, [0, 0, 1], "newest first: only the first was tried");
    assert_eq!(list[2]["status"], "retrying", "{list:#?}");
    assert_eq!(announcements(&w, "/watch").len(), 1);

    // On again (the reason goes): every waiting payload is delivered, ids gap-free.
    w.receiver.set("/gone", Behaviour::Status(200));
    w.set_active(id, true).await;
    assert!(w.webhook(id).await["disabled_reason"].is_null());
    w.wait_deliveries(id, "all delivered", WAIT, |l| statuses(l) == ["success"; 3])
        .await;
    let mut ids: Vec<i64> = w.receiver.received("/gone").iter().map(|r| r.increment_id()).collect();
    ids.sort();
    assert_eq!(ids, [1, 1, 2, 3], "the 410'd payload again, then the rest");
    assert_eq!(w.increment_id(id).await, 3);
    assert_eq!(w.increment_id(watcher).await, 1);
}

#[tokio::test]
async fn many_410s_at_once_turn_the_webhook_off_and_announce_it_once() {
    let w = World::start().await;
    w.receiver
        .set("/gone", Behaviour::StallThen(Duration::from_millis(300), 410));
    let id = id_of(&w.hook_at("order:created", "/gone").await);
    w.hook_at("webhook:*", "/watch").await;
    for n in 1..=5 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    w.receiver.wait_for("/gone", 5, WAIT).await;
    wait_disabled(&w, id, WAIT).await;
    w.receiver.wait_for("/watch", 1, WAIT).await;
    let list = w
        .wait_deliveries(id, "every 410 recorded", WAIT, |l| l.iter().all(|d| d["attempts"] == 1))
        .await;
    assert_eq!(statuses(&list), ["retrying"; 5], "waiting, not failed");
    tokio::time::sleep(QUIET).await;
    assert_eq!(announcements(&w, "/watch").len(), 1, "announced once");
    assert_eq!(disabled_total(&w).await, 1);
    assert_eq!(w.receiver.received("/gone").len(), 5, "nothing sent while off");
}

#[tokio::test]
async fn a_410_on_the_last_scheduled_attempt_does_not_fail_the_payload() {
    // One retry: the 410 comes on the payload's last scheduled attempt.
    let w = World::start_with(|c| schedule(c, "200ms")).await;
    w.receiver.set("/late", Behaviour::Sequence(vec![500, 410]));
    let id = id_of(&w.hook_at("order:created", "/late").await);
    w.publish_ok("order:created", json!({"n": 1})).await;
    wait_disabled(&w, id, WAIT).await;
    let delivery = w.only_delivery(id).await;
    let info = w.wait_attempts(delivery, 2, WAIT).await;
    assert_eq!(info["status"], "retrying", "waiting, not failed: {info:#}");
    assert_eq!(attempt_log(&info)[1]["http_status"], 410, "{info:#}");

    // On again: the payload gets its attempt (the receiver answers 200 by now).
    w.set_active(id, true).await;
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["attempts"], 3, "{info:#}");
}

// --- failing for too long ---

#[tokio::test]
async fn a_webhook_failing_for_disable_after_is_turned_off_and_announced() {
    let w = World::start_with(|c| {
        schedule(c, &["200ms"; 40].join(","));
        c.app.delivery.disable_after = Some(Duration::from_secs(2));
    })
    .await;
    w.receiver.set("/down", Behaviour::Status(500));
    w.receiver.set("/flaky", Behaviour::Sequence(vec![500, 500]));
    let down = w.hook_at("order:created", "/down").await;
    let id = id_of(&down);
    let flaky = id_of(&w.hook_at("order:created", "/flaky").await);
    w.hook_at("webhook:disabled", "/watch").await;
    w.publish_ok("order:created", json!({"n": 1})).await;

    let first = w.receiver.wait_for("/down", 1, WAIT).await[0].at;
    let hook = wait_disabled(&w, id, WAIT).await;
    let off_after = first.elapsed();
    assert!(
        off_after >= Duration::from_millis(1900),
        "not before 2 s: {off_after:?}"
    );
    let reason = hook["disabled_reason"].as_str().unwrap_or_else(|| panic!("{hook:#}"));
    assert!(
        reason.starts_with("every delivery attempt failed from ") && reason.ends_with("(HOOKD_DISABLE_AFTER is 2s)"),
        "{reason}"
    );
    w.receiver.wait_for("/watch", 1, WAIT).await;
    assert_eq!(
        announcements(&w, "/watch"),
        [json!({"webhook_id": id, "url": down["url"], "reason": reason})]
    );

    // Its payload waits (not failed) and nothing more is sent; the webhook that recovered
    // after two failures stays on.
    let sent = w.receiver.received("/down").len();
    tokio::time::sleep(QUIET).await;
    assert!(
        w.receiver.received("/down").len() <= sent + 1,
        "at most one attempt was in flight"
    );
    let delivery = w.only_delivery(id).await;
    assert_eq!(w.info(delivery).await["status"], "retrying");
    assert_eq!(w.webhook(flaky).await["is_active"], 1);
    assert_eq!(disabled_total(&w).await, 1);
}

// --- a stop between turning off and announcing ---

/// How many webhooks have a `webhook:disabled` announcement pending.
async fn pending(w: &World) -> i64 {
    w.app
        .query_i64("SELECT COUNT(*) FROM webhooks WHERE announce_pending")
        .await
}

/// Polls until no announcement is pending: the announcer published and cleared them.
async fn wait_none_pending(w: &World, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let n = pending(w).await;
        if n == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{n} announcements still pending");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How many `webhook:disabled` events are stored.
async fn disabled_events(w: &World) -> i64 {
    w.app
        .query_i64("SELECT COUNT(*) FROM events WHERE topic = 'webhook:disabled'")
        .await
}

#[tokio::test]
async fn an_announcement_left_pending_by_a_stop_is_made_by_the_next_server_once() {
    let mut w = World::start().await;
    let gone = w.hook_at("order:created", "/gone").await;
    let (id, url) = (id_of(&gone), gone["url"].clone());
    w.hook_at("webhook:disabled", "/watch").await;

    // What a crash right after the turn-off leaves: the store's write alone (the engine,
    // which would nudge the announcer, is bypassed), then the server gone.
    let reason = "410 Gone from the receiver at 2026-12-01T12:00:00+00:00";
    let store = w.app.app.store.clone();
    assert!(store
        .webhook_disable(hookd::domain::WebhookId(id), reason)
        .await
        .unwrap());
    drop(store);
    w.app.stop().await;
    assert_eq!(pending(&w).await, 1);
    assert_eq!(disabled_events(&w).await, 0);
    assert!(w.receiver.received("/watch").is_empty());

    // The next server announces it at start-up: once, with what the webhook said.
    w.app.restart().await;
    w.receiver.wait_for("/watch", 1, WAIT).await;
    assert_eq!(
        announcements(&w, "/watch"),
        [json!({"webhook_id": id, "url": url, "reason": reason})]
    );
    wait_none_pending(&w, WAIT).await;
    assert_eq!(w.webhook(id).await["is_active"], 0);

    // One more start finds nothing to announce.
    w.app.restart().await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(disabled_events(&w).await, 1);
    assert_eq!(announcements(&w, "/watch").len(), 1);

    // A stop between the publish and the clear: the mark is back, the event made. The next
    // server publishes it again with the same idempotency key, which is answered as a
    // replay: no second event, no second payload.
    w.app
        .execute_sql(&format!("UPDATE webhooks SET announce_pending = TRUE WHERE id = {id}"))
        .await;
    w.app.restart().await;
    wait_none_pending(&w, WAIT).await;
    assert_eq!(disabled_events(&w).await, 1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(announcements(&w, "/watch").len(), 1, "announced once");
}
