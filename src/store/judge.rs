//! Publishing with filters judged off the store's write path. The store never evaluates a
//! filter (SQLite's writer thread and PostgreSQL's group commit serve every merchant, so a
//! slow filter there would hold up everyone): a publish brings the verdicts of the filters
//! it may meet, and a store that matches a filtered webhook the request did not judge stores
//! nothing and names the filters (`StoreError::FiltersUnjudged`). `publish_judged` is the
//! loop around that: judge what is known to be met, publish, judge what the store named,
//! publish again. Judging runs on tokio's blocking pool, under each filter's budget.

use std::sync::Arc;

use super::{PublishRequest, Published, Store, StoreError, StoreResult};
use crate::domain::filter::Verdicts;
use crate::domain::BodyTemplate;

/// Publishes at most this many times before giving up on filters that keep changing.
const ROUNDS: usize = 4;

/// Publishes `req` (whose `verdicts` are ignored), judging `known` first: the filters
/// expected to be met. Filters the store names are judged, added to `known`, and the
/// publish is made again; so a caller keeping `known` between publishes pays for the second
/// round only when a filter is new to it.
pub async fn publish_judged(
    store: &dyn Store,
    peers: Option<&crate::cluster::Cluster>,
    req: &PublishRequest<'_>,
    known: &mut Vec<Arc<str>>,
) -> StoreResult<Published> {
    let mut verdicts = judge(req.topic.as_str(), req.body, known.clone()).await;
    let mut round = 1;
    loop {
        let judged = PublishRequest {
            verdicts: &verdicts,
            ..*req
        };
        let published = match peers {
            Some(peers) => peers.publish(store, &judged).await,
            None => store.event_publish(&judged).await,
        };
        match published {
            Err(StoreError::FiltersUnjudged(filters)) if round < ROUNDS => {
                round += 1;
                for f in &filters {
                    if !known.contains(f) {
                        known.push(f.clone());
                    }
                }
                verdicts.extend(judge(req.topic.as_str(), req.body, filters).await);
            }
            other => return other,
        }
    }
}

/// The event's verdicts for `filters`, judged on the blocking pool (none: nothing to do).
async fn judge(topic: &str, body: &BodyTemplate, filters: Vec<Arc<str>>) -> Verdicts {
    if filters.is_empty() {
        return Verdicts::default();
    }
    let (topic, body) = (topic.to_string(), body.clone());
    let judging = tokio::task::spawn_blocking(move || Verdicts::judge(&topic, &body, &filters));
    // A panic while judging (a bug) leaves the filters unjudged: the store asks again and
    // the publish ends with `FiltersUnjudged` rather than a payload it should not make.
    judging.await.unwrap_or_default()
}
