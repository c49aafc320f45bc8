//! Logging and traces. Logs: `tracing` to stderr (stdout is kept for command output such as
//! new API keys), as text or one JSON object a line (`--log-format json`), filtered by
//! `RUST_LOG`. The default shows hookd's own lines from `info` up and other crates' only from
//! `warn`, so what an operator sees is about hookd. No line shows the database credentials
//! (`redact`).
//!
//! Traces (CONTRACT §7.6, `otlp`): with `HOOKD_OTLP_ENDPOINT` set, the spans of target
//! `hookd::otel` (`spans`) go to an OpenTelemetry layer and from there, in batches, to the
//! collector. They are `trace`-level spans of their own, filtered per layer: the log lines
//! never show them, and with no endpoint no layer asks for them, so they cost a disabled
//! callsite check.

pub mod otlp;
pub mod spans;

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::redact::Masking;

/// What `RUST_LOG` is when it is not set.
pub const DEFAULT_FILTER: &str = "warn,hookd=info";

/// The target of the spans that are exported (and only those).
pub const SPAN_TARGET: &str = "hookd::otel";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the logger, and the trace exporter when `traces` says where to send them. Call it
/// outside any tokio runtime (the exporter's HTTP client runs on a thread of its own). The
/// returned guard flushes the spans still queued when dropped.
pub fn init(format: LogFormat, traces: Option<&otlp::TraceSettings>) -> Option<otlp::Guard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Every line, sqlx's own included, with the database credentials masked.
    let writer = || Masking(std::io::stderr());
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let (exporting, guard) = match traces.map(otlp::start) {
        Some(Ok((layer, guard))) => (Some(layer), Some(guard)),
        Some(Err(e)) => {
            eprintln!("hookd: traces are not exported: {e:#}");
            (None, None)
        }
        None => (None, None),
    };
    spans::set_exporting(exporting.is_some());
    let exported = exporting.map(|l| l.with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE)));
    let _ = tracing_subscriber::registry()
        .with(exported)
        .with(logs.with_filter(filter))
        .try_init();
    guard
}
