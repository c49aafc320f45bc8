//! Issue 23, the merchant portal's console pages (CONTRACT §7.7): `/console/deliveries`
//! (newest first, keyset paging, filters, `event_id` search, an admin's merchant filter,
//! tenancy, hostile filters answered 400), one name for a delivery everywhere, a delivery's
//! page with each attempt's request headers (signatures masked) and "Send again" for a
//! success, a webhook's 24-hour health chart, and a failing webhook shown as failing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::console_support::*;
use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// Publishes `topic` for merchant `code`; the event id.
async fn publish_for(w: &World, code: &str, topic: &str) -> i64 {
    let resp = w
        .as_admin("event.publish", json!([topic, {"id": 1}, {"merchant_code": code}]))
        .await;
    assert_ok(&resp)["event_id"].as_i64().unwrap()
}

/// The delivery ids linked from a log page, in page order.
fn logged_ids(body: &str) -> Vec<i64> {
    let marker = "<a class=\"name\" href=\"/console/deliveries/";
    body.match_indices(marker)
        .map(|(at, _)| {
            let rest = &body[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// A second merchant with a webhook at the receiver; (code, webhook id).
async fn other_merchant(w: &World) -> (String, i64) {
    let code = unique("globex");
    let session = w.app.merchant_session(&code).await;
    let resp = w
        .app
        .create_webhook(
            &session,
            json!({"topics": "order:created", "url": w.receiver.url("/globex"),
                                         "description": "globex-only"}),
        )
        .await;
    assert_ok(&resp);
    let id = w.app.list_webhooks(&session).await[0]["webhook_id"].as_i64().unwrap();
    (code, id)
}

async fn wait_attempted(w: &World, deliveries: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let resp = w.as_admin("delivery.list", json!([{"limit": 1000}])).await;
        let list = assert_ok(&resp).as_array().unwrap().clone();
        if list.len() >= deliveries && list.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            return;
        }
        assert!(Instant::now() < deadline, "not all attempted: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_log_lists_only_the_merchant_s_deliveries_newest_first_with_filters_and_search() {
    let w = World::start().await;
    let named = id_of(
        &w.hook(json!({"topics": "order:*", "url": w.receiver.url("/a"), "description": "Warehouse sync"}))
            .await,
    );
    let (globex, globex_hook) = other_merchant(&w).await;
    let first = publish_for(&w, &w.code, "order:created").await;
    publish_for(&w, &w.code, "order:shipped").await;
    let theirs = publish_for(&w, &globex, "order:created").await;
    wait_attempted(&w, 3).await;

    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get("/console/deliveries").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let ids = logged_ids(&page.body);
    assert_eq!(ids.len(), 2, "{}", page.body);
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    assert!(
        !page.body.contains("globex-only"),
        "another merchant's webhook: {}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("order:shipped #2 on Warehouse sync · delivery {}", ids[0])),
        "one name: {}",
        page.body
    );
    assert!(page.body.contains("name=\"event_id\""), "the search input");

    // The event_id search finds that event's payloads; another merchant's event finds nothing.
    let found = shop.get(&format!("/console/deliveries?event_id={first}")).await;
    assert_eq!(logged_ids(&found.body), [ids[1]]);
    let found = shop.get(&format!("/console/deliveries?event_id={theirs}")).await;
    assert!(logged_ids(&found.body).is_empty() && found.body.contains("No deliveries match"));
    // Filters: status, topic, webhook, a time range, and the other merchant's webhook.
    let found = shop
        .get("/console/deliveries?status=success&topic=order%3Acreated")
        .await;
    assert_eq!(logged_ids(&found.body), [ids[1]], "{}", found.body);
    let found = shop.get(&format!("/console/deliveries?webhook={named}")).await;
    assert_eq!(logged_ids(&found.body), ids);
    let found = shop.get(&format!("/console/deliveries?webhook={globex_hook}")).await;
    assert!(logged_ids(&found.body).is_empty());
    let found = shop
        .get("/console/deliveries?since=2000-01-01T00%3A00&until=2000-01-02T00%3A00")
        .await;
    assert!(logged_ids(&found.body).is_empty(), "nothing made in 2000");
    let found = shop.get("/console/deliveries?since=2000-01-01T00%3A00").await;
    assert_eq!(logged_ids(&found.body), ids);
    // A merchant naming another merchant gets nothing; it has no merchant filter to show.
    let found = shop.get(&format!("/console/deliveries?merchant={globex}")).await;
    assert!(logged_ids(&found.body).is_empty());
    assert!(!found.body.contains("id=\"merchant\""));

    // The admin sees every merchant's, and may keep to one.
    let (name, key) = w.admin.clone();
    let mut admin = ConsoleClient::logged_in(&w.app, &name, &key).await;
    let all = admin.get("/console/deliveries").await;
    assert_eq!(logged_ids(&all.body).len(), 3, "{}", all.body);
    assert!(all.body.contains("id=\"merchant\""));
    let only = admin.get(&format!("/console/deliveries?merchant={globex}")).await;
    assert_eq!(logged_ids(&only.body).len(), 1);
    assert!(only.body.contains("globex-only"));
}

#[tokio::test]
async fn the_log_pages_by_keyset_fifty_at_a_time() {
    let w = World::start().await;
    w.hook_at("order:created", "/p").await;
    for _ in 0..53 {
        publish_for(&w, &w.code, "order:created").await;
    }
    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get("/console/deliveries?status=").await;
    let first = logged_ids(&page.body);
    assert_eq!(first.len(), 50);
    let next = link_to(&page.body, "Older »").expect("a next page");
    assert_eq!(next, format!("/console/deliveries?before={}", first[49]));
    let page = shop.get(&next).await;
    let rest = logged_ids(&page.body);
    assert_eq!(rest.len(), 3);
    assert!(rest[0] < first[49]);
    assert!(link_to(&page.body, "Older »").is_none());
    assert!(link_to(&page.body, "« Newest").is_some());
}

/// A time range pages by `(created_at, id)` (one range of `deliveries_by_merchant_time`):
/// the pages together hold every delivery of the range once, newest first.
#[tokio::test]
async fn a_time_range_pages_through_every_delivery_once_newest_first() {
    let w = World::start().await;
    w.hook_at("order:created", "/p").await;
    for _ in 0..53 {
        publish_for(&w, &w.code, "order:created").await;
    }
    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get("/console/deliveries?since=2020-01-01T00%3A00").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut seen = logged_ids(&page.body);
    assert_eq!(seen.len(), 50);
    let next = link_to(&page.body, "Older »").expect("a next page");
    assert!(
        next.contains("since=") && next.contains(&format!("before={}", seen[49])),
        "{next}"
    );
    let page = shop.get(&next).await;
    seen.extend(logged_ids(&page.body));
    assert!(link_to(&page.body, "Older »").is_none());
    let mut newest_first = seen.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first, "newest first, no delivery twice");
    assert_eq!(seen.len(), 53);
    let later = shop.get("/console/deliveries?since=2100-01-01T00%3A00").await;
    assert!(logged_ids(&later.body).is_empty());
}

#[tokio::test]
async fn hostile_filters_are_refused_with_their_reason() {
    let w = World::start().await;
    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let long = "x".repeat(300);
    for (query, says) in [
        ("status=nope", "The status must be one of"),
        ("event_id=abc", "The event id must be a positive whole number"),
        ("event_id=-4", "The event id must be a positive whole number"),
        ("event_id=99999999999999999999999", "The event id must be"),
        ("webhook=1%20OR%201%3D1", "The webhook id must be"),
        ("before=x", "page start"),
        ("since=yesterday", "The from time must look like"),
        ("until=2026-13-45T99%3A99", "The to time must look like"),
        (&format!("topic={long}"), "The topic filter is too long"),
        ("topic=a%0Ab", "not one line"),
    ] {
        let page = shop.get(&format!("/console/deliveries?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}: {}", page.body);
        assert!(page.body.contains(says), "{query}: {}", page.body);
    }
    let page = shop
        .get("/console/deliveries?topic=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "escaped: {}", page.body);
}

#[tokio::test]
async fn a_delivery_page_shows_each_attempt_s_headers_masked_and_sends_a_success_again() {
    let w = World::start().await;
    let hook = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/ok"),
                       "description": "Billing", "extra_headers": "X-Shop: acme\nAuthorization: Bearer s3cr3t-token"}))
            .await,
    );
    publish_for(&w, &w.code, "order:created").await;
    let delivery = w.only_delivery(hook).await;
    w.wait_status(delivery, "success", WAIT).await;
    let sent = w.receiver.wait_for("/ok", 1, WAIT).await;

    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get(&format!("/console/deliveries/{delivery}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let name = format!("order:created #1 on Billing · delivery {delivery}");
    assert!(page.body.contains(&format!("<h1>{name}")), "{}", page.body);
    assert!(page.body.contains("Request headers"));
    assert!(page.body.contains(&format!("msg_{delivery}")), "webhook-id");
    assert!(page.body.contains("X-Shop") && page.body.contains("acme"));
    let signature = sent[0].header("webhook-signature").unwrap().to_string();
    let plugin = sent[0].header("x-plugin-hmac-sha256").unwrap().to_string();
    for secret in [signature.as_str(), plugin.as_str(), "s3cr3t-token", &signature[3..]] {
        assert!(!page.body.contains(secret), "{secret} shown: {}", page.body);
    }
    assert!(page.body.contains("masked"));
    // The webhook's own list names it the same way.
    let list = shop.get(&format!("/console/webhooks/{hook}")).await;
    assert!(list.body.contains(&name), "{}", list.body);

    // Send again, with CSRF; without it nothing is sent.
    let refused = shop
        .post_raw(&format!("/console/deliveries/{delivery}/retry"), &[("csrf", "wrong")])
        .await;
    assert_ne!(refused.status, StatusCode::SEE_OTHER);
    assert!(page.body.contains("Send again"));
    let done = shop.post(&format!("/console/deliveries/{delivery}/retry"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let got = w.receiver.wait_for("/ok", 2, WAIT).await;
    assert_eq!(got[1].body, got[0].body);

    // Another merchant: the page does not exist for it.
    let (globex, _) = other_merchant(&w).await;
    let mut other = ConsoleClient::merchant(&w.app, &globex).await;
    let page = other.get(&format!("/console/deliveries/{delivery}")).await;
    assert!(!page.body.contains("Billing"), "{}", page.body);
    assert_ne!(page.status, StatusCode::OK);
}

/// The health section of a webhook's page.
fn health_of(body: &str) -> &str {
    let start = body.find("<h2>Health</h2>").expect("a health section");
    let end = body[start..].find("<h2>Deliveries</h2>").unwrap() + start;
    &body[start..end]
}

#[tokio::test]
async fn a_webhook_page_charts_its_health_and_a_failing_webhook_says_so() {
    let w = World::start_with(|c| schedule(c, "1h")).await;
    w.receiver.set("/down", Behaviour::Status(503));
    let good = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/up")}))
            .await,
    );
    let bad = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/down"),
                                   "description": "Broken ERP"}))
            .await,
    );
    publish_for(&w, &w.code, "order:created").await;
    publish_for(&w, &w.code, "order:created").await;
    wait_attempted(&w, 4).await;

    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    let page = shop.get(&format!("/console/webhooks/{good}")).await;
    let health = health_of(&page.body);
    assert!(health.contains("<svg"), "{health}");
    assert!(health.contains("<title id=\"health-title\">Success rate"), "{health}");
    assert!(
        health.contains("Last 24 hours: 100 % success (2 of 2 attempts), latency p50"),
        "{health}"
    );
    assert!(!health.contains("style="), "no inline style under the CSP");
    assert!(page.body.contains("<span class=\"state on\">active</span>"));

    let page = shop.get(&format!("/console/webhooks/{bad}")).await;
    let health = health_of(&page.body);
    assert!(health.contains("0 % success (0 of 2 attempts)"), "{health}");
    assert!(
        page.body.contains("<span class=\"state failing\">failing</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Failing since"), "{}", page.body);
    assert!(
        page.body.contains("last error: HTTP 503") || page.body.contains("last error: 503"),
        "{}",
        page.body
    );

    let list = shop.get("/console/").await;
    let broken = listed_hook(&list.body, bad);
    assert!(
        broken.contains("Broken ERP") && broken.contains("failing") && broken.contains("Failing since"),
        "{broken}"
    );
    assert!(!listed_hook(&list.body, good).contains("failing"));

    // Another merchant cannot see either page.
    let (globex, _) = other_merchant(&w).await;
    let mut other = ConsoleClient::merchant(&w.app, &globex).await;
    let page = other.get(&format!("/console/webhooks/{bad}")).await;
    assert!(!page.body.contains("Broken ERP") && !page.body.contains("<svg"));
}

#[tokio::test]
async fn topic_pickers_and_the_catalog_group_topics_by_resource_with_a_search_box() {
    let w = World::start().await;
    let mut shop = ConsoleClient::merchant(&w.app, &w.code).await;
    for (path, heading) in [
        ("/console/webhooks/new", "<h4>order</h4>"),
        ("/console/topics", "<h2>order</h2>"),
    ] {
        let page = shop.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let order = page
            .body
            .find(heading)
            .unwrap_or_else(|| panic!("{path}: {}", page.body));
        let delivery = page
            .body
            .find(&heading.replace("order", "delivery"))
            .expect("a delivery group");
        assert_ne!(order, delivery);
        assert!(page.body.contains("data-topic-search="), "{path}: a search box");
        // Every topic of a group sits under its heading, each name in one unbreakable span.
        let group = &page.body[order..];
        let group = &group[..group[4..].find(&heading[..4]).map_or(group.len(), |e| e + 4)];
        assert!(
            group.contains("class=\"topic-name\">order:created<")
                || group.contains("class=\"topic-name\"><code>order:created<"),
            "{path}: {group}"
        );
        assert!(!group.contains(">delivery:"), "{path}: {group}");
    }
    let css = shop.get("/console/assets/console.css").await.body;
    assert!(
        css.contains(".topic-name { white-space: nowrap;"),
        "names are never broken"
    );
}
