//! hookd-bench: the benchmark harness (issues 5 and 11).
//!
//! `cargo run --release -p hookd-bench -- [SCENARIO...] [--smoke] [--events N] [--out DIR]
//!  [--backend sqlite|postgres] [--postgres-url URL]`
//!
//! It starts hookd in this process (the library, the same code paths as `hookd serve`) on a
//! fresh database per scenario (a SQLite file, or with `--backend postgres` a PostgreSQL
//! database of its own), runs its own HTTP receiver, drives load through the public JSON-RPC
//! API, and prints a table plus one JSON line per scenario; results go to
//! `DIR/<scenario>-<time>.json`, `DIR/latest.json` and a latency chart `DIR/<scenario>.svg`.
//!
//! The exit status says whether the harness worked (every published event delivered, every
//! sampled signature right), never whether a target was met: 0 ok, 1 something was lost or
//! wrong, 2 the bench itself failed.

mod brokers;
mod chart;
mod harness;
mod load;
mod metrics;
mod receiver;
mod report;
mod scenarios;
mod server;
mod sink;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use indicatif::MultiProgress;
use serde_json::{json, Value};

use harness::Ctx;
use report::ScenarioResult;
use scenarios::Scenario;
use server::{Backend, Databases};

/// The in-process hookd runs on the allocator `hookd serve` runs on (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "hookd-bench",
    about = "Benchmarks hookd in-process: throughput, latency, fan-out, backlog, isolation"
)]
struct Cli {
    /// Scenarios to run [default: all]
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,

    /// Tiny sizes, seconds in all: proves the harness works (timings mean nothing)
    #[arg(long)]
    smoke: bool,

    /// Events per publishing phase, instead of each scenario's default (backlog: payloads)
    #[arg(long)]
    events: Option<u64>,

    /// Where results are written [default: results (PostgreSQL: results/postgres), or
    /// results/tmp/smoke… with --smoke]
    #[arg(long)]
    out: Option<PathBuf>,

    /// Where the temporary SQLite databases live [default: the system temporary directory]
    #[arg(long)]
    db_dir: Option<PathBuf>,

    /// The store hookd runs on
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,

    /// With `--backend postgres`: the server on which each hookd gets a fresh database
    /// (created and dropped through this URL)
    #[arg(
        long,
        env = "HOOKD_BENCH_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,

    /// Load a `hookd serve` started elsewhere at this base URL (e.g. http://127.0.0.1:8080)
    /// instead of hookd in-process; logins from HOOKD_BENCH_ADMIN and HOOKD_BENCH_MERCHANT
    /// (`name:key`). Only publish, publish-batch, e2e, e2e-batch and latency run this way;
    /// see bench/external.sh. Several URLs, comma-separated: nodes sharing one PostgreSQL
    /// database, the requests going to each in turn (the first one sets up)
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    external: Vec<String>,

    /// With --external: the pid of that hookd (comma-separated, one per node), whose CPU is
    /// reported as hookd's
    #[arg(long, value_name = "PID", requires = "external", value_delimiter = ',')]
    external_pid: Vec<u32>,

    /// With --external on PostgreSQL: that hookd's database, whose backends' CPU is reported
    #[arg(long, value_name = "NAME", requires = "external")]
    external_database: Option<String>,
    /// hookd's attempts in flight per webhook (`per_webhook_concurrency`), instead of its
    /// default; a small one (e.g. 2) keeps the webhook's hand-off full, so that much of `e2e`
    /// overflows to claims (in-process hookd only)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    per_webhook: Option<u16>,

    /// Traces (CONTRACT §7.6): off (no exporter, as unset in `hookd serve`), sink (exported at
    /// ratio 1.0 to a collector in this process that accepts and drops them), or down (to a
    /// port nothing listens on)
    #[arg(long, value_enum, default_value = "off")]
    traces: Traces,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Traces {
    Off,
    Sink,
    Down,
}

/// The scenarios that run against a hookd started elsewhere: they only publish and receive.
const EXTERNAL_SCENARIOS: [Scenario; 5] = [
    Scenario::Publish,
    Scenario::PublishBatch,
    Scenario::E2e,
    Scenario::E2eBatch,
    Scenario::Latency,
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Kept to the end: dropping it flushes the exporter.
    let _traces = match cli.traces {
        Traces::Off => {
            init_logging();
            None
        }
        traced => init_tracing(traced),
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hookd-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// hookd's warnings (failed claims, failed writes) go to stderr; `RUST_LOG` changes that.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// hookd's own logging and trace export, as `hookd serve` sets them up, to a sink in this
/// process (a thread of its own answering every export 200) or to a closed port.
fn init_tracing(traces: Traces) -> Option<hookd::telemetry::otlp::Guard> {
    let endpoint = match traces {
        Traces::Sink => format!("http://{}", sink::start()),
        _ => {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            let addr = closed.local_addr().expect("its address");
            format!("http://{addr}")
        }
    };
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let settings = hookd::telemetry::otlp::TraceSettings::parse(Some(&endpoint), Some(1.0))
        .expect("valid trace settings")
        .expect("an endpoint");
    eprintln!("traces: exported at ratio 1.0 to {endpoint} ({traces:?})");
    hookd::telemetry::init(hookd::telemetry::LogFormat::Text, Some(&settings))
}

/// Runs the chosen scenarios; true when every one of them worked.
fn run(cli: Cli) -> anyhow::Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    let mut chosen: Vec<Scenario> = Vec::new();
    for s in &cli.scenarios {
        let add: &[Scenario] = if *s == Scenario::All {
            &Scenario::EACH
        } else {
            std::slice::from_ref(s)
        };
        chosen.extend(add.iter().filter(|a| !chosen.contains(a)).collect::<Vec<_>>());
    }
    if chosen.is_empty() {
        chosen = Scenario::EACH.to_vec();
    }
    let external = match cli.external.as_slice() {
        [] => None,
        bases => {
            chosen.retain(|s| EXTERNAL_SCENARIOS.contains(s));
            anyhow::ensure!(
                !chosen.is_empty(),
                "with --external only publish, publish-batch, e2e, e2e-batch and latency run"
            );
            let _ = metrics::EXTERNAL.set(metrics::ExternalTarget {
                pids: cli.external_pid.clone(),
                database: cli.external_database.clone(),
            });
            Some(harness::External::from_env(bases)?)
        }
    };
    // Two nodes are compared with one (`e2e`, `e2e-merchants`), so the one-node scenario
    // runs first when both are chosen.
    let position = |s: Scenario, chosen: &[Scenario]| chosen.iter().position(|c| *c == s);
    for two_nodes in [Scenario::E2e2Nodes, Scenario::E2e2NodesMerchants] {
        let one_node = two_nodes.one_node().expect("a two-node scenario");
        if let (Some(one), Some(two)) = (position(one_node, &chosen), position(two_nodes, &chosen)) {
            if two < one {
                let moved = chosen.remove(two);
                chosen.insert(one, moved);
            }
        }
    }
    let out = cli.out.clone().unwrap_or_else(|| {
        let dir = match (cli.smoke, cli.backend) {
            (true, Backend::Sqlite) => "results/tmp/smoke",
            (true, Backend::Postgres) => "results/tmp/smoke-postgres",
            (false, Backend::Sqlite) => "results",
            (false, Backend::Postgres) => "results/postgres",
        };
        PathBuf::from(dir)
    });
    let db_root = cli.db_dir.clone().unwrap_or_else(std::env::temp_dir);
    // hookd gets a runtime of its own, so its CPU time can be told from the bench's.
    let hookd_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("hookd-rt")
        .enable_all()
        .build()
        .context("starting hookd's runtime")?;
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-rt")
        .enable_all()
        .build()
        .context("starting the bench runtime")?;
    if let Some(n) = cli.per_webhook {
        server::PER_WEBHOOK.set(n.into()).expect("set once");
    }
    let ctx = Ctx {
        hookd: hookd_rt.handle().clone(),
        smoke: cli.smoke,
        events: cli.events,
        databases: match cli.backend {
            Backend::Sqlite => Databases::Sqlite { root: db_root.clone() },
            Backend::Postgres => Databases::Postgres {
                admin_url: cli.postgres_url.clone(),
            },
        },
        multi: MultiProgress::new(),
        external,
    };
    // On PostgreSQL, a first connection up front: a wrong URL fails here, not in every scenario.
    let postgres_version = match cli.backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(bench_rt.block_on(server::postgres_version(&cli.postgres_url))?),
    };
    let run_info = describe_run(&cli, &db_root, postgres_version);
    let stamp = utc_stamp(true);
    let results = bench_rt.block_on(async {
        let mut results = Vec::new();
        for scenario in chosen {
            let started_at = utc_stamp(false);
            let mut r = match scenario.run(&ctx).await {
                Ok(r) => r,
                Err(e) => ScenarioResult::failed(format!("the scenario could not run: {e:#}")),
            };
            r.scenario = scenario.name();
            r.title = scenario.title();
            r.smoke = cli.smoke;
            r.started_at = started_at;
            if r.skipped.is_none() {
                r.set_cpu_per_event();
            }
            match &mut r.params {
                Value::Object(params) => {
                    params.insert("backend".into(), json!(cli.backend.name()));
                }
                other => *other = json!({"backend": cli.backend.name()}),
            }
            if let Some(one_node) = scenario.one_node().map(Scenario::name) {
                if let Some(one) = results.iter().find(|o: &&ScenarioResult| o.scenario == one_node) {
                    scenarios::compare_with_one_node(&mut r, one);
                }
            }
            ctx.multi.suspend(|| {
                println!("{}", report::json_line(&r));
                for p in &r.problems {
                    eprintln!("{}: PROBLEM: {p}", r.scenario);
                }
            });
            if r.skipped.is_none() {
                if let Err(e) = report::save_scenario(&out, &run_info, &r, &stamp) {
                    eprintln!("warning: {e:#}");
                }
            }
            results.push(r);
        }
        results
    });
    hookd_rt.shutdown_timeout(std::time::Duration::from_secs(5));
    println!();
    println!("{}", report::summary_table(&results));
    println!("{}", report::targets_table(&results));
    let problems = report::problems(&results);
    if !problems.is_empty() {
        println!("PROBLEMS (events lost, or the harness could not measure):\n{problems}");
    }
    report::save_latest(&out, &run_info, &results)?;
    println!(
        "results: {}/latest.json and one .json and .svg per scenario",
        out.display()
    );
    Ok(results.iter().all(|r| r.ok))
}

/// Now in UTC, for file names (`20260101T120000Z`) or records (`2026-01-01T12:00:00Z`).
fn utc_stamp(compact: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let formatted = if compact {
        now.format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
    } else {
        now.format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
    };
    formatted.unwrap_or_default()
}

/// What the numbers depend on: machine, build, sizes.
fn describe_run(cli: &Cli, db_root: &std::path::Path, postgres_version: Option<String>) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).ok();
    let cpu_model = read("/proc/cpuinfo").and_then(|info| {
        info.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
    });
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "started_at": utc_stamp(false),
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
        "smoke": cli.smoke,
        "events_override": cli.events,
        "hookd_version": env!("CARGO_PKG_VERSION"),
        "git": git,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "os": std::env::consts::OS,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu_model,
        "memory_total_kb": read("/proc/meminfo").and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())),
        "db_dir": db_root.display().to_string(),
        "backend": cli.backend.name(),
        "database": match cli.backend {
            Backend::Sqlite => format!("sqlite (embedded), files under {}", db_root.display()),
            Backend::Postgres => format!("postgresql at {}, a fresh database per server", server::redact(&cli.postgres_url)),
        },
        "postgres_version": postgres_version,
    })
}
