use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: hookd allocates many small, short-lived buffers per
/// event (requests, JSON, headers, futures), and mimalloc's thread-local free lists take
/// about a sixth off the CPU per `e2e` event. Built without transparent huge pages
/// (`no_thp`), which otherwise add some 30 MB to the resident set (docs/performance.md,
/// 2026-12-06 late).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
