//! `webhook.rotate_secret` with a real receiver: during the overlap both keys sign (both
//! plugin headers, and a `webhook-signature` that the official Standard Webhooks verifier
//! accepts with either secret), across a restart; a key replaced with no overlap stops
//! signing at once, while an earlier previous key keeps its announced expiry.

use std::time::Duration;

use serde_json::{json, Value};

use crate::delivery_support::*;
use crate::helpers::*;
use crate::receiver::*;

const WAIT: Duration = Duration::from_secs(10);

/// Verifies a request with the official `standardwebhooks` Python package (pip install
/// standardwebhooks); None when python3 or the package is not installed.
fn official_verifier_accepts(secret_key: &str, r: &Received) -> Option<bool> {
    const SCRIPT: &str = r#"
import sys
from standardwebhooks import Webhook
secret, body, wid, ts, sig = sys.argv[1:6]
try:
    Webhook(secret).verify(body, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig})
    print("OK")
except Exception as e:
    print("REFUSED", e)
"#;
    let probe = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .ok()?;
    if !probe.status.success() {
        println!("note: the python standardwebhooks package is not installed; skipping the official verifier");
        return None;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(whsec(secret_key))
        .arg(std::str::from_utf8(&r.body).unwrap())
        .arg(r.header("webhook-id").unwrap())
        .arg(r.header("webhook-timestamp").unwrap())
        .arg(r.header("webhook-signature").unwrap())
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Some(stdout.trim() == "OK")
}

fn signs_with(r: &Received, secret: &str) -> (bool, bool) {
    let plugin = r.header("x-plugin-hmac-sha256") == Some(plugin_signature(secret, &r.body).as_str());
    (plugin, standard_webhooks_valid(&whsec(secret), r))
}

#[tokio::test]
async fn during_the_overlap_both_keys_sign_and_afterwards_only_the_new_one() {
    let mut w = World::start().await;
    let id = id_of(
        &w.hook(json!({"topics": "order:created", "url": w.receiver.url("/rot"), "secret_key": "old-secret-key"}))
            .await,
    );
    let resp = w
        .as_shop(
            "webhook.rotate_secret",
            json!([id, {"secret_key": "new-secret-key", "overlap": "1h"}]),
        )
        .await;
    let result = assert_ok(&resp);
    assert_eq!(result["secret_key"], "new-secret-key");
    let expires = payload_timestamp(result["previous_expires_at"].as_str().unwrap()).expect("ISO-8601");
    assert!((expires - unix_now() - 3600).abs() <= 5, "{result}");
    assert_eq!(w.webhook(id).await["secret_key"], "new-secret-key");

    // The overlap is stored: it outlives a restart.
    w.app.restart().await;
    w.publish_ok("order:created", json!({"n": 1})).await;
    let r = w.receiver.wait_for("/rot", 1, WAIT).await.remove(0);
    assert_eq!(signs_with(&r, "new-secret-key"), (true, true));
    assert_eq!(
        r.header("x-plugin-hmac-sha256-previous"),
        Some(plugin_signature("old-secret-key", &r.body).as_str())
    );
    assert!(standard_webhooks_valid(&whsec("old-secret-key"), &r));
    let signatures: Vec<&str> = r.header("webhook-signature").unwrap().split(' ').collect();
    assert_eq!(signatures.len(), 2, "v1,<new> v1,<old>");
    if let Some(new_ok) = official_verifier_accepts("new-secret-key", &r) {
        assert!(new_ok, "the official verifier accepts the new secret");
        assert_eq!(
            official_verifier_accepts("old-secret-key", &r),
            Some(true),
            "and the old one"
        );
        assert_eq!(official_verifier_accepts("some-other-key", &r), Some(false));
    }

    // No overlap: the replaced key stops signing at once; the first rotation's previous key
    // keeps signing until the expiry that rotation announced (CONTRACT §7.3).
    let resp = w.as_shop("webhook.rotate_secret", json!([id, {"overlap": "0s"}])).await;
    let newest = assert_ok(&resp)["secret_key"].as_str().unwrap().to_string();
    assert!(newest.len() >= 22, "a generated key: {newest}");
    w.publish_ok("order:created", json!({"n": 2})).await;
    let r = w.receiver.wait_for("/rot", 2, WAIT).await.remove(1);
    assert_eq!(signs_with(&r, &newest), (true, true));
    assert_eq!(signs_with(&r, "new-secret-key"), (false, false));
    assert!(
        standard_webhooks_valid(&whsec("old-secret-key"), &r),
        "kept as announced"
    );
    assert_eq!(
        r.header("x-plugin-hmac-sha256-previous"),
        Some(plugin_signature("old-secret-key", &r.body).as_str())
    );
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 2);
    if let Some(ok) = official_verifier_accepts(&newest, &r) {
        assert!(ok);
        assert_eq!(official_verifier_accepts("new-secret-key", &r), Some(false));
    }
}

#[tokio::test]
async fn rotation_options_are_validated() {
    let w = World::start().await;
    let id = id_of(&w.hook_at("order:created", "/v").await);
    let before = w.webhook(id).await["secret_key"].clone();
    for (opts, field) in [
        (json!({"overlap": "31d"}), "overlap"),
        (json!({"overlap": "soon"}), "overlap"),
        (json!({"overlap": 60}), "overlap"),
        (json!({"secret_key": ""}), "secret_key"),
        (json!({"grace": "1h"}), "grace"),
        (json!("24h"), "object"),
    ] {
        assert_invalid_data(&w.as_shop("webhook.rotate_secret", json!([id, opts])).await, field);
    }
    assert_eq!(w.webhook(id).await["secret_key"], before, "nothing rotated");
    // With no options: a generated key and a day's overlap.
    let resp = w.as_shop("webhook.rotate_secret", json!([id])).await;
    let result = assert_ok(&resp);
    assert_ne!(result["secret_key"], before);
    let expires = payload_timestamp(result["previous_expires_at"].as_str().unwrap()).unwrap();
    assert!((expires - unix_now() - 24 * 3600).abs() <= 5, "{result}");
    let _: &Value = result;
}
