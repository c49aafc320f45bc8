use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = hookd::cli::Cli::parse();
    hookd::telemetry::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(hookd::cli::run(cli))
}
