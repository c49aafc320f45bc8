//! `event.publish` itself (CONTRACT.md §4, extension methods): idempotency keys, who may
//! publish, and bad publishes, which are refused and change nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

// --- idempotency ---

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_answer_and_makes_nothing() {
    let w = World::start().await;
    let hook = id_of(&w.hook_at("order:created", "/idem").await);
    let publish = |key: &'static str| {
        w.as_admin(
            "event.publish",
            json!(["order:created", {"id": key}, {"idempotency_key": key}]),
        )
    };

    let first = assert_ok(&publish("key-1").await).clone();
    let again = assert_ok(&publish("key-1").await).clone();
    assert_eq!(again, first, "a repeat answers like the first publish");
    assert_eq!(first["payloads"], 1);

    let changed = w
        .as_admin(
            "event.publish",
            json!(["order:canceled", {"id": "changed"}, {"idempotency_key": "key-1"}]),
        )
        .await;
    assert_eq!(assert_ok(&changed), &first, "the key alone identifies the event");

    let other = assert_ok(&publish("key-2").await).clone();
    assert_ne!(other["event_id"], first["event_id"], "a new key is a new event");
    assert_eq!(other["payloads"], 1);

    let got = w.receiver.wait_for("/idem", 2, WAIT).await;
    let ids: Vec<(i64, String)> = got
        .iter()
        .map(|r| {
            (
                r.increment_id(),
                r.json()["message"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Had the repeat made a payload, key-2's would be increment 3.
    assert_eq!(
        ids.iter().map(|(i, _)| *i).collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2])
    );
    assert!(
        ids.contains(&(1, "key-1".into())) && ids.contains(&(2, "key-2".into())),
        "{ids:?}"
    );
    assert_eq!(w.increment_id(hook).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_with_one_idempotency_key_make_one_event() {
    let w = World::start().await;
    let hook = id_of(&w.hook_at("order:created", "/idem-race").await);
    let admin = w.app.login(&w.admin.0, &w.admin.1).await;
    let bodies = (0..10)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "call", "params": [admin, "event.publish",
                ["order:created", {"i": i}, {"idempotency_key": "same"}]]})
        })
        .collect();
    let answers = w.app.rpc_concurrently(bodies).await;
    let results: BTreeSet<String> = answers.iter().map(|a| assert_ok(a).to_string()).collect();
    assert_eq!(results.len(), 1, "every publish got the first answer: {results:?}");

    w.receiver.wait_for("/idem-race", 1, WAIT).await;
    assert_eq!(w.increment_id(hook).await, 1, "one payload was made");
    assert_eq!(w.deliveries(hook).await.len(), 1);
}

// --- who may publish, and what ---

#[tokio::test]
async fn merchant_users_cannot_publish() {
    let w = World::start().await;
    let hook = id_of(&w.hook_at("*", "/nopub").await);
    let resp = w.as_shop("event.publish", json!(["order:created", {"id": 1}])).await;
    assert_app_error(&resp, 2);
    assert_eq!(w.increment_id(hook).await, 0);
}

#[tokio::test]
async fn bad_publishes_are_refused_and_change_nothing() {
    let w = World::start_with(|c| c.app.max_message_bytes = 1024).await;
    let hook = id_of(&w.hook_at("*", "/bad").await);
    let big = json!({"blob": "x".repeat(2000)});

    let cases: Vec<(Value, i64, &str)> = vec![
        (json!(["order:created", [1, 2]]), 101, "message must be a JSON object"),
        (json!(["order:created", "text"]), 101, "message must be a JSON object"),
        (json!(["order:created", 5]), 101, "message must be a JSON object"),
        (json!(["nosuch:topic", {}]), 101, "topic"),
        (json!(["order:*", {}]), 101, "topic"),
        (json!(["*", {}]), 101, "topic"),
        (json!([]), 6, "topic"),
        (json!(["order:created"]), 6, "message"),
        (json!(["order:created", big]), 101, "1024"),
        (json!(["order:created", {}, {"nope": "x"}]), 101, "nope"),
        (
            json!(["order:created", {}, {"idempotency_key": 5}]),
            101,
            "idempotency_key",
        ),
        (
            json!(["order:created", {}, {"merchant_code": "no-such-shop"}]),
            101,
            "no-such-shop",
        ),
    ];
    for (args, code, named) in cases {
        let resp = w.as_admin("event.publish", args.clone()).await;
        let message = assert_app_error(&resp, code);
        assert!(
            message.contains(named),
            "publishing {args} is refused naming '{named}': {message}"
        );
        if code == 101 {
            assert!(message.starts_with("Invalid data given. "), "{message}");
        }
    }
    assert_eq!(w.increment_id(hook).await, 0, "no payload was made");
    assert!(w.receiver.received("/bad").is_empty());

    // The next good event takes increment id 1: the bad ones left no gap.
    w.publish_ok("order:created", json!({"ok": true})).await;
    let got = w.receiver.wait_for("/bad", 1, WAIT).await;
    assert_eq!(got[0].increment_id(), 1);
    assert_eq!(got[0].json()["message"]["ok"], true);
}
