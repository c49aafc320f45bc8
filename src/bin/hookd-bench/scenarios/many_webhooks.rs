//! Publish cost with 10 webhooks (1 matching) against 100,000 (still 1 matching): the
//! subscription lookup must not grow with the webhooks that do not match. Each case gets
//! its own fresh server, so both publish into an empty event log.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use hookd::domain::NewWebhook;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::{phase_seconds, PHASE};
use crate::harness::{seconds_between, Ctx, DeliveryWatch, Setup, OTHER_TOPIC, TOPIC};
use crate::load::{closed_loop, Amount, PublishRun};
use crate::metrics::{now_us, UsageMeter};
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
    let publisher = setup.publisher(ctx.bar(name, &phase, amount.events()));
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start();
    let run = closed_loop(&publisher, amount, 32, 1).await;
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    watch.stop().await;
    let mut r = setup.result(run, &publisher, usage, run.events);
    if webhooks > FEW {
        r.note("webhooks_registered_per_s", (webhooks - FEW) as f64 / register_s);
    }
    setup.server.stop().await;
    Ok((run, r))
}

/// Registers `n` webhooks on topics other than the measured one, spread over the catalog
/// like real subscriptions.
///
/// They go in through a connection of the bench's own, in one transaction, as the same rows
/// `SqliteStore::webhook_create` writes (each validated through `NewWebhook` first). Through
/// the store they would take minutes: its create counts the merchant's webhooks in every
/// transaction (for the per-merchant limit), so the n-th create costs O(n). hookd's own
/// count afterwards checks that the rows are seen.
async fn register(ctx: &Ctx, name: &str, setup: &Setup, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let bar = ctx.bar(name, "registering", Some(n as u64));
    let (app, merchant) = (setup.server.app.clone(), setup.server.merchant);
    let before = setup
        .server
        .on_hookd(async move { app.store.webhook_count(merchant).await })
        .await?;
    let base = setup.receiver.unused_url(0);
    let catalog = setup.server.app.catalog.clone();
    let topics: Vec<String> = catalog
        .iter()
        .filter(|t| *t != TOPIC && !t.starts_with("test:"))
        .map(String::from)
        .collect();
    let mut conn = SqliteConnectOptions::from_str(&setup.server.database_url)?
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .context("opening the database for registration")?;
    let mut tx = conn.begin().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for i in 0..n {
        let data = json!({"topics": topics[i % topics.len()], "url": format!("{base}?n={i}")});
        let hook = NewWebhook::from_json(&data, &catalog, true).context("a bench webhook")?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (merchant_id, is_active, topics, url, extra_headers, secret_key, created_at) \
             VALUES (?, 1, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(merchant.0)
        .bind(hook.topics.joined())
        .bind(hook.url.as_str())
        .bind(hook.extra_headers.raw())
        .bind(hook.secret_key.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context("registering a webhook")?;
        for pattern in hook.topics.patterns() {
            sqlx::query("INSERT INTO webhook_topics (merchant_id, pattern, webhook_id) VALUES (?, ?, ?)")
                .bind(merchant.0)
                .bind(pattern.key())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        bar.inc(1);
    }
    tx.commit().await.context("committing the registered webhooks")?;
    bar.finish();
    let app = setup.server.app.clone();
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
