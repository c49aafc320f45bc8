use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = hookd::cli::Cli::parse();
    hookd::telemetry::init(cli.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(hookd::cli::run(cli))
}
