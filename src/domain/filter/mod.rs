//! Webhook filters (CONTRACT §6.2): a CEL expression over `topic` (a string) and `message`
//! (the published JSON object) decides whether an event makes a payload for a webhook.
//!
//! The one idea: the expensive steps happen as rarely as possible, and never where one
//! merchant's filter could hold up another merchant's publish. An expression is parsed when
//! a webhook is created or updated (to answer 101 with the parser's message, and to refuse
//! shapes certain to cost too much: `shape`), then once per process into a bounded cache
//! keyed by its text. Events are judged by their publisher's task before the store's write
//! path sees them (`Verdicts`): the store only looks verdicts up. Each evaluation runs under
//! a budget (`budget`), and `matches()` compiles each pattern once (`matches`). Anything
//! other than `true` (an evaluation error such as a missing field or a wrong type, a
//! non-bool result, a spent budget) means "no payload".

mod budget;
mod cache;
mod matches;
mod shape;

use std::cell::OnceCell;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

use super::BodyTemplate;
use cache::BoundedCache;

pub use budget::OVER_BUDGET;
pub use shape::{MAX_DEPTH, MAX_LIST_LITERAL, MAX_LITERAL_LOOP};

/// Compiled programs kept per cache generation (at most twice this many).
const GENERATION: usize = 2048;

/// The standard CEL environment with our `matches()`, built once (building it per event
/// would cost more than most evaluations).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    matches::register(&mut env);
    Arc::new(env)
});

/// The process's compiled programs.
static PROGRAMS: LazyLock<ProgramCache> = LazyLock::new(|| ProgramCache::new(GENERATION));

/// Charges the budget for each read of `topic` or `message` (see `budget`).
static STEPS: budget::StepPerRead = budget::StepPerRead;

/// Stack for the thread that parses: the parser recurses per bracket and operator level
/// (tens of frames each), which a 4 KiB expression of brackets can make deep. Only the pages
/// touched are ever committed.
const PARSER_STACK: usize = 256 << 20;

/// Why an expression did not compile.
#[derive(Debug)]
pub enum CompileError {
    /// Not a valid CEL expression (or too deep, or too costly): what is wrong, one line.
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

/// Compiles a new filter (webhook create or update) on a thread of its own with a large
/// stack (so no expression can overflow the caller's), then refuses the shapes `shape` names.
pub fn compile(source: &str) -> Result<Program, CompileError> {
    compile_under(source, shape::Rules::New)
}

/// Compiles a stored filter, held to the rules it was stored under (see `shape::Rules`).
fn compile_stored(source: &str) -> Result<Program, CompileError> {
    compile_under(source, shape::Rules::Stored)
}

fn compile_under(source: &str, rules: shape::Rules) -> Result<Program, CompileError> {
    std::thread::scope(|scope| {
        let parsing = std::thread::Builder::new()
            .name("hookd-cel".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || compile_here(source, rules))
            .map_err(CompileError::Unavailable)?;
        parsing
            .join()
            .unwrap_or_else(|_| Err(CompileError::Invalid("the parser failed on this expression".into())))
    })
}

fn compile_here(source: &str, rules: shape::Rules) -> Result<Program, CompileError> {
    let program = ENV.compile(source).map_err(|errors| {
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
    // parser made.
    match shape::refusal(program.expression(), rules) {
        Some(why) => Err(CompileError::Invalid(why)),
        None => Ok(program),
    }
}

/// Compiled programs by expression text, bounded (see `cache`).
pub struct ProgramCache(BoundedCache<Compiled>);

type Compiled = Option<Arc<Program>>;

impl ProgramCache {
    pub fn new(cap: usize) -> Self {
        Self(BoundedCache::new(cap))
    }

    /// The compiled program, or None for an expression that does not compile (which create
    /// and update refuse, so only a row written some other way has one; it matches nothing).
    pub fn get(&self, source: &str) -> Compiled {
        self.0.get_or_make(source, || match compile_stored(source) {
            Ok(p) => (Some(Arc::new(p)), true),
            Err(error @ CompileError::Invalid(_)) => {
                tracing::warn!(%error, "a stored webhook filter does not compile; it matches nothing");
                (None, true)
            }
            Err(error @ CompileError::Unavailable(_)) => {
                // Not remembered: the next publish tries again.
                tracing::warn!(%error, "a webhook filter could not be compiled; this event does not pass it");
                (None, false)
            }
        })
    }

    /// Programs held (both generations).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an event's publisher found for the filters of the webhooks it may reach: each
/// filter's text and whether the event passes it. The store's publish looks a matched
/// webhook's filter up here and never evaluates one itself; a filter missing here is
/// answered with `StoreError::FiltersUnjudged`, and the publisher judges it and asks again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdicts(Vec<(Arc<str>, bool)>);

impl Verdicts {
    /// Judges the event (`topic`, `body`) by each of `filters` (its CEL values made once).
    pub fn judge<'f>(topic: &str, body: &BodyTemplate, filters: impl IntoIterator<Item = &'f Arc<str>>) -> Self {
        let input = FilterInput::new(topic, body);
        let mut out = Verdicts::default();
        for filter in filters {
            if out.get(filter).is_none() {
                out.0.push((filter.clone(), input.passes(filter)));
            }
        }
        out
    }

    /// Whether the event passes `filter`; None when it was not judged.
    pub fn get(&self, filter: &str) -> Option<bool> {
        self.0.iter().find(|(f, _)| &**f == filter).map(|&(_, v)| v)
    }

    /// Adds `other`'s verdicts (a filter judged in both keeps this one's).
    /// Each filter judged, with its verdict.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, bool)> {
        self.0.iter().map(|(f, v)| (&**f, *v))
    }

    /// Verdicts judged elsewhere (a forwarded publish's, see `cluster`).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Arc<str>, bool)>) -> Self {
        Verdicts(pairs.into_iter().collect())
    }

    pub fn extend(&mut self, other: Verdicts) {
        for (filter, verdict) in other.0 {
            if self.get(&filter).is_none() {
                self.0.push((filter, verdict));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One published event as filters see it. The CEL context is built on the first
/// evaluation and reused for every other filter judging the same event.
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

    /// Whether the event passes `filter` (compiled through the process's cache), within
    /// the evaluation budget; over budget is counted, logged once per filter, and false.
    pub fn passes(&self, filter: &str) -> bool {
        let Some(program) = PROGRAMS.get(filter) else {
            return false;
        };
        let (passed, over) = self.evaluate(&program);
        if over {
            budget::note_over_budget(filter);
        }
        passed && !over
    }

    /// Whether `program` evaluates to `true` for this event within the budget.
    pub fn passes_program(&self, program: &Program) -> bool {
        let (passed, over) = self.evaluate(program);
        passed && !over
    }

    fn evaluate(&self, program: &Program) -> (bool, bool) {
        let context = self.context.get_or_init(|| event_context(self.topic, self.body));
        budget::metered(|| matches!(program.execute(context), Ok(Cel::Bool(true))))
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
    context.set_variable_resolver(&STEPS);
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
mod tests;
