//! The `hookd user add|list|remove` commands (CONTRACT.md §5), run as the real binary
//! against the database of a running test server.

use std::process::Output;

use serde_json::json;

use crate::helpers::*;

/// `hookd ARGS` in the test's directory, with no `HOOKD_*` variable from outside.
pub(crate) fn hookd_command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKD_") {
            cmd.env_remove(&name);
        }
    }
    cmd.args(args).current_dir(app.dir()).kill_on_drop(true);
    cmd
}

/// Runs `hookd ARGS` with `HOOKD_DATABASE_URL` set to the test server's database.
pub(crate) async fn hookd(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = hookd_command(app, args);
    cmd.env("HOOKD_DATABASE_URL", &app.config.database_url);
    cmd.output().await.expect("running hookd")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hookd user add ARGS`; asserts success and returns the key from stdout's last line.
pub(crate) async fn user_add(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["user", "add"];
    all.extend_from_slice(args);
    let out = hookd(app, &all).await;
    assert!(out.status.success(), "user add {args:?} failed: {}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().expect("a line on stdout");
    assert_eq!(last, last.trim(), "the key is alone on its line");
    last.to_string()
}

pub(crate) fn is_api_key(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn user_add_with_a_merchant_prints_a_key_that_logs_in() {
    let app = TestApp::spawn().await;
    let key = user_add(&app, &["alice", "--merchant", "shop1"]).await;
    assert!(is_api_key(&key), "40 hex characters: {key}");

    let session = app.login("alice", &key).await;
    assert_ok(
        &app.create_webhook(&session, json!({"topics": "*", "url": "https://example.com/"}))
            .await,
    );
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
    assert_ok(&app.call_basic("alice", &key, "webhook.list", json!([])).await);
}

#[tokio::test]
async fn user_add_admin_prints_a_key_for_a_user_who_sees_every_merchant() {
    let app = TestApp::spawn().await;
    let alice = app.merchant_session("shop1").await;
    assert_ok(
        &app.create_webhook(&alice, json!({"topics": "*", "url": "https://example.com/"}))
            .await,
    );

    let key = user_add(&app, &["root", "--admin"]).await;
    assert!(is_api_key(&key), "{key}");
    let session = app.login("root", &key).await;
    assert_eq!(app.list_webhooks(&session).await.len(), 1);
}

#[tokio::test]
async fn two_users_of_one_merchant_share_its_webhooks() {
    let app = TestApp::spawn().await;
    let first = user_add(&app, &["ann", "--merchant", "shop1"]).await;
    let second = user_add(&app, &["ben", "--merchant", "shop1"]).await;
    assert_ne!(first, second);
    let ann = app.login("ann", &first).await;
    let ben = app.login("ben", &second).await;
    assert_ok(
        &app.create_webhook(&ann, json!({"topics": "*", "url": "https://example.com/"}))
            .await,
    );
    assert_eq!(app.list_webhooks(&ben).await, app.list_webhooks(&ann).await);
}

#[tokio::test]
async fn adding_a_user_whose_name_is_taken_fails_clearly() {
    let app = TestApp::spawn().await;
    let key = user_add(&app, &["alice", "--merchant", "shop1"]).await;
    let out = hookd(&app, &["user", "add", "alice", "--admin"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("alice") && err.contains("already exists"), "{err}");
    assert!(!stdout(&out).lines().any(is_api_key), "no key is printed");
    // The first alice is untouched.
    app.login("alice", &key).await;
}

#[tokio::test]
async fn user_add_needs_a_merchant_or_admin_and_a_valid_name() {
    let app = TestApp::spawn().await;
    for args in [
        &["user", "add", "alice"][..],
        &["user", "add", "alice", "--merchant", "shop1", "--admin"],
        &["user", "add", "bad name", "--admin"],
        &["user", "add", "alice", "--merchant", "bad code"],
    ] {
        let out = hookd(&app, args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!stdout(&out).lines().any(is_api_key), "{args:?} printed a key");
    }
    let out = hookd(&app, &["user", "list"]).await;
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "", "no user was made");
}

#[tokio::test]
async fn user_list_shows_every_user_with_its_role_and_merchant() {
    let app = TestApp::spawn().await;
    user_add(&app, &["alice", "--merchant", "shop1"]).await;
    user_add(&app, &["root", "--admin"]).await;
    let out = hookd(&app, &["user", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is listed: {text}"))
            .to_string()
    };
    let alice = line("alice");
    assert!(alice.contains("merchant") && alice.contains("shop1"), "{alice}");
    assert!(line("root").contains("admin"), "{text}");
    assert!(!text.contains("argon2"), "no key hashes in the listing: {text}");
}

#[tokio::test]
async fn user_remove_ends_access_and_an_unknown_name_fails() {
    let app = TestApp::spawn().await;
    let key = user_add(&app, &["alice", "--merchant", "shop1"]).await;
    let session = app.login("alice", &key).await;

    let out = hookd(&app, &["user", "remove", "alice"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = hookd(&app, &["user", "list"]).await;
    assert!(!stdout(&listed).contains("alice"));
    assert_app_error(&app.try_login("alice", &key).await, 2);
    assert_app_error(&app.call(&session, "webhook.list", json!([])).await, 5);
    assert_app_error(&app.call_basic("alice", &key, "webhook.list", json!([])).await, 2);

    let out = hookd(&app, &["user", "remove", "nobody"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nobody"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_key_printed_by_user_add_is_stored_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let key = user_add(&app, &["alice", "--merchant", "shop1"]).await;
    app.login("alice", &key).await;
    assert_eq!(app.where_stored(&key).await, Vec::<String>::new());
}

#[tokio::test]
async fn help_exits_zero_and_mentions_the_database_url_variable() {
    let app = TestApp::spawn().await;
    let out = hookd(&app, &["--help"]).await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("HOOKD_DATABASE_URL"), "{}", stdout(&out));
}

#[tokio::test]
async fn flags_win_over_the_environment_which_wins_over_the_config_file() {
    let app = TestApp::spawn().await;
    user_add(&app, &["alice", "--merchant", "shop1"]).await;
    let server_db = app.config.database_url.clone();
    let other_db = format!("sqlite://{}", app.dir().join("other.db").display());
    // A second, empty database (read-only commands refuse a file that does not exist).
    let made = hookd_command(&app, &["migrate", "--database-url", &other_db])
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let config = app.dir().join("hookd.toml");
    std::fs::write(&config, format!("database_url = \"{server_db}\"\n")).unwrap();
    let config = config.to_str().unwrap();

    let lists_alice = |out: Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).contains("alice")
    };
    // The file alone.
    let out = hookd_command(&app, &["user", "list", "--config", config])
        .output()
        .await
        .unwrap();
    assert!(lists_alice(out), "the config file names the database");
    // The environment over the file.
    let out = hookd_command(&app, &["user", "list", "--config", config])
        .env("HOOKD_DATABASE_URL", &other_db)
        .output()
        .await
        .unwrap();
    assert!(!lists_alice(out), "the environment wins over the file");
    // A flag over the environment.
    let out = hookd_command(&app, &["user", "list", "--database-url", &server_db])
        .env("HOOKD_DATABASE_URL", &other_db)
        .output()
        .await
        .unwrap();
    assert!(lists_alice(out), "the flag wins over the environment");
}

/// `hookd listen` receives a real delivery: one JSON line on stdout with the topic, the
/// increment id, both signatures checked against `--secret`, and the body; the answer is
/// `--status`.
#[tokio::test]
async fn hookd_listen_prints_each_delivery_with_both_signatures_checked() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let app = TestApp::spawn().await;
    let secret = "listen-secret-123";
    let mut listen = hookd_command(
        &app,
        &[
            "listen",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            secret,
            "--status",
            "202",
        ],
    );
    let mut child = listen
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting hookd listen");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stderr.next_line())
        .await
        .expect("hookd listen says where it listens")
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .expect("the first stderr line")
        .to_string();

    let session = app.merchant_session("listened").await;
    let hook = json!({"topics": "order:*", "url": format!("http://{addr}/in?x=1"), "secret_key": secret});
    assert_ok(&app.create_webhook(&session, hook).await);
    let id = app.list_webhooks(&session).await[0]["webhook_id"].clone();
    let tested = app.call(&session, "webhook.test", json!([id])).await;
    assert_eq!(assert_ok(&tested)["http_status"], 202, "{tested}");

    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), stdout.next_line())
        .await
        .expect("a line per request")
        .unwrap()
        .unwrap();
    let printed: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(printed["topic"], "test:ping");
    assert_eq!(printed["increment_id"], 1);
    assert_eq!(printed["signature_ok"], true, "{printed}");
    assert_eq!(printed["standard_signature_ok"], true, "{printed}");
    let body: serde_json::Value = serde_json::from_str(printed["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["message"]["webhook_increment_id"], 1);
    child.kill().await.unwrap();
}

/// The operator commands find a failed delivery and queue it again, without SQL.
#[tokio::test]
async fn operators_list_merchants_webhooks_and_failed_deliveries_and_retry_one() {
    use crate::delivery_support::*;
    use crate::receiver::Behaviour;

    let w = World::start_with(|c| schedule(c, "20ms")).await;
    let hook = w.hook_at("order:created", "/broken").await;
    let id = id_of(&hook);
    let named = w
        .as_shop("webhook.update", json!([id, {"description": "Billing sync"}]))
        .await;
    assert_ok(&named);
    w.receiver.set("/broken", Behaviour::Status(500));
    w.publish_ok("order:created", json!({"n": 1})).await;
    let delivery = w.only_delivery(id).await;
    w.wait_status(delivery, "failed", std::time::Duration::from_secs(10))
        .await;

    let out = hookd(&w.app, &["merchant", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.split('\t').nth(1) == Some(w.code.as_str())),
        "{}",
        stdout(&out)
    );

    let out = hookd(&w.app, &["webhook", "list", "--merchant", &w.code]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(text.lines().count(), 2, "a header and the one webhook: {text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{id}\t{}\t1\t1\t", w.code)),
        "{text}"
    );
    let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(header.last(), Some(&"description"), "{text}");
    assert_eq!(row.len(), header.len(), "{text}");
    assert_eq!(
        row.last(),
        Some(&"Billing sync"),
        "the webhook's name is listed: {text}"
    );
    let out = hookd(&w.app, &["webhook", "list", "--merchant", "nosuch"]).await;
    assert!(
        !out.status.success() && stderr(&out).contains("no merchant"),
        "{}",
        stderr(&out)
    );

    let out = hookd(
        &w.app,
        &["delivery", "list", "--status", "failed", "--merchant", &w.code],
    )
    .await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let row: Vec<&str> = text.lines().nth(1).expect("the failed delivery").split('\t').collect();
    assert_eq!(row[0], delivery.to_string(), "{text}");
    assert_eq!((row[4], row[6]), ("failed", "500"), "{text}");
    let out = hookd(&w.app, &["delivery", "list", "--status", "nonsense"]).await;
    assert!(
        !out.status.success() && stderr(&out).contains("--status"),
        "{}",
        stderr(&out)
    );

    w.receiver.set("/broken", Behaviour::Status(200));
    let out = hookd(&w.app, &["delivery", "retry", &delivery.to_string()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    w.wait_status(delivery, "success", std::time::Duration::from_secs(10))
        .await;
    // A success is sent again too (CONTRACT §7.7).
    let out = hookd(&w.app, &["delivery", "retry", &delivery.to_string()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hookd(&w.app, &["delivery", "retry", "999999"]).await;
    assert!(
        !out.status.success() && stderr(&out).contains("no delivery"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_failing_command_prints_one_line_without_the_password_and_exits_1() {
    let app = TestApp::spawn().await;
    let out = hookd_command(&app, &["migrate"])
        .env("HOOKD_DATABASE_URL", "postgres://someone:sekrit@127.0.0.1:1/nothing")
        .env("HOOKD_DB_ACQUIRE_TIMEOUT", "1s")
        .env("RUST_BACKTRACE", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // The database it uses (CONTRACT §7.2), then the error: one line each.
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "the database, then one error line: {err}");
    assert!(lines[0].starts_with("hookd: database postgres://someone:***@"), "{err}");
    assert!(
        lines[1].starts_with("hookd: error: opening database postgres://someone:***@"),
        "{err}"
    );
    assert!(!err.contains("sekrit"), "{err}");
}

#[tokio::test]
async fn each_command_s_help_lists_only_the_settings_that_apply_to_it() {
    let app = TestApp::spawn().await;
    let user = stdout(&hookd(&app, &["user", "list", "--help"]).await);
    assert!(user.contains("--database-url"), "{user}");
    assert!(
        !user.contains("--retry-schedule") && !user.contains("--listen"),
        "{user}"
    );
    let serve = stdout(&hookd(&app, &["serve", "--help"]).await);
    for flag in ["--listen", "--retry-schedule", "--max-connections", "--database-url"] {
        assert!(serve.contains(flag), "{flag} in serve --help: {serve}");
    }
}

#[tokio::test]
async fn read_only_commands_refuse_a_missing_sqlite_file_instead_of_making_one() {
    let app = TestApp::spawn().await;
    let typo = app.dir().join("typo.db");
    let url = format!("sqlite://{}", typo.display());
    for args in [&["user", "list"][..], &["merchant", "list"], &["delivery", "list"]] {
        let out = hookd_command(&app, args)
            .env("HOOKD_DATABASE_URL", &url)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains("no database at"), "{args:?}: {}", stderr(&out));
    }
    assert!(!typo.exists(), "nothing was made");
}

/// `hookd listen --public-key whpk_…` checks the `v1a` (Ed25519) signature of a webhook
/// with `signature_scheme` "hmac+ed25519" (`asymmetric_signature_ok`); a key that is not
/// one is refused at start.
#[tokio::test]
async fn hookd_listen_checks_v1a_with_the_public_key() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let app = TestApp::spawn().await;
    let bad = hookd(
        &app,
        &["listen", "--listen", "127.0.0.1:0", "--public-key", "whpk_AAAA"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--public-key"), "{}", stderr(&bad));

    let session = app.merchant_session("listened-ed").await;
    let hook = json!({"topics": "order:*", "url": "http://127.0.0.1:9/none", "signature_scheme": "hmac+ed25519"});
    assert_ok(&app.create_webhook(&session, hook).await);
    let listed = app.list_webhooks(&session).await.remove(0);
    let public_key = listed["public_key"].as_str().unwrap().to_string();
    let mut child = hookd_command(
        &app,
        &["listen", "--listen", "127.0.0.1:0", "--public-key", &public_key],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("starting hookd listen");
    let mut stderr_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stderr_lines.next_line())
        .await
        .expect("hookd listen says where it listens")
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .expect("the first stderr line")
        .to_string();
    let id = listed["webhook_id"].clone();
    let url = format!("http://{addr}/in");
    assert_ok(&app.call(&session, "webhook.update", json!([id, {"url": url}])).await);
    assert_ok(&app.call(&session, "webhook.test", json!([id])).await);

    let mut stdout_lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), stdout_lines.next_line())
        .await
        .expect("a line per request")
        .unwrap()
        .unwrap();
    let printed: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(printed["asymmetric_signature_ok"], true, "{printed}");
    assert_eq!(printed["signature_ok"], serde_json::Value::Null, "no --secret given");
    child.kill().await.unwrap();
}
