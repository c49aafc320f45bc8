//! Two hookd nodes on one PostgreSQL database, both serving the API and both dispatching:
//! the `e2e` load (40,000 single-event publishes over 32 connections to one webhook, then
//! 500 events/s for latency) with the requests taking turns between the two nodes'
//! endpoints, measured from the first publish to the last receipt.
//!
//! The one idea to know: which node made a delivery is told at the receiver. Each node
//! sends its own User-Agent (`hookd-bench-node-0`, `-1`), and the receiver credits each
//! payload to the node whose request brought it first. The database cannot tell: a claim
//! writes the node's name into `deliveries.lease_owner`, but recording the outcome clears
//! it, and `delivery_attempts` keeps no owner. Both nodes run hookd's own dispatcher
//! (`dispatch = true`, as `hookd serve` does, with `node_name()` giving each its own lease
//! owner and its own LISTEN connection), so nothing in the delivery path is the bench's.
//!
//! Both nodes run on the one hookd runtime, so hookd's CPU figure is the two together. Each
//! node has its own `per_webhook` slots, so one webhook may have twice as many attempts in
//! flight as on one node. On SQLite the scenario is skipped: one SQLite file serves one server.

use serde_json::json;

use super::e2e::{latency_phase, throughput_events, CONNECTIONS};
use crate::harness::{steady_rate, Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount, Publisher, Rpc};
use crate::metrics::UsageMeter;
use crate::receiver::node_agent;
use crate::report::{Check, ScenarioResult};
use crate::server::{Backend, BenchServer};

const NODES: usize = 2;
/// Without peer links: what each node's share of the deliveries must reach for both to
/// count as working.
const MIN_SHARE_PCT: f64 = 10.0;
/// With peer links: the share of the publishes the node that does not own the merchant
/// must have forwarded (it takes half of them).
const MIN_FORWARDED_PCT: f64 = 40.0;

/// Each node's User-Agent, and peer links as a deployment of several nodes has them (each
/// merchant's publishes gathered on its owner node); `HOOKD_BENCH_NO_PEERS=1` leaves them
/// off, so every node stores its own publishes (for comparison).
pub(super) fn node_config(c: &mut hookd::config::Config, node: usize) {
    c.app.delivery.client.user_agent = node_agent(node);
    if std::env::var_os("HOOKD_BENCH_NO_PEERS").is_none() {
        c.peers = Some(hookd::config::PeerSettings {
            listen: "127.0.0.1:0".into(),
            advertise: None,
        });
    }
}

/// Until every node with peer links has seen the others (the first within a beat, 2 s):
/// before that, a node that has not seen the merchant's owner yet stores its publishes
/// itself, and the owner then commits as a node sharing its webhooks for a while (see
/// `store::postgres::sharing`), which is not the steady state to measure.
async fn wait_for_peers(apps: &[&hookd::app::App]) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while apps
        .iter()
        .any(|app| app.cluster.as_ref().is_some_and(|c| c.live_nodes() < apps.len()))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the nodes did not see each other within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(apps.iter().all(|app| app.cluster.is_some()))
}

/// A second node on `setup`'s database, started once both nodes have seen each other (with
/// peer links), and a client for its admin; whether the nodes have peer links.
pub(super) async fn join_second(setup: &Setup) -> anyhow::Result<(BenchServer, Rpc, bool)> {
    let second = setup.server.join(|c| node_config(c, 1)).await?;
    let peers = wait_for_peers(&[setup.server.app(), second.app()]).await?;
    let admin2 = Rpc::new(&second.endpoint, &second.admin)?;
    // Each node pays for argon2 on a key's first Basic-auth call; not in the measurement.
    admin2.call("topic.list", json!([])).await?;
    Ok((second, admin2, peers))
}

/// The publishes forwarded to their owner node since the counter read `before`, in % of
/// `events`.
pub(super) fn forwarded_pct(before: u64, events: u64) -> f64 {
    let forwarded = hookd::metrics::PEER_PUBLISHES_FORWARDED.get() - before;
    100.0 * forwarded as f64 / events.max(1) as f64
}

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    if ctx.backend() != Backend::Postgres {
        return Ok(ScenarioResult::skipped(
            "needs --backend postgres: one SQLite file serves one hookd server",
        ));
    }
    let amount = Amount::Events(throughput_events(ctx));
    let (concurrency, batch) = (CONNECTIONS, 1);
    let setup = Setup::start(ctx, 1, None, |c| node_config(c, 0)).await?;
    let (second, admin2, peers) = join_second(&setup).await?;
    setup.create_webhooks(0..1, TOPIC).await?;
    let publisher = Publisher::spread(
        vec![setup.admin.clone(), admin2.clone()],
        TOPIC,
        ctx.bar(name, "published", amount.events()),
    );
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let forwarded_before = hookd::metrics::PEER_PUBLISHES_FORWARDED.get();
    let run = closed_loop(&publisher, amount, concurrency, batch).await;
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    let series = watch.stop().await;
    let mut r = setup.result(run, &publisher, usage, run.events);
    r.params = json!({"nodes": NODES, "webhooks": 1, "events": run.events, "concurrency": concurrency,
        "batch": batch, "requests": "alternating between the nodes"});
    r.note("deliveries_per_s_steady_10_90", steady_rate(&series));
    let by_node = setup.receiver.by_node(NODES);
    let credited: u64 = by_node.iter().sum();
    if credited != r.deliveries {
        r.problems.push(format!(
            "{} of {} deliveries came from no known node (User-Agent)",
            r.deliveries - credited.min(r.deliveries),
            r.deliveries
        ));
        r.ok = false;
    }
    let shares: Vec<f64> = by_node
        .iter()
        .map(|n| 100.0 * *n as f64 / credited.max(1) as f64)
        .collect();
    r.note("deliveries_by_node", &by_node);
    r.note("deliveries_share_pct_by_node", &shares);
    if peers {
        // The node that owns the bench merchant stores and sends everything; the other
        // forwards it the half of the publishes that reach it.
        let pct = forwarded_pct(forwarded_before, run.events);
        r.note("forwarded_pct", pct);
        r.checks.push(Check::at_least(
            "publishes forwarded to the merchant's owner node",
            pct,
            MIN_FORWARDED_PCT,
            "%",
        ));
    } else {
        let smallest = shares.iter().copied().fold(f64::INFINITY, f64::min);
        r.checks.push(Check::at_least(
            "smaller node's share of the deliveries",
            smallest,
            MIN_SHARE_PCT,
            "%",
        ));
    }
    latency_phase(ctx, &setup, name, vec![setup.admin.clone(), admin2], &mut r).await;
    second.stop().await;
    setup.server.stop().await;
    Ok(r)
}

/// Adds the scale-out check once the one-node figure of the same run (`e2e`, or
/// `e2e-merchants`) is known: two nodes must deliver at least as fast as one.
pub fn compare_with_one_node(two: &mut ScenarioResult, one: &ScenarioResult) {
    if two.skipped.is_some() || !one.ok || one.deliveries_per_s <= 0.0 {
        return;
    }
    let ratio = two.deliveries_per_s / one.deliveries_per_s;
    two.note("deliveries_per_s_one_node", one.deliveries_per_s);
    two.note("speedup_vs_one_node", ratio);
    two.checks.push(Check::at_least(
        &format!("deliveries/s, two nodes ÷ one node ({}, same run)", one.scenario),
        ratio,
        1.0,
        "×",
    ));
}
