//! What the CLI says about its database and prints of URLs (CONTRACT §7.2, issue 21): every
//! command that opens the database names it on stderr with the password masked (userinfo
//! or `?password=`), a command that makes a new SQLite file says so and where, and
//! `hookd webhook list` shows URLs without credentials while the API keeps them as given.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::{hookd_command, stderr, stdout};
use crate::helpers::*;
use crate::process::{command, TestDatabase};

const SECRET: &str = "hunter2secret";

/// `hookd ARGS` in `dir` with `HOOKD_DATABASE_URL=url` (none when None).
async fn run(dir: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let env: Vec<(&str, String)> = url.map(|u| ("HOOKD_DATABASE_URL", u.to_string())).into_iter().collect();
    let mut cmd = tokio::process::Command::from(command(dir, &env));
    cmd.args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("hookd finishes within 60 s")
        .expect("running hookd")
}

/// `hookd serve` until it listens; everything it wrote to stderr by then.
async fn serve_until_listening(dir: &Path, url: &str) -> String {
    let env = [
        ("HOOKD_DATABASE_URL", url.to_string()),
        ("HOOKD_LISTEN", "127.0.0.1:0".to_string()),
    ];
    let mut cmd = tokio::process::Command::from(command(dir, &env));
    cmd.arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("starting hookd serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let listened = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("listening on");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.unwrap();
    let seen = seen.join("\n");
    assert_eq!(listened, Ok(true), "serve did not listen:\n{seen}");
    seen
}

#[tokio::test]
async fn every_database_command_names_a_postgres_database_and_never_prints_its_password() {
    let Some(db) = TestDatabase::create("cli_database").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Trust authentication: the server takes the password and ignores it.
    let mut in_userinfo = url::Url::parse(&db.url).unwrap();
    in_userinfo.set_password(Some(SECRET)).unwrap();
    let forms = [
        (in_userinfo.to_string(), "postgres:***@"),
        (format!("{}?password={SECRET}&sslmode=disable", db.url), "password=***"),
    ];
    for (n, (url, masked)) in forms.iter().enumerate() {
        let admin = format!("admin{n}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["migrate"],
            vec!["user", "add", &admin, "--admin"],
            vec!["user", "add", "shopper", "--merchant", "shop"],
            vec!["user", "list"],
            vec!["merchant", "list"],
            vec!["webhook", "list"],
            vec!["delivery", "list"],
            vec!["delivery", "retry", "987654"],
            vec!["publish", "order:created", r#"{"id":1}"#, "--merchant", "shop"],
            vec!["user", "remove", &admin],
        ];
        for args in commands {
            let out = run(dir.path(), Some(url), &args).await;
            let (printed_out, printed_err) = (stdout(&out), stderr(&out));
            assert!(
                !printed_out.contains(SECRET) && !printed_err.contains(SECRET),
                "hookd {args:?} printed the password:\n{printed_out}\n{printed_err}"
            );
            assert!(
                printed_err.contains(masked) && printed_err.contains(db.url.rsplit('/').next().unwrap()),
                "hookd {args:?} does not name the database on stderr:\n{printed_err}"
            );
        }
        let printed = serve_until_listening(dir.path(), url).await;
        assert!(!printed.contains(SECRET), "serve printed the password:\n{printed}");
        assert!(printed.contains(masked), "serve names the database:\n{printed}");
    }
}

#[tokio::test]
async fn a_command_that_makes_a_new_sqlite_file_says_so_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.db");

    // A read-only command makes nothing and does not claim to.
    let out = run(dir.path(), None, &["webhook", "list"]).await;
    assert!(!out.status.success());
    assert!(
        !stderr(&out).contains("creating a new SQLite database"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists());

    // No HOOKD_DATABASE_URL: `user add` works, and says it makes ./hookd.db and why.
    let out = run(dir.path(), None, &["user", "add", "first", "--admin"]).await;
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    let abs = std::fs::canonicalize(dir.path()).unwrap().join("hookd.db");
    assert!(
        said.contains("creating a new SQLite database at") && said.contains(&abs.display().to_string()),
        "{said}"
    );
    assert!(said.contains("HOOKD_DATABASE_URL is not set"), "{said}");
    assert!(file.exists());

    // The next command uses it and only names it.
    let out = run(dir.path(), None, &["user", "list"]).await;
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("creating"), "{said}");
    assert!(said.contains("sqlite://hookd.db"), "{said}");
    assert!(stdout(&out).contains("first"));

    // A new file named by HOOKD_DATABASE_URL is announced too, without the hint.
    let other = dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    let out = run(dir.path(), Some(&url), &["migrate"]).await;
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("creating a new SQLite database at"), "{said}");
    assert!(!said.contains("is not set"), "{said}");
}

#[tokio::test]
async fn webhook_list_hides_url_credentials_that_the_api_returns_as_given() {
    let app = TestApp::spawn().await;
    let session = app.merchant_session("listed-shop").await;
    let url = format!("https://bob:{SECRET}@example.com/in?token=tok-{SECRET}&x=1&sig=s-{SECRET}");
    let created = app
        .create_webhook(&session, json!({"topics": "order:created", "url": url}))
        .await;
    assert_ok(&created);
    let listed = app.list_webhooks(&session).await;
    assert_eq!(listed[0]["url"], url, "the API keeps the URL as given");

    let mut cmd = hookd_command(&app, &["webhook", "list"]);
    cmd.env("HOOKD_DATABASE_URL", &app.config.database_url);
    let out = cmd.output().await.unwrap();
    let printed = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!printed.contains(SECRET) && !printed.contains("bob"), "{printed}");
    assert!(
        printed.contains("https://example.com/in?token=***&x=1&sig=***"),
        "{printed}"
    );
}
