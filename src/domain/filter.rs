//! Webhook filters (CONTRACT §6.2): a CEL expression over `topic` (a string) and `message`
//! (the published JSON object) decides whether an event makes a payload for a webhook.
//!
//! The one idea: the expensive steps happen as rarely as possible. An expression is parsed
//! when a webhook is created or updated (to answer 101 with the parser's message) and then
//! once per process, into a bounded cache keyed by its text (a compiled program depends on
//! nothing else, so one cache serves every store, thread and webhook sharing an expression).
//! An event is turned into CEL values once per publish, and only when a webhook it matched
//! has a filter; publishes to webhooks without one pay nothing. Anything other than `true`
//! (an evaluation error such as a missing field or a wrong type, or a non-bool result)
//! means "no payload".

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use cel::common::ast::{EntryExpr, Expr, MapExpr, StructExpr};
use cel::objects::{Key, Map as CelMap};
use cel::IdedExpr;
use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

use super::BodyTemplate;

/// Compiled programs kept per cache generation (see `ProgramCache`): at most twice this many.
const GENERATION: usize = 2048;

/// The standard CEL environment, built once (building it per event would cost more than
/// most evaluations).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// The process's compiled programs.
static PROGRAMS: LazyLock<ProgramCache> = LazyLock::new(|| ProgramCache::new(GENERATION));

/// Deepest expression tree accepted: evaluation recurses once per level, on whatever
/// thread publishes (tokio workers, SQLite's writer), so the depth is what bounds its stack.
pub const MAX_DEPTH: usize = 32;

/// Stack for the thread that parses: the parser recurses per bracket and operator level
/// (tens of frames each), which a 4 KiB expression of brackets can make deep. Only the pages
/// touched are ever committed.
const PARSER_STACK: usize = 256 << 20;

/// Why an expression did not compile.
#[derive(Debug)]
pub enum CompileError {
    /// Not a valid CEL expression (or too deep): the parser's message(s), one line.
    Invalid(String),
    /// The parsing thread could not be started (the process is out of threads or memory).
    Unavailable(std::io::Error),
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Invalid(message) => f.write_str(message),
            CompileError::Unavailable(e) => write!(f, "the expression could not be checked now ({e})"),
        }
    }
}

/// Compiles `source` on a thread of its own with a large stack (so no expression can
/// overflow the caller's), then refuses a tree deeper than `MAX_DEPTH`.
pub fn compile(source: &str) -> Result<Program, CompileError> {
    std::thread::scope(|scope| {
        let parsing = std::thread::Builder::new()
            .name("hookd-cel".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || compile_here(source))
            .map_err(CompileError::Unavailable)?;
        parsing
            .join()
            .unwrap_or_else(|_| Err(CompileError::Invalid("the parser failed on this expression".into())))
    })
}

fn compile_here(source: &str) -> Result<Program, CompileError> {
    let program = Program::compile(source).map_err(|errors| {
        // The first few errors: one syntax error often brings a cascade of others.
        let mut message = (errors.errors.iter().take(3))
            .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1, e.msg))
            .collect::<Vec<_>>()
            .join("; ");
        if errors.errors.len() > 3 {
            message.push_str("; …");
        }
        CompileError::Invalid(message)
    })?;
    // Each refused program is dropped here, on the large stack, like any deep tree the
    // parser made. The two loop rules keep an evaluation's cost in proportion to the
    // message's size times the expression's, so no filter can hold a publisher for long.
    let shape = shape(program.expression());
    if shape.depth > MAX_DEPTH {
        return Err(CompileError::Invalid(format!(
            "the expression is nested {} levels deep, more than {MAX_DEPTH}",
            shape.depth
        )));
    }
    if shape.nested_loops {
        return Err(CompileError::Invalid(
            "a list macro (all, exists, exists_one, map, filter) may not be used inside another".into(),
        ));
    }
    if shape.message_in_loop {
        return Err(CompileError::Invalid(
            "inside a list macro (all, exists, exists_one, map, filter) use its element, not message".into(),
        ));
    }
    Ok(program)
}

/// What a walk of the expression tree found: its depth, and whether it uses the list
/// macros (`all`, `exists`, `exists_one`, `map`, `filter`) in a way whose cost is not
/// bounded by the size of the message.
struct Shape {
    depth: usize,
    /// A list macro inside another one's body: the product of two lengths.
    nested_loops: bool,
    /// `message` read inside a list macro's body: the message's size times the list's.
    message_in_loop: bool,
}

/// Walks the tree without recursion (macros count as what they expand to), so a deep tree
/// cannot overflow the walk either.
fn shape(root: &IdedExpr) -> Shape {
    let mut found = Shape {
        depth: 0,
        nested_loops: false,
        message_in_loop: false,
    };
    // (node, its depth, whether it is inside a list macro's body)
    let mut todo: Vec<(&IdedExpr, usize, bool)> = vec![(root, 1, false)];
    while let Some((node, d, in_loop)) = todo.pop() {
        found.depth = found.depth.max(d);
        let d = d + 1;
        match &node.expr {
            Expr::Call(call) => {
                todo.extend(call.target.iter().map(|t| (&**t, d, in_loop)));
                todo.extend(call.args.iter().map(|a| (a, d, in_loop)));
            }
            Expr::Comprehension(c) => {
                found.nested_loops |= in_loop;
                // The range and the start are evaluated once; the rest once per element.
                todo.extend([&c.iter_range, &c.accu_init].map(|e| (e, d, in_loop)));
                todo.extend([&c.loop_cond, &c.loop_step, &c.result].map(|e| (e, d, true)));
            }
            Expr::List(list) => todo.extend(list.elements.iter().map(|e| (e, d, in_loop))),
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

/// Compiled programs by expression text, bounded: two generations of at most `cap` entries.
/// A lookup that misses the current generation moves the entry up from the previous one;
/// when the current one is full it becomes the previous one (dropping the older). So the
/// programs in use stay, and the memory is bounded, without a list to maintain per hit.
pub struct ProgramCache {
    cap: usize,
    inner: Mutex<Generations>,
}

type Compiled = Option<Arc<Program>>;

#[derive(Default)]
struct Generations {
    current: HashMap<Box<str>, Compiled>,
    previous: HashMap<Box<str>, Compiled>,
}

impl ProgramCache {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::new(Generations::default()),
        }
    }

    /// The compiled program, or None for an expression that does not compile (which create
    /// and update refuse, so only a row written some other way has one; it matches nothing).
    pub fn get(&self, source: &str) -> Compiled {
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = g.current.get(source) {
                return found.clone();
            }
            if let Some((text, found)) = g.previous.remove_entry(source) {
                g.insert(self.cap, text, found.clone());
                return found;
            }
        }
        // Compiled outside the lock: a miss does not hold up the other publishers.
        let compiled = match compile(source) {
            Ok(p) => Some(Arc::new(p)),
            Err(error @ CompileError::Invalid(_)) => {
                tracing::warn!(%error, "a stored webhook filter does not compile; it matches nothing");
                None
            }
            Err(error @ CompileError::Unavailable(_)) => {
                // Not remembered: the next publish tries again.
                tracing::warn!(%error, "a webhook filter could not be compiled; this event does not pass it");
                return None;
            }
        };
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(self.cap, source.into(), compiled.clone());
        compiled
    }

    /// Programs held (both generations).
    pub fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.current.len() + g.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Generations {
    fn insert(&mut self, cap: usize, text: Box<str>, compiled: Compiled) {
        if self.current.len() >= cap {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(text, compiled);
    }
}

/// One published event as filters see it. The CEL context is built on the first
/// evaluation and reused for every other filtered webhook of the same event.
pub struct FilterInput<'a> {
    topic: &'a str,
    body: &'a BodyTemplate,
    context: OnceCell<Context<'static, 'static>>,
}

impl<'a> FilterInput<'a> {
    pub fn new(topic: &'a str, body: &'a BodyTemplate) -> Self {
        Self {
            topic,
            body,
            context: OnceCell::new(),
        }
    }

    /// Whether the event passes `filter` (compiled through the process's cache).
    pub fn passes(&self, filter: &str) -> bool {
        PROGRAMS
            .get(filter)
            .is_some_and(|program| self.passes_program(&program))
    }

    /// Whether `program` evaluates to `true` for this event; anything else is false.
    pub fn passes_program(&self, program: &Program) -> bool {
        let context = self.context.get_or_init(|| event_context(self.topic, self.body));
        matches!(program.execute(context), Ok(Cel::Bool(true)))
    }
}

/// `topic` and `message` as CEL variables. The message is read back from the body template
/// (rendered once here, parsed once), so a publish whose webhooks have no filter never pays
/// for it; our own fields (`webhook_increment_id`, `event_timestamp`) are not part of it.
fn event_context(topic: &str, body: &BodyTemplate) -> Context<'static, 'static> {
    let mut message = match serde_json::from_slice::<Value>(&body.render(0)) {
        Ok(Value::Object(mut envelope)) => envelope.remove("message").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    if let Value::Object(fields) = &mut message {
        fields.remove("webhook_increment_id");
        fields.remove("event_timestamp");
    }
    let mut context = Context::with_env(ENV.clone());
    context.add_variable_from_value("topic", topic.to_string());
    context.add_variable_from_value("message", to_cel(message));
    context
}

/// JSON to CEL: integers are `int` where they fit (so `message.total > 100` compares as
/// written), larger ones `uint`, the rest `double`.
fn to_cel(value: Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s)),
        Value::Array(items) => Cel::List(Arc::new(items.into_iter().map(to_cel).collect())),
        Value::Object(fields) => Cel::Map(CelMap {
            map: Arc::new(
                fields
                    .into_iter()
                    .map(|(k, v)| (Key::String(Arc::new(k)), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
