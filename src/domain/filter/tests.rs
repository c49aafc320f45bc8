//! Tests of `filter`: compile errors, evaluation, errors counting as false, depth, cache.

use super::*;
use crate::domain::steering::MAX_FILTER_BYTES;
use serde_json::json;

fn event(topic: &str, message: Value) -> BodyTemplate {
    BodyTemplate::new(topic, "shop1", message.as_object().unwrap(), 1_638_893_295_000)
}

fn passes(filter: &str, topic: &str, message: Value) -> bool {
    let body = event(topic, message);
    FilterInput::new(topic, &body).passes_program(&compile(filter).unwrap())
}

#[test]
fn a_bad_expression_gives_the_parser_s_message_with_its_position() {
    let e = compile("message.total >").unwrap_err().to_string();
    assert_eq!(e.split(':').next(), Some("line 1, column 16"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(compile("topic == ").is_err());
    assert!(compile("(message").is_err());
    assert!(compile("message.total > 100 && topic == \"order:created\"").is_ok());
}

#[test]
fn deep_expressions_are_refused_without_overflowing_any_stack() {
    let half = MAX_FILTER_BYTES / 2 - 2;
    let parens = format!("{}true{}", "(".repeat(half), ")".repeat(half));
    let negations = format!("{}true{}", "!(".repeat(half / 2), ")".repeat(half / 2));
    let lists = format!("{}1{}", "[".repeat(half), "]".repeat(half));
    let members = format!("message{}", ".a".repeat(half));
    for deep in [&parens, &negations, &lists, &members] {
        let e = compile(deep).unwrap_err().to_string();
        assert!(e.starts_with("line 1, column ") || e.contains("levels deep"), "{e}");
        assert!(e.len() < 1000, "a bounded message: {e}");
    }
    // A long chain of && is balanced by the parser: not deep.
    let chain = vec!["message.a == 1"; 280].join(" && ");
    assert!(shape::walk(compile(&chain).unwrap().expression()).depth < 16);
    // The deepest accepted tree evaluates on an ordinary (test) thread's stack.
    let n = MAX_DEPTH - 2;
    let deepest = format!("{}true{}", "!(".repeat(n), ")".repeat(n));
    assert!(shape::walk(compile(&deepest).unwrap().expression()).depth <= MAX_DEPTH);
    assert_eq!(passes(&deepest, "order:created", json!({})), n.is_multiple_of(2));
    // A macro (a comprehension) with a body as deep as accepted evaluates there too.
    let in_macro = |k: usize| format!("message.l.exists(x, {}x == 1{})", "!(".repeat(2 * k), ")".repeat(2 * k));
    let k = (1..).take_while(|&k| compile(&in_macro(k)).is_ok()).last().unwrap();
    assert!(k >= 5, "{k}");
    assert!(passes(&in_macro(k), "order:created", json!({"l": [1]})));
}

#[test]
fn an_expression_is_true_only_for_the_events_it_describes() {
    let f = "message.total > 100 && topic == \"order:created\"";
    assert!(passes(f, "order:created", json!({"total": 150})));
    assert!(!passes(f, "order:created", json!({"total": 50})));
    assert!(!passes(f, "order:updated", json!({"total": 150})));
    assert!(passes("message.price >= 9.5", "order:created", json!({"price": 9.75})));
    assert!(passes(
        "message.items.exists(i, i.sku == \"A\") && size(message.items) == 2",
        "order:created",
        json!({"items": [{"sku": "B"}, {"sku": "A"}]})
    ));
    assert!(passes(
        "message.customer.vip",
        "order:created",
        json!({"customer": {"vip": true}})
    ));
    assert!(passes("topic.startsWith(\"order:\")", "order:created", json!({})));
    assert!(passes(
        "message.big == 18446744073709551615u",
        "order:created",
        json!({"big": u64::MAX})
    ));
}

#[test]
fn an_evaluation_error_or_a_non_bool_result_counts_as_false() {
    let m = json!({"total": 150, "name": "x"});
    for f in [
        "message.missing == 1",    // no such field
        "!(message.missing == 1)", // an error stays an error when negated
        "message.name > 100",      // no such overload
        "message.total",           // an int, not a bool
        "message.total / 0 == 1",  // division by zero
        "nosuchvariable",          // undeclared
    ] {
        assert!(!passes(f, "order:created", m.clone()), "{f}");
    }
}

#[test]
fn hookd_s_own_fields_are_not_part_of_the_message() {
    let m = json!({"a": 1, "webhook_increment_id": 5});
    assert!(passes(
        "!has(message.webhook_increment_id) && !has(message.event_timestamp)",
        "order:created",
        m
    ));
    assert!(passes("size(message) == 0", "order:created", json!({})));
}

#[test]
fn the_cache_is_bounded_and_keeps_what_is_used() {
    let cache = ProgramCache::new(2);
    let first = cache.get("1 == 1").unwrap();
    for i in 0..10 {
        cache.get(&format!("{i} == {i}"));
        assert!(Arc::ptr_eq(&first, &cache.get("1 == 1").unwrap()), "kept while in use");
        assert!(cache.len() <= 4);
    }
    assert!(cache.get("1 ==").is_none(), "a stored expression that does not compile");
}

#[test]
fn a_stored_expression_that_does_not_compile_matches_nothing() {
    let body = event("order:created", json!({}));
    let input = FilterInput::new("order:created", &body);
    assert!(!input.passes("true &&"));
    assert!(input.passes("true"));
}

#[test]
fn list_macros_cost_at_most_the_message_times_the_expression() {
    // One macro over a list of the message, reading its element (and the topic): fine.
    assert!(compile("message.items.all(x, x.qty > 0 && topic != '')").is_ok());
    assert!(passes(
        "message.items.exists(i, i.sku == 'A-1')",
        "order:created",
        json!({"items": [{"sku": "B-2"}, {"sku": "A-1"}]})
    ));
    // A macro inside another's body multiplies two lengths; reading the message inside a
    // body multiplies its size by the list's. Both are refused with what to do instead.
    for (source, says) in [
        (
            "message.items.all(x, message.items.exists(y, y == x))",
            "inside another",
        ),
        ("[1, 2].all(a, [3, 4].exists(b, a < b))", "inside another"),
        ("message.items.exists(x, message.note.contains(x.sku))", "not message"),
        ("message.items.map(x, message).size() > 0", "not message"),
    ] {
        match compile(source) {
            Err(CompileError::Invalid(message)) => assert!(message.contains(says), "{source}: {message}"),
            other => panic!("{source}: {:?}", other.map(|_| "compiled")),
        }
    }
}

/// The 1.8 KB expression: a macro over 900 literal elements, each turn matching the
/// topic against a pattern that compiles to megabytes.
fn stall_expression() -> String {
    format!(
        "[{}].exists(i, topic.matches(\"\\\\w{{300}}\"))",
        vec!["0"; 900].join(",")
    )
}

#[test]
fn what_is_certain_to_cost_too_much_is_refused_when_a_filter_is_set() {
    let refused = |source: &str| match compile(source) {
        Err(CompileError::Invalid(message)) => message,
        other => panic!("{source}: {:?}", other.map(|_| "compiled")),
    };
    let stall = stall_expression();
    assert!(stall.len() > 1700 && stall.len() <= MAX_FILTER_BYTES);
    assert!(
        refused(&stall).contains("900 elements, more than 256"),
        "{}",
        refused(&stall)
    );
    // A shorter list, but a body big enough that the turns times its size is too much.
    let body = vec!["topic == 'x'"; 20].join(" || ");
    let wide = format!("[{}].exists(i, {body})", vec!["0"; 250].join(","));
    assert!(
        refused(&wide).contains("list macro over a literal list"),
        "{}",
        refused(&wide)
    );
    // A literal pattern that compiles too large, or not at all.
    assert!(refused("topic.matches('\\\\w{300}')").contains("compiles to more than"));
    assert!(refused("matches(topic, '(order')").contains("not a valid regular expression"));
    assert!(!refused("matches(topic, '(order')").contains('\n'));
    // What a merchant writes in practice is accepted.
    assert!(compile("topic.matches('^order:(created|updated)$')").is_ok());
    assert!(compile(&format!("message.sku in [{}]", vec!["'a'"; 256].join(","))).is_ok());
    assert!(compile("['order:created', 'order:updated'].exists(t, topic == t)").is_ok());
}

#[test]
fn a_stored_costly_expression_keeps_evaluating_but_within_its_budget() {
    let body = event("order:created", json!({}));
    let input = FilterInput::new("order:created", &body);
    // Stored before the rules above: still evaluated (an old filter keeps working), and a
    // pattern that does not compile is compiled once, not once per turn.
    let started = std::time::Instant::now();
    assert!(!input.passes(&stall_expression()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let listed = format!("topic in [{}, 'order:created']", vec!["'a'"; 400].join(","));
    assert!(input.passes(&listed), "an old long list still matches");
    // Each turn reads the topic 30 times: over the step budget long before the last
    // element, which would make it true. Over budget is false, and counted.
    let reads = vec!["topic == 'x'"; 30].join(" || ");
    let costly = format!(
        "[{}].exists(i, {reads} || i == 999)",
        (0..1000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    assert!(
        costly.len() <= MAX_FILTER_BYTES * 4,
        "a test expression, never stored through the API"
    );
    let counted = OVER_BUDGET.get();
    PROGRAMS.get(&costly).expect("compiles, as a stored filter");
    // False proves it was stopped: run to its end it is true (`i == 999`). No wall-clock
    // bound here: on a loaded machine the thread waits for a core longer than it runs.
    assert!(!input.passes(&costly));
    assert!(OVER_BUDGET.get() > counted, "counted in hookd_filter_over_budget_total");
    // The same expression over a short list is within budget, and true.
    let cheap = format!("[998, 999].exists(i, {reads} || i == 999)");
    assert!(input.passes(&cheap));
}

#[test]
fn verdicts_judge_each_filter_once_and_keep_the_first_answer() {
    let body = event("order:created", json!({"total": 150}));
    let big: Arc<str> = "message.total > 100".into();
    let small: Arc<str> = "message.total < 10".into();
    let mut v = Verdicts::judge("order:created", &body, [&big, &small, &big]);
    assert_eq!(
        (v.get(&big), v.get(&small), v.get("true")),
        (Some(true), Some(false), None)
    );
    v.extend(Verdicts::judge("order:created", &body, [&"true".into()]));
    assert_eq!(v.get("true"), Some(true));
}
