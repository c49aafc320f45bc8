//! Broker scenarios (issue 25, CONTRACT §7.5), in `e2e`'s shape so the figures sit beside it:
//! - `e2e-amqp` / `e2e-nats`: 32 connections publishing single events to one webhook whose
//!   URL is a RabbitMQ queue (publisher confirms) or a JetStream subject (stream acks); a
//!   bench consumer counts what arrives. Deliveries/s and hookd's CPU per delivery.
//! - `ingest-amqp`: N messages put into a queue hookd consumes (`HOOKD_INGEST`), each
//!   published and delivered to one HTTP webhook; measured from the first put to the last
//!   receipt (events/s is the rate the messages were put at).
//!
//! Without the broker the scenario is reported skipped with the reason.

use serde_json::json;

use super::{e2e::CONNECTIONS, measure_closed, phase_seconds};
use crate::brokers::{Queue, Stream};
use crate::harness::{Ctx, Setup, TOPIC};
use crate::load::{Amount, PublishRun};
use crate::metrics::{now_us, UsageMeter};
use crate::report::ScenarioResult;

pub async fn e2e_amqp(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let queue = match Queue::declare().await {
        Ok(q) => q,
        Err(e) => return Ok(ScenarioResult::skipped(&format!("{e:#}"))),
    };
    let setup = Setup::start(ctx, 1, None, |_| {}).await?;
    let bridge = queue.bridge(setup.receiver.clone()).await?;
    setup.create_webhook_at(&queue.webhook_url(), TOPIC).await?;
    let r = measured(ctx, &setup, name).await;
    drop(bridge);
    queue.delete().await;
    setup.server.stop().await;
    Ok(r)
}

pub async fn e2e_nats(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let stream = match Stream::create().await {
        Ok(s) => s,
        Err(e) => return Ok(ScenarioResult::skipped(&format!("{e:#}"))),
    };
    let setup = Setup::start(ctx, 1, None, |_| {}).await?;
    let bridge = stream.bridge(setup.receiver.clone()).await?;
    setup.create_webhook_at(&stream.webhook_url(), TOPIC).await?;
    let r = measured(ctx, &setup, name).await;
    drop(bridge);
    stream.delete().await;
    setup.server.stop().await;
    Ok(r)
}

/// `e2e`'s throughput phase on a set-up webhook.
async fn measured(ctx: &Ctx, setup: &Setup, name: &str) -> ScenarioResult {
    let amount = Amount::Events(super::e2e::throughput_events(ctx));
    let (run, mut r, series) = measure_closed(ctx, setup, name, "published", amount, (CONNECTIONS, 1), 1).await;
    r.params = json!({"webhooks": 1, "events": run.events, "concurrency": CONNECTIONS, "batch": 1,
        "publish_for_s": phase_seconds(amount)});
    r.note("deliveries_per_s_steady_10_90", crate::harness::steady_rate(&series));
    r.set_cpu_per_event();
    r
}

pub async fn ingest_amqp(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let queue = match Queue::declare().await {
        Ok(q) => q,
        Err(e) => return Ok(ScenarioResult::skipped(&format!("{e:#}"))),
    };
    let source = hookd::domain::broker_url::IngestSource::parse(&queue.ingest_url()).map_err(anyhow::Error::msg)?;
    let setup = Setup::start(ctx, 1, None, |c| c.ingest = vec![source]).await?;
    setup.create_webhooks(0..1, TOPIC).await?;
    let events = super::e2e::throughput_events(ctx);
    let publisher = setup.publisher(ctx.bar(name, "put", Some(events)));
    let watch = crate::harness::DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let started_us = now_us();
    let bodies = (0..events).map(|seq| {
        let body = json!({"topic": TOPIC, "message": {"seq": seq, "t_us": now_us()}});
        serde_json::to_vec(&body).expect("JSON")
    });
    queue.put_all(bodies).await?;
    let run = PublishRun {
        started_us,
        ended_us: now_us(),
        events,
    };
    publisher.count_payloads(events);
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    watch.stop().await;
    let mut r = setup.result(run, &publisher, usage, events);
    r.params = json!({"webhooks": 1, "events": events, "source": "amqp queue, prefetch 64"});
    r.note("put_per_s", run.events_per_s());
    queue.delete().await;
    setup.server.stop().await;
    Ok(r)
}
