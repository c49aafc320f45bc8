//! Whether another writer is publishing to the webhooks this node's publish runner
//! publishes to, told by the increment ids the runner draws (issue 28).
//!
//! The one idea: a webhook's increment ids are gap-free across nodes, so when nothing else
//! drew any since this runner's last batch for a webhook, that webhook's next batch starts
//! right after the last id this runner drew. A batch that starts anywhere else means another
//! node (or another path of this one) published to it meanwhile.
//!
//! The runner uses it to choose how its one-statement batch commits (`batch::Commit`). Alone
//! on its webhooks, it commits waiting for the WAL flush: one round trip, the row locks held
//! through the flush, which costs nobody anything. Once it has seen a webhook shared, for
//! `HOLD` after, it commits without waiting and flushes in a second round trip, so the
//! other node's batch for that webhook takes the lock while this one's flush waits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::domain::WebhookId;

/// How long a runner keeps committing without waiting for the flush after it last saw a
/// webhook shared.
const HOLD: Duration = Duration::from_secs(10);

/// Webhooks remembered at most; beyond, the memory starts over (a webhook first seen again
/// tells nothing until its next batch).
const MAX_REMEMBERED: usize = 10_000;

/// What one runner knows of the increment ids it drew.
#[derive(Default)]
pub(super) struct Sharing {
    /// Each webhook's last increment id this runner drew.
    last: HashMap<WebhookId, i64>,
    /// Until when its webhooks count as shared.
    shared_until: Option<Instant>,
}

impl Sharing {
    /// Whether, at `now`, another writer has published to a webhook of this runner's within
    /// `HOLD`.
    pub fn shared(&self, now: Instant) -> bool {
        self.shared_until.is_some_and(|until| now < until)
    }

    /// Takes in a stored batch's increment ids: each webhook's first and last.
    pub fn saw(&mut self, spans: &HashMap<WebhookId, (i64, i64)>, now: Instant) {
        if self.last.len() + spans.len() > MAX_REMEMBERED {
            self.last.clear();
        }
        for (&webhook, &(first, last)) in spans {
            if let Some(before) = self.last.insert(webhook, last) {
                if first != before + 1 {
                    self.shared_until = Some(now + HOLD);
                }
            }
        }
    }

    /// Forgets every webhook: what this runner drew before is no guide to its next batch
    /// (a batch whose outcome is unknown, or one stored another way).
    pub fn forget(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(of: &[(i64, i64, i64)]) -> HashMap<WebhookId, (i64, i64)> {
        of.iter()
            .map(|&(w, first, last)| (WebhookId(w), (first, last)))
            .collect()
    }

    #[test]
    fn a_runner_alone_on_its_webhooks_never_counts_them_shared() {
        let (mut s, t) = (Sharing::default(), Instant::now());
        assert!(!s.shared(t), "nothing seen yet");
        s.saw(&spans(&[(1, 1, 10), (2, 1, 1)]), t);
        s.saw(&spans(&[(1, 11, 11), (2, 2, 5)]), t);
        s.saw(&spans(&[(3, 40, 41)]), t);
        s.saw(&spans(&[(1, 12, 20), (3, 42, 42)]), t);
        assert!(!s.shared(t));
    }

    #[test]
    fn ids_drawn_by_someone_else_in_between_count_as_shared_for_the_hold() {
        let (mut s, t) = (Sharing::default(), Instant::now());
        s.saw(&spans(&[(1, 1, 10), (2, 1, 3)]), t);
        s.saw(&spans(&[(1, 11, 12), (2, 6, 6)]), t);
        assert!(s.shared(t), "webhook 2's ids 4 and 5 went elsewhere");
        assert!(s.shared(t + HOLD - Duration::from_millis(1)));
        assert!(!s.shared(t + HOLD));
        // Seen again later: the hold starts again from then.
        let later = t + HOLD * 2;
        s.saw(&spans(&[(1, 15, 15)]), later);
        assert!(s.shared(later + HOLD / 2));
    }

    #[test]
    fn a_forgotten_webhook_tells_nothing_until_its_next_batch() {
        let (mut s, t) = (Sharing::default(), Instant::now());
        s.saw(&spans(&[(1, 1, 1)]), t);
        s.forget();
        s.saw(&spans(&[(1, 9, 9)]), t);
        assert!(!s.shared(t));
        s.saw(&spans(&[(1, 11, 11)]), t);
        assert!(s.shared(t));
    }

    #[test]
    fn memory_is_bounded() {
        let (mut s, t) = (Sharing::default(), Instant::now());
        for w in 0..(MAX_REMEMBERED as i64 * 3) {
            s.saw(&spans(&[(w, 1, 1)]), t);
        }
        assert!(s.last.len() <= MAX_REMEMBERED);
        assert!(!s.shared(t));
    }
}
