//! Publish cost with 10 webhooks (1 matching) against 100,000 (still 1 matching): the
//! subscription lookup must not grow with the webhooks that do not match. Each case gets
//! its own fresh server, so both publish into an empty event log.

use anyhow::Context;
use futures_util::StreamExt;
use hookd::domain::NewWebhook;
use serde_json::json;

use super::{measure_closed, phase_seconds, PHASE};
use crate::harness::{seconds_between, Ctx, Setup, OTHER_TOPIC, TOPIC};
use crate::load::{Amount, PublishRun};
use crate::metrics::now_us;
use crate::report::{num, Check, Curve, ScenarioResult};

const FEW: usize = 10;

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let many: usize = if ctx.smoke { 1_000 } else { 100_000 };
    let amount = ctx.amount(PHASE, 200);
    let (few_run, few) = case(ctx, name, FEW, amount).await?;
    let (many_run, mut r) = case(ctx, name, many, amount).await?;
    let cost_ratio = few_run.events_per_s() / many_run.events_per_s().max(1e-9);
    r.params = json!({"webhooks": many, "matching": 1, "compared_with": FEW, "events_few": few_run.events,
        "events_many": many_run.events, "concurrency": 32, "publish_for_s": phase_seconds(amount)});
    r.note("events_per_s_10_webhooks", few.events_per_s);
    r.note("publish_request_ms_10_webhooks", &few.publish_request_ms);
    r.note("latency_ms_10_webhooks", &few.latency_ms);
    r.note("usage_10_webhooks", &few.usage);
    r.problems
        .extend(few.problems.iter().map(|p| format!("with {FEW} webhooks: {p}")));
    r.ok &= few.ok;
    r.latency_curves[0].label = format!("{} webhooks", num(many as f64));
    r.latency_curves.insert(
        0,
        Curve {
            label: format!("{FEW} webhooks"),
            points: few.latency_curves[0].points.clone(),
        },
    );
    let figure = format!("publish cost, {} webhooks ÷ {FEW} (1 matching)", num(many as f64));
    r.checks.push(Check::at_most(&figure, cost_ratio, 1.2, "×"));
    Ok(r)
}

/// One server with `webhooks` webhooks, one of them on the published topic, measured with
/// 32 single-event publishes in flight.
async fn case(ctx: &Ctx, name: &str, webhooks: usize, amount: Amount) -> anyhow::Result<(PublishRun, ScenarioResult)> {
    let setup = Setup::start(ctx, 1, None, |c| c.app.max_webhooks_per_merchant = webhooks as i64).await?;
    setup.create_webhooks(0..1, TOPIC).await?;
    setup.create_unused_webhooks(FEW - 1, OTHER_TOPIC).await?;
    let registering = now_us();
    register(ctx, name, &setup, webhooks - FEW).await?;
    let register_s = seconds_between(registering, now_us());
    let phase = format!("published ({})", num(webhooks as f64));
    let (run, mut r, _) = measure_closed(ctx, &setup, name, &phase, amount, (32, 1), 1).await;
    if webhooks > FEW {
        r.note("webhooks_registered_per_s", (webhooks - FEW) as f64 / register_s);
    }
    setup.server.stop().await;
    Ok((run, r))
}

/// Registers `n` webhooks on topics other than the measured one, spread over the catalog
/// like real subscriptions, through hookd's store as `webhook.create` does (each validated
/// through `NewWebhook` first; 64 creates in flight, so the writer commits them in batches).
/// hookd's own count afterwards checks that they are all seen.
async fn register(ctx: &Ctx, name: &str, setup: &Setup, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let bar = ctx.bar(name, "registering", Some(n as u64));
    let (app, merchant) = (setup.server.app().clone(), setup.server.merchant);
    let before = setup
        .server
        .on_hookd(async move { app.store.webhook_count(merchant).await })
        .await?;
    let base = setup.receiver.unused_url(0);
    let catalog = setup.server.app().catalog();
    let topics: Vec<String> = catalog
        .iter()
        .filter(|t| *t != TOPIC && !t.starts_with("test:"))
        .map(String::from)
        .collect();
    let limit = setup.server.app().settings.max_webhooks_per_merchant;
    let mut hooks = Vec::with_capacity(n);
    for i in 0..n {
        let data = json!({"topics": topics[i % topics.len()], "url": format!("{base}?n={i}")});
        hooks.push(NewWebhook::from_json(&data, &catalog, true).context("a bench webhook")?);
    }
    let app = setup.server.app().clone();
    let progress = bar.clone();
    setup
        .server
        .on_hookd(async move {
            let mut creates = futures_util::stream::iter(hooks.into_iter().map(|hook| {
                let store = app.store.clone();
                async move { store.webhook_create(merchant, &hook, limit).await }
            }))
            .buffer_unordered(64);
            while let Some(created) = creates.next().await {
                anyhow::ensure!(
                    created?.is_some(),
                    "the per-merchant webhook limit refused a bench webhook"
                );
                progress.inc(1);
            }
            anyhow::Ok(())
        })
        .await?;
    bar.finish();
    let app = setup.server.app().clone();
    let after = setup
        .server
        .on_hookd(async move { app.store.webhook_count(merchant).await })
        .await?;
    anyhow::ensure!(
        after == before + n as i64,
        "hookd counts {after} webhooks, expected {}",
        before + n as i64
    );
    Ok(())
}
