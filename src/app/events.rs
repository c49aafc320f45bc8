//! `event.publish`: validate (against the topic's schema too, see `catalog`), judge the event by the filters it is known to meet (off the
//! store's write path: `store::publish_judged`), then store the event and its payloads in
//! one durable transaction, then wake the dispatcher for the webhooks that got payloads.

use serde_json::Value;

use super::{App, AppError};
use crate::cluster::wire::Answer;
use crate::domain::filter::Verdicts;
use crate::domain::BodyTemplate;
use crate::domain::{KeyCheck, PublishRequest, Published};
use crate::store::StoreError;
use crate::time::now_millis;

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Publishes made at most while the topic's catalog entry keeps changing under them; after
/// that the answer is "overloaded: nothing stored" (`StoreError::CatalogMoved`).
const CATALOG_ROUNDS: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    pub merchant_code: Option<String>,
    pub idempotency_key: Option<String>,
    /// The caller's `traceparent` (already valid), continued by the event's deliveries.
    pub trace: Option<crate::domain::TraceParent>,
    /// For a caller taken from memory: what the store must find unchanged (`KeyCheck`).
    pub key_check: Option<KeyCheck>,
}

impl App {
    /// Publishes an event. Only admins may (the rpc layer checks; the CLI is trusted).
    pub async fn publish(&self, topic: &str, message: &Value, options: &PublishOptions) -> Result<Published, AppError> {
        let topic = self.publish_topic(topic).await?;
        let Value::Object(fields) = message else {
            return Err(AppError::InvalidData("message must be a JSON object".into()));
        };
        if let Some(key) = &options.idempotency_key {
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
                return Err(AppError::InvalidData(format!(
                    "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
                )));
            }
        }
        let (merchant, code) = self.resolve_merchant(options.merchant_code.as_deref()).await?;
        let now = now_millis();
        let body = BodyTemplate::new(topic.as_str(), &code, fields, now);
        let size = body.message_len();
        if size > self.settings.max_message_bytes {
            return Err(AppError::InvalidData(format!(
                "message is {size} bytes, more than the limit of {}",
                self.settings.max_message_bytes
            )));
        }
        let trace = Some(crate::telemetry::spans::event_trace(options.trace));
        let mut known = self.filters.get(merchant, topic.as_str());
        let before = known.len();
        let mut round = 1;
        let published = loop {
            // Checked here, before the store's write path (SQLite's writer thread serves
            // everyone); again, against the schema as stored now, when the store says the
            // topic's catalog entry moved since (a `topic.define` on another node).
            let schema = self.check_message(&topic, message, size, round > 1).await?;
            let request = PublishRequest {
                merchant,
                topic: &topic,
                body: &body,
                idempotency_key: options.idempotency_key.as_deref(),
                now,
                verdicts: &Verdicts::default(),
                trace,
                schema,
                key_check: options.key_check.as_ref(),
            };
            match crate::store::publish_judged(&*self.store, self.cluster.as_deref(), &request, &mut known).await {
                Err(StoreError::CatalogMoved) if round < CATALOG_ROUNDS => round += 1,
                other => break other,
            }
        };
        if known.len() != before {
            self.filters.set(merchant, topic.as_str(), known);
        }
        let published = published.map_err(|e| match e {
            StoreError::KeyRevoked => AppError::AccessDenied,
            e => AppError::from(e),
        })?;
        self.wake_published(&published);
        if !published.replayed {
            self.metrics.events_published.inc();
            self.metrics.payloads_created.inc_by(published.payloads as u64);
        }
        Ok(published)
    }

    /// A publish another node forwarded here (see `cluster`), checked and judged there:
    /// stored by this node's group commit, its payloads sent by this node's dispatcher.
    /// The answer is what travels back to the forwarding node.
    pub async fn publish_forwarded(&self, job: &crate::cluster::wire::Job) -> Answer {
        let topic = match self.publish_topic(&job.topic).await {
            Ok(topic) => topic,
            Err(AppError::Store(e)) => return Answer::of(Err(e)),
            // The forwarder found the topic in the catalog, which only grows: not expected.
            Err(e) => return Answer::Failed(e.to_string()),
        };
        let verdicts = job.verdicts();
        let request = PublishRequest {
            merchant: job.merchant,
            topic: &topic,
            body: &job.body,
            idempotency_key: job.key.as_deref(),
            now: job.now,
            verdicts: &verdicts,
            trace: job.trace(),
            schema: job.schema(),
            key_check: job.key_check.as_ref(),
        };
        let published = self.store.event_publish(&request).await;
        if let Ok(published) = &published {
            self.wake_published(published);
            crate::metrics::PEER_PUBLISHES_TAKEN.inc();
        }
        Answer::of(published)
    }

    /// Wakes this node's dispatcher for a publish's payloads: those leased at insert wait
    /// in the hand-off, the rest are claimed. (`handed` is a part of `webhooks`, in the
    /// same order.)
    fn wake_published(&self, published: &Published) {
        let mut handed = published.handed.iter().peekable();
        let claimed = (published.webhooks.iter()).filter(|&w| handed.next_if(|&h| h == w).is_none());
        self.wake.webhooks(claimed.copied());
        self.wake.handed(published.handed.iter().copied());
    }
}
