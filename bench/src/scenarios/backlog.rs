//! A million payloads queued on an API-only node (no dispatcher, as if every receiver were
//! down), then the dispatcher started: peak memory over both, and how fast the queue drains.
//! Ten webhooks × 100,000 events, so filling takes 100,000 publishes, not a million.

use serde_json::json;

use crate::harness::{seconds_between, steady_rate, Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount};
use crate::metrics::{now_us, UsageMeter};
use crate::report::{num, Check, ScenarioResult};

const WEBHOOKS: u64 = 10;

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let payloads = ctx.size(1_000_000, 2_000);
    let events = payloads.div_ceil(WEBHOOKS);
    let mut setup = Setup::start(ctx, WEBHOOKS as usize, None, |c| c.dispatch = false).await?;
    setup.create_webhooks(0..WEBHOOKS as usize, TOPIC).await?;
    let publisher = setup.publisher(ctx.bar(name, "queued (events)", Some(events)));
    let meter = UsageMeter::start(ctx.backend());
    let fill = closed_loop(&publisher, Amount::Events(events), 4, 100).await;
    let fill_usage = meter.finish();

    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "drained", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let drain_started = now_us();
    setup.server.start_dispatcher();
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    let series = watch.stop().await;

    let mut r = setup.result(fill, &publisher, usage, fill.events * WEBHOOKS);
    r.params = json!({"webhooks": WEBHOOKS, "events": fill.events, "payloads": fill.events * WEBHOOKS,
        "batch": 100, "concurrency": 4});
    r.deliver_s = seconds_between(drain_started, setup.receiver.last_receipt_us());
    r.deliveries_per_s = r.deliveries as f64 / r.deliver_s;
    r.note("deliveries_per_s_steady_10_90", steady_rate(&series));
    let peak = match (fill_usage.peak_rss_mb, r.usage.peak_rss_mb) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let per_event = |s: Option<f64>| s.map(|s| s * 1e6 / fill.events.max(1) as f64);
    r.note(
        "cpu_us_per_published_event_fill_hookd",
        per_event(fill_usage.cpu_hookd_s),
    );
    r.note(
        "cpu_us_per_published_event_fill_postgres",
        per_event(fill_usage.cpu_postgres_s),
    );
    r.note("usage_fill", fill_usage);
    r.note("peak_rss_mb_fill_and_drain", peak);
    let figure = format!(
        "peak RSS, {} payloads queued then drained",
        num(r.expected_deliveries as f64)
    );
    let rss = Check::at_most(&figure, peak.unwrap_or(f64::NAN), 150.0, "MB");
    r.checks.push(if peak.is_some() { rss } else { rss.unmeasured() });
    let drain = Check::at_least(
        "drain rate (dispatcher start→last receipt)",
        r.deliveries_per_s,
        10_000.0,
        "/s",
    );
    r.checks.push(drain);
    setup.server.stop().await;
    Ok(r)
}
