//! What one evaluation of a filter may cost. A filter runs once per event for its webhook,
//! so a merchant's expression must not cost without bound: each evaluation gets a budget of
//! steps and of time. Steps are charged where the work is: every read of `topic` or
//! `message` (so every turn of a list macro whose body reads them) and every `matches()`
//! (its compile, and the text it searches). An evaluation over budget is false, counted in
//! `hookd_filter_over_budget_total`, and logged once per filter.
//!
//! The one idea: the meter lives in a thread-local that `metered` sets around one
//! evaluation, so the charging points (a CEL variable resolver, our `matches`) need no
//! handle to it, and what is charged on one thread never leaks into another's evaluation.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use cel::common::value::CowVal;
use cel::context::VariableResolver;
use prometheus_client::metrics::counter::Counter;

/// Steps one evaluation may take.
pub const STEPS: u64 = 20_000;
/// Time one evaluation may take.
pub const TIME: Duration = Duration::from_millis(20);
/// Steps between two looks at the clock.
const CLOCK_EVERY: u64 = 256;
/// Filters remembered as already logged (then the set starts again).
const LOGGED_MAX: usize = 4096;

/// Evaluations stopped for going over budget, since the process started.
pub static OVER_BUDGET: LazyLock<Counter> = LazyLock::new(Counter::default);

static LOGGED: LazyLock<Mutex<HashSet<u64>>> = LazyLock::new(Default::default);

/// The budget is spent.
#[derive(Debug)]
pub struct OverBudget;

#[derive(Clone, Copy)]
struct Meter {
    left: u64,
    next_clock: u64,
    deadline: Instant,
    over: bool,
}

thread_local! {
    static METER: Cell<Option<Meter>> = const { Cell::new(None) };
}

/// Runs one evaluation under a fresh budget; true in the second place when it ran over.
pub fn metered<R>(evaluate: impl FnOnce() -> R) -> (R, bool) {
    let outer = METER.replace(Some(Meter {
        left: STEPS,
        next_clock: STEPS.saturating_sub(CLOCK_EVERY),
        deadline: Instant::now() + TIME,
        over: false,
    }));
    let result = evaluate();
    let over = METER.replace(outer).is_some_and(|m| m.over);
    (result, over)
}

/// Charges `steps` to the evaluation running on this thread (outside `metered`: free).
pub fn charge(steps: u64) -> Result<(), OverBudget> {
    METER.with(|cell| {
        let Some(mut m) = cell.get() else {
            return Ok(());
        };
        if !m.over {
            m.left = m.left.saturating_sub(steps);
            if m.left == 0 {
                m.over = true;
            } else if m.left <= m.next_clock {
                m.next_clock = m.left.saturating_sub(CLOCK_EVERY);
                m.over = Instant::now() >= m.deadline;
            }
        }
        cell.set(Some(m));
        if m.over {
            Err(OverBudget)
        } else {
            Ok(())
        }
    })
}

/// Charges a step for every read of a variable of the event (`topic`, `message`) and
/// resolves nothing itself: the context's own variables answer.
pub struct StepPerRead;

impl VariableResolver for StepPerRead {
    fn resolve<'b>(&'b self, _variable: &str) -> Option<CowVal<'b, 'b>> {
        let _ = charge(1);
        None
    }
}

/// Counts an evaluation stopped over budget, and logs it the first time for this filter.
pub fn note_over_budget(filter: &str) {
    OVER_BUDGET.inc();
    let fingerprint = {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(filter)
    };
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if logged.len() >= LOGGED_MAX {
        logged.clear();
    }
    if logged.insert(fingerprint) {
        let excerpt: String = filter.chars().take(120).collect();
        tracing::warn!(
            filter = %excerpt,
            steps = STEPS,
            time_ms = TIME.as_millis() as u64,
            "a webhook filter went over its evaluation budget; the event does not pass it (logged once per filter)"
        );
    }
}
