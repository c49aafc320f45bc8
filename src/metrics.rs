//! Metrics in the Prometheus/OpenMetrics text format, served at `GET /metrics` (CONTRACT.md
//! §6.3). Counting is an atomic add on the hot path; labels are few and fixed (no label per
//! webhook or merchant, so the series count stays bounded however many there are).
//! `hookd_queue_due` is read from the store when scraped.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pool: &'static str,
}

/// Events per publish transaction (SQLite's writer batches, PostgreSQL's group commits):
/// observed by the stores, which hold no `Metrics`, so kept here like `OVER_BUDGET`.
pub static PUBLISH_BATCH: std::sync::LazyLock<Histogram> =
    std::sync::LazyLock::new(|| Histogram::new(exponential_buckets(1.0, 2.0, 11)));

/// Publishes this node had stored by their merchant's owner node, and publishes it stored
/// for another node (see `cluster`): kept here, like `PUBLISH_BATCH`, for code that holds
/// no `Metrics`.
pub static PEER_PUBLISHES_FORWARDED: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);
pub static PEER_PUBLISHES_TAKEN: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);

/// The status classes attempts are counted by (`none`: no answer, e.g. refused or timed out).
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Every metric hookd keeps, registered once.
pub struct Metrics {
    registry: Registry,
    pub events_published: Counter,
    pub payloads_created: Counter,
    /// The two series of `hookd_delivery_attempts_total`, held so counting takes no lock.
    attempts_success: Counter,
    attempts_failure: Counter,
    pub payloads_failed: Counter,
    pub webhooks_disabled: Counter,
    pub attempt_duration: Histogram,
    pub queue_due: Gauge,
    /// Webhooks the dispatcher holds a lane for (work due or waiting for its pace, or
    /// attempts in flight).
    pub dispatch_lanes: Gauge,
    /// `max_rate` token buckets kept in memory (SQLite; PostgreSQL keeps them as rows, which
    /// go with their webhook).
    pub rate_buckets: Gauge,
    /// API calls' durations by method (a known method name, "call" or "unknown").
    api_duration: Family<MethodLabel, Histogram>,
    /// Attempts by the answer's status class, held so counting takes no lock.
    attempts_by_class: [Counter; 6],
    /// Seconds the oldest due payload of an active webhook has waited (0: none due).
    pub queue_oldest_due: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Database connections in use, by pool (see `store::PoolStats`).
    pub db_in_use: Family<PoolLabel, Gauge>,
    /// Work waiting for a database connection or the one writer, by pool.
    pub db_waiting: Family<PoolLabel, Gauge>,
    /// Ingested broker messages rejected (acknowledged, not published), by reason (a fixed
    /// set, `ingest::message::Reason`, shown at 0 once ingestion starts).
    ingest_rejected: Family<ReasonLabel, Counter>,
    /// Ingested messages by what became of them: published, replayed (an idempotency key
    /// already published), rejected, given_back (to the broker, after a transient failure).
    ingest_messages: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events_published = Counter::default();
        let payloads_created = Counter::default();
        let attempts = Family::<OutcomeLabel, Counter>::default();
        let payloads_failed = Counter::default();
        let webhooks_disabled = Counter::default();
        // 5 ms … about 41 s, doubling.
        let attempt_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let queue_due = Gauge::default();
        let dispatch_lanes = Gauge::default();
        let rate_buckets = Gauge::default();
        registry.register(
            "hookd_events_published",
            "Events accepted by event.publish (replays of an idempotency key not counted)",
            events_published.clone(),
        );
        registry.register(
            "hookd_payloads_created",
            "Payloads made for webhooks (by events and test pings)",
            payloads_created.clone(),
        );
        registry.register(
            "hookd_delivery_attempts",
            "Delivery attempts by outcome (success: a 2xx answer)",
            attempts.clone(),
        );
        registry.register(
            "hookd_payloads_failed",
            "Payloads that used up their retry schedule and became failed",
            payloads_failed.clone(),
        );
        registry.register(
            "hookd_webhooks_disabled",
            "Webhooks hookd turned off because of their receiver",
            webhooks_disabled.clone(),
        );
        registry.register(
            "hookd_delivery_attempt_duration_seconds",
            "How long delivery attempts took, from sending to the answer (or the error)",
            attempt_duration.clone(),
        );
        registry.register(
            "hookd_queue_due",
            "Payloads of active webhooks due for an attempt now (counted up to 1,000,000)",
            queue_due.clone(),
        );
        registry.register(
            "hookd_filter_over_budget",
            "Filter evaluations stopped for going over their budget (the event did not pass; logged once per filter)",
            crate::domain::filter::OVER_BUDGET.clone(),
        );
        registry.register(
            "hookd_dispatch_lanes",
            "Webhooks this node's dispatcher holds a lane for (work due or paced, or attempts in flight)",
            dispatch_lanes.clone(),
        );
        registry.register(
            "hookd_rate_buckets",
            "max_rate token buckets held in memory (SQLite; on PostgreSQL they are rows)",
            rate_buckets.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("hookd_build_info", "Always 1; the version of this hookd", build_info);
        // 0.5 ms … about 16 s, doubling.
        let api_duration = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "hookd_api_request_duration_seconds",
            "How long JSON-RPC calls took, by method (each call of a batch on its own)",
            api_duration.clone(),
        );
        let by_class = Family::<StatusClassLabel, Counter>::default();
        registry.register(
            "hookd_delivery_attempts_by_status",
            "Delivery attempts by the receiver's HTTP status class (none: no answer)",
            by_class.clone(),
        );
        let attempts_by_class = STATUS_CLASSES.map(|class| by_class.get_or_create(&StatusClassLabel { class }).clone());
        registry.register(
            "hookd_publish_batch_size",
            "Events stored by one publish transaction (SQLite writer batch, PostgreSQL group commit)",
            PUBLISH_BATCH.clone(),
        );
        registry.register(
            "hookd_peer_publishes_forwarded",
            "Publishes taken here and stored by their merchant's owner node (peer links)",
            PEER_PUBLISHES_FORWARDED.clone(),
        );
        registry.register(
            "hookd_peer_publishes_taken",
            "Publishes another node forwarded here and this node stored (peer links)",
            PEER_PUBLISHES_TAKEN.clone(),
        );
        let queue_oldest_due = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "hookd_queue_oldest_due_seconds",
            "How long the oldest payload due for an attempt now has been due (0: none)",
            queue_oldest_due.clone(),
        );
        let db_in_use = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "hookd_db_connections_in_use",
            "Database connections in use, by pool (SQLite: the writer's 1 while it runs a batch, and busy readers)",
            db_in_use.clone(),
        );
        let db_waiting = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "hookd_db_waiting",
            "Work queued for a database connection, by pool (PostgreSQL publisher queue, SQLite writer queue)",
            db_waiting.clone(),
        );
        let ingest_rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "hookd_ingest_rejected",
            "Messages taken in from a broker (HOOKD_INGEST) that could not be published, acknowledged and dropped, by reason",
            ingest_rejected.clone(),
        );
        let ingest_messages = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "hookd_ingest_messages",
            "Messages taken in from a broker by outcome (published, replayed, rejected, given_back)",
            ingest_messages.clone(),
        );
        let series = |outcome| attempts.get_or_create(&OutcomeLabel { outcome }).clone();
        let (attempts_success, attempts_failure) = (series("success"), series("failure"));
        Self {
            registry,
            events_published,
            payloads_created,
            attempts_success,
            attempts_failure,
            payloads_failed,
            webhooks_disabled,
            attempt_duration,
            queue_due,
            dispatch_lanes,
            rate_buckets,
            api_duration,
            attempts_by_class,
            queue_oldest_due,
            db_in_use,
            db_waiting,
            ingest_rejected,
            ingest_messages,
        }
    }
}

impl Metrics {
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A database pool's figures, as read at scrape time.
    pub fn pool(&self, stats: &crate::store::PoolStats) {
        let pool = PoolLabel { pool: stats.pool };
        if let Some(n) = stats.in_use {
            self.db_in_use.get_or_create(&pool).set(n);
        }
        if let Some(n) = stats.waiting {
            self.db_waiting.get_or_create(&pool).set(n);
        }
    }

    /// What became of one ingested message (see `ingest_messages`).
    pub fn ingest_message(&self, outcome: &'static str) {
        self.ingest_messages.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Shows every reason and outcome at 0 before the first message (called when ingestion starts).
    pub fn ingest_reasons(&self, reasons: impl IntoIterator<Item = &'static str>) {
        for outcome in ["published", "replayed", "rejected", "given_back"] {
            let _ = self.ingest_messages.get_or_create(&OutcomeLabel { outcome });
        }
        for reason in reasons {
            let _ = self.ingest_rejected.get_or_create(&ReasonLabel { reason });
        }
    }

    /// An ingested message was rejected for `reason` (one of `Reason::ALL`'s labels).
    pub fn ingest_rejected(&self, reason: &'static str) {
        self.ingest_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// One JSON-RPC call ended.
    pub fn api_call(&self, method: &'static str, seconds: f64) {
        self.api_duration
            .get_or_create(&MethodLabel { method })
            .observe(seconds);
    }

    /// One delivery attempt ended with this HTTP status (None: no answer).
    pub fn attempt_status(&self, status: Option<u16>) {
        let class = match status {
            Some(s @ 100..=599) => (s / 100 - 1) as usize,
            _ => 5,
        };
        self.attempts_by_class[class].inc();
    }

    /// One delivery attempt ended.
    pub fn attempt(&self, success: bool, seconds: f64) {
        if success {
            self.attempts_success.inc();
        } else {
            self.attempts_failure.inc();
        }
        self.attempt_duration.observe(seconds);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_s_metric_names_are_exposed() {
        let m = Metrics::default();
        m.events_published.inc();
        m.payloads_created.inc_by(3);
        m.attempt(true, 0.02);
        m.attempt(false, 1.5);
        m.queue_due.set(7);
        m.ingest_reasons(["schema", "topic"]);
        m.ingest_rejected("topic");
        let text = m.render();
        for line in [
            "hookd_events_published_total 1",
            "hookd_payloads_created_total 3",
            "hookd_delivery_attempts_total{outcome=\"success\"} 1",
            "hookd_delivery_attempts_total{outcome=\"failure\"} 1",
            "hookd_payloads_failed_total 0",
            "# TYPE hookd_filter_over_budget counter",
            "hookd_webhooks_disabled_total 0",
            "hookd_queue_due 7",
            "hookd_dispatch_lanes 0",
            "hookd_rate_buckets 0",
            "hookd_delivery_attempt_duration_seconds_count 2",
            "hookd_ingest_rejected_total{reason=\"schema\"} 0",
            "hookd_ingest_rejected_total{reason=\"topic\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
