//! Faults on the receiving side (CONTRACT.md §4): targets refused at connect time when
//! private targets are not allowed, and receivers that break the connection or do not
//! speak HTTP, which must not stop deliveries to anyone else.

use std::time::Duration;

use hookd::domain::NewWebhook;
use serde_json::json;

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn private_targets_are_refused_at_registration_and_again_at_connect_time() {
    let w = World::start_with(|c| {
        schedule(c, "1m");
        c.app.allow_private_targets = false;
    })
    .await;
    let resp = w
        .app
        .create_webhook(
            &w.shop,
            json!({"topics": "order:created", "url": w.receiver.url("/direct")}),
        )
        .await;
    assert_invalid_data(&resp, "127.0.0.1");

    // Webhooks that got in anyway (the check at registration is not the only one): a
    // literal loopback address, and a name that resolves to one.
    let merchant = w
        .app
        .app
        .store
        .merchant_by_code(&w.code)
        .await
        .unwrap()
        .expect("the merchant exists");
    let port = w.receiver.addr.port();
    for url in [w.receiver.url("/direct"), format!("http://localhost:{port}/by-name")] {
        let data = json!({"topics": "order:created", "url": url});
        let hook = NewWebhook::from_json(&data, &w.app.app.catalog(), true).unwrap();
        w.app
            .app
            .store
            .webhook_create(merchant, &hook, i64::MAX)
            .await
            .unwrap()
            .expect("no webhook limit");
    }
    let hooks: Vec<i64> = w.app.list_webhooks(&w.shop).await.iter().map(id_of).collect();
    assert_eq!(hooks.len(), 2);

    let published = w.publish_ok("order:created", json!({"id": 1})).await;
    assert_eq!(published["payloads"], 2, "{published}");
    for hook in hooks {
        let delivery = w.only_delivery(hook).await;
        let info = w.wait_attempts(delivery, 1, WAIT).await;
        let attempt = &attempt_log(&info)[0];
        assert!(attempt["http_status"].is_null(), "{info:#}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("forbidden") && error.contains("loopback"),
            "the attempt is refused as a forbidden loopback target: {info:#}"
        );
        assert_eq!(info["status"], "retrying", "{info:#}");
    }
    assert!(w.receiver.received("/").is_empty(), "the receiver got nothing");
}

#[tokio::test]
async fn receivers_that_break_the_connection_do_not_hold_up_other_webhooks() {
    let w = World::start_with(|c| schedule(c, "1m")).await;
    let closing = RawReceiver::start(Raw::Close).await;
    let garbage = RawReceiver::start(Raw::Garbage).await;
    let good = id_of(&w.hook_at("order:created", "/good").await);
    // Each with words its error must contain.
    let faulty = [
        (
            id_of(
                &w.hook(json!({"topics": "order:created", "url": closing.url("/")}))
                    .await,
            ),
            ["closed", "reset"],
        ),
        (
            id_of(
                &w.hook(json!({"topics": "order:created", "url": garbage.url("/")}))
                    .await,
            ),
            ["HTTP", "parse"],
        ),
    ];

    for n in 1..=5 {
        let published = w.publish_ok("order:created", json!({"n": n})).await;
        assert_eq!(published["payloads"], 3, "{published}");
    }
    let got = w.receiver.wait_for("/good", 5, WAIT).await;
    let mut ids: Vec<i64> = got.iter().map(|r| r.increment_id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    w.wait_deliveries(good, "all delivered", WAIT, |l| statuses(l) == ["success"; 5])
        .await;

    for (hook, words) in faulty {
        let list = w
            .wait_deliveries(hook, "each attempted once", WAIT, |l| {
                l.len() == 5 && l.iter().all(|d| d["attempts"] == 1)
            })
            .await;
        for d in &list {
            assert_eq!(d["status"], "retrying", "{d}");
            assert!(d["last_http_status"].is_null(), "{d}");
            let error = d["last_error"].as_str().unwrap_or_default();
            assert!(readable(error), "a readable one-line error: {d}");
            assert!(
                words.iter().any(|word| error.contains(word)),
                "the error says what went wrong ({words:?}): {d}"
            );
        }
    }
    assert!(closing.accepted() >= 5, "{}", closing.accepted());
    assert!(garbage.accepted() >= 5, "{}", garbage.accepted());
}

#[tokio::test]
async fn a_stalled_receiver_does_not_delay_other_webhooks() {
    let w = World::start_with(|c| schedule(c, "1m")).await;
    w.receiver.set("/stall", Behaviour::Stall(Duration::from_secs(3)));
    let stalled = id_of(&w.hook_at("order:created", "/stall").await);
    w.hook_at("order:created", "/quick").await;

    for n in 1..=3 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    // Well within the 3 s the stalled receiver holds its requests.
    w.receiver.wait_for("/quick", 3, Duration::from_millis(2500)).await;
    let list = w.deliveries(stalled).await;
    assert!(
        list.iter().all(|d| d["attempts"] == 0),
        "the stalled webhook's attempts are still in flight: {list:#?}"
    );
    w.wait_deliveries(stalled, "delivered late", WAIT, |l| statuses(l) == ["success"; 3])
        .await;
}
