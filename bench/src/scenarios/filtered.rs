//! `publish-filtered`: what webhook filters (CEL, CONTRACT §6.2) cost at publish. Two
//! cases on fresh servers, each 32 single-event publishes in flight, as in `publish`:
//! without filters, `ACCEPTING` webhooks on the topic and the rest of the 100 on another;
//! with filters, all 100 on the topic, each with a filter, `ACCEPTING` of which accept every
//! event (the others never do). So both deliver the same, and the difference is 100 filter
//! evaluations per event (and the webhooks the topic matches). The scenario's own figures
//! are the filtered case's; the unfiltered case's are notes beside them, with the ratio.
//!
//! Why not half accepting: then every event makes 50 payloads, their deliveries take
//! nearly all of the machine, and the publish rate measures them, not the filters.

use anyhow::Context;
use serde_json::{json, Value};

use super::{fold_baseline, measure_closed, phase_seconds, PHASE};
use crate::harness::{Ctx, Setup, OTHER_TOPIC, TOPIC};
use crate::load::{Amount, PublishRun};
use crate::report::{Check, ScenarioResult};

/// Webhooks per case, and how many of them get each event.
const WEBHOOKS: usize = 100;
const MATCHING: usize = 1;
/// What the bench publishes is `{"seq": n, "t_us": …}` on `TOPIC`: the first filter is
/// true for every such event, the second for none; both read a field and the topic.
const ACCEPTS: &str = "message.seq >= 0 && topic == \"order:created\"";
const REFUSES: &str = "message.seq < 0 && topic == \"order:created\"";

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let amount = ctx.amount(PHASE, 100);
    let (plain_run, plain) = case(ctx, name, false, amount).await?;
    let (filtered_run, mut r) = case(ctx, name, true, amount).await?;
    let ratio = filtered_run.events_per_s() / plain_run.events_per_s().max(1e-9);
    r.params = json!({"webhooks": WEBHOOKS, "with_filter": WEBHOOKS, "matching": MATCHING,
        "events": filtered_run.events, "events_unfiltered": plain_run.events, "concurrency": 32,
        "publish_for_s": phase_seconds(amount), "filters": [ACCEPTS, REFUSES]});
    r.note("deliveries_per_s_unfiltered", plain.deliveries_per_s);
    fold_baseline(&mut r, &plain, "unfiltered", "with filters", "without filters");
    r.checks.push(Check::at_least(
        "publish rate with 100 filters ÷ without (1 payload per event in both)",
        ratio,
        0.9,
        "×",
    ));
    Ok(r)
}

/// One server with the case's webhooks, measured with 32 single-event publishes in flight.
async fn case(ctx: &Ctx, name: &str, filtered: bool, amount: Amount) -> anyhow::Result<(PublishRun, ScenarioResult)> {
    let setup = Setup::start(ctx, MATCHING, None, |_| {}).await?;
    if filtered {
        let mut datas: Vec<Value> = (0..MATCHING)
            .map(|slot| {
                json!({"topics": TOPIC, "url": setup.receiver.url(slot), "filter": ACCEPTS,
                    "secret_key": crate::receiver::secret_for(slot)})
            })
            .collect();
        datas.extend(
            (0..WEBHOOKS - MATCHING)
                .map(|n| json!({"topics": TOPIC, "url": setup.receiver.unused_url(n), "filter": REFUSES})),
        );
        for data in datas {
            setup
                .shop
                .call("webhook.create", json!([data]))
                .await
                .context("creating a filtered webhook")?;
        }
    } else {
        setup.create_webhooks(0..MATCHING, TOPIC).await?;
        setup.create_unused_webhooks(WEBHOOKS - MATCHING, OTHER_TOPIC).await?;
    }
    let phase = if filtered {
        "published (filters)"
    } else {
        "published (none)"
    };
    let (run, mut r, _) = measure_closed(ctx, &setup, name, phase, amount, (32, 1), MATCHING).await;
    r.set_cpu_per_event();
    setup.server.stop().await;
    Ok((run, r))
}
