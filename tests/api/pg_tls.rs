//! PostgreSQL over TLS (CONTRACT.md §7.2): the real `hookd` reaches a server that accepts
//! only TLS through the `sslmode` and `sslrootcert` of `HOOKD_DATABASE_URL`, and refuses it
//! when `verify-full` is given a certificate for another name.
//!
//! The server is `tests/pg_tls/start.sh`'s: `hostssl` lines only (so a plain connection is
//! refused, which shows that TLS is what lets the others in), a password, and a certificate
//! from its own CA that names `localhost` alone, not `127.0.0.1`. Runs when
//! `HOOKD_TEST_PG_TLS_URL` and `HOOKD_TEST_PG_TLS_CA` are set (start.sh prints them); without
//! them it prints a note and passes, unless `CI` is set. Databases made here go with the
//! throwaway cluster (`tests/pg_tls/stop.sh`).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::helpers::skipped;
use crate::process::*;

/// The TLS-only server: its URL (host `localhost`, a password, no `sslmode`) and CA file.
struct TlsServer {
    url: url::Url,
    ca: String,
}

impl TlsServer {
    /// None (after a note) when the variables are unset; a failure under CI.
    fn from_env(test: &str) -> Option<TlsServer> {
        let (Ok(url), Ok(ca)) = (
            std::env::var("HOOKD_TEST_PG_TLS_URL"),
            std::env::var("HOOKD_TEST_PG_TLS_CA"),
        ) else {
            let why = "set HOOKD_TEST_PG_TLS_URL and HOOKD_TEST_PG_TLS_CA (tests/pg_tls/start.sh) to run it";
            assert!(std::env::var_os("CI").is_none(), "{test}: {why}, and CI is set");
            skipped(test, why);
            return None;
        };
        let url = url::Url::parse(&url).expect("HOOKD_TEST_PG_TLS_URL is a URL");
        Some(TlsServer { url, ca })
    }

    fn password(&self) -> String {
        self.url
            .password()
            .expect("HOOKD_TEST_PG_TLS_URL has a password")
            .to_string()
    }

    /// The server's URL with `host`, `database` and the query `params` (`sslmode=…&…`, or
    /// none when empty).
    fn url(&self, host: &str, database: &str, params: &str) -> String {
        let mut url = self.url.clone();
        url.set_host(Some(host)).expect("a host");
        url.set_path(&format!("/{database}"));
        url.set_query((!params.is_empty()).then_some(params));
        url.to_string()
    }

    /// `sslmode=verify-full` with the CA, to `localhost`: the URL that must work.
    fn verified_url(&self, database: &str) -> String {
        self.url(
            "localhost",
            database,
            &format!("sslmode=verify-full&sslrootcert={}", self.ca),
        )
    }

    /// A fresh database on the server, made over a verified connection.
    async fn fresh_database(&self) -> String {
        use sqlx::{Connection, Executor};
        let name = format!("hookd_tls_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&self.verified_url("postgres"))
            .await
            .expect("connecting to the TLS server with verify-full");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating a database");
        let _ = conn.close().await;
        name
    }
}

/// `hookd migrate` in `dir` with `HOOKD_DATABASE_URL=url` (and nothing else from outside).
async fn migrate(dir: &Path, url: &str) -> Output {
    let mut cmd = tokio::process::Command::from(command(dir, &[("HOOKD_DATABASE_URL", url.to_string())]));
    cmd.arg("migrate").kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("hookd migrate finishes within 60 s")
        .expect("running hookd migrate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `hookd migrate` failed with an error naming `expected`, and no password.
#[track_caller]
fn assert_refused(out: &Output, server: &TlsServer, expected: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "hookd migrate succeeded: {err}");
    assert!(
        err.to_lowercase().contains(expected),
        "the error says {expected:?}: {err}"
    );
    assert!(!err.contains(&server.password()), "the error leaks the password: {err}");
}

#[tokio::test]
async fn migrate_user_add_and_serve_reach_a_tls_only_server_and_an_event_is_stored() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let database = server.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();

    // `require` encrypts without checking the certificate, so any host name will do.
    let out = migrate(dir.path(), &server.url("127.0.0.1", &database, "sslmode=require")).await;
    assert!(out.status.success(), "migrate with sslmode=require: {}", stderr(&out));

    let url = server.verified_url(&database);
    let shop_key = user_add(dir.path(), &url, "shop", &["--merchant", "shop1"]).await;
    let admin_key = user_add(dir.path(), &url, "root", &["--admin"]).await;
    let node = Node::serve("tls", dir.path(), &[("HOOKD_DATABASE_URL", url.clone())]).await;
    let hook = json!({"topics": TOPIC, "url": "https://example.com/hook"});
    node.rpc("shop", &shop_key)
        .call_ok("webhook.create", json!([hook]))
        .await;
    let event_id = node
        .rpc("root", &admin_key)
        .publish(1)
        .await
        .expect("publishing through the TLS-connected node");

    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connecting with verify-full");
    let (topic, payloads): (String, i64) = sqlx::query_as("SELECT topic, payloads FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(&mut conn)
        .await
        .expect("the published event is stored");
    assert_eq!((topic.as_str(), payloads), (TOPIC, 1));
    node.assert_no_panic();
}

#[tokio::test]
async fn verify_ca_with_the_servers_ca_is_accepted() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = server.fresh_database().await;
    let params = format!("sslmode=verify-ca&sslrootcert={}", server.ca);
    let out = migrate(dir.path(), &server.url("localhost", &database, &params)).await;
    assert!(out.status.success(), "migrate with sslmode=verify-ca: {}", stderr(&out));
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The certificate names `localhost`; 127.0.0.1 is the same server under another name.
    let params = format!("sslmode=verify-full&sslrootcert={}", server.ca);
    let out = migrate(dir.path(), &server.url("127.0.0.1", "postgres", &params)).await;
    assert_refused(&out, &server, "certificate not valid for name \"127.0.0.1\"");
}

#[tokio::test]
async fn verify_full_without_the_servers_ca_is_refused() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), &server.url("localhost", "postgres", "sslmode=verify-full")).await;
    assert_refused(&out, &server, "certificate");
}

#[tokio::test]
async fn a_plain_connection_is_refused_by_the_tls_only_server() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), &server.url("localhost", "postgres", "sslmode=disable")).await;
    assert_refused(&out, &server, "pg_hba.conf");
}

#[tokio::test]
async fn without_sslmode_tls_is_tried_first_so_the_tls_only_server_is_reached() {
    let Some(server) = TlsServer::from_env("pg_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = server.fresh_database().await;
    let out = migrate(dir.path(), &server.url("localhost", &database, "")).await;
    assert!(
        out.status.success(),
        "migrate with the default sslmode (prefer): {}",
        stderr(&out)
    );
}
