//! `e2e`, the single-event shape of issue 28: 32 connections each publishing one event per
//! request (a platform publishing each business event as it happens), 40,000 events to one
//! webhook, measured from the first publish to the last receipt; then, on the same server,
//! 500 events/s for the publish→receipt latency (p50/p99 as notes and checks). The batch
//! shape (JSON-RPC batches of 100) is `e2e-batch`.
//!
//! `two_nodes` runs the same shape over two nodes, and uses `latency_phase` too.

use std::sync::Arc;

use serde_json::json;

use super::measure_closed;
use crate::harness::{steady_rate, Ctx, Setup, TOPIC};
use crate::load::{open_loop, Amount, Publisher, Rpc};
use crate::report::{Check, ScenarioResult};
use crate::server::Backend;

/// Requests in flight in the throughput phase, each carrying one event.
pub const CONNECTIONS: usize = 32;
/// The latency phase's fixed rate.
pub const RATE: f64 = 500.0;

/// Events of the throughput phase: 40,000 (smoke: 500; `--events` overrides).
pub fn throughput_events(ctx: &Ctx) -> u64 {
    ctx.size(40_000, 500)
}

/// Events of the latency phase: 5,000, ten seconds at 500/s (smoke: 250).
fn latency_events(ctx: &Ctx) -> u64 {
    if ctx.smoke {
        250
    } else {
        5_000
    }
}

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let setup = Setup::start(ctx, 1, None, |_| {}).await?;
    setup.create_webhooks(0..1, TOPIC).await?;
    let amount = Amount::Events(throughput_events(ctx));
    let (run, mut r, series) = measure_closed(ctx, &setup, name, "published", amount, (CONNECTIONS, 1), 1).await;
    r.params = json!({"webhooks": 1, "events": run.events, "concurrency": CONNECTIONS, "batch": 1,
        "latency_rate": RATE, "latency_events": latency_events(ctx)});
    r.note("deliveries_per_s_steady_10_90", steady_rate(&series));
    latency_phase(ctx, &setup, name, setup.nodes.clone(), &mut r).await;
    let postgres = ctx.backend() == Backend::Postgres;
    r.checks.push(Check::at_least(
        "deliveries/s, single-event publishes (32 connections), one webhook",
        r.deliveries_per_s,
        if postgres { 5_000.0 } else { 10_000.0 },
        "/s",
    ));
    if !postgres {
        // Issue 28: hookd's own CPU per published-and-delivered event, at saturation.
        let figure = "hookd CPU per published-and-delivered event";
        let check = Check::at_most(figure, r.cpu_us_per_event_hookd.unwrap_or(f64::NAN), 80.0, "µs");
        r.checks.push(if r.cpu_us_per_event_hookd.is_some() {
            check
        } else {
            check.unmeasured()
        });
    }
    setup.server.stop().await;
    Ok(r)
}

/// After the throughput phase, on the same server(s): `RATE` single events per second
/// (requests taking turns over `rpcs`), waited for until delivered; p50/p99 go into `r`'s
/// notes and checks (p99 ≤ 5 ms), and lost or refused events into its problems.
pub async fn latency_phase(ctx: &Ctx, setup: &Setup, name: &str, rpcs: Vec<Rpc>, r: &mut ScenarioResult) {
    let before = setup.receiver.counts().unique;
    setup.receiver.reset_latency();
    let events = latency_events(ctx);
    let publisher: Arc<Publisher> = Publisher::spread(rpcs, TOPIC, ctx.bar(name, "at 500/s", Some(events)));
    let run = open_loop(&publisher, events, RATE).await;
    let target = before + publisher.payloads();
    if !setup.wait_for(target, |rc| rc.counts().unique).await {
        let got = setup.receiver.counts().unique.saturating_sub(before);
        r.problems.push(format!(
            "latency phase: {} of {} payloads never arrived",
            publisher.payloads().saturating_sub(got),
            publisher.payloads()
        ));
        r.ok = false;
    }
    let (errors, first) = publisher.errors();
    if errors > 0 {
        r.problems.push(format!(
            "latency phase: {errors} events were not accepted; first: {}",
            first.unwrap_or_default()
        ));
        r.ok = false;
    }
    let latency = setup.receiver.latency().summary();
    r.note("latency_500_events", run.events);
    r.note("latency_500_p50_ms", latency.p50);
    r.note("latency_500_p99_ms", latency.p99);
    r.note(
        "latency_500_publish_request_ms",
        publisher.rpc_latency.snapshot().summary(),
    );
    r.checks.push(Check::at_most(
        "publish→receipt p99 at 500 events/s (after the throughput phase)",
        latency.p99,
        5.0,
        "ms",
    ));
}
