//! Logging: `tracing` to stderr (stdout is kept for command output such as new API keys),
//! as text or one JSON object a line (`--log-format json`), filtered by `RUST_LOG`. The
//! default shows hookd's own lines from `info` up and other crates' only from `warn`, so
//! what an operator sees is about hookd. No line shows the database credentials (`redact`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::redact::Masking;

/// What `RUST_LOG` is when it is not set.
pub const DEFAULT_FILTER: &str = "warn,hookd=info";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line, sqlx's own included, with the database credentials masked.
        .with_writer(|| Masking(std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}
