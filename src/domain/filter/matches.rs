//! CEL's `matches()` (global and as a string method), with each pattern compiled once per
//! process. The CEL crate's own compiles the regex on every call; inside a list macro over
//! a long literal list that made one filter cost a minute of CPU. Here a pattern is compiled
//! once, through a bounded cache, with size limits on what it may compile to, and each call
//! is charged to the evaluation's budget (a step plus the length of the text searched).

use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelString};
use cel::{Env, ExecutionError};
use regex::{Regex, RegexBuilder};

use super::budget;
use super::cache::BoundedCache;

/// Largest compiled form of a pattern (regex's NFA), and of its lazy DFA's cache.
const REGEX_BYTES: usize = 256 << 10;
/// Patterns kept per cache generation (at most twice this many).
const GENERATION: usize = 64;
/// Steps charged for compiling a pattern not in the cache (about a lookup's thousandfold).
const COMPILE_STEPS: u64 = 1_000;

/// A compiled pattern, or why it does not compile (remembered too: a stored filter with a
/// bad pattern does not pay for the compile again on every call).
type Compiled = Result<Arc<Regex>, Arc<str>>;

static PATTERNS: LazyLock<BoundedCache<Compiled>> = LazyLock::new(|| BoundedCache::new(GENERATION));

/// Registers `matches` on `env` (which must not have it yet).
pub fn register(env: &mut Env) {
    cel::add_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>, id = "matches")
        .expect("matches is registered once");
    cel::add_member_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>)
        .expect("matches is registered once");
}

fn matches(text: &CelString<'_>, pattern: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let text = text.inner();
    budget::charge(1 + text.len() as u64 / 64).map_err(over_budget)?;
    let regex = pattern_regex(pattern.inner()).map_err(|why| ExecutionError::function_error("matches", why))?;
    Ok(CelBool::from(regex.is_match(text)))
}

fn over_budget(_: budget::OverBudget) -> ExecutionError {
    ExecutionError::function_error("matches", "the filter's evaluation budget is spent")
}

/// The compiled pattern, from the cache; or why it does not compile.
pub fn pattern_regex(pattern: &str) -> Result<Arc<Regex>, Arc<str>> {
    PATTERNS.get_or_make(pattern, || {
        // Only a miss pays; a miss is charged, so a message cannot make every call one.
        let _ = budget::charge(COMPILE_STEPS);
        let built = RegexBuilder::new(pattern)
            .size_limit(REGEX_BYTES)
            .dfa_size_limit(REGEX_BYTES)
            .build()
            .map(Arc::new)
            .map_err(|e| describe(pattern, &e).into());
        (built, true)
    })
}

/// One line: regex's own messages span several, with a caret under the fault.
fn describe(pattern: &str, error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => format!(
            "the pattern '{pattern}' compiles to more than {limit} bytes (a repetition such as \\w{{300}} is too large)"
        ),
        other => {
            let last = other.to_string().lines().last().unwrap_or_default().trim().to_string();
            format!("'{pattern}' is not a valid regular expression: {last}")
        }
    }
}
