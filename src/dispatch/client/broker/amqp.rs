//! RabbitMQ: publish with publisher confirms on a pooled connection.
//!
//! One connection and confirm channel per broker, login, vhost and exchange: a publish to a
//! missing exchange makes the broker close that channel, and keeping exchanges apart means
//! it never takes other webhooks' publishes in flight with it. A link the broker closed
//! (restart, `rabbitmqctl close_all_connections`, channel error) is made again by the next
//! attempt.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::time::timeout;

use super::pool::Pool;
use super::{header_pairs, resolve, timed_out, Publish};
use crate::domain::broker_url::{AmqpTarget, BrokerAddress};

#[derive(Default)]
pub(super) struct AmqpPool {
    links: Pool<Link>,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

impl AmqpPool {
    pub(super) async fn publish(&self, target: &AmqpTarget, publish: &Publish<'_>) -> Result<(), String> {
        let channel = self.channel(target, publish).await?;
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(publish.msg_id))
            .with_content_type(ShortString::from("application/json"))
            // Persistent: a durable queue keeps it across a broker restart.
            .with_delivery_mode(2)
            .with_headers(headers_table(publish));
        let options = BasicPublishOptions {
            // Unroutable messages come back instead of vanishing: that is a failed attempt.
            mandatory: true,
            ..Default::default()
        };
        let sent = channel.basic_publish(
            ShortString::from(target.exchange.as_str()),
            ShortString::from(target.routing_key.as_str()),
            options,
            publish.body,
            properties,
        );
        let confirm = async { sent.await?.await };
        match timeout(publish.request_timeout, confirm).await {
            Err(_) => Err(timed_out("publisher confirm", publish.request_timeout)),
            Ok(Err(e)) => Err(format!("AMQP publish failed: {e}")),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(format!(
                "unroutable: exchange {:?} has no queue bound for routing key {:?}",
                target.exchange, target.routing_key
            )),
            Ok(Ok(Confirmation::Nack(_))) => Err("the broker refused the message (nack)".into()),
            Ok(Ok(Confirmation::NotRequested)) => Err("the channel does not confirm publishes".into()),
        }
    }

    /// The pooled confirm channel for the target, made (again) when missing or closed.
    async fn channel(&self, target: &AmqpTarget, publish: &Publish<'_>) -> Result<Channel, String> {
        let key = target
            .address
            .pool_key(&format!("{}\u{0}{}", target.vhost, target.exchange));
        let entry = self.links.entry(key);
        // Held while connecting, so a burst of attempts makes one connection, not one each.
        let mut link = entry.link.lock().await;
        if let Some(l) = link.as_ref() {
            if l.connection.status().connected() && l.channel.status().connected() {
                return Ok(l.channel.clone());
            }
        }
        let reusable = link.take().map(|l| l.connection).filter(|c| c.status().connected());
        let connection = match reusable {
            Some(connection) => connection,
            None => connect(target, publish).await?,
        };
        let opened = async {
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            Ok::<_, lapin::Error>(channel)
        };
        let channel = match timeout(publish.connect_timeout, opened).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(format!("AMQP channel could not be opened: {e}")),
            Err(_) => return Err(timed_out("opening the AMQP channel", publish.connect_timeout)),
        };
        *link = Some(Link {
            connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }
}

async fn connect(target: &AmqpTarget, publish: &Publish<'_>) -> Result<Connection, String> {
    let address = resolve(&target.address, publish.allow_private, publish.connect_timeout).await?;
    let mut uri = uri(&target.address, address.ip().to_string(), &target.vhost);
    uri.query.connection_timeout = Some(publish.connect_timeout.as_millis() as u64);
    let properties = ConnectionProperties::default().with_connection_name(LongString::from("hookd"));
    match timeout(publish.connect_timeout, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(format!("AMQP connection to {address} failed: {e}")),
        Err(_) => Err(timed_out("AMQP connect", publish.connect_timeout)),
    }
}

/// The AMQP address of `host` (the broker's name, or the address it was checked to resolve
/// to) with `address`'s port and login, on `vhost` (destinations and ingestion alike).
pub(crate) fn uri(address: &BrokerAddress, host: String, vhost: &str) -> AMQPUri {
    let mut uri = AMQPUri {
        authority: AMQPAuthority {
            host,
            port: address.port,
            ..Default::default()
        },
        vhost: vhost.to_string(),
        ..Default::default()
    };
    if !address.user.is_empty() {
        uri.authority.userinfo = AMQPUserInfo {
            username: address.user.clone(),
            password: address.password.clone().unwrap_or_default(),
        };
    }
    uri
}

/// The HTTP attempt's headers as AMQP header table entries (long strings).
fn headers_table(publish: &Publish<'_>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in header_pairs(publish.headers) {
        table.insert(ShortString::from(name), AMQPValue::LongString(LongString::from(value)));
    }
    table
}
