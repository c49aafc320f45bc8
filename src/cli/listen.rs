//! `hookd listen`: a local receiver for developers. It prints one JSON line per request on
//! stdout (`topic`, `increment_id`, whether each signature checks out, and the body as
//! received) and answers every request with the chosen status, so a webhook can be tried
//! without writing a receiver. The first line on stderr says `listening on <addr>`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use ed25519_dalek::VerifyingKey;

use crate::dispatch::signing::{plugin_signature, standard_signature};
use crate::domain::signing_keys::parse_public_key;

/// The most a request body may be; larger ones are answered 413 and printed without body.
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Address to listen on (port 0 picks one)
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// The webhook's secret_key (or its `whsec_…` form), to check both signatures
    #[arg(long)]
    pub secret: Option<String>,
    /// The webhook's Ed25519 public key (`whpk_…`, signature_scheme "hmac+ed25519"), to
    /// check its `v1a` signatures
    #[arg(long)]
    pub public_key: Option<String>,
    /// HTTP status to answer every request with
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(100..=599))]
    pub status: u16,
}

struct Listener {
    secret: Option<Vec<u8>>,
    public_key: Option<VerifyingKey>,
    status: StatusCode,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let status = StatusCode::from_u16(args.status).context("--status must be an HTTP status code")?;
    let state = Arc::new(Listener {
        secret: args.secret.as_deref().map(secret_bytes).transpose()?,
        public_key: args
            .public_key
            .as_deref()
            .map(|k| parse_public_key(k.trim()).map_err(|e| anyhow::anyhow!("--public-key: {e}")))
            .transpose()?,
        status,
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("listening on {}", listener.local_addr()?);
    let router = axum::Router::new()
        .fallback(receive)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

/// The raw key bytes hookd signs with: the `secret_key` as given, or decoded from `whsec_…`.
fn secret_bytes(secret: &str) -> anyhow::Result<Vec<u8>> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64
            .decode(encoded)
            .context("--secret starts with whsec_ but the rest is not base64"),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

async fn receive(State(state): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut line = describe(&headers, &body, state.secret.as_deref());
    line["asymmetric_signature_ok"] = json!(state
        .public_key
        .as_ref()
        .map(|key| asymmetric_signature_ok(key, &headers, &body)));
    let mut out = std::io::stdout().lock();
    // A closed stdout (`hookd listen | head`) must not take the receiver down.
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    state.status
}

/// The JSON line printed for one request.
fn describe(headers: &HeaderMap, body: &[u8], secret: Option<&[u8]>) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let topic = parsed.as_ref().and_then(|b| b.get("topic")).cloned();
    let increment_id = parsed
        .as_ref()
        .and_then(|b| b.pointer("/message/webhook_increment_id"))
        .cloned();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (signature_ok, standard_ok) = match secret {
        None => (None, None),
        Some(secret) => (
            Some(plugin_signature_ok(
                secret,
                body,
                header("x-plugin-hmac-sha256"),
                header("x-plugin-hmac-sha256-previous"),
            )),
            Some(standard_signature_ok(
                secret,
                body,
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
            )),
        ),
    };
    json!({
        "topic": topic,
        "increment_id": increment_id,
        "signature_ok": signature_ok,
        "standard_signature_ok": standard_ok,
        "body": String::from_utf8_lossy(body),
    })
}

/// `X-Plugin-Hmac-Sha256` is keyed with the current secret; during a secret rotation
/// `X-Plugin-Hmac-Sha256-Previous` carries the old one, so either may match the key given.
fn plugin_signature_ok(secret: &[u8], body: &[u8], current: Option<&str>, previous: Option<&str>) -> bool {
    let expected = plugin_signature(secret, body);
    [current, previous].into_iter().flatten().any(|given| given == expected)
}

/// `webhook-signature` holds one or more space-separated `v1,<base64>` entries.
fn standard_signature_ok(
    secret: &[u8],
    body: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
) -> bool {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp.and_then(|t| t.parse().ok()), signatures) else {
        return false;
    };
    let expected = standard_signature(secret, id, timestamp, body);
    signatures.split(' ').any(|entry| entry == expected)
}

/// Any `v1a,<base64>` entry of `webhook-signature` is an Ed25519 signature of
/// `id.timestamp.body` by `key`.
fn asymmetric_signature_ok(key: &VerifyingKey, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1a,"))
        .filter_map(|sig| BASE64.decode(sig).ok())
        .filter_map(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
        .any(|sig| key.verify_strict(&signed, &sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &[u8], body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-plugin-hmac-sha256", plugin_signature(secret, body).parse().unwrap());
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", "1700000000".parse().unwrap());
        let standard = standard_signature(secret, "msg_1", 1_700_000_000, body);
        h.insert("webhook-signature", format!("v1,b3RoZXI= {standard}").parse().unwrap());
        h
    }

    const BODY: &[u8] = br#"{"topic":"order:created","merchant_code":"m","message":{"id":1,"webhook_increment_id":7}}"#;

    #[test]
    fn a_signed_delivery_is_described_with_both_signatures_checked() {
        let line = describe(&signed(b"s3cret", BODY), BODY, Some(b"s3cret"));
        assert_eq!(line["topic"], "order:created");
        assert_eq!(line["increment_id"], 7);
        assert_eq!(line["signature_ok"], true);
        assert_eq!(
            line["standard_signature_ok"], true,
            "any entry of webhook-signature may match"
        );
        assert_eq!(line["body"].as_str().unwrap().as_bytes(), BODY);
    }

    #[test]
    fn the_wrong_secret_fails_both_checks_and_no_secret_checks_nothing() {
        let line = describe(&signed(b"s3cret", BODY), BODY, Some(b"other"));
        assert_eq!(
            (&line["signature_ok"], &line["standard_signature_ok"]),
            (&json!(false), &json!(false))
        );
        let line = describe(&signed(b"s3cret", BODY), BODY, None);
        assert_eq!(
            (&line["signature_ok"], &line["standard_signature_ok"]),
            (&Value::Null, &Value::Null)
        );
    }

    #[test]
    fn a_body_that_is_not_a_payload_still_prints() {
        let line = describe(&HeaderMap::new(), b"\xffnot json", Some(b"k"));
        assert_eq!(line["topic"], Value::Null);
        assert_eq!(line["signature_ok"], false);
        assert!(line["body"].as_str().unwrap().ends_with("not json"));
    }

    #[test]
    fn v1a_entries_are_checked_against_the_public_key() {
        use crate::dispatch::signing::asymmetric_signature;
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let mut h = signed(b"s3cret", BODY);
        let v1a = asymmetric_signature(&key, "msg_1", 1_700_000_000, BODY);
        let both = format!("{} {v1a}", h["webhook-signature"].to_str().unwrap());
        h.insert("webhook-signature", both.parse().unwrap());
        assert!(asymmetric_signature_ok(&key.verifying_key(), &h, BODY));
        let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert!(!asymmetric_signature_ok(&other, &h, BODY), "another key");
        assert!(
            !asymmetric_signature_ok(&key.verifying_key(), &h, b"tampered"),
            "another body"
        );
        assert!(
            !asymmetric_signature_ok(&key.verifying_key(), &signed(b"s3cret", BODY), BODY),
            "no v1a"
        );
    }

    #[test]
    fn a_whsec_secret_is_decoded_to_its_raw_bytes() {
        assert_eq!(secret_bytes("whsec_czNjcmV0").unwrap(), b"s3cret");
        assert_eq!(secret_bytes("plain").unwrap(), b"plain");
        assert!(secret_bytes("whsec_!!").is_err());
    }
}
