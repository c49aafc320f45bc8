//! What a scenario measured, and how it is shown: a JSON line on stdout as each scenario
//! ends, the summary and target tables at the end, and files under the results folder
//! (`<scenario>-<UTC time>.json`, `latest.json` for the whole run, `<scenario>.svg`).
//!
//! Targets are printed beside the figures with PASS or MISS; they never change the exit
//! status, which only says whether the harness saw every published event delivered.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::metrics::{LatencySummary, Usage};

/// A figure compared with its target.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub figure: String,
    pub value: f64,
    pub unit: String,
    pub target: String,
    /// The target's number, in `unit`.
    pub limit: f64,
    pub pass: bool,
}

impl Check {
    pub fn at_least(figure: &str, value: f64, target: f64, unit: &str) -> Self {
        let target_text = format!("≥ {} {unit}", num(target));
        Self {
            figure: figure.into(),
            value,
            unit: unit.into(),
            target: target_text,
            limit: target,
            pass: value >= target,
        }
    }

    pub fn at_most(figure: &str, value: f64, target: f64, unit: &str) -> Self {
        let target_text = format!("≤ {} {unit}", num(target));
        Self {
            figure: figure.into(),
            value,
            unit: unit.into(),
            target: target_text,
            limit: target,
            pass: value <= target,
        }
    }

    /// A check that could not be measured (e.g. no peak RSS on this platform): a MISS.
    pub fn unmeasured(mut self) -> Self {
        self.value = f64::NAN;
        self.pass = false;
        self
    }
}

/// A latency distribution as percentile → ms points, for the chart and the JSON file.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    pub label: String,
    pub points: Vec<[f64; 2]>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub title: String,
    /// Why the scenario did not run on this backend (nothing else is then filled in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub smoke: bool,
    pub started_at: String,
    pub params: Value,
    /// Events accepted by event.publish in the measured publishing phase, and how fast.
    pub events: u64,
    pub publish_s: f64,
    pub events_per_s: f64,
    /// Distinct payloads received of those expected (the sum of `payloads` answers).
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// From the first publish of the measured phase to the last receipt.
    pub deliver_s: f64,
    pub deliveries_per_s: f64,
    /// Publish→receipt, as the receiver saw it.
    pub latency_ms: LatencySummary,
    /// Round trip of one publishing HTTP request (one event or one batch).
    pub publish_request_ms: LatencySummary,
    pub usage: Usage,
    /// hookd's CPU time over the measurement per delivery (per published event when the
    /// measurement delivered nothing), in µs: hookd's threads only, not the bench's.
    pub cpu_us_per_event_hookd: Option<f64>,
    /// The same for PostgreSQL's processes (`usage.cpu_postgres_pct`); null on SQLite.
    pub cpu_us_per_event_postgres: Option<f64>,
    /// What the per-event CPU figures divide by: `delivery` or `published event`.
    pub cpu_per: String,
    pub checks: Vec<Check>,
    pub extra: Map<String, Value>,
    pub signatures_checked: u64,
    /// Why the harness run is not trustworthy (lost events, failed publishes …); empty = ok.
    pub problems: Vec<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency_curves: Vec<Curve>,
}

impl ScenarioResult {
    /// The record of a scenario that could not run at all.
    pub fn failed(problem: String) -> Self {
        Self {
            problems: vec![problem],
            ok: false,
            ..Self::default()
        }
    }

    /// The record of a scenario that does not apply here (e.g. on this backend).
    pub fn skipped(why: &str) -> Self {
        Self {
            skipped: Some(why.into()),
            ok: true,
            ..Self::default()
        }
    }

    /// Fills in the CPU-per-event figures from `usage`, `deliveries` and `events`.
    pub fn set_cpu_per_event(&mut self) {
        let (per, n) = if self.deliveries > 0 {
            ("delivery", self.deliveries)
        } else {
            ("published event", self.events)
        };
        let per_event = |s: Option<f64>| s.filter(|_| n > 0).map(|s| s * 1e6 / n as f64);
        self.cpu_us_per_event_hookd = per_event(self.usage.cpu_hookd_s);
        self.cpu_us_per_event_postgres = per_event(self.usage.cpu_postgres_s);
        self.cpu_per = per.into();
    }

    /// Adds a scenario-specific figure under `extra`.
    pub fn note(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).expect("a figure serializes");
        self.extra.insert(key.to_string(), value);
    }
}

/// `12345.6` → `12,346`; small values keep decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 100.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), num)
}

/// The one-line JSON record printed as a scenario ends (without the curve points).
pub fn json_line(r: &ScenarioResult) -> String {
    let mut short = r.clone();
    short.latency_curves.clear();
    serde_json::to_string(&short).expect("a result serializes")
}

/// The summary table: one row of the standard figures per scenario. CPU per event is
/// hookd's (and PostgreSQL's) CPU time divided by the deliveries made.
pub fn summary_table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<14} {:>10} {:>12} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>15} {:>7} {:>5}",
        "scenario",
        "events/s",
        "deliveries/s",
        "hookd µs/ev",
        "pg µs/ev",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "peak RSS",
        "CPU hookd/bench",
        "CPU pg",
        "ok"
    );
    let _ = writeln!(out, "{header}\n{}", "-".repeat(header.chars().count()));
    for r in results {
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, "{:<14} skipped: {why}", r.scenario);
            continue;
        }
        let l = &r.latency_ms;
        let rss = r.usage.peak_rss_mb.map_or("n/a".into(), |m| format!("{} MB", num(m)));
        let cpu = format!("{}% / {}%", opt(r.usage.cpu_hookd_pct), opt(r.usage.cpu_bench_pct));
        let pg = r.usage.cpu_postgres_pct.map_or("-".into(), |p| format!("{}%", num(p)));
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>12} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>15} {:>7} {:>5}",
            r.scenario,
            num(r.events_per_s),
            num(r.deliveries_per_s),
            opt(r.cpu_us_per_event_hookd),
            r.cpu_us_per_event_postgres.map_or("-".into(), num),
            num(l.p50),
            num(l.p90),
            num(l.p99),
            num(l.max),
            rss,
            cpu,
            pg,
            if r.ok { "yes" } else { "NO" }
        );
    }
    let _ = writeln!(
        out,
        "µs/ev: CPU time per delivery (per published event where nothing was delivered) of hookd's \
         threads and of PostgreSQL's processes; CPU pg in % of one core"
    );
    out
}

/// The targets table: each headline figure beside its target, PASS or MISS.
pub fn targets_table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<14} {:<56} {:>12} {:>14}  {}",
        "scenario", "figure", "measured", "target", ""
    );
    let _ = writeln!(out, "{header}\n{}", "-".repeat(header.chars().count() + 4));
    for r in results {
        for c in &r.checks {
            let _ = writeln!(
                out,
                "{:<14} {:<56} {:>12} {:>14}  {}",
                r.scenario,
                c.figure,
                format!("{} {}", num(c.value), c.unit),
                c.target,
                if c.pass { "PASS" } else { "MISS" }
            );
        }
    }
    out
}

/// Problems that make a run untrustworthy, one line each.
pub fn problems(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results {
        for p in &r.problems {
            let _ = writeln!(out, "{}: {p}", r.scenario);
        }
    }
    out
}

/// Writes `<scenario>-<stamp>.json` and `<scenario>.svg` for one scenario.
pub fn save_scenario(dir: &Path, run: &Value, r: &ScenarioResult, stamp: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{}-{stamp}.json", r.scenario));
    let doc = serde_json::json!({"run": run, "result": r});
    std::fs::write(&file, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", file.display()))?;
    let svg = crate::chart::latency_svg(r);
    let file = dir.join(format!("{}.svg", r.scenario));
    std::fs::write(&file, svg).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

/// Writes `latest.json`: the run's description and every scenario's result.
pub fn save_latest(dir: &Path, run: &Value, results: &[ScenarioResult]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("latest.json");
    let doc = serde_json::json!({"run": run, "results": results});
    std::fs::write(&file, serde_json::to_string_pretty(&doc)?).with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(num(12345.6), "12,346");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(1234567.0), "1,234,567");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(f64::NAN), "n/a");
    }
}
