//! The webhook lifecycle (CONTRACT §6.1): `webhook.update`, `webhook.payloads`,
//! `webhook.recover`, `delivery.list` and the new `webhook.list` fields, with a real
//! receiver, on either backend.

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// The `result` array of a response.
fn list(resp: &Value) -> Vec<Value> {
    assert_ok(resp)
        .as_array()
        .unwrap_or_else(|| panic!("an array: {resp}"))
        .clone()
}

#[tokio::test]
async fn queued_payloads_go_to_the_new_url_with_their_bodies_unchanged() {
    // Retries far enough apart that the update lands between two attempts.
    let w = World::start_with(|c| schedule(c, "1s,1s,1s,1s")).await;
    w.receiver.set("/old", Behaviour::Status(500));
    let hook = w.hook_at("order:created", "/old").await;
    let id = id_of(&hook);
    w.publish_ok("order:created", json!({"n": 1})).await;
    w.publish_ok("order:created", json!({"n": 2})).await;
    let first = w.receiver.wait_for("/old", 2, WAIT).await;

    let resp = w
        .as_shop("webhook.update", json!([id, {"url": w.receiver.url("/new")}]))
        .await;
    assert_eq!(assert_ok(&resp), &json!(true));
    let moved = w.receiver.wait_for("/new", 2, WAIT).await;
    let mut sent: Vec<_> = first.iter().map(|r| (r.increment_id(), r.body.clone())).collect();
    let mut resent: Vec<_> = moved.iter().map(|r| (r.increment_id(), r.body.clone())).collect();
    sent.sort();
    resent.sort();
    assert_eq!(resent, sent, "same payloads, byte for byte");

    // Same id, same sequence, same log.
    w.publish_ok("order:created", json!({"n": 3})).await;
    let third = w.receiver.wait_for("/new", 3, WAIT).await;
    assert!(third.iter().any(|r| r.increment_id() == 3));
    let entity = w.webhook(id).await;
    assert_eq!(entity["increment_id"], 3);
    assert_eq!(entity["url"], w.receiver.url("/new"));
    assert_eq!(w.deliveries(id).await.len(), 3);
}

#[tokio::test]
async fn updates_change_only_what_is_given_and_validate_like_create() {
    let w = World::start().await;
    let hook = w
        .hook(
            json!({"topics": "order:created", "url": w.receiver.url("/u"), "extra_headers": "X-A: 1",
                     "secret_key": "kept-secret"}),
        )
        .await;
    let id = id_of(&hook);
    assert_eq!(hook["merchant_code"], w.code.as_str());
    assert_eq!(
        (
            &hook["disabled_reason"],
            &hook["ordered"],
            &hook["max_rate"],
            &hook["filter"]
        ),
        (&Value::Null, &json!(false), &Value::Null, &Value::Null)
    );

    let ok = w
        .as_shop(
            "webhook.update",
            json!([id, {"topics": ["product:*", "order:created"], "is_active": "0"}]),
        )
        .await;
    assert_eq!(assert_ok(&ok), &json!(true));
    let got = w.webhook(id).await;
    assert_eq!(got["topics"], "product:*,order:created");
    assert_eq!(got["is_active"], 0);
    assert_eq!(
        (&got["url"], &got["extra_headers"]),
        (&hook["url"], &hook["extra_headers"])
    );
    assert_eq!(got["secret_key"], "kept-secret");
    // The steering fields' current behaviour is accepted.
    let same = w
        .as_shop(
            "webhook.update",
            json!([id, {"ordered": false, "max_rate": null, "filter": null, "is_active": 1}]),
        )
        .await;
    assert_ok(&same);
    assert_eq!(w.webhook(id).await["is_active"], 1);
    w.publish_ok("product:created", json!({})).await;
    w.receiver.wait_for("/u", 1, WAIT).await;

    for (data, field) in [
        (json!({"url": "ftp://example.com"}), "url"),
        (json!({"topics": "nosuch:topic"}), "topics"),
        (json!({"topics": 5}), "topics"),
        (json!({"extra_headers": "Content-Type: text/plain"}), "Content-Type"),
        (json!({"is_active": "yes"}), "is_active"),
        (json!({"colour": "red"}), "colour"),
        (json!({"secret_key": "x"}), "secret_key"),
        (json!({"ordered": "yes"}), "ordered"),
        (json!({"max_rate": 0}), "max_rate"),
        (json!({"max_rate": "10"}), "max_rate"),
        (json!({"filter": ""}), "filter"),
        (json!({"filter": 5}), "filter"),
        (json!("not an object"), "object"),
    ] {
        let resp = w.as_shop("webhook.update", json!([id, data])).await;
        assert_invalid_data(&resp, field);
    }
    assert_eq!(
        w.webhook(id).await["topics"],
        "product:*,order:created",
        "nothing stored by a refused update"
    );
}

#[tokio::test]
async fn another_merchant_s_webhook_answers_like_a_missing_one() {
    let w = World::start().await;
    let id = id_of(&w.hook_at("order:created", "/mine").await);
    w.publish_ok("order:created", json!({})).await;
    let other = w.app.merchant_session(&unique("other")).await;
    let missing = id + 1000;
    let calls = [
        ("webhook.update", json!([{"is_active": 0}])),
        ("webhook.rotate_secret", json!([{}])),
        ("webhook.payloads", json!([{"from_increment_id": 1}])),
        ("webhook.recover", json!([{"since": "2000-01-01T00:00:00+00:00"}])),
    ];
    for (path, rest) in calls {
        let args = |id: i64| {
            let mut a = vec![json!(id)];
            a.extend(rest.as_array().unwrap().iter().cloned());
            Value::Array(a)
        };
        let theirs = w.app.call(&other, path, args(id)).await;
        let absent = w.app.call(&other, path, args(missing)).await;
        assert_app_error(&theirs, 103);
        assert_eq!(theirs["error"], absent["error"], "{path}");
    }
    let seen = w.app.call(&other, "delivery.list", json!([])).await;
    assert!(list(&seen).is_empty(), "{seen}");
    // Nothing changed for the owner.
    let mine = w.webhook(id).await;
    assert_eq!(mine["is_active"], 1);
    assert_eq!(list(&w.as_shop("delivery.list", json!([])).await).len(), 1);
}

#[tokio::test]
async fn a_receiver_that_sees_a_gap_fetches_what_it_missed() {
    let w = World::start().await;
    let id = id_of(&w.hook_at("order:created", "/gap").await);
    for n in 1..=4 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    let got = w.receiver.wait_for("/gap", 4, WAIT).await;
    // Seen 3 after 1: fetch 2.
    let resp = w
        .as_shop(
            "webhook.payloads",
            json!([id, {"from_increment_id": 2, "to_increment_id": 2}]),
        )
        .await;
    let missed = list(&resp);
    assert_eq!(missed.len(), 1);
    let sent = got.iter().find(|r| r.increment_id() == 2).unwrap();
    assert_eq!(
        missed[0]["body"].as_str().unwrap().as_bytes(),
        &sent.body[..],
        "the exact bytes sent"
    );
    assert_eq!(missed[0]["increment_id"], 2);
    assert_eq!(missed[0]["topic"], "order:created");
    assert!(missed[0]["delivery_id"].is_i64() && missed[0]["created_at"].is_string());
    assert!(missed[0]["status"].is_string());

    let incs = |resp: &Value| {
        list(resp)
            .iter()
            .map(|p| p["increment_id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let open = w
        .as_shop("webhook.payloads", json!([id, {"from_increment_id": 2}]))
        .await;
    assert_eq!(incs(&open), vec![2, 3, 4]);
    let limited = w
        .as_shop("webhook.payloads", json!([id, {"from_increment_id": 0, "limit": 2}]))
        .await;
    assert_eq!(incs(&limited), vec![1, 2]);

    for (range, field) in [
        (json!({}), "from_increment_id"),
        (json!({"from_increment_id": -1}), "from_increment_id"),
        (
            json!({"from_increment_id": 1, "to_increment_id": "x"}),
            "to_increment_id",
        ),
        (json!({"from_increment_id": 3, "to_increment_id": 2}), "to_increment_id"),
        (json!({"from_increment_id": 1, "limit": 1001}), "limit"),
        (json!({"from_increment_id": 1, "colour": 1}), "colour"),
    ] {
        assert_invalid_data(&w.as_shop("webhook.payloads", json!([id, range])).await, field);
    }
}

#[tokio::test]
async fn failed_payloads_since_a_time_are_recovered_with_the_same_bodies() {
    let w = World::start().await;
    w.receiver.set("/down", Behaviour::Status(500));
    let id = id_of(&w.hook_at("order:created", "/down").await);
    w.publish_ok("order:created", json!({"n": 1})).await;
    let delivery = w.only_delivery(id).await;
    w.wait_status(delivery, "failed", WAIT).await;
    let failed_body = w.info(delivery).await["body"].clone();

    let future = w
        .as_shop("webhook.recover", json!([id, {"since": "2999-01-01T00:00:00Z"}]))
        .await;
    assert_eq!(assert_ok(&future), &json!({"requeued": 0, "remaining": 0}));
    for (opts, field) in [
        (json!({"since": "yesterday"}), "since"),
        (json!({"since": 5}), "since"),
        (json!({}), "since"),
        (json!({"since": "2000-01-01T00:00:00Z", "until": "x"}), "until"),
    ] {
        assert_invalid_data(&w.as_shop("webhook.recover", json!([id, opts])).await, field);
    }

    w.receiver.set("/down", Behaviour::Status(200));
    let before = w.receiver.received("/down").len();
    let resp = w
        .as_shop("webhook.recover", json!([id, {"since": "2000-01-01T00:00:00+00:00"}]))
        .await;
    assert_eq!(assert_ok(&resp), &json!({"requeued": 1, "remaining": 0}));
    let info = w.wait_status(delivery, "success", WAIT).await;
    assert_eq!(info["body"], failed_body);
    assert_eq!(info["increment_id"], 1);
    let last = w.receiver.wait_for("/down", before + 1, WAIT).await.pop().unwrap();
    assert_eq!(
        Value::String(String::from_utf8(last.body.to_vec()).unwrap()),
        failed_body
    );
}

#[tokio::test]
async fn the_delivery_log_spans_the_caller_s_webhooks_newest_first() {
    let w = World::start().await;
    let orders = id_of(&w.hook_at("order:*", "/orders").await);
    let products = id_of(&w.hook_at("product:created", "/products").await);
    let first = w.publish_ok("order:created", json!({"n": 1})).await;
    w.publish_ok("product:created", json!({"n": 2})).await;
    w.publish_ok("order:canceled", json!({"n": 3})).await;

    let all = list(&w.as_shop("delivery.list", json!([])).await);
    let hooks: Vec<i64> = all.iter().map(|d| d["webhook_id"].as_i64().unwrap()).collect();
    assert_eq!(hooks, vec![orders, products, orders]);
    for key in [
        "delivery_id",
        "increment_id",
        "topic",
        "status",
        "attempts",
        "next_attempt_at",
        "last_http_status",
        "last_error",
    ] {
        assert!(all[0].get(key).is_some(), "{key} in {}", all[0]);
    }
    let topic = list(&w.as_shop("delivery.list", json!([{"topic": "product:created"}])).await);
    assert_eq!(topic.len(), 1);
    assert_eq!(topic[0]["webhook_id"], products);
    let event = list(
        &w.as_shop("delivery.list", json!([{"event_id": first["event_id"]}]))
            .await,
    );
    assert_eq!((event.len(), &event[0]["topic"]), (1, &json!("order:created")));
    let page = list(
        &w.as_shop("delivery.list", json!([{"limit": 1, "before": all[0]["delivery_id"]}]))
            .await,
    );
    assert_eq!(page[0]["delivery_id"], all[1]["delivery_id"]);
    assert!(list(&w.as_shop("delivery.list", json!([{"status": "failed"}])).await).is_empty());
    for (filter, field) in [
        (json!({"status": "lost"}), "status"),
        (json!({"limit": 0}), "limit"),
        (json!({"event_id": "x"}), "event_id"),
        (json!({"webhook": 1}), "webhook"),
        (json!("pending"), "filter"),
    ] {
        assert_invalid_data(&w.as_shop("delivery.list", json!([filter])).await, field);
    }
    // An admin sees every merchant's.
    let admin = list(&w.as_admin("delivery.list", json!([{"limit": 1000}])).await);
    assert!(admin.len() >= 3);
}
