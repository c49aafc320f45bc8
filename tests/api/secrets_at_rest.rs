//! CONTRACT §7.3 secrets at rest (`HOOKD_ENCRYPTION_KEYS`): the database holds no secret in
//! clear, deliveries still sign with the secret the merchant was given, a value copied to
//! another row does not open, startup names a key the database needs and is not given (or
//! that does not open it), and `hookd secrets reencrypt` moves everything to the first key.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use hookd::domain::signing_keys::parse_public_key;
use hookd::domain::{Scope, StoredSecrets, WebhookId};
use hookd::sealing::Keyring;
use serde_json::json;

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K1_WRONG: &str = "k1:HxobHBkaGxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQ=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn keyring(text: &str) -> Arc<Keyring> {
    Arc::new(Keyring::parse(text).unwrap())
}

/// Whether the request's `v1a` entry verifies with `public_key` (`whpk_…`).
fn v1a_valid(public_key: &str, r: &Received) -> bool {
    let key = parse_public_key(public_key).unwrap();
    let signed = format!(
        "{}.{}.{}",
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap(),
        std::str::from_utf8(&r.body).unwrap()
    );
    r.header("webhook-signature").unwrap().split(' ').any(|e| {
        e.strip_prefix("v1a,")
            .and_then(|b| BASE64.decode(b).ok())
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .is_some_and(|s| key.verify(signed.as_bytes(), &s).is_ok())
    })
}

/// A webhook with a known secret and a key pair: (id, its private key's base64 as stored clear).
/// The webhook as the store reads it (secrets opened).
async fn stored_webhook(w: &World, id: i64) -> hookd::domain::Webhook {
    w.app
        .app
        .store
        .webhook_get(Scope::All, WebhookId(id))
        .await
        .unwrap()
        .unwrap()
}

async fn signed_hook(w: &World, secret: &str) -> (i64, String) {
    let hook = w
        .hook(
            json!({"topics": "order:created", "url": w.receiver.url("/s"), "secret_key": secret,
                     "signature_scheme": "hmac+ed25519"}),
        )
        .await;
    let id = id_of(&hook);
    let stored = stored_webhook(w, id).await;
    (id, stored.signing_key.expect("a private key"))
}

#[tokio::test]
async fn with_keys_no_secret_is_stored_in_clear_and_deliveries_still_verify() {
    let w = World::start_with(|c| c.encryption_keys = keyring(K1)).await;
    let secret = unique("plain-secret-for-at-rest-");
    let (id, private) = signed_hook(&w, &secret).await;
    assert_eq!(
        w.webhook(id).await["secret_key"],
        secret.as_str(),
        "the merchant sees the secret"
    );
    let public = w.webhook(id).await["public_key"].as_str().unwrap().to_string();

    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/s", 1, WAIT).await.remove(0);
    assert!(
        standard_webhooks_valid(&whsec(&secret), &r),
        "v1 verifies with the plain secret"
    );
    assert!(v1a_valid(&public, &r), "v1a verifies with the listed public key");

    // A rotation writes its new secret (and the moved one) sealed too.
    let rotated = unique("rotated-secret-at-rest-");
    assert_ok(
        &w.as_shop(
            "webhook.rotate_secret",
            json!([id, {"secret_key": rotated, "overlap": "1h"}]),
        )
        .await,
    );
    assert_eq!(w.webhook(id).await["secret_key"], rotated.as_str());

    for needle in [secret.as_str(), rotated.as_str(), private.as_str()] {
        assert_eq!(
            w.app.where_stored(needle).await,
            Vec::<String>::new(),
            "{needle} is stored in clear"
        );
    }
    if let Some(found) = pg_dump_holds(&w.app, &[&secret, &rotated, &private]) {
        assert!(!found, "pg_dump shows a secret in clear");
    }
}

#[tokio::test]
async fn without_keys_secrets_stay_in_clear_as_before() {
    // The other side of the test above: the same search finds the secret, so it can fail.
    let w = World::start().await;
    let secret = unique("plain-secret-in-clear-");
    let (_, private) = signed_hook(&w, &secret).await;
    assert!(!w.app.where_stored(&secret).await.is_empty());
    assert!(!w.app.where_stored(&private).await.is_empty());
    if let Some(found) = pg_dump_holds(&w.app, &[&secret]) {
        assert!(found, "pg_dump shows the clear secret");
    }
}

/// PostgreSQL only: whether a `pg_dump` of the test database shows any of `needles`.
fn pg_dump_holds(app: &TestApp, needles: &[&str]) -> Option<bool> {
    if app.backend() != Backend::Postgres {
        return None;
    }
    let out = Command::new("pg_dump")
        .arg(&app.config.database_url)
        .output()
        .expect("running pg_dump");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = String::from_utf8_lossy(&out.stdout);
    Some(needles.iter().any(|n| dump.contains(n)))
}

#[tokio::test]
async fn a_sealed_value_copied_to_another_row_does_not_open() {
    let w = World::start_with(|c| c.encryption_keys = keyring(K1)).await;
    let a = id_of(&w.hook_at("order:created", "/a").await);
    let b = id_of(&w.hook_at("order:created", "/b").await);
    w.app
        .execute_sql(&format!(
            "UPDATE webhooks SET secret_key = (SELECT secret_key FROM webhooks WHERE id = {a}) WHERE id = {b}"
        ))
        .await;
    let e = w.app.app.store.webhook_get(Scope::All, WebhookId(b)).await.unwrap_err();
    assert!(e.to_string().contains("key \"k1\""), "{e}");
    assert!(w.app.app.store.webhook_get(Scope::All, WebhookId(a)).await.is_ok());
}

/// Runs the real binary on the test's database with `keys` (None: unset).
fn hookd(app: &TestApp, keys: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookd"));
    command
        .args(args)
        .env("HOOKD_DATABASE_URL", &app.config.database_url)
        .env_remove("HOOKD_ENCRYPTION_KEYS")
        .env_remove("HOOKD_ENCRYPTION_KEYS_FILE")
        .env_remove("HOOKD_CONFIG");
    if let Some(keys) = keys {
        command.env("HOOKD_ENCRYPTION_KEYS", keys);
    }
    command.output().expect("running hookd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn startup_names_a_missing_or_wrong_key_in_one_line() {
    let mut w = World::start_with(|c| c.encryption_keys = keyring(K1)).await;
    w.hook_at("order:created", "/a").await;
    w.app.stop().await;
    let missing = "hookd: error: the database holds secrets encrypted with key \"k1\", \
                   which HOOKD_ENCRYPTION_KEYS does not give";
    for (keys, expected) in [
        (None, missing.to_string()),
        (Some(K2), missing.to_string()),
        (
            Some(K1_WRONG),
            "hookd: error: the database holds secrets encrypted with key \"k1\" that the key".to_string(),
        ),
    ] {
        let out = hookd(&w.app, keys, &["serve", "--listen", "127.0.0.1:0"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with(&expected), "{keys:?}: {err}");
        assert!(
            !err.contains(&K1[3..]) && !err.contains(&K1_WRONG[3..]),
            "key material shown: {err}"
        );
        // A command that reads secrets refuses the same way.
        let out = hookd(&w.app, keys, &["webhook", "list"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).lines().last().unwrap().starts_with(&expected));
    }
}

#[tokio::test]
async fn bad_key_lists_are_refused_in_one_line_without_key_material() {
    let app = TestApp::spawn().await;
    let key = &K1[3..];
    for (keys, says) in [
        ("", "is empty"),
        ("k1", "no ':'"),
        ("k1:c2hvcnQ=", "is 5 bytes, not 32"),
        (&format!("k1:{key},k1:{key}") as &str, "gives key id \"k1\" twice"),
        (&format!("bad id!:{key}") as &str, "a key id is 1 to 32 characters"),
        (&format!("{key}:k1") as &str, "a key id is 1 to 32 characters"),
        ("k1:***", "is not base64"),
    ] {
        let out = hookd(&app, Some(keys), &["webhook", "list"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{keys}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("HOOKD_ENCRYPTION_KEYS") && err.contains(says),
            "{keys}: {err}"
        );
        assert!(!err.contains(key), "{err}");
    }
}

fn counts(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn reencrypt_seals_clear_secrets_then_moves_them_to_a_new_key_and_reruns_change_nothing() {
    let mut w = World::start().await;
    let secret = unique("secret-before-encryption-");
    let (id, private) = signed_hook(&w, &secret).await;
    assert_ok(
        &w.as_shop(
            "webhook.rotate_secret",
            json!([id, {"secret_key": unique("next-"), "overlap": "1h"}]),
        )
        .await,
    );
    let current = w.webhook(id).await["secret_key"].as_str().unwrap().to_string();
    w.app.stop().await;

    let out = hookd(&w.app, Some(K1), &["secrets", "reencrypt"]);
    assert_eq!(
        counts(&out),
        "webhooks=1 rewritten=1 unchanged=0 changed_meanwhile=0 key=k1"
    );
    assert!(
        stderr(&out).contains("hookd: database"),
        "names the database: {}",
        stderr(&out)
    );
    let out = hookd(&w.app, Some(K1), &["secrets", "reencrypt"]);
    assert_eq!(
        counts(&out),
        "webhooks=1 rewritten=0 unchanged=1 changed_meanwhile=0 key=k1"
    );

    let both = format!("{K2},{K1}");
    let out = hookd(&w.app, Some(&both), &["secrets", "reencrypt"]);
    assert_eq!(
        counts(&out),
        "webhooks=1 rewritten=1 unchanged=0 changed_meanwhile=0 key=k2"
    );
    let stored = w
        .app
        .query_i64(&format!(
            "SELECT COUNT(*) FROM webhooks WHERE id = {id} AND secret_key LIKE 'enc:v1:k2:%' \
           AND signing_key LIKE 'enc:v1:k2:%' AND previous_keys LIKE '%enc:v1:k2:%' \
           AND previous_keys NOT LIKE '%enc:v1:k1:%'"
        ))
        .await;
    assert_eq!(stored, 1, "secret, private key and previous keys all under k2");
    // The old key can go: the server starts with k2 alone and signs with the same secret.
    w.app.config.encryption_keys = keyring(K2);
    w.app.restart().await;
    assert_eq!(w.webhook(id).await["secret_key"], current.as_str());
    let stored = stored_webhook(&w, id).await;
    assert_eq!(stored.previous_keys[0].secret_key, secret);
    assert_eq!(stored.previous_keys[0].signing_key.as_deref(), Some(private.as_str()));
    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/s", 1, WAIT).await.remove(0);
    assert!(standard_webhooks_valid(&whsec(&current), &r));
    assert!(
        standard_webhooks_valid(&whsec(&secret), &r),
        "the previous key signs during its overlap"
    );
}

#[tokio::test]
async fn a_secret_rotated_while_reencrypt_runs_is_kept() {
    let w = World::start_with(|c| c.encryption_keys = keyring(K1)).await;
    let id = id_of(&w.hook_at("order:created", "/a").await);
    let store = &w.app.app.store;
    // What reencrypt read, then a rotation by a serving node, then reencrypt's write.
    let read: Vec<StoredSecrets> = store.secrets_page(WebhookId(0), 500).await.unwrap();
    let rotated = unique("rotated-meanwhile-");
    assert_ok(
        &w.as_shop("webhook.rotate_secret", json!([id, {"secret_key": rotated}]))
            .await,
    );
    let stale = read[0].clone();
    let rewritten = StoredSecrets {
        secret_key: Keyring::parse(K1).unwrap().seal(id, "stale"),
        ..stale.clone()
    };
    assert_eq!(store.secrets_replace(vec![(stale, rewritten)]).await.unwrap(), 0);
    assert_eq!(w.webhook(id).await["secret_key"], rotated.as_str());
}
