//! Issue 23: a delivery's page shows each attempt's request headers as they were sent
//! (CONTRACT §7.7), not as the webhook has them now: extra headers changed since, a previous
//! key that signed during a rotation, and the signed `webhook-timestamp`, each checked
//! against what the receiver got. Attempts logged before hookd kept them show the webhook's
//! current headers and say so.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::console_support::*;
use crate::delivery_support::*;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

/// The attempts' sections of a delivery page, oldest first.
fn attempt_sections(body: &str) -> Vec<&str> {
    let list = &body[body.find("<ol class=\"attempts\">").expect("an attempt list")..];
    let list = &list[..list.find("</ol>").unwrap()];
    list.split("<li class=\"card\">").skip(1).collect()
}

/// The value a section shows for header `name`.
fn shown<'a>(section: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("<dt>{name}</dt><dd>");
    let at = section.find(&marker)? + marker.len();
    Some(&section[at..at + section[at..].find("</dd>").unwrap()])
}

#[tokio::test]
async fn each_attempt_shows_the_headers_it_was_sent_with_after_the_webhook_changed_them() {
    let w = World::start().await;
    let hook = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/ok"),
                       "extra_headers": "X-Shop: acme-v1\nX-Api-Key: k-one"}))
            .await,
    );
    w.publish_ok("order:created", json!({"n": 1})).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "success", WAIT).await;
    w.receiver.wait_for("/ok", 1, WAIT).await;

    // The webhook changes its headers and its secret (the old one keeps signing for a day);
    // the delivery is sent again.
    let changed = w
        .as_shop(
            "webhook.update",
            json!([hook, {"extra_headers": "X-Shop: acme-v2\nX-Added: yes"}]),
        )
        .await;
    assert_ok(&changed);
    assert_ok(
        &w.as_shop("webhook.rotate_secret", json!([hook, {"overlap": "24h"}]))
            .await,
    );
    assert_ok(&w.as_shop("delivery.retry", json!([delivery])).await);
    let got = w.receiver.wait_for("/ok", 2, WAIT).await;
    w.wait_attempts(delivery, 2, WAIT).await;
    // And changes them once more: neither attempt was sent with these.
    let again = w
        .as_shop("webhook.update", json!([hook, {"extra_headers": "X-Shop: acme-v3"}]))
        .await;
    assert_ok(&again);

    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get(&format!("/console/deliveries/{delivery}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let attempts = attempt_sections(&page.body);
    assert_eq!(attempts.len(), 2, "{}", page.body);
    let (first, second) = (attempts[0], attempts[1]);

    assert_eq!(got[0].header("x-shop"), Some("acme-v1"));
    assert_eq!(shown(first, "X-Shop"), Some("acme-v1"), "{first}");
    assert_eq!(shown(first, "X-Api-Key"), Some("•••• (masked)"), "{first}");
    assert_eq!(shown(first, "X-Added"), None, "{first}");
    assert_eq!(shown(first, "X-Plugin-Hmac-Sha256-Previous"), None, "{first}");

    assert_eq!(got[1].header("x-shop"), Some("acme-v2"));
    assert_eq!(shown(second, "X-Shop"), Some("acme-v2"), "{second}");
    assert_eq!(shown(second, "X-Added"), Some("yes"), "{second}");
    assert_eq!(shown(second, "X-Api-Key"), None, "{second}");
    assert!(got[1].header("x-plugin-hmac-sha256-previous").is_some());
    assert_eq!(
        shown(second, "X-Plugin-Hmac-Sha256-Previous"),
        Some("•••• (masked)"),
        "{second}"
    );

    for (section, request) in [(first, &got[0]), (second, &got[1])] {
        assert_eq!(
            shown(section, "webhook-timestamp"),
            request.header("webhook-timestamp"),
            "the signed second: {section}"
        );
        assert_eq!(shown(section, "webhook-id"), request.header("webhook-id"));
        assert!(section.contains("As sent"), "{section}");
        assert!(!section.contains("acme-v3"), "{section}");
    }
    let k_one = "k-one";
    assert!(!page.body.contains(k_one), "a credential-like value is masked");
}

#[tokio::test]
async fn an_attempt_logged_before_headers_were_kept_shows_them_as_configured_now_and_says_so() {
    let w = World::start().await;
    let hook = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/ok"),
                       "extra_headers": "X-Shop: then"}))
            .await,
    );
    w.publish_ok("order:created", json!({"n": 1})).await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "success", WAIT).await;
    // As an attempt logged before migration sqlite 0018 / pg 0017 is stored.
    w.app
        .execute_sql(&format!(
            "UPDATE delivery_attempts SET sent_headers = NULL WHERE delivery_id = {delivery}"
        ))
        .await;
    let changed = w
        .as_shop("webhook.update", json!([hook, {"extra_headers": "X-Shop: now"}]))
        .await;
    assert_ok(&changed);

    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get(&format!("/console/deliveries/{delivery}")).await;
    let attempts = attempt_sections(&page.body);
    assert_eq!(attempts.len(), 1, "{}", page.body);
    assert_eq!(shown(attempts[0], "X-Shop"), Some("now"), "{}", attempts[0]);
    assert!(
        attempts[0].contains("logged before hookd kept its headers"),
        "{}",
        attempts[0]
    );
}
