//! Issue 9, property tests of the request-handling path: arbitrary bytes, arbitrary JSON
//! values and arbitrary request-shaped objects, posted to a real server, never break it and
//! always get a well-formed JSON-RPC answer: HTTP 200 with `"jsonrpc": "2.0"` and the
//! request's id (or null when it had none usable), 204 when only notifications were sent,
//! or 413 over the size limit. A few hundred cases, a few seconds.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::helpers::*;

const MAX_BODY: usize = 2048;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("login"),
            Just("call"),
            Just("2.0"),
            Just("webhook.list"),
            Just("event.publish")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Objects that look like requests: the envelope members, each present or not, with good or
/// arbitrary values, sometimes with an extra member.
fn request_like() -> impl Strategy<Value = Value> {
    let member = |good: BoxedStrategy<Value>| prop::option::of(prop_oneof![good, json_value().boxed()]);
    (
        member(prop_oneof![Just(Value::from("2.0")), Just(Value::from(2.0))].boxed()),
        member(
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                "[a-z0-9-]{0,8}".prop_map(Value::from)
            ]
            .boxed(),
        ),
        member(prop_oneof![Just(Value::from("login")), Just(Value::from("call"))].boxed()),
        member(
            prop_oneof![
                ("[a-z]{0,6}", "[a-f0-9]{0,8}").prop_map(|(u, k)| Value::from(vec![u, k])),
                (
                    json_value(),
                    "(webhook|topic|event|delivery|nosuch)\\.[a-z_]{0,12}",
                    json_value()
                )
                    .prop_map(|(s, p, a)| Value::Array(vec![s, Value::from(p), a])),
            ]
            .boxed(),
        ),
        prop::option::of(json_value()),
    )
        .prop_map(|(jsonrpc, id, method, params, extra)| {
            let mut obj = Map::new();
            for (name, value) in [("jsonrpc", jsonrpc), ("id", id), ("method", method), ("params", params)] {
                if let Some(v) = value {
                    obj.insert(name.into(), v);
                }
            }
            if let Some(v) = extra {
                obj.insert("extra".into(), v);
            }
            Value::Object(obj)
        })
}

/// What is posted, and what the answer must echo as its id when it is one object.
#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
    /// A login request whose id is a long run of digits, written as is.
    BigId(String),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Bytes(b) => b.clone(),
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
            Body::BigId(digits) => {
                format!(r#"{{"jsonrpc":"2.0","id":{digits},"method":"login","params":["u","k"]}}"#).into_bytes()
            }
        }
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
        json_value().prop_map(Body::Json),
        request_like().prop_map(Body::Json),
        prop::collection::vec(request_like(), 0..5).prop_map(|items| Body::Json(Value::Array(items))),
        "[1-9][0-9]{15,40}".prop_map(Body::BigId),
    ]
}

/// The id a single request object must be answered with: its own when it is a string or
/// a number, null otherwise (None: a notification, which may get no answer at all).
fn expected_id(request: &Value) -> Option<Value> {
    match request.as_object().map(|o| o.get("id")) {
        Some(None) => None,
        Some(Some(id @ (Value::String(_) | Value::Number(_)))) => Some(id.clone()),
        _ => Some(Value::Null),
    }
}

fn check_reply(reply: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(&reply["jsonrpc"], "2.0", "{}", reply);
    prop_assert!(reply.get("id").is_some(), "{}", reply);
    let error = reply.get("error").unwrap_or(&Value::Null);
    if error.is_null() {
        prop_assert!(reply.get("result").is_some(), "a success carries result: {}", reply);
    } else {
        prop_assert!(error["code"].is_i64() && error["message"].is_string(), "{}", reply);
        prop_assert!(reply.get("result").is_none_or(Value::is_null), "{}", reply);
    }
    Ok(())
}

fn check(body: &Body, status: StatusCode, text: &str) -> Result<(), TestCaseError> {
    let sent = body.bytes();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        prop_assert!(sent.len() > MAX_BODY, "413 for {} bytes", sent.len());
        let answer: Value = serde_json::from_str(text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        return check_reply(&answer);
    }
    if status == StatusCode::NO_CONTENT {
        // Only a request (or batch) of notifications goes unanswered.
        let parsed: Value = serde_json::from_slice(&sent).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let items = match &parsed {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        prop_assert!(items.iter().all(|i| expected_id(i).is_none()), "204 for {}", parsed);
        return Ok(());
    }
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let answer: Value = serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    match (&answer, body) {
        (Value::Array(replies), _) => {
            prop_assert!(!replies.is_empty());
            for reply in replies {
                check_reply(reply)?;
            }
        }
        (reply, Body::Json(request)) if request.is_object() => {
            check_reply(reply)?;
            // The id as the server read it: the posted text parsed back (serde_json's default
            // float parsing is not always exact, so the generated value may differ in its
            // last bit from what its own text parses to; the reply is compared as text would be).
            let posted: Value = serde_json::from_slice(&sent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Some(id) = expected_id(&posted) {
                prop_assert_eq!(&reply["id"], &id, "{}", reply);
            }
        }
        (reply, Body::BigId(digits)) => {
            check_reply(reply)?;
            prop_assert!(
                text.contains(&format!(r#""id":{digits},"#)),
                "{} not echoed in {}",
                digits,
                text
            );
        }
        (reply, _) => check_reply(reply)?,
    }
    Ok(())
}

#[test]
fn any_body_gets_a_well_formed_json_rpc_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn_with(|c| c.max_body_bytes = MAX_BODY));
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&body(), |body| {
        let (status, text) = runtime.block_on(async {
            let response = app
                .client
                .post(&app.endpoint)
                .header("content-type", "application/json")
                .body(body.bytes())
                .send()
                .await
                .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok::<_, TestCaseError>((status, text))
        })?;
        check(&body, status, &text)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // And the server is still fine.
    runtime.block_on(async {
        let session = app.admin_session().await;
        app.assert_still_serving(&session).await;
    });
}
