//! Ten normal webhooks and one whose receiver stalls 5 s on every tenth delivery: the
//! normal ones' throughput under the same load with and without the stall.
//!
//! Both phases publish the same way; a phase's throughput runs from its first publish to
//! the normal webhooks' last receipt. When the normal webhooks are done, the stall is lifted
//! so the stalling webhook's queue drains quickly and the no-loss check does not take minutes.

use std::time::Duration;

use serde_json::json;

use crate::harness::{seconds_between, Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount, PublishRun};
use crate::metrics::UsageMeter;
use crate::receiver::{Receiver, Stall};
use crate::report::{Check, Curve, ScenarioResult};

const NORMAL: usize = 10;

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let duration = if ctx.smoke {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let stall = Stall {
        slot: NORMAL,
        every: 10,
        duration,
    };
    // A fixed count, not a time: publishing can outrun delivery, and eleven payloads per
    // event would leave a long queue behind a timed phase.
    let amount = Amount::Events(ctx.size(5_000, 100));
    let timeout = duration + Duration::from_secs(5);
    let setup = Setup::start(ctx, NORMAL + 1, Some(stall), |c| {
        c.app.delivery.client.request_timeout = timeout;
        c.app.delivery.lease = timeout * 3;
    })
    .await?;
    setup.create_webhooks(0..NORMAL + 1, TOPIC).await?;
    let publisher = setup.publisher(ctx.bar(name, "published", amount.events().map(|n| 2 * n)));
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let others = |r: &Receiver| r.unique_in(0..NORMAL);
    let others_window = |run: &PublishRun| seconds_between(run.started_us, setup.receiver.last_receipt_in(0..NORMAL));

    let calm = closed_loop(&publisher, amount, 4, 100).await;
    setup.wait_all(&publisher).await;
    let calm_rate = others(&setup.receiver) as f64 / others_window(&calm);
    let calm_latency = setup.receiver.latency();
    setup.receiver.reset_latency();

    setup.receiver.set_stalling(true);
    let before = others(&setup.receiver);
    let stalled = closed_loop(&publisher, amount, 4, 100).await;
    setup.wait_for(before + stalled.events * NORMAL as u64, others).await;
    let stalled_s = others_window(&stalled);
    let stalled_rate = (others(&setup.receiver) - before) as f64 / stalled_s;
    let stalling_hook_done = setup.receiver.unique_in(NORMAL..NORMAL + 1).saturating_sub(calm.events);
    let others_latency = setup.receiver.latency();
    let stalling_latency = setup.receiver.stalled_latency();
    setup.receiver.set_stalling(false);
    setup.wait_all(&publisher).await;
    let usage = meter.finish();
    watch.stop().await;

    let mut r = setup.result(
        stalled,
        &publisher,
        usage,
        (calm.events + stalled.events) * (NORMAL as u64 + 1),
    );
    r.params = json!({"normal_webhooks": NORMAL, "stalling_webhooks": 1, "stall_every": stall.every,
        "stall_s": duration.as_secs_f64(), "events_calm": calm.events, "events_stalling": stalled.events,
        "batch": 100, "concurrency": 4});
    r.deliveries_per_s = stalled_rate;
    r.deliver_s = stalled_s;
    r.latency_ms = others_latency.summary();
    r.latency_curves = vec![
        Curve {
            label: "others, no stall".into(),
            points: calm_latency.curve(),
        },
        Curve {
            label: "others, with stall".into(),
            points: others_latency.curve(),
        },
        Curve {
            label: "stalling webhook".into(),
            points: stalling_latency.curve(),
        },
    ];
    r.note("others_deliveries_per_s_no_stall", calm_rate);
    r.note("others_deliveries_per_s_with_stall", stalled_rate);
    r.note("others_latency_ms_no_stall", calm_latency.summary());
    r.note("stalling_webhook_latency_ms", stalling_latency.summary());
    r.note("stalling_webhook_delivered_when_others_done", stalling_hook_done);
    let kept = 100.0 * stalled_rate / calm_rate.max(1e-9);
    let figure = "others' throughput with one stalling webhook, % of calm";
    r.checks.push(Check::at_least(figure, kept, 90.0, "%"));
    setup.server.stop().await;
    Ok(r)
}
