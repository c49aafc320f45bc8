//! Layered, typed configuration: built-in defaults, then an optional TOML file, then
//! `HOOKD_*` environment variables, then command-line flags (each layer wins over the one
//! before). clap reads flags and environment together; the file fills what both left unset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use serde::Deserialize;

use crate::app::portal::PortalSettings;
use crate::app::{AppSettings, AuthSettings};
use crate::dispatch::DeliverySettings;
use crate::domain::broker_url::IngestSource;
use crate::domain::Catalog;
use crate::sealing::Keyring;
use crate::server::{HttpLimits, TlsFiles, TrustedProxies};
use crate::store::PoolSettings;
use crate::telemetry::otlp::TraceSettings;

mod secret_files;

/// What every command that opens the database takes: a flag and an environment variable
/// each, and a key of the config file (same name, snake_case).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Database: sqlite://PATH (embedded, the default: sqlite://hookd.db) or postgres://…;
    /// HOOKD_DATABASE_URL_FILE=PATH reads it from a file instead
    #[arg(long, env = "HOOKD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Topic catalog file, one resource:event a line [default: the built-in catalog]
    #[arg(long, env = "HOOKD_TOPICS_FILE", global = true)]
    pub topics_file: Option<PathBuf>,

    /// Encrypt webhook secrets at rest: ID:BASE64-32-BYTES, comma list, the first encrypts
    /// (see README "Secrets at rest"); HOOKD_ENCRYPTION_KEYS_FILE=PATH reads it from a file
    /// [default: secrets stored in clear]
    #[arg(long, env = "HOOKD_ENCRYPTION_KEYS", global = true, hide_env_values = true)]
    pub encryption_keys: Option<String>,
}

/// The server's settings (`hookd serve`), plus `Common`'s in the config file. Each is a
/// flag, an environment variable and a key of the config file (same name, snake_case).
#[derive(clap::Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the API listens on [default: 127.0.0.1:8080; port 0 picks a free port]
    #[arg(long, env = "HOOKD_LISTEN")]
    pub listen: Option<String>,

    /// Serve /metrics on this address (HOST:PORT) instead of on the API's [default: on the API's]
    #[arg(long, env = "HOOKD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// HTTPS: the certificate chain, PEM (with tls_key; reloaded on SIGHUP) [default: plain HTTP]
    #[arg(long, env = "HOOKD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// HTTPS: the certificate's private key, PEM (with tls_cert)
    #[arg(long, env = "HOOKD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Proxies (comma list of CIDRs) whose X-Forwarded-For/-Proto are believed [default: none]
    #[arg(long, env = "HOOKD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// Given by `Common` (every database command takes it), not by `serve`'s own flags.
    #[arg(skip)]
    pub database_url: Option<String>,

    /// Given by `Common`, as `database_url`.
    #[arg(skip)]
    pub topics_file: Option<PathBuf>,

    /// Given by `Common`, as `database_url`.
    #[arg(skip)]
    pub encryption_keys: Option<String>,

    /// Largest JSON-RPC request body accepted, in bytes [default: 1048576]
    #[arg(long, env = "HOOKD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Allow webhook URLs on loopback/private/link-local addresses (for local testing)
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_TARGETS", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(default, deserialize_with = "boolish")]
    pub allow_private_targets: Option<bool>,

    /// Most webhooks one merchant may register (error 106 beyond it) [default: 1000]
    #[arg(long, env = "HOOKD_MAX_WEBHOOKS_PER_MERCHANT")]
    pub max_webhooks_per_merchant: Option<i64>,

    /// Largest event message accepted by event.publish, in bytes [default: 262144]
    #[arg(long, env = "HOOKD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Delays before each retry, e.g. "1m,2m,4m" or "100ms,250ms,1s" [default: 1m,2m,4m,8m,15m,30m,1h,2h,4h,8h,16h,24h,24h,24h]
    #[arg(long, env = "HOOKD_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,

    /// Time allowed to connect to a receiver [default: 3s]
    #[arg(long, env = "HOOKD_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<String>,

    /// Time allowed for a whole delivery attempt [default: 5s]
    #[arg(long, env = "HOOKD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,

    /// Delivery attempts in flight at once, over all webhooks [default: 512]
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,

    /// Delivery attempts in flight at once for one webhook [default: 16]
    #[arg(long, env = "HOOKD_PER_WEBHOOK_CONCURRENCY")]
    pub per_webhook_concurrency: Option<usize>,

    /// How often the queue is scanned for work not announced in-process [default: 1s]
    #[arg(long, env = "HOOKD_POLL_INTERVAL")]
    pub poll_interval: Option<String>,

    /// How long a claimed payload stays reserved for the node that claimed it [default: 60s]
    #[arg(long, env = "HOOKD_LEASE")]
    pub lease: Option<String>,

    /// Run the delivery workers in `serve` (false: an API-only node) [default: true]
    #[arg(long, env = "HOOKD_DISPATCH", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(default, deserialize_with = "boolish")]
    pub dispatch: Option<bool>,

    /// Most database connections per node (PostgreSQL) [default: 16]
    #[arg(long, env = "HOOKD_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// How long a query waits for a database connection before failing [default: 5s]
    #[arg(long, env = "HOOKD_DB_ACQUIRE_TIMEOUT")]
    pub db_acquire_timeout: Option<String>,

    /// Turn off a webhook all of whose attempts have failed for this long; 0: never [default: 5days]
    #[arg(long, env = "HOOKD_DISABLE_AFTER")]
    pub disable_after: Option<String>,

    /// How long delivered, failed and canceled payloads are kept [default: 30days]
    #[arg(long, env = "HOOKD_RETENTION")]
    pub retention: Option<String>,

    /// Most API connections open at once; more wait until one closes [default: 1024]
    #[arg(long, env = "HOOKD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Time allowed for a request's head; also how long an idle connection is kept [default: 10s]
    #[arg(long, env = "HOOKD_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,

    /// Time allowed for a request's body, after its head [default: 30s]
    #[arg(long, env = "HOOKD_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<String>,

    /// How long writing an answer may stall because the client does not read it [default: 30s]
    #[arg(long, env = "HOOKD_WRITE_TIMEOUT")]
    pub write_timeout: Option<String>,

    /// On SIGTERM, how long open API requests may still run before their connections close [default: 10s]
    #[arg(long, env = "HOOKD_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,

    /// API key checks (argon2, ~19 MiB each) running at once [default: the number of CPUs, at most 8]
    #[arg(long, env = "HOOKD_LOGIN_CONCURRENCY")]
    pub login_concurrency: Option<usize>,

    /// API key checks waiting for their turn; beyond them a login is refused at once [default: 64]
    #[arg(long, env = "HOOKD_LOGIN_QUEUE")]
    pub login_queue: Option<usize>,

    /// Failed logins for one user name within the failure window before it is refused [default: 10]
    #[arg(long, env = "HOOKD_LOGIN_FAILURES_PER_USER")]
    pub login_failures_per_user: Option<u32>,

    /// Failed logins from one client address within the failure window before it is refused [default: 100]
    #[arg(long, env = "HOOKD_LOGIN_FAILURES_PER_ADDRESS")]
    pub login_failures_per_address: Option<u32>,

    /// The window failed logins are counted in, from the first failure [default: 60s]
    #[arg(long, env = "HOOKD_LOGIN_FAILURE_WINDOW")]
    pub login_failure_window: Option<String>,

    /// Base URL portal links are made under, as users reach hookd, e.g. https://hooks.example.com
    /// [default: http:// and the Host the portal.link request was sent to]
    #[arg(long, env = "HOOKD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Origins allowed to frame the console, comma-separated, e.g. "https://platform.example,
    /// https://*.platform.example" (CSP frame-ancestors; cookies become SameSite=None; Secure,
    /// so the console must be served over HTTPS) [default: none, never framed]
    #[arg(long, env = "HOOKD_CONSOLE_FRAME_ANCESTORS")]
    pub console_frame_ancestors: Option<String>,

    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318
    /// (spans go to its /v1/traces) [default: none, no traces exported]
    #[arg(long, env = "HOOKD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The share of new traces exported, 0.0 to 1.0 (a caller's traceparent keeps its own
    /// sampled flag) [default: 1.0]
    #[arg(long, env = "HOOKD_TRACE_SAMPLE")]
    pub trace_sample: Option<f64>,

    /// Take events in from brokers, comma list of amqp://USER:PASS@HOST:PORT/VHOST?queue=Q and
    /// nats://HOST:PORT/SUBJECT?stream=S&consumer=C (see README "Ingestion") [default: none]
    #[arg(long, env = "HOOKD_INGEST", hide_env_values = true)]
    pub ingest: Option<String>,

    /// PostgreSQL, several nodes: take publishes forwarded by other nodes on this address
    /// (HOST:PORT, a private network), and forward each publish to its merchant's owner node
    /// (see README "Several nodes") [default: off, every node stores its own publishes]
    #[arg(long, env = "HOOKD_PEER_LISTEN")]
    pub peer_listen: Option<String>,

    /// The HOST:PORT other nodes reach peer_listen at [default: peer_listen's address, which
    /// must then not be 0.0.0.0 or ::]
    #[arg(long, env = "HOOKD_PEER_ADVERTISE")]
    pub peer_advertise: Option<String>,
}

impl Settings {
    /// Fills every unset field from `lower`.
    fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
            database_url: self.database_url.or(lower.database_url),
            topics_file: self.topics_file.or(lower.topics_file),
            encryption_keys: self.encryption_keys.or(lower.encryption_keys),
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
            disable_after: self.disable_after.or(lower.disable_after),
            dispatch: self.dispatch.or(lower.dispatch),
            db_max_connections: self.db_max_connections.or(lower.db_max_connections),
            db_acquire_timeout: self.db_acquire_timeout.or(lower.db_acquire_timeout),
            max_connections: self.max_connections.or(lower.max_connections),
            header_read_timeout: self.header_read_timeout.or(lower.header_read_timeout),
            body_read_timeout: self.body_read_timeout.or(lower.body_read_timeout),
            write_timeout: self.write_timeout.or(lower.write_timeout),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            login_concurrency: self.login_concurrency.or(lower.login_concurrency),
            login_queue: self.login_queue.or(lower.login_queue),
            login_failures_per_user: self.login_failures_per_user.or(lower.login_failures_per_user),
            login_failures_per_address: self.login_failures_per_address.or(lower.login_failures_per_address),
            login_failure_window: self.login_failure_window.or(lower.login_failure_window),
            public_url: self.public_url.or(lower.public_url),
            console_frame_ancestors: self.console_frame_ancestors.or(lower.console_frame_ancestors),
            otlp_endpoint: self.otlp_endpoint.or(lower.otlp_endpoint),
            trace_sample: self.trace_sample.or(lower.trace_sample),
            ingest: self.ingest.or(lower.ingest),
            peer_listen: self.peer_listen.or(lower.peer_listen),
            peer_advertise: self.peer_advertise.or(lower.peer_advertise),
        }
    }
}

/// The database used when none is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hookd.db";

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    /// Where `/metrics` is served on a listener of its own; None: on the API's.
    pub metrics_listen: Option<String>,
    /// HTTPS on the API's listener (`/metrics`'s own stays plain HTTP); None: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    pub database_url: String,
    pub topics_file: Option<PathBuf>,
    /// Seals webhook secrets at rest (`Keyring::off()` without `encryption_keys`).
    pub encryption_keys: Arc<Keyring>,
    pub max_body_bytes: usize,
    pub pool: PoolSettings,
    /// Whether `serve` runs the delivery workers.
    pub dispatch: bool,
    /// Connection cap, read timeouts and shutdown grace of the API server.
    pub http: HttpLimits,
    pub app: AppSettings,
    /// Where traces are exported (CONTRACT §7.6); None: nowhere. Read again by `main`,
    /// which starts the exporter before the runtime (see `traces`).
    pub traces: Option<TraceSettings>,
    /// The brokers `serve` takes events in from (`HOOKD_INGEST`); empty: none.
    pub ingest: Vec<IngestSource>,
    /// Peer links (`cluster`); None: this node stores every publish itself.
    pub peers: Option<PeerSettings>,
}

/// Where a node takes peer links, and the address it gives the others for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    pub listen: String,
    /// None: the address `listen` binds (port 0 then means the port it got).
    pub advertise: Option<String>,
}

/// The config file's settings (none without a file).
fn read_file(file: Option<&Path>) -> anyhow::Result<Settings> {
    Ok(match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => Settings::default(),
    })
}

/// The trace settings alone, for `main` to start the exporter before anything else runs
/// (errors are reported by `Config::resolve` later, which reads the same settings).
pub fn traces(flags_and_env: &Settings, file: Option<&Path>) -> Option<TraceSettings> {
    let file = read_file(file).ok()?;
    let endpoint = flags_and_env.otlp_endpoint.clone().or(file.otlp_endpoint);
    TraceSettings::parse(endpoint.as_deref(), flags_and_env.trace_sample.or(file.trace_sample)).ok()?
}

impl Config {
    /// Resolves flags+environment over the file (if any) over defaults, then validates.
    pub fn resolve(flags_and_env: Settings, file: Option<&Path>) -> anyhow::Result<Self> {
        let s = flags_and_env.or(read_file(file)?);
        let traces = TraceSettings::parse(s.otlp_endpoint.as_deref(), s.trace_sample)?;
        let defaults = AppSettings::default();
        let delivery = delivery_settings(&s, defaults.delivery.clone())?;
        let pool_defaults = PoolSettings::default();
        let http_defaults = HttpLimits::default();
        let auth_defaults = AuthSettings::default();
        let portal = portal_settings(&s)?;
        let peers = peer_settings(
            s.peer_listen.clone(),
            s.peer_advertise.clone(),
            s.database_url.as_deref(),
        )?;
        let config = Config {
            listen: s.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            metrics_listen: s.metrics_listen,
            tls: tls_files(s.tls_cert, s.tls_key)?,
            trusted_proxies: match &s.trusted_proxies {
                Some(list) => TrustedProxies::parse(list)?,
                None => TrustedProxies::default(),
            },
            database_url: s.database_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            topics_file: s.topics_file,
            encryption_keys: Arc::new(match &s.encryption_keys {
                Some(text) => Keyring::parse(text)?,
                None => Keyring::off(),
            }),
            max_body_bytes: s.max_body_bytes.unwrap_or(1024 * 1024),
            dispatch: s.dispatch.unwrap_or(true),
            pool: PoolSettings {
                max_connections: s.db_max_connections.unwrap_or(pool_defaults.max_connections),
                acquire_timeout: duration(
                    "db_acquire_timeout",
                    &s.db_acquire_timeout,
                    pool_defaults.acquire_timeout,
                )?,
            },
            http: HttpLimits {
                max_connections: s.max_connections.unwrap_or(http_defaults.max_connections),
                header_read_timeout: duration(
                    "header_read_timeout",
                    &s.header_read_timeout,
                    http_defaults.header_read_timeout,
                )?,
                body_read_timeout: duration(
                    "body_read_timeout",
                    &s.body_read_timeout,
                    http_defaults.body_read_timeout,
                )?,
                write_timeout: duration("write_timeout", &s.write_timeout, http_defaults.write_timeout)?,
                shutdown_grace: duration("shutdown_grace", &s.shutdown_grace, http_defaults.shutdown_grace)?,
            },
            app: AppSettings {
                allow_private_targets: s.allow_private_targets.unwrap_or(defaults.allow_private_targets),
                max_webhooks_per_merchant: s
                    .max_webhooks_per_merchant
                    .unwrap_or(defaults.max_webhooks_per_merchant),
                max_message_bytes: s.max_message_bytes.unwrap_or(defaults.max_message_bytes),
                delivery,
                auth: AuthSettings {
                    check_threads: s.login_concurrency.unwrap_or(auth_defaults.check_threads),
                    check_queue: s.login_queue.unwrap_or(auth_defaults.check_queue),
                    max_failures_per_user: s.login_failures_per_user.unwrap_or(auth_defaults.max_failures_per_user),
                    max_failures_per_address: s
                        .login_failures_per_address
                        .unwrap_or(auth_defaults.max_failures_per_address),
                    failure_window: duration(
                        "login_failure_window",
                        &s.login_failure_window,
                        auth_defaults.failure_window,
                    )?,
                },
                portal,
                ..defaults
            },
            traces,
            ingest: ingest_sources(s.ingest.as_deref())?,
            peers,
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses values outside sensible bounds, naming the setting and the allowed range.
    fn validate(&self) -> anyhow::Result<()> {
        let (d, auth, http) = (&self.app.delivery, &self.app.auth, &self.http);
        count("max_body_bytes", self.max_body_bytes, 1024, 64 << 20)?;
        count(
            "max_webhooks_per_merchant",
            self.app.max_webhooks_per_merchant,
            1,
            1_000_000,
        )?;
        count("max_message_bytes", self.app.max_message_bytes, 64, 16 << 20)?;
        count("retry_schedule (number of retries)", d.schedule.retries(), 1, 100)?;
        for step in 1..=d.schedule.retries() {
            let delay = d.schedule.step_after(step as u32).unwrap_or_default();
            within("retry_schedule (each delay)", delay, MS, 30 * DAY)?;
        }
        within("connect_timeout", d.client.connect_timeout, 10 * MS, 5 * MINUTE)?;
        within("request_timeout", d.client.request_timeout, 10 * MS, HOUR)?;
        count("max_in_flight", d.max_in_flight, 1, 100_000)?;
        count("per_webhook_concurrency", d.per_webhook, 1, 10_000)?;
        within("poll_interval", d.poll_interval, 10 * MS, HOUR)?;
        within("lease", d.lease, 100 * MS, DAY)?;
        within("retention", d.retention, MINUTE, 10 * YEAR)?;
        if let Some(after) = d.disable_after {
            within("disable_after", after, SECOND, 10 * YEAR)?;
        }
        count("db_max_connections", self.pool.max_connections, 3, 1000)?;
        within("db_acquire_timeout", self.pool.acquire_timeout, 100 * MS, 10 * MINUTE)?;
        count("max_connections", http.max_connections, 1, 1_000_000)?;
        within("header_read_timeout", http.header_read_timeout, 100 * MS, 10 * MINUTE)?;
        within("body_read_timeout", http.body_read_timeout, 100 * MS, HOUR)?;
        within("write_timeout", http.write_timeout, 100 * MS, HOUR)?;
        within("shutdown_grace", http.shutdown_grace, Duration::ZERO, 10 * MINUTE)?;
        count("login_concurrency", auth.check_threads, 1, 256)?;
        count("login_queue", auth.check_queue, 0, 100_000)?;
        count("login_failures_per_user", auth.max_failures_per_user, 1, 1_000_000)?;
        count(
            "login_failures_per_address",
            auth.max_failures_per_address,
            1,
            1_000_000,
        )?;
        within("login_failure_window", auth.failure_window, SECOND, DAY)?;
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

/// Both files, or neither (plain HTTP).
fn tls_files(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!(
            "tls_cert (HOOKD_TLS_CERT) is set but tls_key (HOOKD_TLS_KEY) is not: give both for HTTPS, or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "tls_key (HOOKD_TLS_KEY) is set but tls_cert (HOOKD_TLS_CERT) is not: give both for HTTPS, or neither"
        ),
    }
}

fn delivery_settings(s: &Settings, mut d: DeliverySettings) -> anyhow::Result<DeliverySettings> {
    if let Some(schedule) = &s.retry_schedule {
        d.schedule = schedule
            .parse()
            .map_err(|e| anyhow::anyhow!("retry_schedule (HOOKD_RETRY_SCHEDULE): {e}"))?;
    }
    d.client.connect_timeout = duration("connect_timeout", &s.connect_timeout, d.client.connect_timeout)?;
    d.client.request_timeout = duration("request_timeout", &s.request_timeout, d.client.request_timeout)?;
    d.poll_interval = duration("poll_interval", &s.poll_interval, d.poll_interval)?;
    d.lease = duration("lease", &s.lease, d.lease)?;
    d.retention = duration("retention", &s.retention, d.retention)?;
    // `0` (any zero duration) turns auto-disable off.
    let disable_after = duration("disable_after", &s.disable_after, d.disable_after.unwrap_or_default())?;
    d.disable_after = (!disable_after.is_zero()).then_some(disable_after);
    d.max_in_flight = s.max_in_flight.unwrap_or(d.max_in_flight);
    d.per_webhook = s.per_webhook_concurrency.unwrap_or(d.per_webhook);
    Ok(d)
}

/// `public_url` and `console_frame_ancestors`, checked (one line naming the setting and
/// what is wrong with which value).
fn portal_settings(s: &Settings) -> anyhow::Result<PortalSettings> {
    use crate::domain::portal::{parse_frame_ancestor, parse_public_url};
    let public_url = match &s.public_url {
        Some(url) if !url.trim().is_empty() => {
            Some(parse_public_url(url).map_err(|e| anyhow::anyhow!("public_url (HOOKD_PUBLIC_URL): {e}"))?)
        }
        _ => None,
    };
    let mut frame_ancestors = Vec::new();
    for origin in s.console_frame_ancestors.iter().flat_map(|v| v.split([',', ' '])) {
        if origin.trim().is_empty() {
            continue;
        }
        let origin = parse_frame_ancestor(origin.trim())
            .map_err(|e| anyhow::anyhow!("console_frame_ancestors (HOOKD_CONSOLE_FRAME_ANCESTORS): {e}"))?;
        if !frame_ancestors.contains(&origin) {
            frame_ancestors.push(origin);
        }
    }
    anyhow::ensure!(
        frame_ancestors.len() <= 32,
        "console_frame_ancestors (HOOKD_CONSOLE_FRAME_ANCESTORS): at most 32 origins"
    );
    Ok(PortalSettings {
        public_url,
        frame_ancestors,
    })
}

/// Peer links are for nodes sharing PostgreSQL; an address is HOST:PORT.
fn peer_settings(
    listen: Option<String>,
    advertise: Option<String>,
    database_url: Option<&str>,
) -> anyhow::Result<Option<PeerSettings>> {
    let Some(listen) = listen else {
        anyhow::ensure!(
            advertise.is_none(),
            "peer_advertise (HOOKD_PEER_ADVERTISE) needs peer_listen"
        );
        return Ok(None);
    };
    anyhow::ensure!(
        database_url.is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://")),
        "peer_listen (HOOKD_PEER_LISTEN) is for nodes sharing a PostgreSQL database: one SQLite file serves one node"
    );
    for (name, address) in [
        ("peer_listen (HOOKD_PEER_LISTEN)", Some(&listen)),
        ("peer_advertise (HOOKD_PEER_ADVERTISE)", advertise.as_ref()),
    ] {
        let Some(address) = address else { continue };
        let port = address.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
        anyhow::ensure!(
            matches!(port, Some((host, Ok(_))) if !host.is_empty()),
            "{name} is HOST:PORT, e.g. 10.0.0.5:7071 (got '{}')",
            address.chars().take(100).collect::<String>()
        );
    }
    Ok(Some(PeerSettings { listen, advertise }))
}

/// `ingest`'s comma list, each entry parsed (an error names the entry by its place, never
/// by its text, which may hold a password); the same source twice is refused.
fn ingest_sources(list: Option<&str>) -> anyhow::Result<Vec<IngestSource>> {
    let mut sources: Vec<IngestSource> = Vec::new();
    let entries = list
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for (n, entry) in entries.enumerate() {
        let source =
            IngestSource::parse(entry).map_err(|e| anyhow::anyhow!("ingest (HOOKD_INGEST): source {}: {e}", n + 1))?;
        anyhow::ensure!(
            !sources.contains(&source),
            "ingest (HOOKD_INGEST): source {} is given twice",
            n + 1
        );
        sources.push(source);
    }
    anyhow::ensure!(sources.len() <= 64, "ingest (HOOKD_INGEST): at most 64 sources");
    Ok(sources)
}

/// A duration setting: its value parsed, or `default` when unset.
fn duration(name: &str, value: &Option<String>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        Some(v) => parse_duration(v).map_err(|e| anyhow::anyhow!("{name} ({}): {e}", env_name(name))),
        None => Ok(default),
    }
}

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// humantime's year: 365.25 days.
const YEAR: Duration = Duration::from_secs(31_557_600);

/// `HOOKD_` and the setting's name in capitals (the part before any parenthesis).
fn env_name(name: &str) -> String {
    let base = name.split(' ').next().unwrap_or(name);
    format!("HOOKD_{}", base.to_uppercase())
}

/// Fails unless `min <= value <= max`, with one line naming the setting and the range.
fn count<T: Copy + TryInto<i128> + std::fmt::Display>(
    name: &str,
    value: T,
    min: i128,
    max: i128,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        value.try_into().is_ok_and(|v| (min..=max).contains(&v)),
        "{name} ({}) must be from {min} to {max}, not {value}",
        env_name(name)
    );
    Ok(())
}

/// Fails unless `min <= value <= max`, with one line naming the setting and the range.
fn within(name: &str, value: Duration, min: Duration, max: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(
        (min..=max).contains(&value),
        "{name} ({}) must be from {} to {}, not {}",
        env_name(name),
        humantime::format_duration(min),
        humantime::format_duration(max),
        humantime::format_duration(value)
    );
    Ok(())
}

/// Parses a duration such as `250ms`, `5s` or `30d` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("'{s}' is not a duration: {e}"))
}

/// A boolean in the config file as the environment takes it: true/false, 1/0, or those as
/// strings (also yes/no, on/off), so a value that works in one place works in the other.
fn boolish<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    let value = match Raw::deserialize(d)? {
        Raw::Bool(b) => b,
        Raw::Int(1) => true,
        Raw::Int(0) => false,
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" => true,
            "0" | "false" | "no" | "off" | "n" => false,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "expected a boolean (true/false, 1/0), not {t:?}"
                )))
            }
        },
        Raw::Int(n) => {
            return Err(serde::de::Error::custom(format!(
                "expected a boolean (true/false, 1/0), not {n}"
            )))
        }
    };
    Ok(Some(value))
}

/// A database URL fit for logs and messages: credentials masked, and nothing of a URL that
/// does not parse (see `redact`).
pub fn redacted_database_url(url: &str) -> String {
    crate::redact::database_url(url)
}

#[cfg(test)]
mod tests;
