//! Issue 20, portal links (CONTRACT §7.1 `portal.link`): admin only, a link logs in once
//! as its merchant (and only that merchant), concurrent opens make one session, expired
//! and malformed links land on the login page, failures are throttled, read-only sessions
//! change nothing, and `HOOKD_CONSOLE_FRAME_ANCESTORS` sets the framing policy.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console_support::*;
use crate::helpers::*;

/// `portal.link(options)` called by an admin; the whole answer.
async fn link_call(app: &TestApp, admin: &str, options: Value) -> Value {
    app.call(admin, "portal.link", json!([options])).await
}

/// A link's path (from `/console/portal/`) and its token.
fn path_and_token(url: &str, app: &TestApp) -> (String, String) {
    let prefix = format!("http://{}", app.addr);
    let path = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} is not under {prefix}"));
    let token = path
        .strip_prefix("/console/portal/")
        .expect("a portal path")
        .to_string();
    (path.to_string(), token)
}

/// Merchant `code` with one webhook; its id.
async fn merchant_with_hook(app: &TestApp, code: &str) -> i64 {
    let session = app.merchant_session(code).await;
    let url = format!("https://{code}.example/hook");
    assert_ok(
        &app.create_webhook(&session, json!({"topics": "order:created", "url": url}))
            .await,
    );
    app.list_webhooks(&session).await[0]["webhook_id"].as_i64().unwrap()
}

/// Opens `path` in a fresh browser; the browser and the first answer.
async fn open(app: &TestApp, path: &str) -> (ConsoleClient, Page) {
    let mut browser = ConsoleClient::new(app);
    let page = browser.get(path).await;
    (browser, page)
}

/// A browser logged in through a new link for `code`.
async fn portal_browser(app: &TestApp, admin: &str, code: &str, read_only: bool) -> ConsoleClient {
    let made = link_call(app, admin, json!({"merchant_code": code, "read_only": read_only})).await;
    let (path, _) = path_and_token(assert_ok(&made)["url"].as_str().unwrap(), app);
    let (mut browser, page) = open(app, &path).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let list = browser.get("/console/").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    browser.csrf = list.csrf();
    browser
}

#[tokio::test]
async fn a_link_logs_in_once_as_its_merchant_and_sees_only_that_merchant() {
    let app = TestApp::spawn().await;
    let (shop, other) = (unique("shop"), unique("other"));
    let own_hook = merchant_with_hook(&app, &shop).await;
    let other_hook = merchant_with_hook(&app, &other).await;
    let admin = app.admin_session().await;

    let made = link_call(&app, &admin, json!({"merchant_code": shop})).await;
    let result = assert_ok(&made);
    let url = result["url"].as_str().unwrap();
    let (path, token) = path_and_token(url, &app);
    assert_eq!(token.len(), 64, "256 random bits in hex: {token}");
    let expires = time::OffsetDateTime::parse(
        result["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(14) && left <= time::Duration::minutes(15),
        "default ttl 15m: {left}"
    );
    assert!(
        app.where_stored(&token).await.is_empty(),
        "only a hash of the token is stored"
    );

    let head = app
        .client
        .head(format!("http://{}{path}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.status(),
        StatusCode::OK,
        "a HEAD (a link preview) does not use the link up"
    );
    let (mut browser, page) = open(&app, &path).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/console/portal", "a clean URL, without the token");
    assert!(page.set_cookies().iter().any(|c| c.starts_with("hookd_session=")));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    let landing = browser.get("/console/portal").await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(landing.body.contains("url=/console/"), "{}", landing.body);

    let list = browser.get("/console/").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(
        listed_webhook_ids(&list.body),
        vec![own_hook],
        "only its merchant's webhooks"
    );
    assert!(
        list.body.contains(&shop) && !list.body.contains(&other),
        "{}",
        list.body
    );
    assert!(!list.body.contains("read-only"));
    let theirs = browser.get(&format!("/console/webhooks/{other_hook}")).await;
    assert_eq!(
        theirs.status,
        StatusCode::NOT_FOUND,
        "another merchant's webhook is missing"
    );
    let admin_page = browser.get("/console/admin").await;
    assert_eq!(admin_page.status, StatusCode::FORBIDDEN, "a portal session is no admin");

    // A full (not read-only) session can change its merchant's webhooks.
    browser.csrf = list.csrf();
    let posted = browser
        .post(&format!("/console/webhooks/{own_hook}/status"), &[("active", "0")])
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let session = app.merchant_session(&shop).await;
    assert_eq!(app.list_webhooks(&session).await[0]["is_active"], 0);

    // The session is the console's: its id is no key to the API.
    let cookie = page.set_cookies()[0]
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let api = app.call(&cookie, "webhook.list", json!([])).await;
    let message = assert_app_error(&api, 2);
    assert!(message.contains("console"), "{message}");

    // Once used, the link is dead.
    let (_, again) = open(&app, &path).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.body.contains("already used"), "{}", again.body);
    assert!(
        again.body.contains("name=\"api_key\""),
        "the login page: {}",
        again.body
    );
    assert!(!again.set_cookies().iter().any(|c| c.starts_with("hookd_session=")));
}

#[tokio::test]
async fn only_an_admin_makes_links_and_an_unknown_merchant_is_111() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    let merchant = app.merchant_session(&shop).await;
    let denied = link_call(&app, &merchant, json!({"merchant_code": shop})).await;
    assert_app_error(&denied, 2);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM portal_links").await, 0);

    let admin = app.admin_session().await;
    let unknown = link_call(&app, &admin, json!({"merchant_code": "no-such-shop"})).await;
    assert_app_error(&unknown, 111);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM portal_links").await, 0);

    // The method is in the one table: rpc.discover describes it.
    let discovered = app.request("rpc.discover", json!([])).await;
    let methods = assert_ok(&discovered)["methods"].to_string();
    assert!(methods.contains("portal.link"), "{methods}");
}

#[tokio::test]
async fn hostile_arguments_get_101_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    app.merchant_session(&shop).await;
    let admin = app.admin_session().await;
    let cases = [
        (json!({"merchant_code": shop, "ttl": "59s"}), "ttl"),
        (json!({"merchant_code": shop, "ttl": "25h"}), "ttl"),
        (json!({"merchant_code": shop, "ttl": "soon"}), "ttl"),
        (json!({"merchant_code": shop, "ttl": 900}), "ttl"),
        (json!({"merchant_code": shop, "ttl": "9999999999999999999999h"}), "ttl"),
        (json!({"merchant_code": shop, "read_only": "yes"}), "read_only"),
        (json!({"merchant_code": shop, "read_only": 1}), "read_only"),
        (json!({"merchant_code": 42}), "merchant_code"),
        (json!({"merchant_code": ""}), "merchant_code"),
        (json!({"merchant_code": "x".repeat(100_000)}), "merchant_code"),
        (json!({"ttl": "15m"}), "merchant_code"),
        (json!({"merchant_code": shop, "admin": true}), "unknown field 'admin'"),
        (json!("just a string"), "one object"),
        (json!([shop]), "one object"),
    ];
    for (options, field) in cases {
        let answer = link_call(&app, &admin, options.clone()).await;
        assert_invalid_data(&answer, field);
    }
    let missing = app.call(&admin, "portal.link", json!([])).await;
    assert_app_error(&missing, 6);
    let too_many = app
        .call(&admin, "portal.link", json!([{"merchant_code": shop}, 1]))
        .await;
    assert_error(&too_many, -32602);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM portal_links").await, 0);

    // The bounds themselves are accepted.
    for ttl in ["1m", "24h"] {
        assert_ok(&link_call(&app, &admin, json!({"merchant_code": shop, "ttl": ttl})).await);
    }
}

#[tokio::test]
async fn concurrent_opens_of_one_link_make_one_session() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    merchant_with_hook(&app, &shop).await;
    let admin = app.admin_session().await;
    let made = link_call(&app, &admin, json!({"merchant_code": shop})).await;
    let (path, _) = path_and_token(assert_ok(&made)["url"].as_str().unwrap(), &app);
    let sessions_before = app.query_i64("SELECT COUNT(*) FROM sessions").await;

    let opens = (0..12).map(|_| {
        let url = format!("http://{}{path}", app.addr);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        async move { client.get(url).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(opens).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::FORBIDDEN),
        "{statuses:?}"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM sessions").await,
        sessions_before + 1,
        "one session for one link"
    );
}

#[tokio::test]
async fn an_expired_link_lands_on_the_login_page_with_an_error() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    merchant_with_hook(&app, &shop).await;
    let admin = app.admin_session().await;
    let made = link_call(&app, &admin, json!({"merchant_code": shop, "ttl": "1m"})).await;
    let (path, _) = path_and_token(assert_ok(&made)["url"].as_str().unwrap(), &app);
    // Its minute passes (the stored expiry moved back, rather than waiting).
    app.execute_sql("UPDATE portal_links SET expires_at = expires_at - 61000")
        .await;
    let (_, page) = open(&app, &path).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);
    assert!(page.body.contains("This portal link has expired"), "{}", page.body);
    assert!(page.body.contains("name=\"api_key\""), "the login page");
    assert!(!page.set_cookies().iter().any(|c| c.starts_with("hookd_session=")));
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM portal_links").await,
        0,
        "gone once tried"
    );
}

#[tokio::test]
async fn malformed_links_are_refused_and_throttled_per_address() {
    let app = TestApp::spawn_with(|c| c.app.auth.max_failures_per_address = 3).await;
    let shop = unique("shop");
    merchant_with_hook(&app, &shop).await;
    let admin = app.admin_session().await;
    let hostile = [
        "/console/portal/nothex".to_string(),
        format!("/console/portal/{}", "A".repeat(64)),
        format!("/console/portal/{}", "0".repeat(64)),
    ];
    for path in &hostile {
        let (_, page) = open(&app, path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        assert!(page.body.contains("not valid"), "{}", page.body);
    }
    let long = format!("/console/portal/{}", "a".repeat(5000));
    let (_, page) = open(&app, &long).await;
    assert!(page.status.is_client_error(), "{}", page.status);

    // The address has used up its failures: even a good link waits.
    let made = link_call(&app, &admin, json!({"merchant_code": shop})).await;
    let (path, _) = path_and_token(assert_ok(&made)["url"].as_str().unwrap(), &app);
    let (_, page) = open(&app, &path).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.body.contains("Too many"), "{}", page.body);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM portal_links").await,
        1,
        "not consumed"
    );
}

/// Every console POST route, with fields that would change something.
fn post_routes(hook: i64, delivery: i64) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/console/webhooks/new".into(),
            vec![("url", "https://x.example/new"), ("topics", "order:created")],
        ),
        (
            format!("/console/webhooks/{hook}/edit"),
            vec![("url", "https://x.example/changed"), ("topics", "order:created")],
        ),
        (format!("/console/webhooks/{hook}/status"), vec![("active", "0")]),
        (format!("/console/webhooks/{hook}/delete"), vec![]),
        (format!("/console/webhooks/{hook}/test"), vec![]),
        (format!("/console/webhooks/{hook}/rotate"), vec![("overlap", "0s")]),
        (format!("/console/webhooks/{hook}/recover"), vec![("hours", "24")]),
        (format!("/console/deliveries/{delivery}/retry"), vec![]),
        (
            "/console/admin".into(),
            vec![("topic", "order:created"), ("message", "{}"), ("merchant_code", "x")],
        ),
    ]
}

#[tokio::test]
async fn a_read_only_session_sees_everything_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    let hook = merchant_with_hook(&app, &shop).await;
    let merchant = app.merchant_session(&shop).await;
    let admin = app.admin_session().await;
    let published = app
        .call(
            &admin,
            "event.publish",
            json!(["order:created", {"n": 1}, {"merchant_code": shop}]),
        )
        .await;
    assert_ok(&published);
    let delivery = app.call(&merchant, "webhook.deliveries", json!([hook])).await;
    let delivery = assert_ok(&delivery)[0]["delivery_id"].as_i64().unwrap();
    let before = app.list_webhooks(&merchant).await;

    let mut browser = portal_browser(&app, &admin, &shop, true).await;
    for path in [
        "/console/".to_string(),
        format!("/console/webhooks/{hook}"),
        format!("/console/deliveries/{delivery}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains("read-only"), "{path} says read-only");
        let posts = page.body.matches("method=\"post\"").count();
        assert_eq!(posts, 1, "{path}: no form but logout: {}", page.body);
        assert!(!page.body.contains("/console/webhooks/new"), "{path}");
    }
    let hook_page = browser.get(&format!("/console/webhooks/{hook}")).await;
    assert!(
        hook_page.body.contains(before[0]["secret_key"].as_str().unwrap()),
        "sees everything"
    );

    for path in [
        "/console/webhooks/new".to_string(),
        format!("/console/webhooks/{hook}/edit"),
        format!("/console/webhooks/{hook}/delete"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("read-only session"), "{}", page.body);
    }
    for (path, fields) in post_routes(hook, delivery) {
        let page = browser.post(&path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        assert!(
            page.body.contains("read-only session") || path == "/console/admin",
            "{path}: {}",
            page.body
        );
    }
    assert_eq!(app.list_webhooks(&merchant).await, before, "nothing changed");
    let deliveries = app.call(&merchant, "webhook.deliveries", json!([hook])).await;
    assert_eq!(assert_ok(&deliveries).as_array().unwrap().len(), 1, "no test ping made");

    // Logging out is allowed, and ends the session.
    let out = browser.post("/console/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let after = browser.get("/console/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().starts_with("/console/login"));
}

#[tokio::test]
async fn frame_ancestors_allow_the_platform_to_frame_the_console() {
    let origins = vec![
        "https://platform.example".to_string(),
        "https://*.platform.example:8443".to_string(),
    ];
    let app = TestApp::spawn_with(|c| c.app.portal.frame_ancestors = origins.clone()).await;
    let shop = unique("shop");
    merchant_with_hook(&app, &shop).await;
    let admin = app.admin_session().await;
    let made = link_call(&app, &admin, json!({"merchant_code": shop})).await;
    let (path, _) = path_and_token(assert_ok(&made)["url"].as_str().unwrap(), &app);
    let (mut browser, page) = open(&app, &path).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("hookd_session="))
        .unwrap();
    assert!(
        cookie.contains("SameSite=None") && cookie.contains("Secure"),
        "{cookie}"
    );
    let list = browser.get("/console/").await;
    let csp = list.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors https://platform.example https://*.platform.example:8443"),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self'"), "the rest of the policy stays: {csp}");
    assert!(
        list.headers.get("x-frame-options").is_none(),
        "X-Frame-Options would forbid it"
    );

    // By default: never framed.
    let plain = TestApp::spawn().await;
    let (_, login) = open(&plain, "/console/login").await;
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert!(login.set_cookies().iter().all(|c| c.contains("SameSite=Strict")));
}

#[tokio::test]
async fn the_public_url_is_the_base_of_links_when_set() {
    let app = TestApp::spawn_with(|c| c.app.portal.public_url = Some("https://hooks.example.com/base".into())).await;
    let shop = unique("shop");
    app.merchant_session(&shop).await;
    let admin = app.admin_session().await;
    let made = link_call(&app, &admin, json!({"merchant_code": shop, "read_only": true})).await;
    let url = assert_ok(&made)["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://hooks.example.com/base/console/portal/"),
        "{url}"
    );
}

fn options() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        "[0-9]{1,4}(s|m|h|d|ms)".prop_map(Value::from),
        Just(json!("shop-prop")),
        Just(json!([])),
        Just(json!({})),
    ];
    let key = prop_oneof![
        Just("merchant_code".to_string()),
        Just("ttl".to_string()),
        Just("read_only".to_string()),
        "[a-z_]{0,10}",
    ];
    prop_oneof![
        prop::collection::vec((key, value.clone()), 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        value,
    ]
}

#[test]
fn any_arguments_get_a_link_or_a_clear_error_and_nothing_else() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let admin = runtime.block_on(async {
        app.merchant_session("shop-prop").await;
        app.admin_session().await
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 150,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&options(), |options| {
        let answer = runtime.block_on(link_call(&app, &admin, options.clone()));
        if answer["error"].is_null() {
            let url = answer["result"]["url"].as_str().unwrap_or_default();
            prop_assert!(url.contains("/console/portal/"), "{}", answer);
            prop_assert_eq!(options["merchant_code"].as_str(), Some("shop-prop"));
            return Ok(());
        }
        let code = answer["error"]["code"].as_i64().unwrap_or_default();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        match code {
            -32101 => prop_assert!(message.starts_with("Invalid data given. "), "{}", answer),
            -32111 | -32006 => {}
            _ => return Err(TestCaseError::fail(format!("{options} -> {answer}"))),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    runtime.block_on(app.assert_still_serving(&admin));
}

#[tokio::test]
async fn a_hostile_host_header_never_becomes_the_links_base() {
    let app = TestApp::spawn().await;
    let shop = unique("shop");
    app.merchant_session(&shop).await;
    let (name, key) = app.create_admin().await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
        "params": [null, "portal.link", [{"merchant_code": shop}]]});
    for host in ["evil.example/phish?x=", "evil.example@other", "a\"b"] {
        let response = app
            .client
            .post(&app.endpoint)
            .header("host", host)
            .basic_auth(&name, Some(&key))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let message = assert_app_error(&answer, 101);
        assert!(message.contains("HOOKD_PUBLIC_URL"), "{host}: {message}");
    }
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM portal_links").await, 0);
}
