//! A small hand-written SVG per scenario: the publish→receipt latency percentile curve.
//!
//! The x axis is in "nines" (−log10(1 − q): 0 = 0 %, 1 = 90 %, 2 = 99 %, 3 = 99.9 % …), the
//! usual way to show a latency distribution so the tail is visible; the last point is the
//! maximum. Latency targets of the scenario are drawn as dashed lines.

use std::fmt::Write as _;

use crate::report::{num, ScenarioResult};

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).log10()
}

/// The smallest of 1, 2, 5 × 10^k at or above `v`.
fn nice_ceil(v: f64) -> f64 {
    let v = v.max(1e-3);
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v * 0.999)
        .unwrap_or(10.0 * p)
}

enum Scale {
    Linear(f64),
    Log(f64, f64),
}

impl Scale {
    /// Where `ms` sits between the bottom (0) and the top (1) of the plot.
    fn fraction(&self, ms: f64) -> f64 {
        match *self {
            Scale::Linear(max) => (ms / max).clamp(0.0, 1.0),
            Scale::Log(lo, hi) => ((ms.max(lo) / lo).log10() / (hi / lo).log10()).clamp(0.0, 1.0),
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match *self {
            Scale::Linear(max) => (0..=5).map(|i| max * i as f64 / 5.0).collect(),
            Scale::Log(lo, hi) => {
                let decades = (hi / lo).log10().round() as i32;
                (0..=decades).map(|i| lo * 10f64.powi(i)).collect()
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The chart for one scenario's result.
pub fn latency_svg(r: &ScenarioResult) -> String {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}: publish→receipt latency</text>
"#,
        escape(&r.scenario)
    );
    let curves: Vec<_> = r.latency_curves.iter().filter(|c| !c.points.is_empty()).collect();
    if curves.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="{}">no deliveries recorded</text></svg>"#,
            TOP + 20.0
        );
        return svg;
    }
    // x: nines, with the max (percentile 100) one step past the last finite point.
    let last_finite = curves
        .iter()
        .flat_map(|c| c.points.iter().filter(|p| p[0] < 100.0).map(|p| nines(p[0])))
        .fold(0.0f64, f64::max);
    let x_end = (last_finite * 61.0 / 60.0).max(0.1);
    let x_max = x_end.ceil().max(1.0);
    let x_of = |p: f64| {
        let n = if p >= 100.0 { x_end } else { nines(p) };
        LEFT + pw * n / x_max
    };
    let limits: Vec<(String, f64)> = r
        .checks
        .iter()
        .filter(|c| c.unit == "ms")
        .map(|c| (c.figure.clone(), c.limit))
        .collect();
    let y_top = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p[1]))
        .chain(limits.iter().map(|l| l.1))
        .fold(0.0f64, f64::max);
    let y_bottom = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p[1]))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    // A wide range (say 1 ms medians beside 5 s stalls) reads better on a log scale.
    let scale = if y_top / y_bottom.min(y_top).max(1e-3) > 100.0 {
        let lo = 10f64.powf(y_bottom.max(1e-3).log10().floor());
        let hi = 10f64.powf(y_top.log10().ceil());
        Scale::Log(lo, hi)
    } else {
        Scale::Linear(nice_ceil(y_top * 1.05))
    };
    let y_of = |ms: f64| TOP + ph - ph * scale.fraction(ms);
    // Axes and grid.
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    for i in 0..=(x_max as usize) {
        let x = LEFT + pw * i as f64 / x_max;
        let label = match i {
            0 => "0%".to_string(),
            n => format!("{:.*}%", n.saturating_sub(2), 100.0 - 100.0 / 10f64.powi(n as i32)),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 16.0
        );
    }
    for ms in scale.ticks() {
        let y = y_of(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            num(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (max at the right end)</text>
<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency, ms</text>"#,
        LEFT + pw / 2.0,
        H - 10.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (label, ms) in &limits {
        let y = y_of(*ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888" stroke-dasharray="5,4"/><text x="{:.1}" y="{:.1}" fill="#666" font-size="10">{} ≤ {} ms</text>"##,
            LEFT + pw,
            LEFT + 4.0,
            y - 3.0,
            escape(label),
            num(*ms)
        );
    }
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = c
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p[0]), y_of(p[1])))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 8.0 + 18.0 * i as f64;
        let lx = LEFT + pw + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&c.label)
        );
    }
    let l = &r.latency_ms;
    let stats = [
        format!("p50 {} ms", num(l.p50)),
        format!("p90 {} ms", num(l.p90)),
        format!("p99 {} ms", num(l.p99)),
        format!("max {} ms", num(l.max)),
        format!("{} deliveries", num(l.count as f64)),
        format!("{} events/s", num(r.events_per_s)),
        format!("{} deliveries/s", num(r.deliveries_per_s)),
    ];
    let sy = TOP + 8.0 + 18.0 * curves.len() as f64 + 16.0;
    for (i, s) in stats.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}">{s}</text>"#,
            LEFT + pw + 14.0,
            sy + 16.0 * i as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceil(3.2), 5.0);
        assert_eq!(nice_ceil(0.7), 1.0);
        assert_eq!(nice_ceil(120.0), 200.0);
        assert_eq!(nice_ceil(1000.0), 1000.0);
    }
}
