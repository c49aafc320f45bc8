//! `e2e-ed25519`: what Standard Webhooks `v1a` (Ed25519) signatures cost per delivery
//! (issue 22, CONTRACT §7.3). Two `e2e` cases on fresh servers, one after the other: one
//! webhook signed with `"hmac"` (`v1` only), then one with `"hmac+ed25519"` (`v1` and `v1a`
//! on every request), each with batches of 100 events, 4 in flight. The scenario's own
//! figures are the Ed25519 case's; the HMAC case's are notes beside them, with the ratio.
//! Run it several times for a spread: the cases alternate across runs.

use serde_json::json;

use super::{fold_baseline, measure_closed, phase_seconds, PHASE};
use crate::harness::{Ctx, Setup, TOPIC};
use crate::load::Amount;
use crate::report::{Check, ScenarioResult};

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let amount = ctx.amount(PHASE, 500);
    let hmac = case(ctx, name, "hmac", amount).await?;
    let mut r = case(ctx, name, "hmac+ed25519", amount).await?;
    let ratio = r.deliveries_per_s / hmac.deliveries_per_s.max(1e-9);
    r.params = json!({"webhooks": 1, "events": r.events, "events_hmac": hmac.events, "concurrency": 4,
        "batch": 100, "publish_for_s": phase_seconds(amount)});
    r.note("deliveries_per_s_hmac", hmac.deliveries_per_s);
    r.note("deliveries_per_s_ratio_ed25519_to_hmac", ratio);
    fold_baseline(&mut r, &hmac, "hmac", "hmac+ed25519", "hmac");
    r.checks.push(Check::at_least(
        "deliveries/s with hmac+ed25519 ÷ with hmac (one webhook, same load)",
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
