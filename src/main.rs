use std::process::ExitCode;

use clap::Parser;

/// Runs the command; a failure is one line on stderr (the causes joined with ": ", never a
/// backtrace) and exit code 1.
fn main() -> ExitCode {
    let cli = hookd::cli::Cli::parse();
    // Outside the runtime: the trace exporter's HTTP client runs on a thread of its own.
    let traces = hookd::telemetry::init(cli.log_format, cli.traces().as_ref());
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(hookd::cli::run(cli)));
    // The spans still queued are sent before the process ends.
    drop(traces);
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Masked: an error may quote the database credentials (see `redact`).
            let text = format!("{e:#}").replace('\n', " ");
            eprintln!("hookd: error: {}", hookd::redact::mask(&text));
            ExitCode::from(1)
        }
    }
}
