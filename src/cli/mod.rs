//! The `hookd` command line: `serve`, `migrate`, `user …`, `secrets reencrypt`. Logs go to stderr; stdout carries
//! only what a script wants to read (a new API key is alone on stdout's last line).

mod listen;
mod operate;
mod secrets;
mod user;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::events::PublishOptions;
use crate::app::App;
use crate::config::{redacted_database_url, Common, Config, Settings, DEFAULT_DATABASE_URL};
use crate::startup::Application;
use crate::store::{self, Store};

#[derive(Parser, Debug)]
#[command(
    name = "hookd",
    version,
    about = "Webhook delivery service with a JSON-RPC management API"
)]
pub struct Cli {
    /// Optional TOML config file (keys as the long flags, snake_case); environment and flags win over it
    #[arg(long, short = 'c', env = "HOOKD_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Log lines on stderr as text or as one JSON object each
    #[arg(long, env = "HOOKD_LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: crate::telemetry::LogFormat,

    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server and the delivery workers
    Serve(Box<Settings>),
    /// Apply database migrations and exit
    Migrate,
    /// Manage API users (admins, merchant users and publishers)
    #[command(subcommand)]
    User(user::UserCommand),
    /// Merchants (list, add)
    #[command(subcommand)]
    Merchant(operate::MerchantCommand),
    /// Webhooks of every merchant (list)
    #[command(subcommand)]
    Webhook(operate::WebhookCommand),
    /// Payloads and their delivery (list, retry)
    #[command(subcommand)]
    Delivery(operate::DeliveryCommand),
    /// Webhook secrets at rest (reencrypt)
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// A local receiver for trying webhooks: prints one JSON line per request
    Listen(listen::ListenArgs),
    /// Publish an event from a script: hookd publish order:created '{"id":1}'
    ///
    /// Writes straight to the database; a running server picks the payloads up within its
    /// poll interval.
    Publish {
        /// A catalog topic, e.g. order:created
        topic: String,
        /// The message, a JSON object
        message: String,
        /// The merchant (required when more than one exists)
        #[arg(long)]
        merchant: Option<String>,
        /// A repeat with the same key within 24 h returns the first answer and makes nothing
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

impl Cli {
    pub fn config(&self) -> anyhow::Result<Config> {
        // Only `serve` has the server's own flags; the other commands take the rest from the
        // config file and the defaults.
        let mut settings = match &self.command {
            Command::Serve(settings) => (**settings).clone(),
            _ => Settings::default(),
        };
        settings.database_url = self.common.database_url.clone();
        settings.topics_file = self.common.topics_file.clone();
        settings.encryption_keys = self.common.encryption_keys.clone();
        settings.read_secret_files(|name| std::env::var_os(name))?;
        Config::resolve(settings, self.config.as_deref())
    }

    /// Where `serve` exports traces (None for the other commands, which make no spans worth
    /// sending), for `main` to start the exporter before the runtime.
    pub fn traces(&self) -> Option<crate::telemetry::otlp::TraceSettings> {
        match &self.command {
            Command::Serve(settings) => crate::config::traces(settings, self.config.as_deref()),
            _ => None,
        }
    }
}

impl Cli {
    /// Whether the database is the default one because none was given (no flag, variable,
    /// `_FILE` variable or config-file key).
    fn database_url_defaulted(&self, config: &Config) -> bool {
        self.common.database_url.is_none()
            && std::env::var_os("HOOKD_DATABASE_URL_FILE").is_none()
            && config.database_url == DEFAULT_DATABASE_URL
    }
}

/// Says on stderr which database the command uses (credentials masked), and when a command
/// that `creates` one finds no SQLite file, that it makes a new one now (and where). `serve`
/// says it in its log (so `--log-format json` stays JSON); the other commands in a plain line.
fn announce_database(config: &Config, defaulted: bool, creates: bool, as_log: bool) {
    let shown = redacted_database_url(&config.database_url);
    let new_file = store::sqlite::file_path(&config.database_url)
        .filter(|path| creates && !path.exists())
        .map(|path| std::path::absolute(&path).unwrap_or(path));
    let why = if defaulted {
        " (HOOKD_DATABASE_URL is not set: this is the default; set it to use another)"
    } else {
        ""
    };
    match (new_file, as_log) {
        (Some(path), true) => {
            tracing::warn!(database = %shown, "creating a new SQLite database at {}{why}", path.display())
        }
        (Some(path), false) => eprintln!(
            "hookd: database {shown}: creating a new SQLite database at {}{why}",
            path.display()
        ),
        (None, true) => tracing::info!(database = %shown, "database {shown}"),
        (None, false) => eprintln!("hookd: database {shown}"),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The receiver needs no database and no server settings.
    if let Command::Listen(args) = cli.command {
        return listen::run(args).await;
    }
    let config = cli.config()?;
    // From here on, whatever quotes the database credentials prints `***` instead.
    crate::redact::register(&config.database_url);
    // Every other command opens the database: say which (and whether it is made now).
    let creates = matches!(
        cli.command,
        Command::Serve(_) | Command::Migrate | Command::Publish { .. } | Command::User(user::UserCommand::Add { .. })
    );
    announce_database(
        &config,
        cli.database_url_defaulted(&config),
        creates,
        matches!(cli.command, Command::Serve(_)),
    );
    match cli.command {
        Command::Listen(_) => unreachable!("handled above"),
        Command::Serve(_) => Application::build(config).await?.run_until_stopped().await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied to {}", redacted_database_url(&config.database_url));
            Ok(())
        }
        Command::User(cmd) => {
            let store = match cmd {
                user::UserCommand::Add { .. } => open_store(&config).await?,
                _ => open_existing_store(&config).await?,
            };
            user::run(cmd, store).await
        }
        Command::Merchant(cmd) => {
            let store = match cmd {
                operate::MerchantCommand::Add { .. } => open_store(&config).await?,
                _ => open_existing_store(&config).await?,
            };
            operate::merchants(cmd, store).await
        }
        Command::Webhook(cmd) => operate::webhooks(cmd, open_existing_store(&config).await?).await,
        Command::Delivery(cmd) => operate::deliveries(cmd, open_existing_store(&config).await?).await,
        Command::Secrets(cmd) => secrets::run(cmd, open_existing_store(&config).await?, &config).await,
        Command::Publish {
            topic,
            message,
            merchant,
            idempotency_key,
        } => {
            let message: serde_json::Value = serde_json::from_str(&message).context("the message is not valid JSON")?;
            let app = App::new(open_store(&config).await?, config.load_catalog()?, config.app.clone())?;
            let options = PublishOptions {
                merchant_code: merchant,
                idempotency_key,
                ..Default::default()
            };
            let published = app
                .publish(&topic, &message, &options)
                .await
                .context("publishing the event")?;
            println!(
                "{}",
                serde_json::json!({"event_id": published.event_id.0, "payloads": published.payloads})
            );
            Ok(())
        }
    }
}

/// Like `open_store`, for commands that only look at or change what exists: a SQLite file
/// that is not there is refused (a mistyped path would otherwise make a new, empty one).
async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = store::sqlite::file_path(&config.database_url) {
        anyhow::ensure!(
            path.exists(),
            "no database at {} (hookd serve or hookd migrate makes one; check --database-url / HOOKD_DATABASE_URL)",
            path.display()
        );
    }
    open_store(config).await
}

/// Opens the configured database and brings its schema up to date.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(&config.database_url, &config.pool, config.encryption_keys.clone())
        .await
        .with_context(|| format!("opening database {}", redacted_database_url(&config.database_url)))?;
    store.migrate().await.context("applying migrations")?;
    // Every command may read secrets: a key the database needs and is not given fails here.
    crate::sealing::reencrypt::check_keys(&*store, &config.encryption_keys).await?;
    Ok(store)
}
