//! `rpc.discover` (CONTRACT.md §6.3): an OpenRPC document of every method, and every method
//! it names is one the server actually serves (and none it serves is missing).

use serde_json::{json, Value};

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let (status, resp) = app
        .rpc(json!({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
        .await;
    assert_eq!(status, 200);
    assert_ok(&resp).clone()
}

#[tokio::test]
async fn rpc_discover_needs_no_credentials_and_returns_an_openrpc_document() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openrpc"].as_str().unwrap().starts_with("1."), "{}", doc["openrpc"]);
    assert_eq!(doc["info"]["title"], "hookd");
    for m in doc["methods"].as_array().unwrap() {
        assert!(
            m["name"].is_string() && m["params"].is_array() && m["result"].is_object(),
            "{m}"
        );
    }
}

#[tokio::test]
async fn every_described_method_is_served_and_every_served_method_is_described() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let names: Vec<String> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    for top in ["login", "call", "rpc.discover"] {
        assert!(names.iter().any(|n| n == top), "{top} is described");
    }
    let (admin, key) = app.create_admin().await;
    let session = app.login(&admin, &key).await;
    // Every resource method answers something other than "unknown resource" (3) or "not a
    // method" (4), even with no arguments.
    let described: Vec<&String> = names
        .iter()
        .filter(|n| n.contains('.') && *n != "rpc.discover")
        .collect();
    assert!(described.len() >= 10, "{described:?}");
    for path in &described {
        let resp = app.call(&session, path, json!([])).await;
        let code = resp["error"]["code"].as_i64();
        assert!(
            code != Some(-32003) && code != Some(-32004),
            "{path} is described but not served: {resp}"
        );
    }
    // And the call method's list of paths is exactly the described ones.
    let call = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "call")
        .unwrap();
    let paths: Vec<&str> = call["params"][1]["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, described.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    // A method of a described resource that is not in the document is not served.
    let resp = app.call(&session, "webhook.nosuch", json!([])).await;
    assert_eq!(resp["error"]["code"], -32004, "{resp}");
}

/// Checked against the official meta-schema (npm `@open-rpc/meta-schema`) when
/// `HOOKD_OPENRPC_CHECK` names a folder where it is installed with `@json-schema-tools/meta-schema`
/// and `ajv@8` (`.ci/run` does).
#[tokio::test]
async fn the_document_is_valid_against_the_official_openrpc_meta_schema() {
    let Ok(root) = std::env::var("HOOKD_OPENRPC_CHECK") else {
        skipped("the OpenRPC meta-schema check", "set HOOKD_OPENRPC_CHECK (see .ci/run)");
        return;
    };
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openrpc/validate.cjs");
    node_validates(script, &root, &doc, "the OpenRPC document").await;
}
