//! CONTRACT §7.3 signatures: `signature_scheme` "hmac+ed25519" adds Standard Webhooks `v1a`
//! (Ed25519) entries, checked here by an independent verifier (Python `cryptography`);
//! rotations keep every previous key (HMAC and Ed25519) until the expiry its own rotation
//! announced, at most three at once.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::json;

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// How many `v1a` entries of the request verify with `public_key` (`whpk_…`), checked by
/// Python's `cryptography` package; None (said on stderr) when it is not installed.
fn python_verified(public_key: &str, r: &Received) -> Option<usize> {
    const SCRIPT: &str = r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature
key, body, wid, ts, header = sys.argv[1:6]
assert key.startswith("whpk_")
public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key[5:]))
signed = (wid + "." + ts + ".").encode() + body.encode()
ok = 0
for entry in header.split(" "):
    version, _, sig = entry.partition(",")
    if version != "v1a":
        continue
    try:
        public.verify(base64.b64decode(sig), signed)
        ok += 1
    except InvalidSignature:
        pass
print(ok)
"#;
    let probe = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .ok()?;
    if !probe.status.success() {
        skipped(
            "python_verified",
            "python3 with the cryptography package is not installed",
        );
        return None;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, public_key])
        .arg(std::str::from_utf8(&r.body).unwrap())
        .arg(r.header("webhook-id").unwrap())
        .arg(r.header("webhook-timestamp").unwrap())
        .arg(r.header("webhook-signature").unwrap())
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Some(stdout.trim().parse().unwrap())
}

fn entries<'a>(r: &'a Received, version: &str) -> Vec<&'a str> {
    let prefix = format!("{version},");
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .filter(|e| e.starts_with(&prefix))
        .collect()
}

fn public_key_of(hook: &serde_json::Value) -> String {
    let key = hook["public_key"].as_str().expect("a public key").to_string();
    assert!(key.starts_with("whpk_"), "{key}");
    assert_eq!(BASE64.decode(&key[5..]).unwrap().len(), 32);
    key
}

#[tokio::test]
async fn ed25519_signatures_verify_independently_and_rotate_with_an_overlap() {
    let mut w = World::start().await;
    let hook = w
        .hook(
            json!({"topics": "order:created", "url": w.receiver.url("/ed"), "secret_key": "hmac-key",
                     "signature_scheme": "hmac+ed25519"}),
        )
        .await;
    let id = id_of(&hook);
    assert_eq!(hook["signature_scheme"], "hmac+ed25519");
    let first = public_key_of(&hook);
    let listed = hook.to_string();
    assert!(
        !listed.contains("signing_key") && !listed.contains("private"),
        "{listed}"
    );

    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/ed", 1, WAIT).await.remove(0);
    assert_eq!(
        (entries(&r, "v1").len(), entries(&r, "v1a").len()),
        (1, 1),
        "{:?}",
        r.header("webhook-signature")
    );
    assert!(standard_webhooks_valid(&whsec("hmac-key"), &r), "v1 still verifies");
    if let Some(ok) = python_verified(&first, &r) {
        assert_eq!(ok, 1, "Python verifies the v1a signature with the listed public key");
        let other = format!("whpk_{}", BASE64.encode([9u8; 32]));
        assert_eq!(python_verified(&other, &r), Some(0), "and no other key");
    }

    // Rotation replaces the pair; during the overlap both pairs sign, across a restart.
    let resp = w.as_shop("webhook.rotate_secret", json!([id, {"overlap": "1h"}])).await;
    assert_ok(&resp);
    let second = public_key_of(&w.webhook(id).await);
    assert_ne!(second, first);
    w.app.restart().await;
    w.publish_ok("order:created", json!({"n": 2})).await;
    let r = w.receiver.wait_for("/ed", 2, WAIT).await.remove(1);
    assert_eq!((entries(&r, "v1").len(), entries(&r, "v1a").len()), (2, 2));
    if let Some(ok) = python_verified(&second, &r) {
        assert_eq!(ok, 1);
        assert_eq!(
            python_verified(&first, &r),
            Some(1),
            "the previous pair signs during the overlap"
        );
    }

    // Switching to "hmac" drops the pair: no v1a at all, not even from previous keys.
    assert_ok(
        &w.as_shop("webhook.update", json!([id, {"signature_scheme": "hmac"}]))
            .await,
    );
    let off = w.webhook(id).await;
    assert_eq!(
        (&off["signature_scheme"], &off["public_key"]),
        (&json!("hmac"), &json!(null))
    );
    w.publish_ok("order:created", json!({"n": 3})).await;
    let r = w.receiver.wait_for("/ed", 3, WAIT).await.remove(2);
    assert_eq!((entries(&r, "v1").len(), entries(&r, "v1a").len()), (2, 0));
    // And switching on again makes a new pair.
    assert_ok(
        &w.as_shop("webhook.update", json!([id, {"signature_scheme": "hmac+ed25519"}]))
            .await,
    );
    let third = public_key_of(&w.webhook(id).await);
    assert!(third != first && third != second);
}

#[tokio::test]
async fn the_scheme_defaults_to_hmac_and_bad_values_are_refused_naming_the_field() {
    let w = World::start().await;
    let hook = w.hook_at("order:created", "/plain").await;
    let id = id_of(&hook);
    assert_eq!(
        (&hook["signature_scheme"], &hook["public_key"]),
        (&json!("hmac"), &json!(null))
    );
    let before = w.app.list_webhooks(&w.shop).await.len();
    for bad in [
        json!("ed25519"),
        json!("HMAC"),
        json!(""),
        json!(1),
        json!(true),
        json!(["hmac"]),
        json!({"scheme": "hmac"}),
        json!("hmac+ed25519\u{0}"),
        json!("x".repeat(100_000)),
    ] {
        let create = w
            .app
            .create_webhook(
                &w.shop,
                json!({"topics": "order:created", "url": w.receiver.url("/x"), "signature_scheme": bad}),
            )
            .await;
        assert_invalid_data(&create, "signature_scheme");
        assert!(create.to_string().len() < 1000, "the message does not echo huge values");
        assert_invalid_data(
            &w.as_shop("webhook.update", json!([id, {"signature_scheme": bad}]))
                .await,
            "signature_scheme",
        );
    }
    assert_eq!(w.app.list_webhooks(&w.shop).await.len(), before, "nothing created");
    assert_eq!(w.webhook(id).await["signature_scheme"], "hmac", "nothing changed");

    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/plain", 1, WAIT).await.remove(0);
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 1, "v1 only");
    assert!(entries(&r, "v1a").is_empty());

    // Another merchant can neither switch nor rotate it.
    let other = w.app.merchant_session(&unique("other")).await;
    for (method, args) in [
        ("webhook.update", json!([id, {"signature_scheme": "hmac+ed25519"}])),
        ("webhook.rotate_secret", json!([id])),
    ] {
        let resp = w.app.call(&other, method, args).await;
        assert!(resp.get("error").is_some(), "{method}: {resp}");
    }
    assert_eq!(w.webhook(id).await["public_key"], json!(null));
}

#[tokio::test]
async fn overlaps_are_kept_as_announced_and_a_fourth_rotation_is_refused() {
    let w = World::start().await;
    let id = id_of(
        &w.hook(
            json!({"topics": "order:created", "url": w.receiver.url("/keep"), "secret_key": "key-0",
                       "signature_scheme": "hmac+ed25519"}),
        )
        .await,
    );
    let mut public_keys = vec![public_key_of(&w.webhook(id).await)];
    for (n, overlap) in [(1, "3h"), (2, "1h"), (3, "2h")] {
        let resp = w
            .as_shop(
                "webhook.rotate_secret",
                json!([id, {"secret_key": format!("key-{n}"), "overlap": overlap}]),
            )
            .await;
        assert_ok(&resp);
        public_keys.push(public_key_of(&w.webhook(id).await));
    }
    // A fourth within the overlaps: refused, saying when the oldest (key-1's, 1 h) expires.
    let resp = w
        .as_shop(
            "webhook.rotate_secret",
            json!([id, {"secret_key": "key-4", "overlap": "1h"}]),
        )
        .await;
    assert_invalid_data(&resp, "overlap");
    let message = resp["error"]["message"].as_str().unwrap();
    let expiry = message
        .split_whitespace()
        .find_map(|word| payload_timestamp(word.trim_end_matches([':', ',', '.'])))
        .unwrap_or_else(|| panic!("the message says when: {message}"));
    assert!((expiry - unix_now() - 3600).abs() <= 5, "{message}");
    assert_eq!(w.webhook(id).await["secret_key"], "key-3", "nothing rotated");

    // Every previous key signs: the first rotation's was not dropped by the later ones.
    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/keep", 1, WAIT).await.remove(0);
    for n in 0..=3 {
        assert!(
            standard_webhooks_valid(&whsec(&format!("key-{n}")), &r),
            "key-{n} signs (v1)"
        );
    }
    assert_eq!((entries(&r, "v1").len(), entries(&r, "v1a").len()), (4, 4));
    assert_eq!(
        r.header("x-plugin-hmac-sha256"),
        Some(plugin_signature("key-3", &r.body).as_str())
    );
    assert_eq!(
        r.header("x-plugin-hmac-sha256-previous"),
        Some(plugin_signature("key-2", &r.body).as_str()),
        "the newest previous key"
    );
    for key in &public_keys {
        if python_verified(key, &r) == Some(0) {
            panic!("{key} does not sign");
        }
    }

    // An overlap of 0 keeps no previous key, so it is accepted even now.
    assert_ok(
        &w.as_shop(
            "webhook.rotate_secret",
            json!([id, {"secret_key": "key-5", "overlap": "0s"}]),
        )
        .await,
    );
    w.publish_ok("order:created", json!({"n": 2})).await;
    let r = w.receiver.wait_for("/keep", 2, WAIT).await.remove(1);
    assert_eq!(entries(&r, "v1").len(), 4, "key-5 and the three previous keys");
    assert!(!standard_webhooks_valid(&whsec("key-3"), &r), "key-3 went at once");
}
