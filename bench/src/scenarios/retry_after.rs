//! Ten webhooks at full speed and one whose receiver answers every request with
//! `429 Too Many Requests` and `Retry-After: 1`, under a retry schedule of 100 ms steps.
//!
//! Two phases publish the same load: a calm one (the eleventh receiver answers 200) and a
//! throttling one. What is shown: hookd waits the second the receiver asks for before
//! trying a payload again (never the schedule's 100 ms), so the throttling receiver sees a
//! payload at most once a second; and the ten others keep their throughput. The throttled
//! payloads use up their schedule (six attempts, a second apart) and fail, so they are not
//! counted as lost; the eleventh receiver is the scenario's own, beside the bench's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::harness::{seconds_between, Ctx, DeliveryWatch, Setup, TOPIC};
use crate::load::{closed_loop, Amount};
use crate::metrics::{now_us, UsageMeter};
use crate::report::{Check, ScenarioResult};

const NORMAL: usize = 10;
/// Retries after 100 ms each: without Retry-After a payload would come back ten times a second.
const SCHEDULE: &str = "100ms,100ms,100ms,100ms,100ms";

pub async fn run(ctx: &Ctx, name: &str) -> anyhow::Result<ScenarioResult> {
    let amount = Amount::Events(ctx.size(5_000, 100));
    let setup = Setup::start(ctx, NORMAL, None, |c| {
        c.app.delivery.schedule = SCHEDULE.parse().expect("a valid schedule");
    })
    .await?;
    setup.create_webhooks(0..NORMAL, TOPIC).await?;
    let throttle = Throttle::start().await?;
    setup
        .shop
        .call("webhook.create", json!([{"topics": TOPIC, "url": throttle.url}]))
        .await?;
    let publisher = setup.publisher(ctx.bar(name, "published", amount.events().map(|n| 2 * n)));
    let watch = DeliveryWatch::start(&setup, &publisher, ctx.bar(name, "delivered", Some(0)));
    let meter = UsageMeter::start(ctx.backend());
    let others = |r: &crate::receiver::Receiver| r.unique_in(0..NORMAL);

    let calm = closed_loop(&publisher, amount, 4, 100).await;
    setup.wait_for(calm.events * NORMAL as u64, others).await;
    let calm_rate = others(&setup.receiver) as f64 / seconds_between(calm.started_us, setup.receiver.last_receipt_us());

    throttle.on.store(true, Ordering::Relaxed);
    let before = others(&setup.receiver);
    let throttled_from = throttle.requests.load(Ordering::Relaxed);
    let run = closed_loop(&publisher, amount, 4, 100).await;
    setup.wait_for(before + run.events * NORMAL as u64, others).await;
    let others_s = seconds_between(run.started_us, setup.receiver.last_receipt_us());
    let throttled_rate = (others(&setup.receiver) - before) as f64 / others_s;
    // The throttled payloads' six attempts take five seconds and more; wait for them.
    let want = throttled_from + 6 * run.events;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while throttle.requests.load(Ordering::Relaxed) < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let throttle_s = seconds_between(run.started_us, throttle.last_us.load(Ordering::Relaxed));
    let attempts = throttle.requests.load(Ordering::Relaxed) - throttled_from;
    let usage = meter.finish();
    watch.stop().await;

    let gaps = throttle.gaps();
    let mut r = setup.result(run, &publisher, usage, (calm.events + run.events) * (NORMAL as u64 + 1));
    // The throttled webhook's payloads go to the scenario's own receiver (and the
    // throttled ones fail by design): judge loss by the ten others alone.
    let expected = (calm.events + run.events) * NORMAL as u64;
    r.problems
        .retain(|p| !p.contains("never arrived") && !p.contains("hookd made"));
    r.lost = expected.saturating_sub(others(&setup.receiver));
    r.expected_deliveries = expected;
    if r.lost > 0 {
        r.problems.push(format!(
            "{} of {expected} payloads to the ten others never arrived",
            r.lost
        ));
    }
    if attempts < 6 * run.events {
        r.problems.push(format!(
            "the throttled webhook got {attempts} attempts, expected {} (6 per payload)",
            6 * run.events
        ));
    }
    r.ok = r.problems.is_empty();
    r.params = json!({"normal_webhooks": NORMAL, "throttled_webhooks": 1, "retry_after_s": 1,
        "schedule": SCHEDULE, "events_per_phase": run.events, "batch": 100, "concurrency": 4});
    r.deliveries_per_s = throttled_rate;
    r.deliver_s = others_s;
    r.note("others_deliveries_per_s_calm", calm_rate);
    r.note("others_deliveries_per_s_throttling", throttled_rate);
    r.note("throttled_attempts", attempts);
    r.note("throttled_attempts_per_s", attempts as f64 / throttle_s);
    r.note("throttled_payload_retry_gap_ms", gaps_summary(&gaps));
    let min_gap_ms = gaps.first().map_or(f64::NAN, |g| *g as f64 / 1000.0);
    r.checks.push(Check::at_least(
        "shortest wait before a throttled payload came back",
        min_gap_ms,
        1000.0,
        "ms",
    ));
    let kept = 100.0 * throttled_rate / calm_rate.max(1e-9);
    r.checks.push(Check::at_least(
        "others' throughput beside a 429 + Retry-After webhook, % of calm",
        kept,
        90.0,
        "%",
    ));
    setup.server.stop().await;
    Ok(r)
}

/// Sorted gaps (µs) → min, p50, max in milliseconds.
fn gaps_summary(gaps: &[u64]) -> Value {
    let at = |q: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * q) as usize)
            .map(|g| *g as f64 / 1000.0)
    };
    json!({"count": gaps.len(), "min": at(0.0), "p50": at(0.5), "max": at(1.0)})
}

/// Per increment id, when it last came while throttling; and every gap between two
/// attempts of one payload (µs).
type Seen = Mutex<(HashMap<u64, u64>, Vec<u64>)>;

/// The throttling receiver: 200 until `on`, then 429 with `Retry-After: 1` to everything;
/// it records when each payload (by increment id) came back.
#[derive(Clone, Default)]
struct Throttle {
    url: String,
    on: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    last_us: Arc<AtomicU64>,
    seen: Arc<Seen>,
}

impl Throttle {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let throttle = Throttle {
            url: format!("http://{}/t", listener.local_addr()?),
            ..Default::default()
        };
        let router = Router::new().route("/t", post(answer)).with_state(throttle.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(throttle)
    }

    /// Every gap between two attempts of one payload while throttling, sorted (µs).
    fn gaps(&self) -> Vec<u64> {
        let mut gaps = self.seen.lock().unwrap().1.clone();
        gaps.sort_unstable();
        gaps
    }
}

async fn answer(State(s): State<Throttle>, body: Bytes) -> Response {
    if !s.on.load(Ordering::Relaxed) {
        return StatusCode::OK.into_response();
    }
    let now = now_us();
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.last_us.fetch_max(now, Ordering::Relaxed);
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"]["webhook_increment_id"].as_u64());
    if let Some(id) = id {
        let mut seen = s.seen.lock().unwrap();
        if let Some(before) = seen.0.insert(id, now) {
            seen.1.push(now.saturating_sub(before));
        }
    }
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
}
