//! The web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against a real hookd server and a real receiver, on the backend
//! `HOOKD_TEST_BACKEND` names (as in `tests/api`).
//!
//! With `HOOKD_CONSOLE_SCREENSHOTS=docs/console` the runs also save the README's screenshots.

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/receiver.rs"]
mod receiver;
#[path = "../common/skip.rs"]
mod skip;

mod driver;

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use driver::{screenshot, with_browser};
use helpers::*;
use receiver::{Behaviour, TestReceiver};

/// The page's visible text (tried again while a navigation replaces the page under it).
async fn text(c: &Client) -> String {
    let mut tries = 0;
    loop {
        let read = async { c.find(Locator::Css("body")).await?.text().await };
        match read.await {
            Ok(text) => return text,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading the page: {e}"),
        }
    }
}

/// Reloads the page until its text contains `needle`; panics with the last text after 15 s.
async fn wait_for_text(c: &Client, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = text(c).await;
        if now.contains(needle) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "'{needle}' never appeared; the page says:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.refresh().await.unwrap();
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks what `locator` finds (waiting for it to appear) and waits until the next page
/// has replaced this one.
async fn click(c: &Client, locator: Locator<'_>) {
    let old = c.find(Locator::Css("body")).await.unwrap();
    let target = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("nothing to click: {e}"));
    target.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    // The old page's body goes stale once the new page is there.
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "the click led to no new page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the submit button of the page's main form (not the header's logout).
async fn submit(c: &Client, form: &str) {
    let css = format!("main form{form} button[type=submit]");
    click(c, Locator::Css(&css)).await;
}

async fn log_in(c: &Client, app: &TestApp, name: &str, key: &str) {
    c.goto(&format!("http://{}/", app.addr)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/console/login"));
    fill(c, "input[name=username]", name).await;
    fill(c, "input[name=api_key]", key).await;
    submit(c, "").await;
}

/// A merchant with a webhook made through the API; the webhook's id.
async fn merchant_with_hook(app: &TestApp, code: &str, url: &str) -> i64 {
    let session = app.merchant_session(code).await;
    assert_ok(
        &app.create_webhook(&session, json!({"url": url, "topics": "order:created"}))
            .await,
    );
    app.list_webhooks(&session).await.last().unwrap()["webhook_id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_the_right_one_opens_the_merchant_s_webhooks() {
    let app = TestApp::spawn().await;
    let (name, key) = app.create_merchant_user("acme").await;
    with_browser("browser::login", |c| async move {
        log_in(&c, &app, &name, "not-the-key").await;
        let page = text(&c).await;
        assert!(page.contains("Access denied."), "{page}");
        screenshot(&c, "login", 1024).await;
        log_in(&c, &app, &name, &key).await;
        let page = text(&c).await;
        assert!(page.contains("Webhooks") && page.contains("No webhooks yet"), "{page}");
        click(&c, Locator::Css("header button.link")).await;
        assert!(text(&c).await.contains("Log in"));
        c.goto(&format!("http://{}/console/", app.addr)).await.unwrap();
        assert!(
            c.current_url().await.unwrap().path().ends_with("/console/login"),
            "logged out"
        );
    })
    .await;
}

#[tokio::test]
async fn a_merchant_creates_a_webhook_with_the_form_and_never_sees_another_merchant_s() {
    let app = TestApp::spawn().await;
    let theirs = merchant_with_hook(&app, "globex", "http://127.0.0.1:9/globex-only").await;
    let (name, key) = app.create_merchant_user("acme").await;
    with_browser("browser::create_and_isolation", |c| async move {
        log_in(&c, &app, &name, &key).await;
        click(&c, Locator::LinkText("New webhook")).await;
        fill(
            &c,
            "input[name=url]",
            "http://127.0.0.1:9/acme<script>alert(1)</script>",
        )
        .await;
        c.find(Locator::Css("input[type=checkbox][value='order:created']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        fill(&c, "#typed-topics", "shipment:*").await;
        fill(&c, "textarea[name=extra_headers]", "X-Shop: acme").await;
        screenshot(&c, "new-webhook", 1024).await;
        submit(&c, "").await;
        let page = text(&c).await;
        assert!(page.contains("Webhook created."), "{page}");
        assert!(
            page.contains("http://127.0.0.1:9/acme<script>alert(1)</script>"),
            "shown as text: {page}"
        );
        assert!(page.contains("order:created") && page.contains("shipment:*"), "{page}");
        c.goto(&format!("http://{}/console/", app.addr)).await.unwrap();
        let list = text(&c).await;
        assert!(list.contains("acme<script>") && !list.contains("globex-only"), "{list}");
        c.goto(&format!("http://{}/console/webhooks/{theirs}", app.addr))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("Webhook not exists.") && !page.contains("globex-only"),
            "{page}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_delivery_is_opened_with_its_attempts_and_retried_until_it_succeeds() {
    // One retry 300 ms after the first attempt, then the payload is failed.
    let app = TestApp::spawn_with(|c| {
        c.app.delivery.schedule = "300ms".parse().unwrap();
        c.app.delivery.poll_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.set("/orders", Behaviour::Status(500));
    let id = merchant_with_hook(&app, "acme", &receiver.url("/orders")).await;
    merchant_with_hook(&app, "acme", &receiver.url("/audit")).await;
    let gone = merchant_with_hook(&app, "acme", &receiver.url("/old-endpoint")).await;
    let reason = "410 Gone at 2026-12-01T09:12:00+00:00";
    assert!(app
        .app
        .store
        .webhook_disable(hookd::domain::WebhookId(gone), reason)
        .await
        .unwrap());
    let (name, key) = app.create_merchant_user("acme").await;
    let admin = app.admin_session().await;
    for n in 1..=3 {
        let message = json!({"order_id": 1000 + n, "total": 25.5 * n as f64, "currency": "EUR"});
        let resp = app
            .call(&admin, "event.publish", json!(["order:created", message]))
            .await;
        assert_ok(&resp);
    }
    receiver.wait_for("/audit", 3, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = app.call(&admin, "webhook.deliveries", json!([id, "failed"])).await;
        if assert_ok(&resp).as_array().unwrap().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the three payloads never failed: {resp}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    with_browser("browser::failing_delivery", |c| async move {
        log_in(&c, &app, &name, &key).await;
        let list = text(&c).await;
        assert!(list.contains("Turned off by hookd: 410 Gone"), "{list}");
        screenshot(&c, "webhooks", 1024).await;
        screenshot(&c, "webhooks-360", 360).await;
        c.goto(&format!("http://{}/console/webhooks/{id}?status=success", app.addr))
            .await
            .unwrap();
        assert!(text(&c).await.contains("No deliveries with status success"));
        c.goto(&format!("http://{}/console/webhooks/{id}", app.addr))
            .await
            .unwrap();
        screenshot(&c, "webhook", 1024).await;
        click(&c, Locator::Css("table.deliveries a")).await;
        let page = text(&c).await;
        assert!(
            page.contains("Retry") && page.contains("HTTP 500") && page.contains("#2"),
            "two attempts, both 500: {page}"
        );
        assert!(page.contains("\"order_id\": 1003"), "the pretty-printed body: {page}");
        screenshot(&c, "delivery", 1024).await;
        receiver.set("/orders", Behaviour::Status(200));
        click(&c, Locator::Css("main form button[type=submit]")).await;
        assert!(text(&c).await.contains("Delivery queued again"));
        let page = wait_for_text(&c, "success").await;
        assert!(page.contains("HTTP 200") && page.contains("#3"), "{page}");
    })
    .await;
}

#[tokio::test]
async fn an_admin_sees_every_merchant_s_webhooks_filters_by_merchant_and_publishes() {
    let app = TestApp::spawn().await;
    let receiver = TestReceiver::start().await;
    merchant_with_hook(&app, "acme", &receiver.url("/acme")).await;
    merchant_with_hook(&app, "globex", &receiver.url("/globex")).await;
    let (name, key) = app.create_admin().await;
    with_browser("browser::admin", |c| async move {
        log_in(&c, &app, &name, &key).await;
        let all = text(&c).await;
        assert!(all.contains("/acme") && all.contains("/globex"), "{all}");
        c.find(Locator::Css("select[name=merchant]"))
            .await
            .unwrap()
            .select_by_value("globex")
            .await
            .unwrap();
        submit(&c, ".filter").await;
        let only = text(&c).await;
        assert!(only.contains("/globex") && !only.contains("/acme"), "{only}");
        click(&c, Locator::LinkText("Publish")).await;
        let topic = c.find(Locator::Css("select[name=topic]")).await.unwrap();
        topic.select_by_value("order:created").await.unwrap();
        let merchant = c.find(Locator::Css("select[name=merchant_code]")).await.unwrap();
        merchant.select_by_value("acme").await.unwrap();
        fill(
            &c,
            "textarea[name=message]",
            r#"{"order_id": 42, "note": "<b>bold?</b>"}"#,
        )
        .await;
        submit(&c, "").await;
        let page = text(&c).await;
        assert!(page.contains("published: 1 payload(s)"), "{page}");
        screenshot(&c, "admin", 1024).await;
        let got = receiver.wait_for("/acme", 1, Duration::from_secs(10)).await;
        assert_eq!(got[0].json()["message"]["order_id"], 42);
        assert!(receiver.received("/globex").is_empty());
    })
    .await;
}

/// Issue 23 (CONTRACT §7.7): the delivery log searched by event id, a delivery's request
/// headers, a failing webhook's health chart, and the topic search in the form.
#[tokio::test]
async fn a_merchant_finds_an_event_s_deliveries_reads_the_headers_and_sees_a_failing_webhook_s_health() {
    let app = TestApp::spawn_with(|c| {
        c.app.delivery.schedule = "1h".parse().unwrap();
        c.app.delivery.poll_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.set("/erp", Behaviour::Status(503));
    let session = app.merchant_session("acme").await;
    for (url, name) in [("/shop", "Storefront sync"), ("/erp", "ERP import")] {
        let data = json!({"url": receiver.url(url), "topics": "order:*", "description": name,
                          "extra_headers": "X-Team: fulfilment"});
        assert_ok(&app.create_webhook(&session, data).await);
    }
    let failing = app.list_webhooks(&session).await[1]["webhook_id"].as_i64().unwrap();
    let (name, key) = app.create_merchant_user("acme").await;
    let admin = app.admin_session().await;
    let mut events = Vec::new();
    for (n, topic) in ["order:created", "order:shipped", "order:created"].iter().enumerate() {
        let resp = app
            .call(&admin, "event.publish", json!([topic, {"order_id": 2000 + n}]))
            .await;
        events.push(assert_ok(&resp)["event_id"].as_i64().unwrap());
    }
    receiver.wait_for("/shop", 3, Duration::from_secs(10)).await;
    receiver.wait_for("/erp", 3, Duration::from_secs(10)).await;
    let searched = events[1];
    with_browser("browser::portal", |c| async move {
        log_in(&c, &app, &name, &key).await;
        let list = wait_for_text(&c, "Failing since").await;
        assert!(list.contains("ERP import") && list.contains("failing"), "{list}");
        click(&c, Locator::LinkText("Deliveries")).await;
        let page = wait_for_text(&c, "ERP import").await;
        assert!(page.contains("order:created #1 on Storefront sync"), "{page}");
        screenshot(&c, "deliveries", 1024).await;
        screenshot(&c, "deliveries-360", 360).await;
        fill(&c, "input[name=event_id]", &searched.to_string()).await;
        submit(&c, ".search").await;
        let found = text(&c).await;
        assert!(found.contains("order:shipped #2 on Storefront sync"), "{found}");
        assert!(found.contains("order:shipped #2 on ERP import"), "{found}");
        assert!(!found.contains("order:created #"), "only that event's: {found}");
        click(&c, Locator::XPath("//a[contains(., 'on ERP import')]")).await;
        c.find(Locator::Css("details.headers summary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(page.contains("webhook-signature") && page.contains("masked"), "{page}");
        assert!(page.contains("X-Team") && page.contains("fulfilment"), "{page}");
        assert!(page.contains("As sent"), "the headers as sent: {page}");
        assert!(page.contains("503"), "{page}");
        screenshot(&c, "delivery-headers", 1024).await;

        c.goto(&format!("http://{}/console/webhooks/{failing}", app.addr))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(page.contains("Last 24 hours: 0 % success (0 of 3 attempts)"), "{page}");
        assert!(page.contains("Failing since"), "{page}");
        let title = c.find(Locator::Css("svg.chart > title")).await.unwrap();
        let plotted = title.html(true).await.unwrap();
        assert!(plotted.contains("Success rate"), "{plotted}");
        screenshot(&c, "health", 1024).await;
        screenshot(&c, "health-360", 360).await;

        c.goto(&format!("http://{}/console/webhooks/new", app.addr))
            .await
            .unwrap();
        fill(&c, "input[data-topic-search]", "shipments").await;
        let shown = c.find(Locator::Css("label[data-topic='order:created']")).await.unwrap();
        assert!(!shown.is_displayed().await.unwrap(), "filtered out");
        let kept = c
            .find(Locator::Css("label[data-topic='order:shipments_updated']"))
            .await
            .unwrap();
        assert!(kept.is_displayed().await.unwrap(), "a match stays");
        screenshot(&c, "topic-search-360", 360).await;
        c.goto(&format!("http://{}/console/topics", app.addr)).await.unwrap();
        screenshot(&c, "topics", 1024).await;
    })
    .await;
}
