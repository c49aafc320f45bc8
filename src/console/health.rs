//! A webhook's health as the console draws it (CONTRACT §7.7): an inline `<svg>` of the
//! last 24 hours in hourly buckets (bars: success rate; a line with square markers: p95
//! latency), whose `<title>` says what it plots, with the same figures in words beside it.
//!
//! The one idea to know: the chart is readable without colour. Success rate is the bar's
//! height, latency a separate line with markers, hours without attempts a dashed baseline
//! tick, and every bar carries a `<title>` with its hour's figures in words. Only numbers
//! computed here reach the template (askama escapes the rest), and nothing is inline
//! style or script, so the strict CSP holds.

use crate::domain::health::{Figures, Health};

/// The drawing's coordinate space (the `viewBox`); the page scales it to its width.
pub const WIDTH: i64 = 480;
/// The plot area: left margin for the axis labels, bottom margin for the hour labels.
const LEFT: i64 = 36;
const TOP: i64 = 8;
const PLOT_H: i64 = 110;
const SLOT: i64 = (WIDTH - LEFT - 4) / 24;

pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// No attempts in this hour: a tick on the baseline instead of a bar.
    pub empty: bool,
    /// The hour's figures in words (its `<title>`).
    pub title: String,
}

pub struct HealthView {
    pub bars: Vec<Bar>,
    /// `x,y x,y …` of the p95 line (hours with attempts only).
    pub p95_points: String,
    pub p95_marks: Vec<(i64, i64)>,
    /// The latency the top of the plot stands for, in words ("1.2 s").
    pub p95_scale: String,
    /// What the chart plots (its `<title>`), and the figures in words beside it.
    pub title: String,
    pub summary: String,
    pub baseline: i64,
    pub top: i64,
    pub left: i64,
    pub right: i64,
    pub mid: i64,
}

impl HealthView {
    pub fn new(h: &Health) -> Self {
        let max_p95 = h.hours.iter().filter_map(|f| f.p95_ms).max().unwrap_or(0).max(1);
        let baseline = TOP + PLOT_H;
        let mut bars = Vec::with_capacity(24);
        let mut p95_marks = Vec::new();
        for (i, f) in h.hours.iter().enumerate() {
            let x = LEFT + i as i64 * SLOT + 1;
            let hours_ago = 24 - i as i64;
            let when = if hours_ago == 1 {
                "the last hour".to_string()
            } else {
                format!("{} to {} hours ago", hours_ago, hours_ago - 1)
            };
            let (bar_h, title) = match f.success_rate() {
                None => (0, format!("{when}: no attempts")),
                // A sliver even at 0 %, so an hour of only failures is not drawn like an
                // hour without attempts (the dashed tick).
                Some(rate) => (
                    (((rate / 100.0) * PLOT_H as f64).round() as i64).max(3),
                    format!("{when}: {}", figures_in_words(f)),
                ),
            };
            bars.push(Bar {
                x,
                y: baseline - bar_h,
                w: SLOT - 2,
                h: bar_h,
                empty: f.attempts == 0,
                title,
            });
            if let Some(p95) = f.p95_ms {
                let y = baseline - (p95 * PLOT_H) / max_p95;
                p95_marks.push((x + (SLOT - 2) / 2, y));
            }
        }
        let p95_points = p95_marks
            .iter()
            .map(|(x, y)| format!("{x},{y}"))
            .collect::<Vec<_>>()
            .join(" ");
        let summary = match h.overall.success_rate() {
            None => "No attempts in the last 24 hours.".to_string(),
            Some(_) => format!(
                "Last 24 hours: {}{}",
                figures_in_words(&h.overall),
                if h.capped {
                    " (from the newest 100,000 attempts)"
                } else {
                    ""
                }
            ),
        };
        Self {
            bars,
            p95_points,
            p95_marks,
            p95_scale: millis_in_words(max_p95),
            title: "Success rate (bars, 0 to 100 %) and p95 attempt latency (line with square markers) \
                    per hour over the last 24 hours"
                .to_string(),
            summary,
            baseline,
            top: TOP,
            left: LEFT,
            right: LEFT + 24 * SLOT,
            mid: TOP + PLOT_H / 2,
        }
    }
}

/// "97.5 % success (390 of 400 attempts), latency p50 120 ms, p95 480 ms".
pub fn figures_in_words(f: &Figures) -> String {
    let rate = f.success_rate().unwrap_or(0.0);
    let rate = if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    };
    format!(
        "{rate} % success ({} of {} attempts), latency p50 {}, p95 {}",
        f.successes,
        f.attempts,
        f.p50_ms.map(millis_in_words).unwrap_or_else(|| "—".into()),
        f.p95_ms.map(millis_in_words).unwrap_or_else(|| "—".into()),
    )
}

fn millis_in_words(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::{HealthSample, HOUR_MS};

    #[test]
    fn bars_and_words_say_the_same() {
        let end = 48 * HOUR_MS;
        let samples: Vec<HealthSample> = (0..4)
            .map(|i| HealthSample {
                at: end - 10,
                ok: i != 0,
                duration_ms: 100 * (i + 1),
            })
            .collect();
        let v = HealthView::new(&Health::compute(&samples, end, false));
        assert_eq!(v.bars.len(), 24);
        assert!(v.bars[..23].iter().all(|b| b.empty && b.title.ends_with("no attempts")));
        assert_eq!(v.bars[23].h, 83, "75 % of the plot's height");
        assert_eq!(
            v.bars[23].title,
            "the last hour: 75 % success (3 of 4 attempts), latency p50 200 ms, p95 400 ms"
        );
        assert_eq!(v.p95_marks.len(), 1);
        assert_eq!(
            v.summary,
            "Last 24 hours: 75 % success (3 of 4 attempts), latency p50 200 ms, p95 400 ms"
        );
        assert!(v.title.contains("per hour over the last 24 hours"));
    }
}
