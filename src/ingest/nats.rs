//! A NATS JetStream pull consumer as a source: durable (named by the URL's `consumer`, made
//! on the URL's stream when missing, filtered to the URL's subject), explicit acks, at most
//! `IN_FLIGHT` messages pulled and unacknowledged at once.
//!
//! The stream is the operator's: hookd does not make it (a missing one is a logged, retried
//! failure). A message handed back is negatively acknowledged with the pause as its delay,
//! so the server itself waits before giving it again. A message neither acknowledged nor
//! handed back (the node died) comes again after the consumer's ack wait.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::timeout;

use super::message::Incoming;
use super::{Consumer, Decision, IN_FLIGHT};
use crate::dispatch::client::broker;
use crate::domain::broker_url::{BrokerAddress, IngestSource};

/// How long a message may stay unacknowledged before the server gives it again.
const ACK_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Consumes until `stop`, connecting again after each failure.
pub(super) async fn consume(consumer: &Consumer, source: &IngestSource, stop: watch::Receiver<bool>) {
    let IngestSource::Nats {
        address,
        subject,
        stream,
        consumer: name,
    } = source
    else {
        return;
    };
    consumer
        .sessions(stop, |stop| session(consumer, address, subject, stream, name, stop))
        .await;
}

/// One client's life: Ok when stopped, Err when the server or the network ended it.
async fn session(
    consumer: &Consumer,
    address: &BrokerAddress,
    subject: &str,
    stream: &str,
    name: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let client = connect(address).await?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream:?}: {e}"))?;
    let config = pull::Config {
        durable_name: Some(name.to_string()),
        filter_subject: subject.to_string(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: i64::from(IN_FLIGHT),
        ..Default::default()
    };
    let pull = stream
        .get_or_create_consumer(name, config)
        .await
        .map_err(|e| format!("consumer {name:?}: {e}"))?;
    let mut messages = pull
        .stream()
        .max_messages_per_batch(usize::from(IN_FLIGHT))
        .messages()
        .await
        .map_err(|e| format!("pulling from consumer {name:?}: {e}"))?;
    // Consuming again: a later failure starts its pauses over.
    consumer.backoff.reset();
    let mut in_flight = FuturesUnordered::new();
    let ended = loop {
        // Each branch only says what happened: the futures borrow `in_flight`, so it is
        // changed after the select.
        let next = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break Ok(()),
            next = messages.next(), if in_flight.len() < usize::from(IN_FLIGHT) => next,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
        };
        match next {
            Some(Ok(message)) => in_flight.push(settle(consumer, message)),
            Some(Err(e)) => break Err(format!("pulling failed: {e}")),
            None => break Err("the pull stream ended".to_string()),
        }
    };
    while in_flight.next().await.is_some() {}
    // Acknowledgements are plain publishes: flushed before the client goes.
    let _ = timeout(Duration::from_secs(2), client.flush()).await;
    ended
}

/// Publishes one message, then acknowledges it or hands it back with the pause as delay.
async fn settle(consumer: &Consumer, message: jetstream::Message) {
    let headers = message.headers.as_ref();
    let message_id = headers.and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID));
    let traceparent = headers.and_then(|h| h.get("traceparent"));
    let incoming = Incoming {
        body: &message.payload,
        message_id: message_id.map(|v| v.as_str()),
        traceparent: traceparent.map(|v| v.as_str()),
    };
    let kind = match consumer.handle(&incoming).await {
        Decision::Ack => AckKind::Ack,
        Decision::GiveBack(pause) => AckKind::Nak(Some(pause)),
    };
    if let Err(e) = message.ack_with(kind).await {
        // The server gives it again after the ack wait; the key makes that a replay.
        tracing::debug!(source = %consumer.shown, error = %e, "settling an ingested message failed");
    }
}

async fn connect(address: &BrokerAddress) -> Result<async_nats::Client, String> {
    let options = broker::nats::connect_options(address, CONNECT_TIMEOUT, "hookd-ingest");
    let server = match address.host.contains(':') {
        true => format!("[{}]:{}", address.host, address.port), // IPv6
        false => format!("{}:{}", address.host, address.port),
    };
    match timeout(CONNECT_TIMEOUT, options.connect(server.as_str())).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("connecting to {server} failed: {e}")),
        Err(_) => Err(format!("connecting to {server} timed out")),
    }
}
