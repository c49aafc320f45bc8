//! `e2e-ed25519`: what Standard Webhooks `v1a` (Ed25519) signatures cost per delivery
//! (issue 22, CONTRACT §7.3). Four `e2e` cases on fresh servers, in the order hmac,
//! hmac+ed25519, hmac+ed25519, hmac (an ABBA order, so a load that drifts during the run
//! weighs on both schemes alike): one webhook signed with `"hmac"` (`v1` only) or with
//! `"hmac+ed25519"` (`v1` and `v1a` on every request), each case with batches of 100 events,
//! 4 in flight, for half the usual phase. The scenario's own figures are the second Ed25519
//! case's; the ratio is of the deliveries/s summed over both cases of each scheme, and the
//! whole process's CPU per delivery (hookd and the bench's load and receiver, which share
//! the machine) is compared the same way, a figure that moves less with other load.

use serde_json::json;

use super::{fold_baseline, measure_closed, phase_seconds, PHASE};
use crate::harness::{Ctx, Setup, TOPIC};
use crate::load::Amount;
use crate::report::{Check, ScenarioResult};

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let amount = match ctx.amount(PHASE, 1000) {
        Amount::Events(n) => Amount::Events((n / 2).max(1)),
        Amount::For(d) => Amount::For(d / 2),
    };
    let hmac_a = case(ctx, name, "hmac", amount).await?;
    let ed_a = case(ctx, name, "hmac+ed25519", amount).await?;
    let mut r = case(ctx, name, "hmac+ed25519", amount).await?;
    let hmac_b = case(ctx, name, "hmac", amount).await?;
    let ratio =
        (ed_a.deliveries_per_s + r.deliveries_per_s) / (hmac_a.deliveries_per_s + hmac_b.deliveries_per_s).max(1e-9);
    let cpu = |cases: [&ScenarioResult; 2]| {
        let (cpu_s, deliveries) = cases.iter().fold((0.0, 0u64), |(s, n), c| {
            (s + c.usage.cpu_total_pct / 100.0 * c.usage.wall_s, n + c.deliveries)
        });
        cpu_s * 1e6 / deliveries.max(1) as f64
    };
    let (cpu_ed, cpu_hmac) = (cpu([&ed_a, &r]), cpu([&hmac_a, &hmac_b]));
    r.params = json!({"webhooks": 1, "events": r.events, "events_hmac": hmac_b.events, "concurrency": 4,
        "batch": 100, "publish_for_s": phase_seconds(amount), "order": "hmac, ed25519, ed25519, hmac"});
    r.note(
        "deliveries_per_s_each",
        json!({"hmac": [hmac_a.deliveries_per_s, hmac_b.deliveries_per_s],
            "hmac+ed25519": [ed_a.deliveries_per_s, r.deliveries_per_s]}),
    );
    r.note("deliveries_per_s_ratio_ed25519_to_hmac", ratio);
    r.note("cpu_us_per_delivery_process_hmac", cpu_hmac);
    r.note("cpu_us_per_delivery_process_ed25519", cpu_ed);
    r.note("cpu_ratio_hmac_to_ed25519", cpu_hmac / cpu_ed.max(1e-9));
    fold_baseline(&mut r, &hmac_b, "hmac", "hmac+ed25519", "hmac");
    for (label, c) in [("hmac", &hmac_a), ("hmac+ed25519", &ed_a)] {
        r.problems
            .extend(c.problems.iter().map(|p| format!("{label} (first case): {p}")));
        r.ok &= c.ok;
    }
    r.checks.push(Check::at_least(
        "deliveries/s with hmac+ed25519 ÷ with hmac (one webhook, same load, ABBA)",
        ratio,
        0.8,
        "×",
    ));
    Ok(r)
}

/// One server with one webhook signed with `scheme`, measured as `e2e`.
async fn case(ctx: &Ctx, name: &str, scheme: &str, amount: Amount) -> anyhow::Result<ScenarioResult> {
    let setup = Setup::start(ctx, 1, None, |_| {}).await?;
    setup.create_webhooks_signed(0..1, TOPIC, scheme).await?;
    let phase = format!("published ({scheme})");
    let (_, mut r, _) = measure_closed(ctx, &setup, name, &phase, amount, (4, 100), 1).await;
    r.set_cpu_per_event();
    setup.server.stop().await;
    Ok(r)
}
