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

use crate::domain::{ClaimedDelivery, MaxRate, WebhookId};
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
    /// The bucket for a stored rate, clamped into `max_rate`'s bounds first: a rate too
    /// small to be one (say 5e-324) would make the interval infinite and every time computed
    /// from it NaN, a "next token" in the past, and so a lane that never stops claiming.
    pub fn for_rate(per_second: f64) -> Self {
        let per_second = MaxRate::clamped(per_second).per_second();
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

/// In-memory buckets (SQLite: one process, one dispatcher). A bucket that is full again is
/// the same as none, so such entries are swept away (at most once a second, on a claim) and
/// a deleted webhook's goes at once (`forget`): the map holds only webhooks paced lately.
#[derive(Default)]
pub struct Buckets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each webhook's `pace_at`, and when its bucket is full again (and so may go).
    pace_at: HashMap<WebhookId, (f64, f64)>,
    next_sweep: Millis,
}

/// How often full buckets are swept from the map, in milliseconds.
const SWEEP_EVERY: Millis = 1000;

impl Inner {
    /// The webhook's `pace_at`, after sweeping full buckets when it is time.
    fn pace_at(&mut self, webhook: WebhookId, now: Millis) -> &mut (f64, f64) {
        if now >= self.next_sweep {
            let now = now as f64;
            self.pace_at.retain(|_, (_, full_at)| *full_at > now);
            self.next_sweep = now as Millis + SWEEP_EVERY;
        }
        self.pace_at
            .entry(webhook)
            .or_insert((f64::NEG_INFINITY, f64::NEG_INFINITY))
    }
}

impl Buckets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to `want` tokens at `now`; returns how many it got.
    pub fn take(&self, webhook: WebhookId, bucket: Bucket, now: Millis, want: usize) -> usize {
        let mut inner = self.lock();
        let (pace_at, full_at) = inner.pace_at(webhook, now);
        let base = bucket.base(*pace_at, now);
        let got = (bucket.tokens(base, now).max(0) as usize).min(want);
        *pace_at = base + got as f64 * bucket.interval;
        *full_at = *pace_at + bucket.burst * bucket.interval;
        got
    }

    /// Gives back tokens taken but not used (fewer payloads were claimable), and tells when
    /// the next token comes if the bucket is now empty.
    pub fn settle(&self, webhook: WebhookId, bucket: Bucket, now: Millis, unused: usize) -> Option<Millis> {
        let mut inner = self.lock();
        let (pace_at, full_at) = inner.pace_at(webhook, now);
        *pace_at -= unused as f64 * bucket.interval;
        *full_at = *pace_at + bucket.burst * bucket.interval;
        let base = bucket.base(*pace_at, now);
        (bucket.tokens(base, now) == 0).then(|| bucket.next_token(base))
    }

    /// Drops the webhook's bucket (it was deleted).
    pub fn forget(&self, webhook: WebhookId) {
        self.lock().pace_at.remove(&webhook);
    }

    /// How many buckets are held.
    pub fn held(&self) -> usize {
        self.lock().pace_at.len()
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

    #[test]
    fn a_rate_too_small_to_be_one_still_gives_a_next_token_in_the_future() {
        // 5e-324 per second made the interval infinite and the next token NaN, read as 0:
        // a lane due at once, forever.
        let (b, bucket) = (Buckets::default(), Bucket::for_rate(5e-324));
        assert_eq!(bucket, Bucket::for_rate(1.0 / 3600.0), "clamped to one an hour");
        let now = 1_000_000;
        assert_eq!(b.take(W, bucket, now, 1), 1);
        assert_eq!(b.settle(W, bucket, now, 0), Some(now + 3_600_000));
        assert_eq!(b.take(W, bucket, now + 1, 1), 0);
        assert_eq!(b.settle(W, bucket, now + 1, 0), Some(now + 3_600_000));
        for stored in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            let bucket = Bucket::for_rate(stored);
            assert!(
                bucket.interval.is_finite() && bucket.interval > 0.0,
                "{stored}: {bucket:?}"
            );
        }
    }

    #[test]
    fn full_buckets_are_swept_and_a_deleted_webhook_s_goes_at_once() {
        let (b, bucket) = (Buckets::default(), Bucket::for_rate(10.0)); // 100 ms, burst 1
        assert_eq!(b.take(W, bucket, 0, 1), 1);
        assert_eq!(b.take(WebhookId(2), bucket, 0, 1), 1);
        assert_eq!(b.held(), 2);
        b.forget(WebhookId(2));
        assert_eq!(b.held(), 1);
        assert_eq!(b.take(W, bucket, 50, 1), 0, "not yet full: kept");
        assert_eq!(b.held(), 1);
        assert_eq!(b.take(WebhookId(3), bucket, 5000, 0), 0, "a claim a while later sweeps");
        assert_eq!(b.held(), 1, "only the one just asked for is left");
        assert_eq!(b.take(W, bucket, 5000, 1), 1, "a swept bucket is a full one");
    }
}
