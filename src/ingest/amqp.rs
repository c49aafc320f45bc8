//! A RabbitMQ queue as a source: one connection and channel per source, manual
//! acknowledgement, a prefetch of `IN_FLIGHT` (the broker never has more of our messages
//! unacknowledged), each message published as it arrives and settled on its own.
//!
//! The queue is the operator's: hookd does not declare it (a missing one is a logged,
//! retried failure). When the broker closes the connection (restart,
//! `rabbitmqctl close_all_connections`), the delivery stream ends, the messages not yet
//! acknowledged go back to the queue, and the consumer connects again after a pause.

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::time::timeout;

use super::message::Incoming;
use super::{sleep_unless_stopped, Consumer, Decision, IN_FLIGHT};
use crate::dispatch::client::broker;
use crate::domain::broker_url::{BrokerAddress, IngestSource};

/// Consumes until `stop`, connecting again after each failure.
pub(super) async fn consume(consumer: &Consumer, source: &IngestSource, node: &str, stop: watch::Receiver<bool>) {
    let IngestSource::Amqp { address, vhost, queue } = source else {
        return;
    };
    consumer
        .sessions(stop, |stop| session(consumer, address, vhost, queue, node, stop))
        .await;
}

/// One connection's life: Ok when stopped, Err when the broker or the network ended it.
async fn session(
    consumer: &Consumer,
    address: &BrokerAddress,
    vhost: &str,
    queue: &str,
    node: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let connection = connect(address, vhost).await?;
    let opened = async {
        let channel = connection.create_channel().await?;
        channel.basic_qos(IN_FLIGHT, BasicQosOptions::default()).await?;
        let deliveries = channel
            .basic_consume(
                ShortString::from(queue),
                ShortString::from(format!("hookd-{node}")),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>(deliveries)
    };
    let mut deliveries = match opened.await {
        Ok(d) => d,
        Err(e) => {
            let _ = connection.close(200, ShortString::from("hookd: consume failed")).await;
            return Err(format!("consuming queue {queue:?} failed: {e}"));
        }
    };
    // Consuming again: a later failure starts its pauses over.
    consumer.backoff.reset();
    let mut in_flight = FuturesUnordered::new();
    let for_settling = stop.clone();
    let ended = loop {
        // Each branch only says what happened: the futures borrow `in_flight`, so it is
        // changed after the select.
        let next = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break Ok(()),
            next = deliveries.next() => next,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
        };
        match next {
            Some(Ok(delivery)) => in_flight.push(settle(consumer, delivery, for_settling.clone())),
            Some(Err(e)) => break Err(format!("the consumer failed: {e}")),
            None => break Err("the broker ended the consumer".to_string()),
        }
    };
    // Messages being published are finished and settled (a stop waits for them).
    while in_flight.next().await.is_some() {}
    if connection.status().connected() {
        let _ = connection.close(200, ShortString::from("hookd stopping")).await;
    }
    ended
}

/// Publishes one delivery, then acknowledges it or (after the pause) hands it back.
async fn settle(consumer: &Consumer, delivery: Delivery, mut stop: watch::Receiver<bool>) {
    let properties = &delivery.properties;
    let traceparent = properties
        .headers()
        .as_ref()
        .and_then(|table| table.inner().get(&ShortString::from("traceparent")))
        .and_then(text_of);
    let incoming = Incoming {
        body: &delivery.data,
        message_id: properties.message_id().as_ref().map(ShortString::as_str),
        traceparent: traceparent.as_deref(),
    };
    let settled = match consumer.handle(&incoming).await {
        Decision::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
        Decision::GiveBack(pause) => {
            sleep_unless_stopped(pause, &mut stop).await;
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            delivery.acker.nack(requeue).await
        }
    };
    if let Err(e) = settled {
        // The channel is gone: the broker gives the message again (and the key makes it
        // a replay if it was published).
        tracing::debug!(source = %consumer.shown, error = %e, "settling an ingested message failed");
    }
}

fn text_of(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// How long connecting may take before it counts as a failure.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn connect(address: &BrokerAddress, vhost: &str) -> Result<Connection, String> {
    let uri = broker::amqp::uri(address, address.host.clone(), vhost);
    let properties = ConnectionProperties::default().with_connection_name(LongString::from("hookd-ingest"));
    match timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        // lapin's errors name the host and port, never the password.
        Ok(Err(e)) => Err(format!("connecting failed: {e}")),
        Err(_) => Err("connecting timed out".to_string()),
    }
}
