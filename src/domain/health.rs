//! A webhook's health over the last 24 hours (CONTRACT §7.7): the success rate and the
//! attempt latency (p50, p95), overall and per hour, from its attempts.
//!
//! The one idea to know: the samples come from one range of the `delivery_attempts_health`
//! index (webhook, time), read newest first and capped at `MAX_SAMPLES`, so a page costs
//! at most that many index entries however large the attempt log is; the figures are then
//! computed here, the same for both backends.

use crate::time::Millis;

pub const WINDOW_MS: Millis = 24 * 3600 * 1000;
pub const HOUR_MS: Millis = 3600 * 1000;
/// The most attempts one health read looks at (the newest ones of the window).
pub const MAX_SAMPLES: i64 = 100_000;

/// One attempt, as health reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSample {
    pub at: Millis,
    pub ok: bool,
    pub duration_ms: i64,
}

/// The figures of a set of attempts (an hour, or the whole window).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub attempts: usize,
    pub successes: usize,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

impl Figures {
    fn of(samples: &[HealthSample]) -> Self {
        let mut durations: Vec<i64> = samples.iter().map(|s| s.duration_ms).collect();
        durations.sort_unstable();
        Self {
            attempts: samples.len(),
            successes: samples.iter().filter(|s| s.ok).count(),
            p50_ms: percentile(&durations, 50),
            p95_ms: percentile(&durations, 95),
        }
    }

    /// Successes per hundred attempts; None without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 * 100.0 / self.attempts as f64)
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// The window's end; hour `i` covers `[end - (24 - i) h, end - (23 - i) h)`.
    pub end: Millis,
    pub overall: Figures,
    /// 24 hourly buckets, oldest first.
    pub hours: Vec<Figures>,
    /// Whether the samples were capped at `MAX_SAMPLES` (the oldest hours then miss some).
    pub capped: bool,
}

impl Health {
    /// `samples`: the attempts of `[end - 24 h, end)`, any order.
    pub fn compute(samples: &[HealthSample], end: Millis, capped: bool) -> Self {
        let start = end - WINDOW_MS;
        let mut buckets: Vec<Vec<HealthSample>> = vec![Vec::new(); 24];
        for s in samples.iter().filter(|s| s.at >= start && s.at < end) {
            let i = ((s.at - start) / HOUR_MS).clamp(0, 23) as usize;
            buckets[i].push(*s);
        }
        let inside: Vec<HealthSample> = buckets.iter().flatten().copied().collect();
        Self {
            end,
            overall: Figures::of(&inside),
            hours: buckets.iter().map(|b| Figures::of(b)).collect(),
            capped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: Millis, ok: bool, duration_ms: i64) -> HealthSample {
        HealthSample { at, ok, duration_ms }
    }

    #[test]
    fn rate_and_percentiles_overall_and_per_hour() {
        let end = 100 * HOUR_MS;
        let mut samples: Vec<HealthSample> = (1..=100).map(|d| s(end - 1000, d % 4 != 0, d)).collect();
        samples.push(s(end - 23 * HOUR_MS - 1, true, 5000)); // the oldest hour
        samples.push(s(end - WINDOW_MS - 1, false, 1)); // before the window
        samples.push(s(end, false, 1)); // after it
        let h = Health::compute(&samples, end, false);
        assert_eq!(h.overall.attempts, 101);
        assert_eq!(h.overall.successes, 76);
        assert_eq!(h.hours.len(), 24);
        assert_eq!(h.hours[23].attempts, 100);
        assert_eq!((h.hours[23].p50_ms, h.hours[23].p95_ms), (Some(50), Some(95)));
        assert_eq!(h.hours[23].success_rate(), Some(75.0));
        assert_eq!(h.hours[0].attempts, 1);
        assert_eq!(h.hours[5], Figures::default());
        assert_eq!(h.hours[5].success_rate(), None);
    }
}
