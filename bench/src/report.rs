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

/// The summary table: one row of the standard figures per scenario.
pub fn summary_table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<14} {:>10} {:>12} {:>8} {:>8} {:>8} {:>9} {:>9} {:>15} {:>5}",
        "scenario",
        "events/s",
        "deliveries/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "peak RSS",
        "CPU hookd/bench",
        "ok"
    );
    let _ = writeln!(out, "{header}\n{}", "-".repeat(header.chars().count()));
    for r in results {
        let l = &r.latency_ms;
        let rss = r.usage.peak_rss_mb.map_or("n/a".into(), |m| format!("{} MB", num(m)));
        let cpu = format!("{}% / {}%", opt(r.usage.cpu_hookd_pct), opt(r.usage.cpu_bench_pct));
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>12} {:>8} {:>8} {:>8} {:>9} {:>9} {:>15} {:>5}",
            r.scenario,
            num(r.events_per_s),
            num(r.deliveries_per_s),
            num(l.p50),
            num(l.p90),
            num(l.p99),
            num(l.max),
            rss,
            cpu,
            if r.ok { "yes" } else { "NO" }
        );
    }
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
