//! Sources for the ingestion tests (CONTRACT §7.5): a RabbitMQ queue or a JetStream stream of
//! the test's own, a way to put messages into it (with a message id and headers, as a
//! platform would), and the `HOOKD_INGEST` URL that consumes it. Tests skip (never pass
//! silently) when the broker is not reachable.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::brokers_support::{broker_name, AMQP, NATS};
use crate::helpers::skipped;

/// A durable RabbitMQ queue of the test's own, with a confirm channel to publish into it.
pub struct Queue {
    pub connection: Connection,
    pub channel: Channel,
    pub name: String,
    /// The `amqp://…` base (vhost included) the queue lives under.
    pub base: String,
}

/// One message to put into a source.
#[derive(Clone, Debug, Default)]
pub struct Put {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub traceparent: Option<String>,
}

impl Put {
    pub fn json(body: serde_json::Value) -> Put {
        Put {
            body: serde_json::to_vec(&body).unwrap(),
            ..Default::default()
        }
    }
    pub fn raw(body: &[u8]) -> Put {
        Put {
            body: body.to_vec(),
            ..Default::default()
        }
    }
    pub fn id(mut self, id: &str) -> Put {
        self.message_id = Some(id.to_string());
        self
    }
    pub fn trace(mut self, traceparent: &str) -> Put {
        self.traceparent = Some(traceparent.to_string());
        self
    }
}

impl Queue {
    /// None (reported skipped) when RabbitMQ is not reachable.
    pub async fn declare(what: &str) -> Option<Queue> {
        Self::declare_at(AMQP, what).await
    }

    pub async fn declare_at(base: &str, what: &str) -> Option<Queue> {
        let connection = match Connection::connect(base, ConnectionProperties::default()).await {
            Ok(c) => c,
            Err(e) => {
                skipped(what, &format!("RabbitMQ is not reachable at 127.0.0.1:5672: {e}"));
                return None;
            }
        };
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let name = broker_name("hookd-test-in");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(name.as_str().into(), durable, FieldTable::default())
            .await
            .unwrap();
        Some(Queue {
            connection,
            channel,
            name,
            base: base.to_string(),
        })
    }

    /// The `HOOKD_INGEST` source that consumes this queue.
    pub fn url(&self) -> String {
        format!("{}?queue={}", self.base, self.name)
    }

    /// Publishes into the queue (default exchange), persistent, and waits for the confirm.
    pub async fn put(&self, put: &Put) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = &put.message_id {
            properties = properties.with_message_id(ShortString::from(id.as_str()));
        }
        if let Some(trace) = &put.traceparent {
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from("traceparent"),
                AMQPValue::LongString(LongString::from(trace.as_str())),
            );
            properties = properties.with_headers(headers);
        }
        self.channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(self.name.as_str()),
                BasicPublishOptions::default(),
                &put.body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Messages in the queue: ready plus unacknowledged (RabbitMQ's counts are eventually
    /// consistent, so polled until `want` or the deadline).
    pub async fn wait_empty(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let q = self
                .channel
                .queue_declare(self.name.as_str().into(), passive, FieldTable::default())
                .await
                .unwrap();
            // message_count is the ready ones: unacknowledged ones do not count, so this
            // says every message was taken; acknowledgement is checked by the metrics.
            if q.message_count() == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} messages still in the queue",
                q.message_count()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn delete(&self) {
        let _ = self
            .channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// A JetStream stream of the test's own, and the consumer name hookd is to use on it.
pub struct Subject {
    pub js: jetstream::Context,
    pub stream: String,
    pub subject: String,
    pub consumer: String,
}

impl Subject {
    /// None (reported skipped) without NATS.
    pub async fn create(what: &str) -> Option<Subject> {
        let client = match async_nats::connect(NATS).await {
            Ok(c) => c,
            Err(e) => {
                skipped(what, &format!("NATS is not reachable at {NATS}: {e}"));
                return None;
            }
        };
        let name = broker_name("HOOKD_IN").replace(['-', '.'], "_");
        let subject = Subject {
            js: jetstream::new(client),
            subject: format!("hookd.in.{name}"),
            consumer: format!("{name}_hookd"),
            stream: name,
        };
        subject
            .js
            .create_stream(jetstream::stream::Config {
                name: subject.stream.clone(),
                subjects: vec![subject.subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
        Some(subject)
    }

    pub fn url(&self) -> String {
        format!(
            "nats://{NATS}/{}?stream={}&consumer={}",
            self.subject, self.stream, self.consumer
        )
    }

    /// Publishes and waits for the stream's ack. A repeated `Nats-Msg-Id` within the
    /// stream's duplicate window is dropped by the stream itself, so redelivery is tested
    /// with ids the stream has not seen (see the tests).
    pub async fn put(&self, put: &Put) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = &put.message_id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        if let Some(trace) = &put.traceparent {
            headers.insert("traceparent", trace.as_str());
        }
        self.js
            .publish_with_headers(self.subject.clone(), headers, put.body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Waits until the consumer has no message pending or unacknowledged.
    pub async fn wait_acked(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let stream = self.js.get_stream(&self.stream).await.unwrap();
            if let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(&self.consumer)
                .await
            {
                let info = consumer.info().await.unwrap();
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the consumer did not ack everything in time");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn delete(&self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }
}
