//! The retry schedule: how long to wait before each retry of a failed delivery.
//!
//! A schedule is a list of delays; its length is the number of retries, so a payload gets
//! `len + 1` attempts in all. The standard one (1m, 2m, 4m … 24h, 14 retries) spreads
//! 15 attempts over about three and a half days. After the last attempt fails,
//! [`RetrySchedule::delay_after`] answers `None` and the payload's status becomes `failed`.
//! Configured as a comma list such as `100ms,250ms,1s` (`HOOKD_RETRY_SCHEDULE`).
//!
//! The one idea to know: every delay is jittered, uniformly within ±10 % of its step
//! ([`JITTER`]), so the retries of many payloads that failed together (a receiver's outage)
//! spread out instead of arriving in lockstep when it comes back. Tests predict ranges, not
//! instants. (A receiver's own `Retry-After` is taken as given instead; see `deliver`.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// How far a retry delay may move from its step either way, as a fraction of the step.
pub const JITTER: f64 = 0.1;

/// Delays before retries 1, 2, 3 …; never empty, every delay positive.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// Why a retry schedule string was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryScheduleError {
    #[error("retry schedule is empty: give at least one delay, e.g. \"1m,5m,1h\"")]
    Empty,
    #[error("retry schedule entry {position} is empty (stray comma?)")]
    EmptyEntry { position: usize },
    #[error("retry schedule entry {entry:?} is not a duration (expected e.g. 250ms, 30s, 1m, 2h)")]
    NotADuration {
        entry: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("retry schedule entry {entry:?} is zero; every delay must be positive")]
    Zero { entry: String },
}

impl RetrySchedule {
    /// 1m, 2m, 4m, 8m, 15m, 30m, 1h, 2h, 4h, 8h, 16h, 24h, 24h, 24h (14 retries).
    pub fn standard() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        let secs = [
            MINUTE,
            2 * MINUTE,
            4 * MINUTE,
            8 * MINUTE,
            15 * MINUTE,
            30 * MINUTE,
            HOUR,
            2 * HOUR,
            4 * HOUR,
            8 * HOUR,
            16 * HOUR,
            24 * HOUR,
            24 * HOUR,
            24 * HOUR,
        ];
        RetrySchedule {
            delays: secs.into_iter().map(Duration::from_secs).collect(),
        }
    }

    /// Parses a comma list of humantime durations, e.g. `"100ms, 250ms, 1s"`.
    pub fn parse(s: &str) -> Result<Self, RetryScheduleError> {
        if s.trim().is_empty() {
            return Err(RetryScheduleError::Empty);
        }
        let delays = s
            .split(',')
            .enumerate()
            .map(|(index, entry)| parse_entry(index + 1, entry.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule { delays })
    }

    /// How many retries follow the first attempt.
    pub fn retries(&self) -> usize {
        self.delays.len()
    }

    /// The configured step before the next attempt after `attempts_made` failed attempts
    /// (1-based), without jitter; `None` once the schedule is used up.
    ///
    /// `step_after(0)` (nothing has failed yet) is zero: the first attempt is not delayed.
    pub fn step_after(&self, attempts_made: u32) -> Option<Duration> {
        match attempts_made {
            0 => Some(Duration::ZERO),
            n => self.delays.get(n as usize - 1).copied(),
        }
    }

    /// Delay before the next attempt after `attempts_made` failed attempts: the step with
    /// ±10 % jitter. `None` means give up: the payload's status becomes `failed`.
    pub fn delay_after(&self, attempts_made: u32) -> Option<Duration> {
        let step = self.step_after(attempts_made)?;
        Some(jitter(step, rand::thread_rng().gen_range(-1.0..=1.0)))
    }
}

/// `step` moved by `unit` × [`JITTER`] of itself (`unit` in -1 … 1): a pure function, so its
/// bounds can be tested without randomness.
pub fn jitter(step: Duration, unit: f64) -> Duration {
    step.mul_f64(1.0 + JITTER * unit.clamp(-1.0, 1.0))
}

fn parse_entry(position: usize, entry: &str) -> Result<Duration, RetryScheduleError> {
    if entry.is_empty() {
        return Err(RetryScheduleError::EmptyEntry { position });
    }
    let delay = humantime::parse_duration(entry).map_err(|source| RetryScheduleError::NotADuration {
        entry: entry.to_string(),
        source,
    })?;
    if delay.is_zero() {
        return Err(RetryScheduleError::Zero {
            entry: entry.to_string(),
        });
    }
    Ok(delay)
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::standard()
    }
}

impl FromStr for RetrySchedule {
    type Err = RetryScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RetrySchedule::parse(s)
    }
}

/// A comma list in humantime format (`1m,2m,…,1day`), which [`RetrySchedule::parse`] reads back.
impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, delay) in self.delays.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", humantime::format_duration(*delay))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;

    /// `delay` is within ±10 % of `step`.
    fn within_jitter(delay: Duration, step: Duration) -> bool {
        step.mul_f64(0.9) <= delay && delay <= step.mul_f64(1.1)
    }

    #[test]
    fn jitter_stays_within_ten_percent_either_way() {
        let step = Duration::from_secs(100);
        assert_eq!(jitter(step, -1.0), Duration::from_secs(90));
        assert_eq!(jitter(step, 0.0), step);
        assert_eq!(jitter(step, 1.0), Duration::from_secs(110));
        // Out-of-range units are held to the bounds.
        assert_eq!(jitter(step, -7.0), Duration::from_secs(90));
        assert_eq!(jitter(step, 7.0), Duration::from_secs(110));
    }

    #[test]
    fn retry_delays_are_spread_over_the_whole_jitter_range() {
        let schedule = RetrySchedule::parse("10s").unwrap();
        let step = Duration::from_secs(10);
        let delays: Vec<Duration> = (0..2000).map(|_| schedule.delay_after(1).unwrap()).collect();
        assert!(delays.iter().all(|d| within_jitter(*d, step)));
        // Uniform over 9 s … 11 s: both outer fifths of the range are hit, and not all alike.
        assert!(
            delays.iter().any(|d| *d < Duration::from_millis(9_400)),
            "no low delays"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_millis(10_600)),
            "no high delays"
        );
        let below = delays.iter().filter(|d| **d < step).count();
        assert!((800..1200).contains(&below), "{below} of 2000 below the step");
    }

    #[test]
    fn standard_schedule_has_fourteen_retries_then_gives_up() {
        let schedule = RetrySchedule::standard();
        assert_eq!(schedule.retries(), 14);
        let expected = [
            MIN,
            2 * MIN,
            4 * MIN,
            8 * MIN,
            15 * MIN,
            30 * MIN,
            HOUR,
            2 * HOUR,
            4 * HOUR,
            8 * HOUR,
            16 * HOUR,
            24 * HOUR,
            24 * HOUR,
            24 * HOUR,
        ];
        for (i, secs) in expected.into_iter().enumerate() {
            let attempts_made = i as u32 + 1;
            let step = Duration::from_secs(secs);
            assert_eq!(
                schedule.step_after(attempts_made),
                Some(step),
                "after attempt {attempts_made}"
            );
            let delay = schedule.delay_after(attempts_made).unwrap();
            assert!(within_jitter(delay, step), "after attempt {attempts_made}: {delay:?}");
        }
        assert_eq!(schedule.delay_after(15), None);
        assert_eq!(schedule.delay_after(1000), None);
        assert_eq!(schedule.delay_after(u32::MAX), None);
    }

    #[test]
    fn default_is_the_standard_schedule() {
        assert_eq!(RetrySchedule::default(), RetrySchedule::standard());
    }

    #[test]
    fn nothing_failed_yet_means_no_delay() {
        assert_eq!(RetrySchedule::standard().delay_after(0), Some(Duration::ZERO));
        assert_eq!(RetrySchedule::standard().step_after(0), Some(Duration::ZERO));
    }

    #[test]
    fn parses_a_short_test_schedule() {
        let schedule: RetrySchedule = "100ms,250ms,1s".parse().unwrap();
        assert_eq!(schedule.retries(), 3);
        assert_eq!(schedule.step_after(1), Some(Duration::from_millis(100)));
        assert_eq!(schedule.step_after(2), Some(Duration::from_millis(250)));
        assert_eq!(schedule.step_after(3), Some(Duration::from_secs(1)));
        assert!(within_jitter(schedule.delay_after(3).unwrap(), Duration::from_secs(1)));
        assert_eq!(schedule.delay_after(4), None);
    }

    #[test]
    fn whitespace_around_entries_is_ignored() {
        let schedule = RetrySchedule::parse("  1s , 2m,\t1h 30m ").unwrap();
        assert_eq!(schedule.step_after(3), Some(Duration::from_secs(HOUR + 30 * MIN)));
    }

    #[test]
    fn display_round_trips_through_parse() {
        for schedule in [
            RetrySchedule::standard(),
            RetrySchedule::parse("100ms,250ms,1s,1h 30m").unwrap(),
        ] {
            let text = schedule.to_string();
            assert_eq!(RetrySchedule::parse(&text).unwrap(), schedule, "{text}");
        }
        assert_eq!(
            RetrySchedule::parse("100ms, 250ms, 1s").unwrap().to_string(),
            "100ms,250ms,1s"
        );
    }

    #[test]
    fn empty_schedule_is_refused() {
        for input in ["", "   "] {
            assert!(matches!(RetrySchedule::parse(input), Err(RetryScheduleError::Empty)));
        }
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let err = RetrySchedule::parse("1s,soon,5s").unwrap_err();
        assert!(err.to_string().contains("\"soon\""), "{err}");
        assert!(std::error::Error::source(&err).is_some());

        let err = RetrySchedule::parse("1s,0s").unwrap_err();
        assert!(matches!(err, RetryScheduleError::Zero { .. }));
        assert!(err.to_string().contains("\"0s\""), "{err}");

        let err = RetrySchedule::parse("1s,,5s").unwrap_err();
        assert!(matches!(err, RetryScheduleError::EmptyEntry { position: 2 }));

        let err = RetrySchedule::parse("1s,").unwrap_err();
        assert!(matches!(err, RetryScheduleError::EmptyEntry { position: 2 }));

        let err = RetrySchedule::parse("100").unwrap_err();
        assert!(err.to_string().contains("\"100\""), "{err}");
    }
}
