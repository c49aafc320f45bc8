//! The node's PostgreSQL connections, split three ways so that no kind of work can take
//! them all: the publisher's runners (`publisher`), the dispatcher's background work
//! (scans, claims, outcomes, housekeeping), and API requests (everything else).
//!
//! The one idea: one shared pool made every caller wait in one line. A burst of claims or
//! outcome writes, or publish runners waiting for a webhook row another node holds across
//! its commit, left an API request (the credential lookup of a publish) waiting longer than
//! the acquire timeout, and a publish failed with nothing wrong but the load. Each share is
//! its own sqlx pool, so a request waits only behind requests of its own kind, and publishes
//! wait in the publisher's bounded queue instead of for a connection.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Executor;

use crate::store::PoolSettings;

/// A pooled connection idle at least this long is pinged before it is handed out.
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// Connections per share of `max_connections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub publish: u32,
    pub work: u32,
    pub api: u32,
}

impl Split {
    /// The publisher's one (a single runner makes the largest batches; see `publisher`),
    /// then half of the rest for the dispatcher (at least one), the others for API requests
    /// (at least one).
    pub fn of(max_connections: u32) -> Split {
        let publish = 1;
        let rest = max_connections.saturating_sub(publish);
        let work = (rest / 2).max(1);
        let api = rest.saturating_sub(work).max(1);
        Split { publish, work, api }
    }
}

pub(super) struct Pools {
    pub api: PgPool,
    pub work: PgPool,
    pub publish: PgPool,
}

impl Pools {
    /// Connects the API pool first (failing at once when the server cannot be reached);
    /// the others open their connections when first asked.
    pub async fn connect(options: &PgConnectOptions, settings: &PoolSettings) -> Result<Pools, sqlx::Error> {
        let split = Split::of(settings.max_connections);
        let api = pool_options(split.api, settings).connect_with(options.clone()).await?;
        Ok(Pools {
            api,
            work: hot_path(pool_options(split.work, settings)).connect_lazy_with(options.clone()),
            publish: hot_path(pool_options(split.publish, settings)).connect_lazy_with(options.clone()),
        })
    }
}

/// The settings of the connections that run the per-event statements (the publisher's
/// and the dispatcher's): each statement is planned once per connection, and its plan goes
/// through indexes whatever the size of the tables when it was made.
///
/// Left to itself, PostgreSQL planned the outcome write, `track_failing` and the batch's
/// key check anew on *every* call: their arrays hold one or a few rows, so the plan made
/// for the values looked cheaper than the one made once, and planning cost more than
/// running (236, 141 and 63 µs a call against 119, 19 and 12 µs, at 500 events/s). And a
/// plan made once while `deliveries` was young and small scanned the whole table on every
/// later call, however large it grew (1,116 buffers an outcome write at 500 events/s),
/// until autovacuum's next ANALYZE made PostgreSQL plan again. Every one of
/// these statements has an index for what it looks up (the claim, the outcome write, the
/// queue scan and the purge included; `tests/plans.rs`), so a sequential scan is never the
/// plan wanted here. The settings are made once per connection, as it opens (a `SET`
/// rather than the startup message's `options`, which PgBouncer refuses). API requests keep
/// PostgreSQL's defaults: their listings' optional filters are better planned with the
/// values.
fn hot_path(pool: PgPoolOptions) -> PgPoolOptions {
    pool.after_connect(|conn, _| {
        Box::pin(async move {
            conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
                .await?;
            Ok(())
        })
    })
}

fn pool_options(max: u32, settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(settings.acquire_timeout)
        // A connection the server dropped (restart, failover) is found and replaced
        // before a query runs on it, not reported as that query's failure. Only
        // connections that sat idle are asked: sqlx already pings every connection as
        // it is given back, so one in steady use was answering a moment ago, and a
        // ping on every acquire was a third round trip per query on the hot paths.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn every_share_gets_a_connection_and_together_they_take_the_setting() {
        assert_eq!(
            Split::of(3),
            Split {
                publish: 1,
                work: 1,
                api: 1
            }
        );
        assert_eq!(
            Split::of(4),
            Split {
                publish: 1,
                work: 1,
                api: 2
            }
        );
        assert_eq!(
            Split::of(8),
            Split {
                publish: 1,
                work: 3,
                api: 4
            }
        );
        assert_eq!(
            Split::of(16),
            Split {
                publish: 1,
                work: 7,
                api: 8
            }
        );
        for max in 3..=1000 {
            let s = Split::of(max);
            assert_eq!(s.publish + s.work + s.api, max, "{max}");
        }
    }
}
