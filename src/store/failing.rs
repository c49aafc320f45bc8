//! How an outcome batch moves its webhooks' `failing_since` (both backends share this).
//!
//! `failing_since` is when a webhook's current run of failures began: set by the first
//! failure after a success, cleared by a success, so "every attempt has failed for
//! `HOOKD_DISABLE_AFTER`" is one comparison. A batch is boiled down to one change per
//! webhook, and the backends write a change only when it changes something: a batch of
//! successes for a webhook that is not failing writes nothing.

use std::collections::BTreeMap;

use crate::domain::{DeliveryStatus, DeliveryUpdate, WebhookId};
use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The batch's last attempt for it succeeded: `failing_since` becomes NULL.
    Clear,
    /// It succeeded, then failed from this time on: a new run of failures starts here.
    Restart(Millis),
    /// Only failures, the first at this time: a run starts here unless one is on already.
    Fail(Millis),
}

impl Change {
    /// A small code for the PostgreSQL arrays: 0 clear, 1 restart, 2 fail.
    pub(crate) fn code(self) -> i16 {
        match self {
            Change::Clear => 0,
            Change::Restart(_) => 1,
            Change::Fail(_) => 2,
        }
    }

    pub(crate) fn at(self) -> Option<Millis> {
        match self {
            Change::Clear => None,
            Change::Restart(at) | Change::Fail(at) => Some(at),
        }
    }
}

/// One change per webhook of the batch, in ascending webhook order (the order rows are
/// locked in). Any outcome but success is a failure, Retry-After and 410 included.
pub(crate) fn changes(updates: &[DeliveryUpdate]) -> Vec<(WebhookId, Change)> {
    // Per webhook: the last success, and the failures' times.
    let mut seen: BTreeMap<i64, (Option<Millis>, Vec<Millis>)> = BTreeMap::new();
    for u in updates {
        let entry = seen.entry(u.webhook_id.0).or_default();
        let at = u.attempt.attempted_at;
        if u.status == DeliveryStatus::Success {
            entry.0 = Some(entry.0.map_or(at, |s| s.max(at)));
        } else {
            entry.1.push(at);
        }
    }
    seen.into_iter()
        .map(|(id, (success, failures))| {
            let after = failures.into_iter().filter(|f| success.is_none_or(|s| *f > s)).min();
            let change = match (success, after) {
                (Some(_), None) => Change::Clear,
                (Some(_), Some(at)) => Change::Restart(at),
                (None, Some(at)) => Change::Fail(at),
                (None, None) => unreachable!("every webhook in the map has an outcome"),
            };
            (WebhookId(id), change)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttemptLog, DeliveryId};

    fn outcome(webhook: i64, status: DeliveryStatus, at: Millis) -> DeliveryUpdate {
        DeliveryUpdate {
            delivery_id: DeliveryId(at),
            webhook_id: WebhookId(webhook),
            attempt_no: 1,
            request: 0,
            lease_owner: "n".into(),
            attempt: AttemptLog {
                attempted_at: at,
                http_status: None,
                duration_ms: 0,
                response_prefix: String::new(),
                error: None,
                sent_headers: Some(String::new()),
            },
            status,
            next_attempt_at: at,
        }
    }

    #[test]
    fn one_change_per_webhook_from_the_order_of_its_outcomes() {
        use DeliveryStatus::{Failed, Retrying, Success};
        let batch = [
            outcome(3, Retrying, 30),
            outcome(1, Success, 10),
            outcome(2, Retrying, 25),
            outcome(2, Success, 20),
            outcome(3, Failed, 28),
            outcome(4, Success, 40),
            outcome(1, Retrying, 5), // before the success: forgiven
            outcome(4, Retrying, 45),
            outcome(4, Retrying, 42),
        ];
        assert_eq!(
            changes(&batch),
            vec![
                (WebhookId(1), Change::Clear),
                (WebhookId(2), Change::Restart(25)),
                (WebhookId(3), Change::Fail(28)),
                (WebhookId(4), Change::Restart(42)),
            ]
        );
        assert!(changes(&[]).is_empty());
    }
}
