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

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

    /// Runs one session after another (each given its own view of `stop`) until one ends
    /// because of `stop`: Ok. After a failure (Err, the reason) it pauses first.
    async fn sessions<F, Fut>(&self, mut stop: watch::Receiver<bool>, mut session: F)
    where
        F: FnMut(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        while let Err(e) = session(stop.clone()).await {
            if !self.pause_after(&e, &mut stop).await {
                return;
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

/// Pauses after failures: as long as the failures have lasted so far (at least 100 ms, at
/// most 30 s), so they double from one try to the next, and start over after a success.
/// Measured from the first failure rather than counted, so the 64 messages in flight
/// failing together in one outage do not push the pause to its bound at once.
#[derive(Default)]
struct Backoff {
    /// When the current run of failures began (ms since `EPOCH`, +1); 0: none.
    since: AtomicU64,
}

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

impl Backoff {
    fn next(&self) -> Duration {
        self.next_at(EPOCH.elapsed().as_millis() as u64 + 1)
    }

    fn next_at(&self, now_ms: u64) -> Duration {
        let since = match self
            .since
            .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => now_ms,
            Err(earlier) => earlier,
        };
        Duration::from_millis(now_ms.saturating_sub(since)).clamp(FIRST_PAUSE, LONGEST_PAUSE)
    }

    fn reset(&self) {
        self.since.store(0, Ordering::Relaxed);
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
    fn pauses_last_as_long_as_the_failures_so_far_within_bounds_and_start_over_after_a_success() {
        let b = Backoff::default();
        assert_eq!(b.next_at(1_000), FIRST_PAUSE);
        // Many messages failing at once do not lengthen the pause.
        for _ in 0..64 {
            assert_eq!(b.next_at(1_010), FIRST_PAUSE);
        }
        // Tried again after each pause: 100 ms, 200 ms, 400 ms, …
        assert_eq!(b.next_at(1_200).as_millis(), 200);
        assert_eq!(b.next_at(1_400).as_millis(), 400);
        assert_eq!(b.next_at(1_800).as_millis(), 800);
        assert_eq!(b.next_at(1_000_000), LONGEST_PAUSE);
        b.reset();
        assert_eq!(b.next_at(2_000_000), FIRST_PAUSE);
    }

    #[test]
    fn sources_are_shown_without_their_login() {
        let amqp = IngestSource::parse("amqp://u:secret@mq:5673/%2f?queue=q").unwrap();
        assert_eq!(shown(&amqp), "amqp://mq:5673/%2F?queue=q");
        let nats = IngestSource::parse("nats://u:secret@n/a.b?stream=S&consumer=C").unwrap();
        assert_eq!(shown(&nats), "nats://n:4222/a.b?stream=S&consumer=C");
    }
}
