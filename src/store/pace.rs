//! Pacing of claims (CONTRACT §6.2): `ordered` webhooks hand out only their head payload,
//! and `max_rate` webhooks hand out no more than their token bucket holds.
//!
//! The one idea to know: the bucket is a single number per webhook, `pace_at` (a virtual
//! time in fractional milliseconds, the "theoretical arrival time" of GCRA). At `now` the
//! bucket holds `min(burst, (now - pace_at) / interval)` tokens; taking `k` moves `pace_at`
//! to `max(pace_at, now - burst * interval) + k * interval`. One number is cheap to keep in
//! a PostgreSQL row (updated inside the claim statement, so nodes share it) or in memory
//! (SQLite: one process serves one file).
//!
//! The burst is 100 ms worth of tokens (at least 1): at 5/s that is 1, so deliveries are
//! never closer than 200 ms; at 1000/s it is 100, so a busy webhook is claimed about ten
//! times a second rather than once per token.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::{ClaimedDelivery, WebhookId};
use crate::time::Millis;

/// How a webhook's claims are paced; from its stored settings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pacing {
    /// Only the head (lowest `increment_id` queued) may be claimed, and only when no
    /// attempt of it is in flight.
    pub ordered: bool,
    /// Deliveries per second; None = no limit.
    pub max_rate: Option<f64>,
}

/// What a paced claim got.
#[derive(Debug, Default)]
pub struct PacedClaim {
    pub claimed: Vec<ClaimedDelivery>,
    /// Set when pacing held something back that is due: nothing more is claimable before
    /// this time (the next token, or an ordered head's retry time). The dispatcher sleeps
    /// until then instead of waiting for the next queue scan.
    pub next_at: Option<Millis>,
}

/// The token bucket's parameters for a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Milliseconds per token.
    pub interval: f64,
    /// Most tokens held at once.
    pub burst: f64,
}

impl Bucket {
    pub fn for_rate(per_second: f64) -> Self {
        Self {
            interval: 1000.0 / per_second,
            burst: (per_second / 10.0).floor().max(1.0),
        }
    }

    /// `pace_at` as it counts at `now`: a bucket idle for long holds `burst`, no more.
    pub fn base(&self, pace_at: f64, now: Millis) -> f64 {
        pace_at.max(now as f64 - self.burst * self.interval)
    }

    /// Whole tokens held at `now` by a bucket whose base is `base`.
    pub fn tokens(&self, base: f64, now: Millis) -> i64 {
        ((now as f64 - base) / self.interval).floor().max(0.0) as i64
    }

    /// When the bucket holds one token again after its base moved to `base`.
    pub fn next_token(&self, base: f64) -> Millis {
        (base + self.interval).ceil() as Millis
    }
}

/// In-memory buckets (SQLite: one process, one dispatcher).
#[derive(Default)]
pub struct Buckets {
    pace_at: Mutex<HashMap<WebhookId, f64>>,
}

impl Buckets {
    /// Takes up to `want` tokens at `now`; returns how many it got.
    pub fn take(&self, webhook: WebhookId, bucket: Bucket, now: Millis, want: usize) -> usize {
        let mut map = self.pace_at.lock().unwrap_or_else(|e| e.into_inner());
        let pace_at = map.entry(webhook).or_insert(f64::NEG_INFINITY);
        let base = bucket.base(*pace_at, now);
        let got = (bucket.tokens(base, now).max(0) as usize).min(want);
        *pace_at = base + got as f64 * bucket.interval;
        got
    }

    /// Gives back tokens taken but not used (fewer payloads were claimable), and tells when
    /// the next token comes if the bucket is now empty.
    pub fn settle(&self, webhook: WebhookId, bucket: Bucket, now: Millis, unused: usize) -> Option<Millis> {
        let mut map = self.pace_at.lock().unwrap_or_else(|e| e.into_inner());
        let pace_at = map.entry(webhook).or_insert(f64::NEG_INFINITY);
        *pace_at -= unused as f64 * bucket.interval;
        let base = bucket.base(*pace_at, now);
        (bucket.tokens(base, now) == 0).then(|| bucket.next_token(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: WebhookId = WebhookId(1);

    #[test]
    fn the_burst_is_a_tenth_of_a_second_of_tokens_and_at_least_one() {
        assert_eq!(Bucket::for_rate(5.0).burst, 1.0);
        assert_eq!(Bucket::for_rate(0.5).burst, 1.0);
        assert_eq!(Bucket::for_rate(25.0).burst, 2.0);
        assert_eq!(Bucket::for_rate(1000.0).burst, 100.0);
    }

    #[test]
    fn a_bucket_hands_out_its_burst_then_one_token_per_interval() {
        let (b, bucket) = (Buckets::default(), Bucket::for_rate(20.0)); // 50 ms, burst 2
        assert_eq!(b.take(W, bucket, 1000, 10), 2, "an idle bucket holds its burst");
        assert_eq!(b.settle(W, bucket, 1000, 0), Some(1050));
        assert_eq!(b.take(W, bucket, 1049, 10), 0);
        assert_eq!(b.take(W, bucket, 1050, 10), 1);
        assert_eq!(
            b.take(W, bucket, 1200, 10),
            2,
            "never more than the burst after a pause"
        );
        assert_eq!(b.take(WebhookId(2), bucket, 1200, 1), 1, "buckets are per webhook");
    }

    #[test]
    fn unused_tokens_go_back() {
        let (b, bucket) = (Buckets::default(), Bucket::for_rate(10.0)); // 100 ms, burst 1
        assert_eq!(b.take(W, bucket, 0, 1), 1);
        assert_eq!(
            b.settle(W, bucket, 0, 1),
            None,
            "the token was not used: it is still there"
        );
        assert_eq!(b.take(W, bucket, 0, 1), 1);
        assert_eq!(b.settle(W, bucket, 0, 0), Some(100));
    }
}
