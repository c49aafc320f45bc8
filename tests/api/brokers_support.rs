//! Test brokers (CONTRACT §7.5): a RabbitMQ exchange and queue, or a JetStream stream, of the
//! test's own (unique names), made with the same client libraries hookd uses. Tests skip
//! (never pass silently) when the broker is not reachable; `.ci/run` starts both.

// The connection is kept only so the channel stays open.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::helpers::skipped;

/// Unique over the suite's processes too: the SQLite and PostgreSQL runs may share a broker.
pub fn broker_name(prefix: &str) -> String {
    format!("{}-{}", crate::helpers::unique(prefix), std::process::id())
}

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const NATS: &str = "127.0.0.1:4222";
/// Runs `rabbitmqctl` (tests give each a vhost of its own, so closing its connections
/// touches no other test); Err is its complaint.
pub async fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub const WAIT: Duration = Duration::from_secs(15);

/// A RabbitMQ exchange bound to one queue by `routing_key`.
pub struct Rabbit {
    pub connection: Connection,
    pub channel: Channel,
    pub exchange: String,
    pub queue: String,
}

/// A message as a consumer sees it.
pub struct Got {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

impl Rabbit {
    /// None (and the test is reported skipped) when RabbitMQ is not reachable.
    pub async fn connect(what: &str) -> Option<Self> {
        Self::connect_to(AMQP, what).await
    }

    pub async fn connect_to(uri: &str, what: &str) -> Option<Self> {
        let connection = match Connection::connect(uri, ConnectionProperties::default()).await {
            Ok(c) => c,
            Err(e) => {
                skipped(what, &format!("RabbitMQ is not reachable at 127.0.0.1:5672: {e}"));
                return None;
            }
        };
        let channel = connection.create_channel().await.unwrap();
        Some(Self {
            connection,
            channel,
            exchange: broker_name("hookd-test-ex"),
            queue: broker_name("hookd-test-q"),
        })
    }

    /// Declares the exchange and the queue, bound by `routing_key`.
    pub async fn declare(&self, routing_key: &str) {
        let auto_delete = ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        self.channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                auto_delete,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(self.queue.as_str().into(), queue, FieldTable::default())
            .await
            .unwrap();
        self.channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// The webhook URL that publishes to this exchange with `routing_key`.
    pub fn url(&self, routing_key: &str) -> String {
        format!("{AMQP}?exchange={}&routing_key={routing_key}", self.exchange)
    }

    /// Waits for `n` messages on the queue (acknowledged as they come).
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let next = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            match next {
                Some(message) => {
                    let props = &message.delivery.properties;
                    let headers = props
                        .headers()
                        .as_ref()
                        .map(|t| t.inner().iter().map(|(k, v)| (k.to_string(), amqp_text(v))).collect())
                        .unwrap_or_default();
                    got.push(Got {
                        body: message.delivery.data.clone(),
                        message_id: props.message_id().as_ref().map(|s| s.to_string()),
                        headers,
                    });
                }
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "{} of {n} messages within {WAIT:?}",
                        got.len()
                    );
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
        got
    }
}

fn amqp_text(v: &lapin::types::AMQPValue) -> String {
    match v {
        lapin::types::AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => format!("{other:?}"),
    }
}

/// A JetStream stream on one subject of the test's own.
pub struct Stream {
    pub js: jetstream::Context,
    pub name: String,
    pub subject: String,
}

impl Stream {
    /// A connected context (and unique names); None, reported skipped, without NATS.
    pub async fn connect(what: &str) -> Option<Self> {
        let client = match async_nats::connect(NATS).await {
            Ok(c) => c,
            Err(e) => {
                skipped(what, &format!("NATS is not reachable at {NATS}: {e}"));
                return None;
            }
        };
        let name = broker_name("HOOKD_TEST").replace(['-', '.'], "_");
        Some(Self {
            js: jetstream::new(client),
            subject: format!("hookd.test.{name}"),
            name,
        })
    }

    pub async fn create(&self) -> jetstream::stream::Stream {
        self.js
            .create_stream(jetstream::stream::Config {
                name: self.name.clone(),
                subjects: vec![self.subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("nats://{NATS}/{}", self.subject)
    }

    /// Waits until the stream holds `n` messages; then gives them in order.
    pub async fn wait_for(&self, n: u64) -> Vec<Got> {
        let deadline = Instant::now() + WAIT;
        let mut stream = self.js.get_stream(&self.name).await.unwrap();
        loop {
            let count = stream.info().await.unwrap().state.messages;
            if count >= n {
                break;
            }
            assert!(Instant::now() < deadline, "{count} of {n} messages within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut got = Vec::new();
        for seq in 1..=n {
            let m = stream.get_raw_message(seq).await.unwrap();
            let headers: Vec<(String, String)> = m
                .headers
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
                .collect();
            let message_id = headers.iter().find(|(k, _)| k == "Nats-Msg-Id").map(|(_, v)| v.clone());
            got.push(Got {
                body: m.payload.to_vec(),
                message_id,
                headers,
            });
        }
        got
    }

    pub async fn delete(&self) {
        let _ = self.js.delete_stream(&self.name).await;
    }
}
