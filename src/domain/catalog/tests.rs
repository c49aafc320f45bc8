use serde_json::json;

use super::*;

fn define(v: Value) -> Result<(CatalogEntry, Option<MessageSchema>), String> {
    Definition::from_json(&v)?.apply(None)
}

#[test]
fn shipped_entries_compile_and_their_examples_match() {
    let entries = shipped::entries();
    assert!(entries.iter().any(|e| e.topic == "order:created" && e.schema.is_some()));
    for e in &entries {
        if let (Some(s), Some(x)) = (&e.schema, &e.example) {
            MessageSchema::compile(s).unwrap().check(x).unwrap();
        }
    }
    let seed = shipped::seed(&crate::domain::Catalog::default_catalog());
    assert_eq!(seed.len(), 53);
}

#[test]
fn a_mismatch_names_the_path() {
    let (_, schema) = define(json!({"topic": "order:created", "schema": {
        "type": "object", "properties": {"order_id": {"type": "integer"}}}}))
    .unwrap();
    let err = schema.unwrap().check(&json!({"order_id": "x"})).unwrap_err();
    assert_eq!(err, r#"/order_id: "x" is not of type "integer""#);
}

#[test]
fn bad_definitions_say_what_is_wrong() {
    let cases = [
        (json!({"topic": "Order:created"}), "not of the form"),
        (json!({"topic": "a:b", "extra": 1}), "unknown field 'extra'"),
        (
            json!({"topic": "a:b", "description": 5}),
            "description must be a string",
        ),
        (
            json!({"topic": "a:b", "description": "x".repeat(1001)}),
            "longer than 1000",
        ),
        (
            json!({"topic": "a:b", "schema": {"type": "no-such-type"}}),
            "schema: is not valid",
        ),
        (
            json!({"topic": "a:b", "schema": {"$ref": "https://example.com/s.json"}}),
            "schema: is not valid",
        ),
        (
            json!({"topic": "a:b", "schema": {"$schema": "http://json-schema.org/draft-07/schema#"}}),
            "$schema must be",
        ),
        (json!({"topic": "a:b", "schema": 5}), "schema: must be a JSON object"),
        (json!({"topic": "a:b", "example": [1]}), "example must be a JSON object"),
        (
            json!({"topic": "a:b", "schema": {"required": ["id"]}, "example": {}}),
            "example does not match the schema: (root): \"id\" is a required property",
        ),
    ];
    for (v, want) in cases {
        let err = define(v.clone()).unwrap_err();
        assert!(err.contains(want), "{v}: {err}");
    }
}

#[test]
fn deep_and_huge_schemas_are_refused() {
    let mut deep = json!({"type": "object"});
    for _ in 0..40 {
        deep = json!({"properties": {"a": deep}});
    }
    let err = define(json!({"topic": "a:b", "schema": deep})).unwrap_err();
    assert!(err.contains("nested deeper than 32"), "{err}");
    let huge = json!({"description": "x".repeat(70 * 1024)});
    let err = define(json!({"topic": "a:b", "schema": huge})).unwrap_err();
    assert!(err.contains("more than the limit of 65536"), "{err}");
}

#[test]
fn absent_fields_keep_and_null_clears() {
    let (first, _) =
        define(json!({"topic": "a:b", "description": "d", "schema": {"type": "object"}, "example": {"x": 1}})).unwrap();
    let (kept, _) = Definition::from_json(&json!({"topic": "a:b"}))
        .unwrap()
        .apply(Some(&first))
        .unwrap();
    assert_eq!(kept, first);
    let (cleared, schema) = Definition::from_json(&json!({"topic": "a:b", "schema": null}))
        .unwrap()
        .apply(Some(&first))
        .unwrap();
    assert!(cleared.schema.is_none() && schema.is_none());
    assert_eq!(cleared.example, Some(json!({"x": 1})));
}
