//! The steps every scenario shares: start a receiver and a fresh hookd, register webhooks
//! pointing at the receiver, publish, wait until the receiver has every payload, and turn
//! the counters into a `ScenarioResult`.
//!
//! The one idea to know: completion is observed, never assumed. The bench waits by polling
//! the receiver's counters against the number of payloads hookd said it made, and gives up
//! only when nothing new has arrived for `IDLE_LIMIT` (longer than the whole retry schedule);
//! whatever is missing then is reported as lost.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookd::config::Config;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

use crate::load::{Amount, PublishRun, Publisher, Rpc};
use crate::metrics::{now_us, Usage};
use crate::receiver::{secret_for, Receiver, Stall};
use crate::report::{Curve, ScenarioResult};
use crate::server::{Backend, BenchServer, Databases, Login};

/// How long the bench waits without a single new delivery before calling the rest lost.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// The topic every measured event is published on.
pub const TOPIC: &str = "order:created";
/// A topic nothing measured is published on, for webhooks that must not match.
pub const OTHER_TOPIC: &str = "product:updated";

/// What every scenario gets from the command line.
pub struct Ctx {
    pub hookd: Handle,
    pub smoke: bool,
    pub events: Option<u64>,
    pub databases: Databases,
    pub multi: MultiProgress,
    /// `--external`: the hookd to load instead of one in-process.
    pub external: Option<External>,
}

/// A `hookd serve` started elsewhere (or several, sharing one database), and the bench's
/// logins on it.
#[derive(Clone)]
pub struct External {
    /// One JSON-RPC endpoint per node; the first one sets up.
    pub endpoints: Vec<String>,
    pub admin: Login,
    pub merchant_user: Login,
}

impl External {
    /// `bases` (http://host:port, one per node) and the logins in HOOKD_BENCH_ADMIN and
    /// HOOKD_BENCH_MERCHANT, each `name:key`.
    pub fn from_env(bases: &[String]) -> anyhow::Result<Self> {
        let login = |var: &str| -> anyhow::Result<Login> {
            let value = std::env::var(var).with_context(|| format!("--external needs {var}=name:key"))?;
            let (name, key) = value
                .split_once(':')
                .with_context(|| format!("{var} must be name:key"))?;
            Ok(Login {
                name: name.into(),
                key: key.into(),
            })
        };
        Ok(Self {
            endpoints: bases
                .iter()
                .map(|base| format!("{}/api/jsonrpc", base.trim_end_matches('/')))
                .collect(),
            admin: login("HOOKD_BENCH_ADMIN")?,
            merchant_user: login("HOOKD_BENCH_MERCHANT")?,
        })
    }
}

impl Ctx {
    pub fn backend(&self) -> Backend {
        self.databases.backend()
    }

    /// The scenario's event count: `--events`, or its smoke or full default.
    pub fn size(&self, full: u64, smoke: u64) -> u64 {
        self.events.unwrap_or(if self.smoke { smoke } else { full })
    }

    /// A closed loop's amount: `--events`, the smoke count, or `full` of publishing time.
    pub fn amount(&self, full: Duration, smoke: u64) -> Amount {
        match (self.events, self.smoke) {
            (Some(n), _) => Amount::Events(n),
            (None, true) => Amount::Events(smoke),
            (None, false) => Amount::For(full),
        }
    }

    /// A progress bar; without a length (`None`) it only counts.
    pub fn bar(&self, scenario: &str, phase: &str, len: Option<u64>) -> ProgressBar {
        let template = match len {
            Some(_) => "{prefix:>14} {msg:<16} [{bar:32}] {human_pos:>9}/{human_len:<9} {per_sec:>12} {elapsed:>4}",
            None => "{prefix:>14} {msg:<16} {spinner:^34} {human_pos:>9} {per_sec:>22} {elapsed:>4}",
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(len.unwrap_or(0)).with_style(style));
        bar.set_prefix(scenario.to_string());
        bar.set_message(phase.to_string());
        bar
    }
}

/// A receiver and a hookd server with the bench's users, ready for webhooks.
pub struct Setup {
    pub server: BenchServer,
    pub receiver: Arc<Receiver>,
    pub admin: Rpc,
    pub shop: Rpc,
    /// The admin on every node the load goes to: this server, or each `--external` node.
    pub nodes: Vec<Rpc>,
}

impl Setup {
    pub async fn start(
        ctx: &Ctx,
        slots: usize,
        stall: Option<Stall>,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let receiver = Arc::new(Receiver::start(slots, stall).await.context("starting the receiver")?);
        let server = match &ctx.external {
            None => BenchServer::start(&ctx.hookd, &ctx.databases, tweak).await?,
            Some(e) => BenchServer::external(
                &ctx.hookd,
                e.endpoints[0].clone(),
                e.admin.clone(),
                e.merchant_user.clone(),
            ),
        };
        let admin = Rpc::new(&server.endpoint, &server.admin)?;
        let mut nodes = vec![admin.clone()];
        for endpoint in ctx.external.iter().flat_map(|e| &e.endpoints[1..]) {
            nodes.push(Rpc::new(endpoint, &server.admin)?);
        }
        let shop = Rpc::new(&server.endpoint, &server.merchant_user)?;
        // The first Basic-auth call of a key pays for argon2, on each node; hookd remembers
        // it afterwards.
        for node in &nodes {
            node.call("topic.list", json!([]))
                .await
                .with_context(|| format!("first call as the admin on {}", node.endpoint()))?;
        }
        shop.call("topic.list", json!([]))
            .await
            .context("first call as the merchant user")?;
        if ctx.external.is_some() {
            // A server that outlives the run keeps the last run's webhooks, whose receivers
            // are gone: the bench merchant's webhooks are removed first.
            let listed = shop.call("webhook.list", json!([])).await.context("listing webhooks")?;
            for hook in listed.as_array().into_iter().flatten() {
                shop.call("webhook.delete", json!([hook["webhook_id"]]))
                    .await
                    .context("deleting an old webhook")?;
            }
        }
        Ok(Self {
            server,
            receiver,
            admin,
            shop,
            nodes,
        })
    }

    /// Registers webhooks for receiver slots `slots` through `webhook.create`, 8 at a time.
    pub async fn create_webhooks(&self, slots: Range<usize>, topic: &str) -> anyhow::Result<()> {
        let datas: Vec<Value> = slots
            .map(|slot| json!({"topics": topic, "url": self.receiver.url(slot), "secret_key": secret_for(slot)}))
            .collect();
        self.create_from(datas).await
    }

    /// As `create_webhooks`, each signed with `signature_scheme` (`"hmac"` or `"hmac+ed25519"`).
    pub async fn create_webhooks_signed(&self, slots: Range<usize>, topic: &str, scheme: &str) -> anyhow::Result<()> {
        let datas: Vec<Value> = slots
            .map(|slot| {
                json!({"topics": topic, "url": self.receiver.url(slot), "secret_key": secret_for(slot),
                       "signature_scheme": scheme})
            })
            .collect();
        self.create_from(datas).await
    }

    /// Registers one webhook on `topic` delivering to `url` (a broker), signed with slot 0's
    /// secret, whose deliveries a bridge hands to the receiver's slot 0.
    pub async fn create_webhook_at(&self, url: &str, topic: &str) -> anyhow::Result<()> {
        self.create_from(vec![json!({"topics": topic, "url": url, "secret_key": secret_for(0)})])
            .await
    }

    /// Registers `n` webhooks on `topic` whose URLs no payload should reach.
    pub async fn create_unused_webhooks(&self, n: usize, topic: &str) -> anyhow::Result<()> {
        let datas = (0..n)
            .map(|i| json!({"topics": topic, "url": self.receiver.unused_url(i)}))
            .collect();
        self.create_from(datas).await
    }

    async fn create_from(&self, datas: Vec<Value>) -> anyhow::Result<()> {
        for chunk in datas.chunks(8) {
            let mut calls = JoinSet::new();
            for data in chunk {
                let (shop, args) = (self.shop.clone(), json!([data]));
                calls.spawn(async move { shop.call("webhook.create", args).await });
            }
            while let Some(done) = calls.join_next().await {
                done?.context("creating a webhook")?;
            }
        }
        Ok(())
    }

    pub fn publisher(&self, bar: ProgressBar) -> Arc<Publisher> {
        Publisher::spread(self.nodes.clone(), TOPIC, bar)
    }

    /// Waits until `count(receiver)` reaches `target`; false if deliveries stopped coming.
    pub async fn wait_for(&self, target: u64, count: impl Fn(&Receiver) -> u64) -> bool {
        let mut last = count(&self.receiver);
        let mut last_change = tokio::time::Instant::now();
        loop {
            let now = count(&self.receiver);
            if now >= target {
                return true;
            }
            if now != last {
                (last, last_change) = (now, tokio::time::Instant::now());
            } else if last_change.elapsed() > IDLE_LIMIT {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every payload the publisher was told about has arrived.
    pub async fn wait_all(&self, publisher: &Publisher) -> bool {
        self.wait_for(publisher.payloads(), |r| r.counts().unique).await
    }

    /// The figures every scenario reports, for a single measured publishing phase; the
    /// scenario names it and adds its checks and anything particular to it.
    pub fn result(
        &self,
        run: PublishRun,
        publisher: &Publisher,
        usage: Usage,
        expected_payloads: u64,
    ) -> ScenarioResult {
        let counts = self.receiver.counts();
        let made = publisher.payloads();
        let deliver_s = seconds_between(run.started_us, self.receiver.last_receipt_us());
        let latency = self.receiver.latency();
        let mut problems = Vec::new();
        let lost = made.saturating_sub(counts.unique);
        if lost > 0 {
            problems.push(format!("{lost} of {made} payloads never arrived at the receiver"));
        }
        if made != expected_payloads {
            problems.push(format!(
                "hookd made {made} payloads; the scenario expected {expected_payloads}"
            ));
        }
        let (errors, first) = publisher.errors();
        if errors > 0 {
            problems.push(format!(
                "{errors} events were not accepted; first: {}",
                first.unwrap_or_default()
            ));
        }
        for (n, what) in [
            (counts.unexpected, "requests reached URLs no payload was meant for"),
            (counts.malformed, "deliveries had a body the bench could not read"),
            (counts.signatures_bad, "sampled deliveries had a wrong signature"),
        ] {
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        }
        if counts.signatures_checked == 0 && counts.unique > 0 {
            problems.push("no signature was checked".into());
        }
        let mut r = ScenarioResult {
            scenario: String::new(),
            title: String::new(),
            skipped: None,
            smoke: false,
            started_at: String::new(),
            params: Value::Null,
            events: run.events,
            publish_s: run.seconds(),
            events_per_s: run.events_per_s(),
            deliveries: counts.unique,
            expected_deliveries: made,
            lost,
            duplicates: counts.duplicates,
            deliver_s,
            deliveries_per_s: counts.unique as f64 / deliver_s,
            latency_ms: latency.summary(),
            publish_request_ms: publisher.rpc_latency.snapshot().summary(),
            usage,
            cpu_us_per_event_hookd: None,
            cpu_us_per_event_postgres: None,
            cpu_per: String::new(),
            checks: Vec::new(),
            extra: Map::new(),
            signatures_checked: counts.signatures_checked,
            ok: problems.is_empty(),
            problems,
            latency_curves: vec![Curve {
                label: "publish→receipt".into(),
                points: latency.curve(),
            }],
        };
        r.set_cpu_per_event();
        r
    }
}

/// Keeps a "delivered" progress bar in step with the receiver, and records the delivered
/// count over time (for the steady-state rate).
pub struct DeliveryWatch {
    on: Arc<AtomicBool>,
    task: JoinHandle<Vec<(u64, u64)>>,
}

impl DeliveryWatch {
    pub fn start(setup: &Setup, publisher: &Arc<Publisher>, bar: ProgressBar) -> Self {
        let (receiver, publisher) = (setup.receiver.clone(), publisher.clone());
        let on = Arc::new(AtomicBool::new(true));
        let running = on.clone();
        let task = tokio::spawn(async move {
            let mut series = Vec::new();
            while running.load(Ordering::Relaxed) {
                let unique = receiver.counts().unique;
                series.push((now_us(), unique));
                bar.set_length(publisher.payloads().max(unique));
                bar.set_position(unique);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            bar.finish();
            series
        });
        Self { on, task }
    }

    /// Stops watching; the delivered count over time.
    pub async fn stop(self) -> Vec<(u64, u64)> {
        self.on.store(false, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Seconds between two bench-clock readings (never zero, so rates stay finite).
pub fn seconds_between(from_us: u64, to_us: u64) -> f64 {
    (to_us.saturating_sub(from_us) as f64 / 1e6).max(1e-6)
}

/// Deliveries per second between 10 % and 90 % of the final count (ramp-up and tail left
/// out); None when the run was too short to tell.
pub fn steady_rate(series: &[(u64, u64)]) -> Option<f64> {
    let total = series.last()?.1;
    let at = |fraction: f64| {
        series
            .iter()
            .find(|(_, n)| *n as f64 >= total as f64 * fraction)
            .copied()
    };
    let ((t0, n0), (t1, n1)) = (at(0.1)?, at(0.9)?);
    (t1 > t0 + 200_000).then(|| (n1 - n0) as f64 / ((t1 - t0) as f64 / 1e6))
}
