//! What a filter's expression tree is allowed to look like, checked when a webhook is
//! created or updated, so that what is certain to cost too much never gets stored: depth
//! (evaluation recurses once per level), list macros inside list macros (the product of two
//! lengths), `message` read inside a macro's body (the message's size times the list's),
//! long list literals and macros over them (the literal's length times the body's size),
//! and `matches()` patterns that do not compile or compile too large.

use cel::common::ast::{EntryExpr, Expr, LiteralValue, MapExpr, StructExpr};
use cel::IdedExpr;

use super::matches::pattern_regex;

/// Deepest expression tree accepted: evaluation recurses once per level, on whatever
/// thread evaluates, so the depth is what bounds its stack.
pub const MAX_DEPTH: usize = 32;
/// Most elements in one list literal.
pub const MAX_LIST_LITERAL: usize = 256;
/// Most work a list macro over a literal list may do: the list's length times the nodes of
/// the macro's body (each turn evaluates the body once).
pub const MAX_LITERAL_LOOP: usize = 4096;

/// Which rules a tree is held to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// A new filter (webhook create or update): every rule.
    New,
    /// A filter already stored: only the rules that keep an evaluation's stack and loops
    /// bounded (depth, nested macros, `message` in a macro), which every stored filter was
    /// held to. The newer rules are left to the evaluation budget, so that a filter stored
    /// before them keeps working as it did.
    Stored,
}

/// Why a tree is refused, in words for the caller; None when it is accepted.
pub fn refusal(root: &IdedExpr, rules: Rules) -> Option<String> {
    let found = walk(root);
    if found.depth > MAX_DEPTH {
        return Some(format!(
            "the expression is nested {} levels deep, more than {MAX_DEPTH}",
            found.depth
        ));
    }
    if found.nested_loops {
        return Some("a list macro (all, exists, exists_one, map, filter) may not be used inside another".into());
    }
    if found.message_in_loop {
        return Some("inside a list macro (all, exists, exists_one, map, filter) use its element, not message".into());
    }
    if rules == Rules::Stored {
        return None;
    }
    if found.longest_list > MAX_LIST_LITERAL {
        return Some(format!(
            "a list literal has {} elements, more than {MAX_LIST_LITERAL}",
            found.longest_list
        ));
    }
    if found.literal_loop > MAX_LITERAL_LOOP {
        return Some(format!(
            "a list macro over a literal list costs its length times its body ({}), more than {MAX_LITERAL_LOOP}: \
             shorten the list, or use `in`",
            found.literal_loop
        ));
    }
    found.bad_pattern
}

/// What a walk of the tree found.
pub struct Shape {
    pub depth: usize,
    /// A list macro inside another one's body: the product of two lengths.
    nested_loops: bool,
    /// `message` read inside a list macro's body: the message's size times the list's.
    message_in_loop: bool,
    longest_list: usize,
    /// The costliest macro over a list literal: its length times its body's nodes.
    literal_loop: usize,
    /// The first literal `matches()` pattern that does not compile, and why.
    bad_pattern: Option<String>,
}

/// Walks the tree without recursion (macros count as what they expand to), so a deep tree
/// cannot overflow the walk either.
pub fn walk(root: &IdedExpr) -> Shape {
    let mut found = Shape {
        depth: 0,
        nested_loops: false,
        message_in_loop: false,
        longest_list: 0,
        literal_loop: 0,
        bad_pattern: None,
    };
    // (node, its depth, whether it is inside a list macro's body)
    let mut todo: Vec<(&IdedExpr, usize, bool)> = vec![(root, 1, false)];
    while let Some((node, d, in_loop)) = todo.pop() {
        found.depth = found.depth.max(d);
        let d = d + 1;
        match &node.expr {
            Expr::Call(call) => {
                if call.func_name == "matches" && found.bad_pattern.is_none() {
                    found.bad_pattern = literal_pattern_error(call.args.last());
                }
                todo.extend(call.target.iter().map(|t| (&**t, d, in_loop)));
                todo.extend(call.args.iter().map(|a| (a, d, in_loop)));
            }
            Expr::Comprehension(c) => {
                found.nested_loops |= in_loop;
                if let Expr::List(list) = &c.iter_range.expr {
                    let body = nodes(&c.loop_step) + nodes(&c.loop_cond);
                    found.literal_loop = found.literal_loop.max(list.elements.len().saturating_mul(body));
                }
                // The range and the start are evaluated once; the rest once per element.
                todo.extend([&c.iter_range, &c.accu_init].map(|e| (e, d, in_loop)));
                todo.extend([&c.loop_cond, &c.loop_step, &c.result].map(|e| (e, d, true)));
            }
            Expr::List(list) => {
                found.longest_list = found.longest_list.max(list.elements.len());
                todo.extend(list.elements.iter().map(|e| (e, d, in_loop)))
            }
            Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => {
                for entry in entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => todo.extend([(&e.key, d, in_loop), (&e.value, d, in_loop)]),
                        EntryExpr::StructField(f) => todo.push((&f.value, d, in_loop)),
                    }
                }
            }
            Expr::Select(select) => todo.push((&select.operand, d, in_loop)),
            Expr::Ident(name) => found.message_in_loop |= in_loop && name == "message",
            Expr::Unspecified | Expr::Literal(_) => {}
        }
    }
    found
}

/// Why `matches()`'s pattern, when written as a literal, does not compile.
fn literal_pattern_error(pattern: Option<&IdedExpr>) -> Option<String> {
    match &pattern?.expr {
        Expr::Literal(LiteralValue::String(p)) => pattern_regex(p.inner()).err().map(|why| why.to_string()),
        _ => None,
    }
}

/// The nodes of a subtree (without recursion).
fn nodes(root: &IdedExpr) -> usize {
    let mut count = 0;
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        count += 1;
        match &node.expr {
            Expr::Call(call) => {
                todo.extend(call.target.iter().map(|t| &**t));
                todo.extend(call.args.iter());
            }
            Expr::Comprehension(c) => todo.extend([&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]),
            Expr::List(list) => todo.extend(list.elements.iter()),
            Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => {
                for entry in entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => todo.extend([&e.key, &e.value]),
                        EntryExpr::StructField(f) => todo.push(&f.value),
                    }
                }
            }
            Expr::Select(select) => todo.push(&select.operand),
            Expr::Ident(_) | Expr::Unspecified | Expr::Literal(_) => {}
        }
    }
    count
}
