//! The database password never appears in what `hookd` prints (issue 27, item 5): not in
//! the start-up line, not in `migrate`'s output, not in a connection error, not in any log
//! line (sqlx's own included), whether it is given as userinfo or as `?password=`, and an
//! unparseable URL is not printed at all.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::process::TestDatabase;

const SECRET: &str = "hunter2secret";

/// `hookd ARGS` with `HOOKD_DATABASE_URL=url`, debug logs on, no `HOOKD_*` from outside.
fn hookd(dir: &std::path::Path, url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKD_") {
            cmd.env_remove(&name);
        }
    }
    cmd.args(args)
        .current_dir(dir)
        .env("HOOKD_DATABASE_URL", url)
        .env("HOOKD_DB_ACQUIRE_TIMEOUT", "1s")
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .kill_on_drop(true);
    cmd
}

/// Runs a command that fails; everything it printed, both streams.
async fn failing(dir: &std::path::Path, url: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(Duration::from_secs(60), hookd(dir, url, args).output())
        .await
        .expect("hookd gives up within 60 s")
        .expect("running hookd");
    assert_eq!(out.status.code(), Some(1), "hookd {args:?} on {url} fails");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_password_in_the_query_never_appears_when_the_database_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    for port in [1, 5432] {
        let url = format!("postgres://postgres@127.0.0.1:{port}/hookd_no_such_db?password={SECRET}&sslmode=disable");
        for command in ["migrate", "serve"] {
            let printed = failing(dir.path(), &url, &[command]).await;
            assert!(
                !printed.contains(SECRET),
                "hookd {command} printed the password:\n{printed}"
            );
            let shown = format!("postgres://postgres@127.0.0.1:{port}/hookd_no_such_db?password=***&sslmode=disable");
            assert!(
                printed.contains(&shown),
                "hookd {command} names the database:\n{printed}"
            );
        }
    }
}

#[tokio::test]
async fn an_unparseable_database_url_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("postgres://postgres:{SECRET}@127.0.0.1:notaport/x"),
        format!("postgres://postgres:{SECRET}@[127.0.0.1/x"),
        format!("postgres//postgres:{SECRET}@127.0.0.1/x"),
    ] {
        for command in ["migrate", "serve"] {
            let printed = failing(dir.path(), &url, &[command]).await;
            assert!(!printed.contains(SECRET), "hookd {command} printed {url}:\n{printed}");
        }
    }
}

#[tokio::test]
async fn a_working_database_with_a_password_in_the_query_is_named_masked_by_migrate_and_serve() {
    let Some(db) = TestDatabase::create("credentials").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Trust authentication: the server takes the password and ignores it.
    let url = format!("{}?password={SECRET}", db.url);

    let out = hookd(dir.path(), &url, &["migrate"])
        .output()
        .await
        .expect("running migrate");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "migrate fails:\n{printed}");
    assert!(!printed.contains(SECRET), "migrate printed the password:\n{printed}");
    assert!(
        printed.contains("password=***"),
        "migrate names the database:\n{printed}"
    );

    // serve, with debug logs of every crate, until it listens: no line holds the password.
    let mut child = hookd(dir.path(), &url, &["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting hookd serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("reading stderr") {
            let done = line.contains("listening on");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.expect("stopping hookd serve");
    let printed = seen.join("\n");
    assert_eq!(listening, Ok(true), "serve did not listen:\n{printed}");
    assert!(!printed.contains(SECRET), "serve printed the password:\n{printed}");
    assert!(printed.contains("password=***"), "serve names the database:\n{printed}");
}
