//! Property tests of the provisioning methods' arguments (CONTRACT §7.1): whatever an admin
//! sends to `merchant.create`, `user.create`, `user.rotate_key` and `user.delete`, through
//! `call` or directly, the answer is a success or one of the method's documented codes,
//! never a panic or an internal error, and the server keeps serving.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

use crate::helpers::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,70}".prop_map(Value::String),
        "[a-z0-9._@-]{1,10}".prop_map(Value::String),
        prop_oneof![Just("admin"), Just("merchant"), Just("publisher"), Just("shop")].prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("username".to_string()),
                        Just("role".to_string()),
                        Just("merchant_code".to_string()),
                        Just("merchant_codes".to_string()),
                        Just("name".to_string()),
                        "[a-z_]{0,8}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn args() -> impl Strategy<Value = (usize, Value, bool)> {
    (
        0..4usize,
        prop::collection::vec(value(), 0..3).prop_map(Value::Array),
        any::<bool>(),
    )
}

const METHODS: [(&str, &[i64]); 4] = [
    ("merchant.create", &[101, 110, 6]),
    ("user.create", &[101, 110, 111, 6]),
    ("user.rotate_key", &[101, 112, 6]),
    ("user.delete", &[101, 112, 6]),
];

#[test]
fn provisioning_methods_answer_only_documented_codes_whatever_their_arguments() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let (admin, key, session) = runtime.block_on(async {
        let (admin, key) = app.create_admin().await;
        let made = app
            .call_basic(&admin, &key, "merchant.create", json!([{"merchant_code": "shop"}]))
            .await;
        assert_ok(&made);
        let session = app.login(&admin, &key).await;
        (admin, key, session)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&args(), |(which, args, direct)| {
        let (path, codes) = METHODS[which];
        let resp = runtime.block_on(async {
            if direct {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": path, "params": args});
                app.rpc_basic(&admin, &key, body).await.1
            } else {
                app.call(&session, path, args.clone()).await
            }
        });
        if resp.get("error").is_some_and(Value::is_null) {
            return Ok(());
        }
        let code = resp["error"]["code"].as_i64().unwrap_or(0);
        let allowed = code == -32602 || codes.iter().any(|n| code == -(32000 + n));
        if !allowed {
            return Err(TestCaseError::fail(format!("{path} {args}: {resp}")));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    runtime.block_on(app.assert_still_serving(&session));
}
