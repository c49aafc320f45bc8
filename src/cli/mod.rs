//! The `hookd` command line: `serve`, `migrate`, `user …`. Logs go to stderr; stdout carries
//! only what a script wants to read (a new API key is alone on stdout's last line).

mod user;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, Settings};
use crate::startup::Application;
use crate::store::{self, Store};

#[derive(Parser, Debug)]
#[command(name = "hookd", version, about = "Webhook delivery service with a JSON-RPC management API")]
pub struct Cli {
    /// Optional TOML config file (keys as the long flags, snake_case); environment and flags win over it
    #[arg(long, short = 'c', env = "HOOKD_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server and the delivery workers
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Manage API users (merchant users and admins)
    #[command(subcommand)]
    User(user::UserCommand),
}

impl Cli {
    pub fn config(&self) -> anyhow::Result<Config> {
        Config::resolve(self.settings.clone(), self.config.as_deref())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config()?;
    match cli.command {
        Command::Serve => Application::build(config).await?.run_until_stopped().await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied to {}", config.database_url);
            Ok(())
        }
        Command::User(cmd) => user::run(cmd, open_store(&config).await?).await,
    }
}

/// Opens the configured database and brings its schema up to date.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}
