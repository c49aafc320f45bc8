//! The web console over plain HTTP (CONTRACT §6.3): redirects, login and its cookie, the
//! security headers, CSRF refusals that change nothing, merchant isolation, escaping, and
//! the admin's publish. The pages in a real browser are tested in `tests/browser`.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_support::*;
use crate::helpers::*;

/// A merchant user of a new merchant: (code, name, key, JSON-RPC session).
async fn shop(app: &TestApp) -> (String, String, String, String) {
    let code = unique("shop");
    let (name, key) = app.create_merchant_user(&code).await;
    let session = app.login(&name, &key).await;
    (code, name, key, session)
}

async fn hook(app: &TestApp, session: &str, url: &str) -> i64 {
    let resp = app
        .create_webhook(session, json!({"url": url, "topics": "order:created"}))
        .await;
    assert_ok(&resp);
    app.list_webhooks(session).await.last().unwrap()["webhook_id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_root_redirects_to_the_console_and_the_console_to_its_login() {
    let app = TestApp::spawn().await;
    let mut client = ConsoleClient::new(&app);
    let root = client.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.location(), "/console/");
    let console = client.get("/console/").await;
    assert_eq!(console.status, StatusCode::SEE_OTHER);
    assert_eq!(console.location(), "/console/login");
}

#[tokio::test]
async fn the_login_page_has_the_contract_s_fields_and_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let page = ConsoleClient::new(&app).get("/console/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"username\""), "{}", page.body);
    assert!(page.body.contains("name=\"api_key\""), "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !page.body.contains("<script>") && !page.body.contains("style="),
        "no inline code"
    );
    let css = ConsoleClient::new(&app).get("/console/assets/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn a_right_key_logs_in_with_an_httponly_strict_cookie_for_a_day_and_logout_forgets_it() {
    let app = TestApp::spawn().await;
    let (code, name, key, _) = shop(&app).await;
    let mut client = ConsoleClient::new(&app);
    let done = client.login(&name, &key).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console/");
    let cookie = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("hookd_session="))
        .expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=86400"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    let session_id = cookie.split(';').next().unwrap().trim_start_matches("hookd_session=");
    assert_eq!(session_id.len(), 32, "an API session id: {session_id}");
    let list = client.get("/console/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&name) && list.body.contains(&code), "{}", list.body);

    assert!(app.call(session_id, "webhook.list", json!([])).await["result"].is_array());

    client.csrf = list.csrf();
    let out = client.post("/console/logout", &[]).await;
    assert_eq!(out.location(), "/console/login");
    assert_eq!(client.get("/console/").await.location(), "/console/login");
    // The session is over on the server too: its id no longer works anywhere.
    let reply = app.call(session_id, "webhook.list", json!([])).await;
    assert_eq!(reply["error"]["code"], -32005, "{reply}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_the_api_s_message_and_failures_are_throttled_like_login() {
    let app = TestApp::spawn_with(|c| c.app.auth.max_failures_per_user = 2).await;
    // Not logged in before: a key once verified is remembered and passes a lockout.
    let (name, key) = app.create_merchant_user(&unique("shop")).await;
    let mut client = ConsoleClient::new(&app);
    for _ in 0..2 {
        let page = client.login(&name, "wrong-key").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("Access denied."), "{}", page.body);
        assert!(!page.set_cookies().iter().any(|c| c.starts_with("hookd_session=")));
    }
    let page = client.login(&name, &key).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "throttled even with the right key");
    assert!(page.body.contains("Too many failed logins"), "{}", page.body);
    // The API counts the same failures.
    let resp = app.try_login(&name, &key).await;
    assert!(assert_app_error(&resp, 2).contains("Too many failed logins"), "{resp}");
}

#[tokio::test]
async fn a_form_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (code, _, _, session) = shop(&app).await;
    let id = hook(&app, &session, "http://127.0.0.1:9/keep").await;
    let mut client = ConsoleClient::merchant(&app, &code).await;
    let create = [("url", "http://127.0.0.1:9/new"), ("topics", "order:created")];
    let missing = client.post_raw("/console/webhooks/new", &create).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("CSRF"), "{}", missing.body);
    let mut wrong = vec![(
        "csrf",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )];
    wrong.extend_from_slice(&create);
    assert_eq!(
        client.post_raw("/console/webhooks/new", &wrong).await.status,
        StatusCode::FORBIDDEN
    );
    let path = format!("/console/webhooks/{id}/delete");
    let delete = client.post_raw(&path, &[("csrf", "nope"), ("confirm", "yes")]).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let status = client
        .post_raw(&format!("/console/webhooks/{id}/status"), &[("active", "0")])
        .await;
    assert_eq!(status.status, StatusCode::FORBIDDEN);
    let hooks = app.list_webhooks(&session).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["url"], "http://127.0.0.1:9/keep");
    assert_eq!(hooks[0]["is_active"], 1);
    // Another session's token is no better.
    let other = ConsoleClient::merchant(&app, &code).await;
    let mut stolen = vec![("csrf", other.csrf.as_str())];
    stolen.extend_from_slice(&create);
    assert_eq!(
        client.post_raw("/console/webhooks/new", &stolen).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
}

#[tokio::test]
async fn a_merchant_cannot_see_or_change_another_merchant_s_webhook_by_id() {
    let app = TestApp::spawn().await;
    let (code_a, _, _, _) = shop(&app).await;
    let (_, _, _, session_b) = shop(&app).await;
    let theirs = hook(&app, &session_b, "http://127.0.0.1:9/b-secret-place").await;
    let mut a = ConsoleClient::merchant(&app, &code_a).await;
    let list = a.get("/console/").await;
    assert!(!list.body.contains("b-secret-place"), "{}", list.body);
    for path in ["", "/edit", "/delete"] {
        let page = a.get(&format!("/console/webhooks/{theirs}{path}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(page.body.contains("Webhook not exists."), "{}", page.body);
    }
    let base = format!("/console/webhooks/{theirs}");
    let edit = [("url", "http://127.0.0.1:9/stolen"), ("topics", "order:created")];
    assert_eq!(
        a.post(&format!("{base}/edit"), &edit).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.post(&format!("{base}/delete"), &[("confirm", "yes")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.post(&format!("{base}/status"), &[("active", "0")]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(a.post(&format!("{base}/test"), &[]).await.status, StatusCode::NOT_FOUND);
    let hooks = app.list_webhooks(&session_b).await;
    assert_eq!(hooks[0]["url"], "http://127.0.0.1:9/b-secret-place");
    assert_eq!(hooks[0]["is_active"], 1);
    assert_eq!(hooks[0]["increment_id"], 0, "no test ping was made");
    // B's own ping fails (nothing listens on port 9); A can neither open it nor retry it.
    let ping = app.call(&session_b, "webhook.test", json!([theirs])).await;
    let delivery = assert_ok(&ping)["delivery_id"].as_i64().unwrap();
    let page = a.get(&format!("/console/deliveries/{delivery}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Delivery not exists."), "{}", page.body);
    let retry = a.post(&format!("/console/deliveries/{delivery}/retry"), &[]).await;
    assert_eq!(retry.status, StatusCode::NOT_FOUND);
    // Nor an admin page.
    assert_eq!(a.get("/console/admin").await.status, StatusCode::FORBIDDEN);
    let publish = [("topic", "order:created"), ("message", "{}")];
    assert_eq!(a.post("/console/admin", &publish).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn script_in_a_url_or_header_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let (code, _, _, session) = shop(&app).await;
    let url = "http://127.0.0.1:9/x?q=<script>alert(1)</script>";
    let data = json!({"url": url, "topics": "order:created", "extra_headers": "X-Note: <script>alert(2)</script>"});
    assert_ok(&app.create_webhook(&session, data).await);
    let id = app.list_webhooks(&session).await[0]["webhook_id"].as_i64().unwrap();
    let mut client = ConsoleClient::merchant(&app, &code).await;
    for path in [
        "/console/".to_string(),
        format!("/console/webhooks/{id}"),
        format!("/console/webhooks/{id}/edit"),
    ] {
        let page = client.get(&path).await;
        assert!(!page.body.contains("<script>alert"), "{path}: {}", page.body);
        assert!(page.body.contains("&#60;script&#62;alert("), "{path}: {}", page.body);
    }
}

#[tokio::test]
async fn hostile_or_oversized_form_input_gets_a_clear_message_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 64 * 1024).await;
    let (code, _, _, session) = shop(&app).await;
    let mut client = ConsoleClient::merchant(&app, &code).await;
    let bad_url = [("url", "javascript:alert(1)"), ("topics", "order:created")];
    let page = client.post("/console/webhooks/new", &bad_url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Invalid data given. url"), "{}", page.body);
    let bad_topic = [("url", "http://127.0.0.1:9/a"), ("topics", "no:such<b>")];
    let page = client.post("/console/webhooks/new", &bad_topic).await;
    assert!(page.body.contains("Invalid data given. "), "{}", page.body);
    assert!(!page.body.contains("no:such<b>"), "the typed topic is escaped");
    let header = [
        ("url", "http://127.0.0.1:9/a"),
        ("topics", "order:created"),
        ("extra_headers", "Host: evil"),
    ];
    assert_eq!(
        client.post("/console/webhooks/new", &header).await.status,
        StatusCode::BAD_REQUEST
    );
    let long = "a".repeat(3000);
    let page = client
        .post("/console/webhooks/new", &[("url", &long), ("topics", "*")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("longer than 2048"), "{}", page.body);
    let huge = format!("csrf={}&url={}", client.csrf, "b".repeat(100 * 1024));
    let page = client.post_body("/console/webhooks/new", huge).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.body.contains("65536-byte limit"), "{}", page.body);
    let page = client.get("/console/webhooks/abc").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(app.list_webhooks(&session).await.is_empty());
}

#[tokio::test]
async fn a_merchant_creates_edits_tests_deactivates_and_deletes_through_the_forms() {
    let app = TestApp::spawn().await;
    let receiver = crate::receiver::TestReceiver::start().await;
    let (code, _, _, session) = shop(&app).await;
    let mut client = ConsoleClient::merchant(&app, &code).await;
    let url = receiver.url("/console-hook");
    let form = [
        ("url", url.as_str()),
        ("topics", "order:created"),
        ("topics", "shipment:*"),
        ("extra_headers", "X-A: 1"),
    ];
    let created = client.post("/console/webhooks/new", &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = webhook_id_from(created.location());
    let hooks = app.list_webhooks(&session).await;
    assert_eq!(hooks[0]["topics"], "order:created,shipment:*");
    assert_eq!(hooks[0]["extra_headers"], "X-A: 1");

    let edit = [("url", url.as_str()), ("topics", "order:*"), ("extra_headers", "")];
    let edited = client.post(&format!("/console/webhooks/{id}/edit"), &edit).await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    assert_eq!(app.list_webhooks(&session).await[0]["topics"], "order:*");

    let tested = client.post(&format!("/console/webhooks/{id}/test"), &[]).await;
    assert!(
        tested.location().starts_with("/console/deliveries/"),
        "{}",
        tested.location()
    );
    let delivery = client.get(tested.location()).await;
    assert!(
        delivery.body.contains("test:ping") && delivery.body.contains("HTTP 200"),
        "{}",
        delivery.body
    );

    client
        .post(&format!("/console/webhooks/{id}/status"), &[("active", "0")])
        .await;
    assert_eq!(app.list_webhooks(&session).await[0]["is_active"], 0);
    let page = client.get(&format!("/console/webhooks/{id}")).await;
    assert!(
        page.body.contains("inactive") && page.body.contains("test:ping"),
        "{}",
        page.body
    );

    let confirm = client.get(&format!("/console/webhooks/{id}/delete")).await;
    assert!(confirm.body.contains("Delete webhook"), "{}", confirm.body);
    let unconfirmed = client.post(&format!("/console/webhooks/{id}/delete"), &[]).await;
    assert_eq!(unconfirmed.location(), format!("/console/webhooks/{id}/delete"));
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
    let deleted = client
        .post(&format!("/console/webhooks/{id}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.location(), "/console/?msg=deleted");
    assert!(app.list_webhooks(&session).await.is_empty());
}

#[tokio::test]
async fn an_admin_sees_every_merchant_s_webhooks_filters_them_and_publishes() {
    let app = TestApp::spawn().await;
    let (code_a, _, _, session_a) = shop(&app).await;
    let (code_b, _, _, session_b) = shop(&app).await;
    hook(&app, &session_a, "http://127.0.0.1:9/hook-of-a").await;
    hook(&app, &session_b, "http://127.0.0.1:9/hook-of-b").await;
    let (name, key) = app.create_admin().await;
    let mut admin = ConsoleClient::logged_in(&app, &name, &key).await;
    let all = admin.get("/console/").await;
    assert!(
        all.body.contains("hook-of-a") && all.body.contains("hook-of-b"),
        "{}",
        all.body
    );
    let only_b = admin.get(&format!("/console/?merchant={code_b}")).await;
    assert!(!only_b.body.contains("hook-of-a") && only_b.body.contains("hook-of-b"));

    let form = admin.get("/console/admin").await;
    assert!(
        form.body.contains(&code_a) && form.body.contains(&code_b),
        "{}",
        form.body
    );
    let message = r#"{"order_id": 7}"#;
    let published = admin
        .post(
            "/console/admin",
            &[
                ("topic", "order:created"),
                ("merchant_code", &code_a),
                ("message", message),
            ],
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.body);
    assert!(published.body.contains("published: 1 payload(s)"), "{}", published.body);
    assert_eq!(app.list_webhooks(&session_a).await[0]["increment_id"], 1);
    assert_eq!(app.list_webhooks(&session_b).await[0]["increment_id"], 0);
    let not_json = [
        ("topic", "order:created"),
        ("merchant_code", code_a.as_str()),
        ("message", "{nope"),
    ];
    let refused = admin.post("/console/admin", &not_json).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("Invalid data given. message is not JSON"),
        "{}",
        refused.body
    );
    assert_eq!(app.list_webhooks(&session_a).await[0]["increment_id"], 1);
}

#[tokio::test]
async fn the_edit_form_sets_and_clears_the_steering_settings_and_pages_show_why_hookd_turned_a_webhook_off() {
    let app = TestApp::spawn().await;
    let (code, _, _, session) = shop(&app).await;
    let id = hook(&app, &session, "http://127.0.0.1:9/steer").await;
    let mut client = ConsoleClient::merchant(&app, &code).await;
    let path = format!("/console/webhooks/{id}/edit");
    let url = "http://127.0.0.1:9/steer";
    let filter = r#"message.total > 100 && topic == "order:created""#;
    let set = [
        ("url", url),
        ("topics", "order:created"),
        ("ordered", "1"),
        ("max_rate", "2.5"),
        ("filter", filter),
    ];
    let done = client.post(&path, &set).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let listed = &app.list_webhooks(&session).await[0];
    assert_eq!(
        (listed["ordered"].clone(), listed["max_rate"].clone()),
        (json!(true), json!(2.5))
    );
    assert_eq!(listed["filter"], filter);
    let form = client.get(&path).await;
    assert!(
        form.body.contains("value=\"2.5\"") && form.body.contains(" checked>"),
        "{}",
        form.body
    );
    assert!(form.body.contains("message.total &#62; 100"), "{}", form.body);

    let bad = [("url", url), ("topics", "order:created"), ("max_rate", "fast")];
    let refused = client.post(&path, &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("Invalid data given. field &#39;max_rate&#39;"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"fast\""),
        "what was typed stays: {}",
        refused.body
    );
    assert_eq!(
        app.list_webhooks(&session).await[0]["max_rate"],
        json!(2.5),
        "unchanged"
    );

    let clear = [
        ("url", url),
        ("topics", "order:created"),
        ("max_rate", ""),
        ("filter", ""),
    ];
    assert_eq!(client.post(&path, &clear).await.status, StatusCode::SEE_OTHER);
    let listed = &app.list_webhooks(&session).await[0];
    assert_eq!(listed["ordered"], json!(false));
    assert!(listed["max_rate"].is_null() && listed["filter"].is_null(), "{listed}");

    let disabled = app
        .app
        .store
        .webhook_disable(hookd::domain::WebhookId(id), "410 Gone <b>at</b> noon")
        .await;
    assert!(disabled.unwrap());
    for page in ["/console/".to_string(), format!("/console/webhooks/{id}")] {
        let body = client.get(&page).await.body;
        assert!(
            body.contains("Turned off by hookd: 410 Gone &#60;b&#62;at"),
            "{page}: {body}"
        );
    }
}

/// Walks the list from `start` by its "Next" links; the ids of each page.
async fn walk_pages(client: &mut ConsoleClient, start: &str) -> Vec<Vec<i64>> {
    let (mut pages, mut next) = (Vec::new(), Some(start.to_string()));
    while let Some(path) = next {
        let page = client.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let ids = listed_webhook_ids(&page.body);
        assert!(ids.len() <= 50, "{path}: {} webhooks on one page", ids.len());
        assert!(!page.body.contains("b-secret-place"), "{path}: {}", page.body);
        if !pages.is_empty() {
            assert!(link_to(&page.body, "« First page").is_some(), "{path}: {}", page.body);
        }
        next = link_to(&page.body, "Next »");
        assert!(pages.len() < 10, "the pages do not end");
        pages.push(ids);
    }
    pages
}

#[tokio::test]
async fn the_list_pages_fifty_webhooks_at_a_time_with_their_last_outcome_and_keeps_the_merchant_filter() {
    let app = TestApp::spawn().await;
    let receiver = crate::receiver::TestReceiver::start().await;
    let (code_a, _, _, session_a) = shop(&app).await;
    let (_, _, _, session_b) = shop(&app).await;
    let create = |session: &str, url: String| {
        let data = json!({"url": url, "topics": "order:created"});
        let (app, session) = (&app, session.to_string());
        async move { assert_ok(&app.create_webhook(&session, data).await).clone() }
    };
    // B's webhooks fall between A's ids, so a page of A's spans them.
    for i in 0..57 {
        if i == 30 {
            for j in 0..2 {
                create(&session_b, format!("http://127.0.0.1:9/b-secret-place-{j}")).await;
            }
        }
        let url = if i == 55 {
            receiver.url("/answered")
        } else {
            format!("http://127.0.0.1:9/a-{i}")
        };
        create(&session_a, url).await;
    }
    let of_a: Vec<i64> = app
        .list_webhooks(&session_a)
        .await
        .iter()
        .map(|h| h["webhook_id"].as_i64().unwrap())
        .collect();
    assert_eq!(of_a.len(), 57);
    let answered = of_a[55];
    let ping = app.call(&session_a, "webhook.test", json!([answered])).await;
    assert_ok(&ping);

    let mut client = ConsoleClient::merchant(&app, &code_a).await;
    let pages = walk_pages(&mut client, "/console/").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 7]);
    assert_eq!(pages.concat(), of_a, "every webhook once, in id order");
    let second = link_to(&client.get("/console/").await.body, "Next »").unwrap();
    assert_eq!(second, format!("/console/?after={}", of_a[49]));
    let page = client.get(&second).await;
    assert_eq!(link_to(&page.body, "« First page").as_deref(), Some("/console/"));
    let shown = listed_hook(&page.body, answered);
    assert!(
        shown.contains("<span class=\"status success\">success</span>") && shown.contains("HTTP 200"),
        "{shown}"
    );
    assert!(listed_hook(&page.body, of_a[56]).contains("none yet"));
    let past_the_end = client.get(&format!("/console/?after={}", of_a[56])).await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert!(listed_webhook_ids(&past_the_end.body).is_empty());
    assert!(past_the_end.body.contains("No more webhooks."), "{}", past_the_end.body);

    for bad in ["abc", "-1", "1.5", "99999999999999999999"] {
        let page = client.get(&format!("/console/?after={bad}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}: {}", page.body);
        assert!(page.body.contains("must be a webhook id"), "{}", page.body);
    }

    // An admin filtering by A pages through A's alone, and the links keep the filter.
    let (name, key) = app.create_admin().await;
    let mut admin = ConsoleClient::logged_in(&app, &name, &key).await;
    let start = format!("/console/?merchant={code_a}");
    let pages = walk_pages(&mut admin, &start).await;
    assert_eq!(pages.concat(), of_a);
    assert_eq!(pages.len(), 2);
    let next = link_to(&admin.get(&start).await.body, "Next »").unwrap();
    assert_eq!(next, format!("/console/?merchant={code_a}&after={}", of_a[49]));
    let back = link_to(&admin.get(&next).await.body, "« First page").unwrap();
    assert_eq!(back, start);
    let nobody = admin.get("/console/?merchant=no-such-shop").await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert!(listed_webhook_ids(&nobody.body).is_empty());
}

/// The form's "Signatures" choice sets `signature_scheme`; the webhook's page then shows the
/// public key with a verification snippet, never the private key; a value that is not a
/// scheme is refused, naming the field, and changes nothing.
#[tokio::test]
async fn the_console_switches_to_ed25519_and_shows_the_public_key() {
    let app = TestApp::spawn().await;
    let (code, _, _, session) = shop(&app).await;
    let mut client = ConsoleClient::merchant(&app, &code).await;
    let form = [
        ("url", "https://example.com/ed"),
        ("topics", "order:created"),
        ("signature_scheme", "hmac+ed25519"),
    ];
    let created = client.post("/console/webhooks/new", &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = webhook_id_from(created.location());
    let listed = app.list_webhooks(&session).await.remove(0);
    assert_eq!(listed["signature_scheme"], "hmac+ed25519");
    let public_key = listed["public_key"].as_str().unwrap();
    let page = client.get(&format!("/console/webhooks/{id}")).await;
    assert!(page.body.contains(public_key), "{}", page.body);
    assert!(page.body.contains("Ed25519PublicKey"), "the verification snippet");
    let edit = client.get(&format!("/console/webhooks/{id}/edit")).await;
    assert!(
        edit.body.contains(r#"<option value="hmac+ed25519" selected>"#),
        "{}",
        edit.body
    );

    let bad = [
        ("url", "https://example.com/ed"),
        ("topics", "order:created"),
        ("signature_scheme", "rsa"),
    ];
    let refused = client.post(&format!("/console/webhooks/{id}/edit"), &bad).await;
    assert!(refused.body.contains("signature_scheme"), "{}", refused.body);
    assert_eq!(
        app.list_webhooks(&session).await[0]["public_key"],
        public_key,
        "unchanged"
    );

    let off = [
        ("url", "https://example.com/ed"),
        ("topics", "order:created"),
        ("signature_scheme", "hmac"),
    ];
    let saved = client.post(&format!("/console/webhooks/{id}/edit"), &off).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = client.get(&format!("/console/webhooks/{id}")).await;
    assert!(!page.body.contains(public_key) && !page.body.contains("Ed25519PublicKey"));
}
