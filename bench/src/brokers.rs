//! The brokers of the broker scenarios (`e2e-amqp`, `e2e-nats`, `ingest-amqp`): RabbitMQ
//! (`HOOKD_BENCH_AMQP`, default `amqp://guest:guest@127.0.0.1:5672/%2f`) and NATS JetStream
//! (`HOOKD_BENCH_NATS`, default `127.0.0.1:4222`), each with names of the run's own.
//!
//! A bridge consumes what hookd delivered to a broker and hands every message, headers and
//! body, to the bench receiver's accounting, so broker deliveries are counted, deduplicated,
//! timed and signature-checked exactly as HTTP ones.

use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::task::JoinHandle;

use crate::receiver::Receiver;

pub fn amqp_base() -> String {
    std::env::var("HOOKD_BENCH_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn nats_server() -> String {
    std::env::var("HOOKD_BENCH_NATS").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// A RabbitMQ queue of the run's own on a confirm channel.
pub struct Queue {
    _connection: Connection,
    channel: Channel,
    pub name: String,
}

impl Queue {
    /// Err when RabbitMQ is not reachable (the scenario is then reported skipped).
    pub async fn declare() -> anyhow::Result<Queue> {
        let connection = Connection::connect(&amqp_base(), ConnectionProperties::default())
            .await
            .context("RabbitMQ is not reachable (HOOKD_BENCH_AMQP)")?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let name = unique("hookd-bench");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Queue {
            _connection: connection,
            channel,
            name,
        })
    }

    /// The webhook URL that delivers into this queue (the default exchange).
    pub fn webhook_url(&self) -> String {
        format!("{}?exchange=&routing_key={}", amqp_base(), self.name)
    }

    /// The `HOOKD_INGEST` source that consumes this queue.
    pub fn ingest_url(&self) -> String {
        format!("{}?queue={}", amqp_base(), self.name)
    }

    /// Puts `bodies` into the queue (persistent, message id `bench-N`), the confirms awaited
    /// together at the end.
    pub async fn put_all(&self, bodies: impl Iterator<Item = Vec<u8>>) -> anyhow::Result<()> {
        let mut confirms = Vec::new();
        for (n, body) in bodies.enumerate() {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(format!("bench-{n}")));
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    self.name.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            confirm.await?;
        }
        Ok(())
    }

    /// Consumes the queue (auto-ack) into `receiver`'s slot 0 until dropped.
    pub async fn bridge(&self, receiver: Arc<Receiver>) -> anyhow::Result<Bridge> {
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = self
            .channel
            .basic_consume(
                self.name.as_str().into(),
                "hookd-bench".into(),
                no_ack,
                FieldTable::default(),
            )
            .await?;
        Ok(Bridge(tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let mut headers = HeaderMap::new();
                let table = delivery.properties.headers().clone().unwrap_or_default();
                for (name, value) in table.inner() {
                    if let AMQPValue::LongString(text) = value {
                        insert(&mut headers, name.as_str(), &String::from_utf8_lossy(text.as_bytes()));
                    }
                }
                receiver.record(0, &headers, &delivery.data).await;
            }
        })))
    }

    pub async fn delete(&self) {
        let _ = self
            .channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// A JetStream stream of the run's own, and a plain subscription to its subject.
pub struct Stream {
    client: async_nats::Client,
    js: jetstream::Context,
    name: String,
    pub subject: String,
}

impl Stream {
    pub async fn create() -> anyhow::Result<Stream> {
        let client = async_nats::connect(nats_server())
            .await
            .context("NATS is not reachable (HOOKD_BENCH_NATS)")?;
        let js = jetstream::new(client.clone());
        let name = unique("HOOKD_BENCH").replace('-', "_");
        let subject = format!("hookd.bench.{name}");
        js.create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await?;
        Ok(Stream {
            client,
            js,
            name,
            subject,
        })
    }

    pub fn webhook_url(&self) -> String {
        format!("nats://{}/{}", nats_server(), self.subject)
    }

    /// Every message the stream takes, into `receiver`'s slot 0, until dropped.
    pub async fn bridge(&self, receiver: Arc<Receiver>) -> anyhow::Result<Bridge> {
        let mut subscription = self.client.subscribe(self.subject.clone()).await?;
        Ok(Bridge(tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let mut headers = HeaderMap::new();
                for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
                    if let Some(value) = values.first() {
                        insert(&mut headers, name.as_ref(), value.as_str());
                    }
                }
                receiver.record(0, &headers, &message.payload).await;
            }
        })))
    }

    pub async fn delete(&self) {
        let _ = self.js.delete_stream(&self.name).await;
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// A consumer feeding the receiver; stops when dropped.
pub struct Bridge(JoinHandle<()>);

impl Drop for Bridge {
    fn drop(&mut self) {
        self.0.abort();
    }
}
