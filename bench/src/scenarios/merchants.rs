//! `e2e-merchants` and `e2e-2nodes-merchants`: the `e2e` throughput phase (40,000
//! single-event publishes over 32 connections) spread over `MERCHANTS` merchants, each with
//! one webhook of its own, on one node and on two nodes with peer links (requests taking
//! turns between them). With one merchant (`e2e-2nodes`) one node owns every publish and the
//! other only forwards; with several, each node owns some merchants (rendezvous hashing), so
//! both store and send: the scale-out a deployment with many merchants gets. The two-node
//! figure is set beside the one-node one of the same run (`compare_with_one_node`).
//!
//! The publishes name their merchant (`merchant_code`, needed once several exist), spread
//! over the merchants in a mixed order; each merchant's user makes its own webhook. No
//! latency phase: `e2e` and `e2e-2nodes` measure that.

use serde_json::json;

use super::e2e::{throughput_events, CONNECTIONS};
use super::two_nodes::{forwarded_pct, join_second, node_config};
use crate::harness::{steady_rate, Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount, Publisher, Rpc};
use crate::metrics::UsageMeter;
use crate::receiver::secret_for;
use crate::report::{Check, ScenarioResult};
use crate::server::{Backend, Login};

/// Merchants, each with one webhook (a receiver slot of its own).
const MERCHANTS: usize = 16;

/// Makes the merchants `m0`… through the admin API, a merchant user for each, and that
/// user's webhook to receiver slot `i`; their codes.
async fn make_merchants(setup: &Setup) -> anyhow::Result<Vec<String>> {
    let mut codes = Vec::new();
    for i in 0..MERCHANTS {
        let code = format!("m{i}");
        setup
            .admin
            .call("merchant.create", json!([{"merchant_code": code}]))
            .await?;
        let user = setup
            .admin
            .call(
                "user.create",
                json!([{"username": format!("{code}-shop"), "role": "merchant", "merchant_code": code}]),
            )
            .await?;
        let key = user["api_key"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("user.create gave no api_key: {user}"))?;
        let login = Login {
            name: format!("{code}-shop"),
            key: key.into(),
        };
        let shop = Rpc::new(&setup.server.endpoint, &login)?;
        let hook = json!({"topics": TOPIC, "url": setup.receiver.url(i), "secret_key": secret_for(i)});
        shop.call("webhook.create", json!([hook])).await?;
        codes.push(code);
    }
    Ok(codes)
}

/// One node (`nodes` = 1) or two with peer links.
pub async fn run(ctx: &Ctx, name: &str, nodes: usize) -> anyhow::Result<ScenarioResult> {
    if ctx.backend() != Backend::Postgres && nodes > 1 {
        return Ok(ScenarioResult::skipped(
            "needs --backend postgres: one SQLite file serves one hookd server",
        ));
    }
    let amount = Amount::Events(throughput_events(ctx));
    let setup = Setup::start(ctx, MERCHANTS, None, |c| {
        if nodes > 1 {
            node_config(c, 0)
        }
    })
    .await?;
    let mut rpcs = vec![setup.admin.clone()];
    let second = match nodes {
        1 => None,
        _ => {
            let (second, admin2, _) = join_second(&setup).await?;
            rpcs.push(admin2);
            Some(second)
        }
    };
    let codes = make_merchants(&setup).await?;
    let publisher = Publisher::spread(rpcs, TOPIC, ctx.bar(name, "published", amount.events()));
    publisher.set_merchants(codes);
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let forwarded_before = hookd::metrics::PEER_PUBLISHES_FORWARDED.get();
    let run = closed_loop(&publisher, amount, CONNECTIONS, 1).await;
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    let series = watch.stop().await;
    let mut r = setup.result(run, &publisher, usage, run.events);
    r.params = json!({"nodes": nodes, "merchants": MERCHANTS, "webhooks": MERCHANTS, "events": run.events,
        "concurrency": CONNECTIONS, "batch": 1, "requests": "spread over the merchants; taking the nodes in turn"});
    r.note("deliveries_per_s_steady_10_90", steady_rate(&series));
    if second.is_some() {
        let by_node = setup.receiver.by_node(nodes);
        r.note("deliveries_by_node", &by_node);
        // Each node owns some merchants (16 over 2 nodes: one owning all is 2⁻¹⁵ likely)
        // and delivers their payloads.
        let smallest = by_node.iter().copied().min().unwrap_or(0) as f64;
        r.checks.push(Check::at_least(
            "smaller node's share of the deliveries",
            100.0 * smallest / r.deliveries.max(1) as f64,
            1.0,
            "%",
        ));
        r.note("forwarded_pct", forwarded_pct(forwarded_before, run.events));
    }
    if let Some(second) = second {
        second.stop().await;
    }
    setup.server.stop().await;
    Ok(r)
}
