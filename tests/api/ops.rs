//! Running hookd in production (CONTRACT.md §7.2): `hookd --version`, secrets given as
//! files (`HOOKD_DATABASE_URL_FILE`), and `/metrics` on a listener of its own
//! (`HOOKD_METRICS_LISTEN`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{hookd_command, stderr, stdout};
use crate::helpers::*;
use crate::process::Node;

#[tokio::test]
async fn hookd_version_prints_the_package_version() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("--version")
        .output()
        .await
        .expect("running hookd --version");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("hookd {}\n", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn commands_read_the_database_url_from_hookd_database_url_file() {
    let app = TestApp::spawn().await;
    app.create_merchant_user("shop1").await;
    let file = app.dir().join("database-url");
    std::fs::write(&file, format!("{}\n", app.config.database_url)).unwrap();

    let migrate = hookd_command(&app, &["migrate"])
        .env("HOOKD_DATABASE_URL_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    let url = hookd::config::redacted_database_url(&app.config.database_url);
    assert_eq!(stdout(&migrate), format!("migrations applied to {url}\n"));

    let list = hookd_command(&app, &["user", "list"])
        .env("HOOKD_DATABASE_URL_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stdout(&list).contains("shop1"),
        "the file's database: {}",
        stdout(&list)
    );
}

#[tokio::test]
async fn a_secret_given_twice_or_in_a_missing_file_stops_hookd_naming_the_variables() {
    let app = TestApp::spawn().await;
    let file = app.dir().join("database-url");
    std::fs::write(&file, "postgres://someone:sekrit@127.0.0.1:1/nothing\n").unwrap();
    let both = hookd_command(&app, &["migrate"])
        .env("HOOKD_DATABASE_URL", &app.config.database_url)
        .env("HOOKD_DATABASE_URL_FILE", &file)
        .output()
        .await
        .unwrap();
    assert_eq!(both.status.code(), Some(1));
    let err = stderr(&both);
    assert!(
        err.contains("HOOKD_DATABASE_URL and HOOKD_DATABASE_URL_FILE are both set"),
        "{err}"
    );
    assert!(!err.contains("sekrit"), "{err}");

    let missing = app.dir().join("no-such-file");
    let out = hookd_command(&app, &["migrate"])
        .env("HOOKD_DATABASE_URL_FILE", &missing)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("HOOKD_DATABASE_URL_FILE") && err.contains(&missing.display().to_string()),
        "{err}"
    );
}

/// `GET /metrics` at `base`: its status and text.
async fn scrape(base: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn with_metrics_listen_metrics_move_to_their_own_port() {
    let app = TestApp::spawn_with(|c| c.metrics_listen = Some("127.0.0.1:0".into())).await;
    app.create_merchant_user("shop1").await;
    let (name, key) = app.create_admin().await;
    let published = app
        .call_basic(&name, &key, "event.publish", json!(["order:created", {"id": 1}]))
        .await;
    assert_ok(&published);

    let metrics_addr = app.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr, app.addr);
    let (status, text) = scrape(&format!("http://{metrics_addr}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("hookd_events_published_total 1"), "{text}");
    let (status, _) = scrape(&format!("http://{}", app.addr)).await;
    assert_eq!(status, 404, "no longer on the API's port");
}

#[tokio::test]
async fn without_metrics_listen_metrics_stay_on_the_api_port() {
    let app = TestApp::spawn().await;
    assert_eq!(app.metrics_addr, None);
    let (status, text) = scrape(&format!("http://{}", app.addr)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("hookd_events_published_total 0"), "{text}");
}

/// `hookd serve` as an operator runs it: the database URL from a file, `/metrics` on its
/// own port, which the start-up log names.
#[tokio::test]
async fn serve_logs_where_its_metrics_are_and_reads_its_database_url_from_a_file() {
    let mut app = TestApp::spawn().await;
    app.stop().await; // one server per SQLite file
    let file = app.dir().join("database-url");
    std::fs::write(&file, format!("{}\n", app.config.database_url)).unwrap();
    let env = [
        ("HOOKD_DATABASE_URL_FILE", file.display().to_string()),
        ("HOOKD_METRICS_LISTEN", "127.0.0.1:0".to_string()),
    ];
    let node = Node::serve("metrics", app.dir(), &env).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(line) = node.logged("metrics on http://") {
            break line;
        }
        assert!(Instant::now() < deadline, "no metrics line:\n{}", node.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = line
        .split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|url| url.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("an address in {line}"))
        .to_string();
    let (status, text) = scrape(&base).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("hookd_events_published_total"), "{text}");
    assert_eq!(scrape(&format!("http://{}", node.addr)).await.0, 404);
    node.assert_no_panic();
}
