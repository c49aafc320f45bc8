//! Taking events in from brokers (`HOOKD_INGEST`, CONTRACT §7.5): `serve` consumes RabbitMQ
//! queues and NATS JetStream pull consumers and publishes each message as `event.publish`
//! would (see `message`). This is an entry point beside `rpc` and `console`: it turns its
//! input into an `App` call and nothing else.
//!
//! The one idea: delivery from the broker is at least once, and publishing is idempotent, so
//! together nothing is lost and nothing is published twice. A message is acknowledged only
//! after its publish returned (the event is durable) or it was rejected for good; a node
//! killed in between leaves it unacknowledged, the broker gives it again (to this node after
//! a restart, or to another), and its idempotency key makes the second publish a replay.
//! Transient failures hand the message back after a growing pause, so a database outage
//! slows the consumer down instead of emptying the queue into errors.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::domain::broker_url::IngestSource;

mod amqp;
pub mod message;
mod nats;

use message::{Incoming, Verdict};

/// Messages of one source being published at once (RabbitMQ's prefetch, JetStream's
/// batch): enough to fill the store's group commits, few enough that a stop waits little.
pub const IN_FLIGHT: u16 = 64;

/// Consumes every source until `stop`; each source reconnects on its own after a failure.
pub async fn run(app: App, sources: Vec<IngestSource>, node: String, stop: watch::Receiver<bool>) {
    app.metrics
        .ingest_reasons(message::Reason::ALL.iter().map(|r| r.label()));
    let mut tasks = Vec::new();
    for source in sources {
        let (app, node, stop) = (app.clone(), node.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let consumer = Consumer {
                app,
                shown: shown(&source),
                backoff: Backoff::default(),
            };
            tracing::info!(source = %consumer.shown, "ingesting events from {}", consumer.shown);
            match source {
                IngestSource::Amqp { .. } => amqp::consume(&consumer, &source, &node, stop).await,
                IngestSource::Nats { .. } => nats::consume(&consumer, &source, stop).await,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// What both kinds of consumer share: the app, the source's name for logs, the pause.
struct Consumer {
    app: App,
    /// The source without its login, for logs.
    shown: String,
    backoff: Backoff,
}

/// What to tell the broker about one message.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Ack,
    /// Hand it back to be delivered again, after this pause.
    GiveBack(Duration),
}

impl Consumer {
    /// Publishes one message and decides its fate; logs and counts rejections.
    async fn handle(&self, incoming: &Incoming<'_>) -> Decision {
        match message::publish(&self.app, incoming).await {
            Verdict::Published { replayed } => {
                let outcome = if replayed { "replayed" } else { "published" };
                self.app.metrics.ingest_message(outcome);
                self.backoff.reset();
                Decision::Ack
            }
            Verdict::Rejected(reason, why) => {
                self.app.metrics.ingest_rejected(reason.label());
                self.app.metrics.ingest_message("rejected");
                tracing::warn!(
                    source = %self.shown,
                    reason = reason.label(),
                    message_id = incoming.message_id.unwrap_or_default(),
                    "ingested message rejected and acknowledged: {why}"
                );
                Decision::Ack
            }
            Verdict::Transient(error) => {
                let pause = self.backoff.next();
                self.app.metrics.ingest_message("given_back");
                tracing::warn!(
                    source = %self.shown,
                    error = %error,
                    "ingested message not stored; handed back to the broker in {}",
                    humantime::format_duration(pause)
                );
                Decision::GiveBack(pause)
            }
        }
    }

    /// Waits after a lost connection; false when stopped meanwhile.
    async fn pause_after(&self, error: &str, stop: &mut watch::Receiver<bool>) -> bool {
        let pause = self.backoff.next();
        tracing::warn!(
            source = %self.shown,
            "ingestion from {} interrupted ({error}); trying again in {}",
            self.shown,
            humantime::format_duration(pause)
        );
        sleep_unless_stopped(pause, stop).await
    }
}

/// Sleeps for `pause`; false when `stop` came first.
async fn sleep_unless_stopped(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    let slept = tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    };
    slept && !*stop.borrow()
}

/// Pauses that double with each failure in a row (100 ms to 30 s) and start over after a
/// success.
#[derive(Default)]
struct Backoff {
    failures: AtomicU32,
}

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

impl Backoff {
    fn next(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        FIRST_PAUSE.saturating_mul(1 << n).min(LONGEST_PAUSE)
    }

    fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// A source as logs show it: no login.
pub fn shown(source: &IngestSource) -> String {
    match source {
        IngestSource::Amqp { address, vhost, queue } => {
            let vhost = percent_encoding::utf8_percent_encode(vhost, percent_encoding::NON_ALPHANUMERIC);
            format!("amqp://{}:{}/{vhost}?queue={queue}", address.host, address.port)
        }
        IngestSource::Nats {
            address,
            subject,
            stream,
            consumer,
        } => format!(
            "nats://{}:{}/{subject}?stream={stream}&consumer={consumer}",
            address.host, address.port
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_bound_and_start_over_after_a_success() {
        let b = Backoff::default();
        let pauses: Vec<_> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800]);
        for _ in 0..40 {
            b.next();
        }
        assert_eq!(b.next(), LONGEST_PAUSE);
        b.reset();
        assert_eq!(b.next(), FIRST_PAUSE);
    }

    #[test]
    fn sources_are_shown_without_their_login() {
        let amqp = IngestSource::parse("amqp://u:secret@mq:5673/%2f?queue=q").unwrap();
        assert_eq!(shown(&amqp), "amqp://mq:5673/%2F?queue=q");
        let nats = IngestSource::parse("nats://u:secret@n/a.b?stream=S&consumer=C").unwrap();
        assert_eq!(shown(&nats), "nats://n:4222/a.b?stream=S&consumer=C");
    }
}
