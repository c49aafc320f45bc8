//! Layered, typed configuration: built-in defaults, then an optional TOML file, then
//! `HOOKD_*` environment variables, then command-line flags (each layer wins over the one
//! before). clap reads flags and environment together; the file fills what both left unset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use serde::Deserialize;

use crate::app::AppSettings;
use crate::dispatch::DeliverySettings;
use crate::domain::Catalog;
use crate::store::PoolSettings;

/// Settings shared by every subcommand. Each is a flag, an environment variable and a key
/// of the config file (same name, snake_case).
#[derive(clap::Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the API listens on [default: 127.0.0.1:8080; port 0 picks a free port]
    #[arg(long, env = "HOOKD_LISTEN", global = true)]
    pub listen: Option<String>,

    /// Database: sqlite://PATH (embedded, the default: sqlite://hookd.db) or postgres://…
    #[arg(long, env = "HOOKD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Topic catalog file, one resource:event a line [default: the built-in catalog]
    #[arg(long, env = "HOOKD_TOPICS_FILE", global = true)]
    pub topics_file: Option<PathBuf>,

    /// Largest JSON-RPC request body accepted, in bytes [default: 1048576]
    #[arg(long, env = "HOOKD_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,

    /// Allow webhook URLs on loopback/private/link-local addresses (for local testing)
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_TARGETS", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_private_targets: Option<bool>,

    /// Most webhooks one merchant may register (error 106 beyond it) [default: 1000]
    #[arg(long, env = "HOOKD_MAX_WEBHOOKS_PER_MERCHANT", global = true)]
    pub max_webhooks_per_merchant: Option<i64>,

    /// Largest event message accepted by event.publish, in bytes [default: 262144]
    #[arg(long, env = "HOOKD_MAX_MESSAGE_BYTES", global = true)]
    pub max_message_bytes: Option<usize>,

    /// Delays before each retry, e.g. "1m,2m,4m" or "100ms,250ms,1s" [default: 1m,2m,4m,8m,15m,30m,1h,2h,4h,8h,16h,24h,24h,24h]
    #[arg(long, env = "HOOKD_RETRY_SCHEDULE", global = true)]
    pub retry_schedule: Option<String>,

    /// Time allowed to connect to a receiver [default: 3s]
    #[arg(long, env = "HOOKD_CONNECT_TIMEOUT", global = true)]
    pub connect_timeout: Option<String>,

    /// Time allowed for a whole delivery attempt [default: 5s]
    #[arg(long, env = "HOOKD_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<String>,

    /// Delivery attempts in flight at once, over all webhooks [default: 512]
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT", global = true)]
    pub max_in_flight: Option<usize>,

    /// Delivery attempts in flight at once for one webhook [default: 16]
    #[arg(long, env = "HOOKD_PER_WEBHOOK_CONCURRENCY", global = true)]
    pub per_webhook_concurrency: Option<usize>,

    /// How often the queue is scanned for work not announced in-process [default: 1s]
    #[arg(long, env = "HOOKD_POLL_INTERVAL", global = true)]
    pub poll_interval: Option<String>,

    /// How long a claimed payload stays reserved for the node that claimed it [default: 60s]
    #[arg(long, env = "HOOKD_LEASE", global = true)]
    pub lease: Option<String>,

    /// Run the delivery workers in `serve` (false: an API-only node) [default: true]
    #[arg(long, env = "HOOKD_DISPATCH", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub dispatch: Option<bool>,

    /// Most database connections per node (PostgreSQL) [default: 16]
    #[arg(long, env = "HOOKD_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,

    /// How long a query waits for a database connection before failing [default: 5s]
    #[arg(long, env = "HOOKD_DB_ACQUIRE_TIMEOUT", global = true)]
    pub db_acquire_timeout: Option<String>,

    /// How long delivered, failed and canceled payloads are kept [default: 30days]
    #[arg(long, env = "HOOKD_RETENTION", global = true)]
    pub retention: Option<String>,
}

impl Settings {
    /// Fills every unset field from `lower`.
    fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            database_url: self.database_url.or(lower.database_url),
            topics_file: self.topics_file.or(lower.topics_file),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            allow_private_targets: self.allow_private_targets.or(lower.allow_private_targets),
            max_webhooks_per_merchant: self.max_webhooks_per_merchant.or(lower.max_webhooks_per_merchant),
            max_message_bytes: self.max_message_bytes.or(lower.max_message_bytes),
            retry_schedule: self.retry_schedule.or(lower.retry_schedule),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            request_timeout: self.request_timeout.or(lower.request_timeout),
            max_in_flight: self.max_in_flight.or(lower.max_in_flight),
            per_webhook_concurrency: self.per_webhook_concurrency.or(lower.per_webhook_concurrency),
            poll_interval: self.poll_interval.or(lower.poll_interval),
            lease: self.lease.or(lower.lease),
            retention: self.retention.or(lower.retention),
            dispatch: self.dispatch.or(lower.dispatch),
            db_max_connections: self.db_max_connections.or(lower.db_max_connections),
            db_acquire_timeout: self.db_acquire_timeout.or(lower.db_acquire_timeout),
        }
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub topics_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub pool: PoolSettings,
    /// Whether `serve` runs the delivery workers.
    pub dispatch: bool,
    pub app: AppSettings,
}

impl Config {
    /// Resolves flags+environment over the file (if any) over defaults, then validates.
    pub fn resolve(flags_and_env: Settings, file: Option<&Path>) -> anyhow::Result<Self> {
        let from_file = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Settings::default(),
        };
        let s = flags_and_env.or(from_file);
        let defaults = AppSettings::default();
        let delivery = delivery_settings(&s, defaults.delivery.clone())?;
        let pool_defaults = PoolSettings::default();
        let config = Config {
            listen: s.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: s.database_url.unwrap_or_else(|| "sqlite://hookd.db".into()),
            topics_file: s.topics_file,
            max_body_bytes: s.max_body_bytes.unwrap_or(1024 * 1024),
            dispatch: s.dispatch.unwrap_or(true),
            pool: PoolSettings {
                max_connections: s.db_max_connections.unwrap_or(pool_defaults.max_connections),
                acquire_timeout: match &s.db_acquire_timeout {
                    Some(v) => parse_duration(v).map_err(|e| anyhow::anyhow!("db_acquire_timeout: {e}"))?,
                    None => pool_defaults.acquire_timeout,
                },
            },
            app: AppSettings {
                allow_private_targets: s.allow_private_targets.unwrap_or(defaults.allow_private_targets),
                max_webhooks_per_merchant: s
                    .max_webhooks_per_merchant
                    .unwrap_or(defaults.max_webhooks_per_merchant),
                max_message_bytes: s.max_message_bytes.unwrap_or(defaults.max_message_bytes),
                delivery,
                ..defaults
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        anyhow::ensure!(
            self.app.max_webhooks_per_merchant >= 1,
            "max_webhooks_per_merchant must be at least 1"
        );
        let d = &self.app.delivery;
        anyhow::ensure!(self.pool.max_connections >= 2, "db_max_connections must be at least 2");
        anyhow::ensure!(d.max_in_flight >= 1, "max_in_flight must be at least 1");
        anyhow::ensure!(d.per_webhook >= 1, "per_webhook_concurrency must be at least 1");
        anyhow::ensure!(
            d.lease > d.client.request_timeout,
            "lease must be longer than request_timeout, or an attempt could outlive its lease"
        );
        Ok(())
    }

    /// Defaults only (for tests and embedding).
    pub fn defaults() -> Self {
        Self::resolve(Settings::default(), None).expect("defaults are valid")
    }

    /// The topic catalog: the configured file, or the one built into the binary.
    pub fn load_catalog(&self) -> anyhow::Result<Catalog> {
        match &self.topics_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading topic catalog {}", path.display()))?;
                Catalog::parse(&text).with_context(|| format!("topic catalog {}", path.display()))
            }
            None => Ok(Catalog::default_catalog()),
        }
    }
}

fn delivery_settings(s: &Settings, mut d: DeliverySettings) -> anyhow::Result<DeliverySettings> {
    let duration = |name: &str, value: &Option<String>, default: Duration| -> anyhow::Result<Duration> {
        match value {
            Some(v) => parse_duration(v).map_err(|e| anyhow::anyhow!("{name}: {e}")),
            None => Ok(default),
        }
    };
    if let Some(schedule) = &s.retry_schedule {
        d.schedule = schedule.parse().map_err(|e| anyhow::anyhow!("retry_schedule: {e}"))?;
    }
    d.client.connect_timeout = duration("connect_timeout", &s.connect_timeout, d.client.connect_timeout)?;
    d.client.request_timeout = duration("request_timeout", &s.request_timeout, d.client.request_timeout)?;
    d.poll_interval = duration("poll_interval", &s.poll_interval, d.poll_interval)?;
    d.lease = duration("lease", &s.lease, d.lease)?;
    d.retention = duration("retention", &s.retention, d.retention)?;
    d.max_in_flight = s.max_in_flight.unwrap_or(d.max_in_flight);
    d.per_webhook = s.per_webhook_concurrency.unwrap_or(d.per_webhook);
    Ok(d)
}

/// Parses a duration such as `250ms`, `5s` or `30d` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("'{s}' is not a duration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hookd.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 4096\n").unwrap();
        let higher = Settings {
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let c = Config::resolve(higher, Some(&file)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.database_url, "sqlite://hookd.db");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hookd.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::resolve(Settings::default(), Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
