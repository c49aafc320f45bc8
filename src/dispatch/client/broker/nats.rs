//! NATS JetStream: publish and wait for the stream's ack, on a pooled client.
//!
//! The client library reconnects by itself after the server drops it, so one client per
//! server and login is kept while attempts use it (see `pool`). `Nats-Msg-Id` is the payload's `webhook-id`: a retry
//! of a publish whose ack was lost is absorbed by the stream's duplicate window.

use async_nats::jetstream;
use async_nats::{ConnectOptions, HeaderMap};
use bytes::Bytes;
use tokio::time::timeout;

use super::pool::Pool;
use super::{header_pairs, resolve, timed_out, Publish};
use crate::domain::broker_url::{BrokerAddress, NatsTarget};

#[derive(Default)]
pub(super) struct NatsPool {
    contexts: Pool<jetstream::Context>,
}

impl NatsPool {
    pub(super) async fn publish(&self, target: &NatsTarget, publish: &Publish<'_>) -> Result<(), String> {
        let context = self.context(target, publish).await?;
        let mut headers = HeaderMap::new();
        for (name, value) in header_pairs(publish.headers) {
            headers.insert(name, value);
        }
        headers.insert(async_nats::header::NATS_MESSAGE_ID, publish.msg_id);
        let body = Bytes::copy_from_slice(publish.body);
        let acked = async {
            let ack = context
                .publish_with_headers(target.subject.clone(), headers, body)
                .await
                .map_err(|e| format!("JetStream publish failed: {e}"))?;
            ack.await
                .map_err(|e| format!("JetStream did not store the message: {e}"))
        };
        match timeout(publish.request_timeout, acked).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out("JetStream ack", publish.request_timeout)),
        }
    }

    async fn context(&self, target: &NatsTarget, publish: &Publish<'_>) -> Result<jetstream::Context, String> {
        let entry = self.contexts.entry(target.address.pool_key(""));
        let mut context = entry.link.lock().await;
        if let Some(c) = context.as_ref() {
            return Ok(c.clone());
        }
        let client = connect(target, publish).await?;
        let mut made = jetstream::new(client);
        made.set_timeout(publish.request_timeout);
        *context = Some(made.clone());
        Ok(made)
    }
}

/// A NATS client's options with `address`'s login (destinations and ingestion alike).
pub(crate) fn connect_options(
    address: &BrokerAddress,
    connect_timeout: std::time::Duration,
    name: &str,
) -> ConnectOptions {
    let options = if address.user.is_empty() {
        ConnectOptions::new()
    } else {
        let password = address.password.clone().unwrap_or_default();
        ConnectOptions::with_user_and_password(address.user.clone(), password)
    };
    options.connection_timeout(connect_timeout).name(name)
}

async fn connect(target: &NatsTarget, publish: &Publish<'_>) -> Result<async_nats::Client, String> {
    let address = resolve(&target.address, publish.allow_private, publish.connect_timeout).await?;
    let options = connect_options(&target.address, publish.connect_timeout, "hookd");
    match timeout(publish.connect_timeout, options.connect(address.to_string())).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("NATS connection to {address} failed: {e}")),
        Err(_) => Err(timed_out("NATS connect", publish.connect_timeout)),
    }
}
