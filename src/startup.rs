//! Building and running a hookd server: `Application::build(config)` opens the store,
//! applies migrations and binds the listener (and `/metrics`'s own, with `metrics_listen`);
//! `run_until_stopped` serves until SIGTERM or SIGINT, then stops: open requests may finish
//! for `shutdown_grace` (then their connections are closed) while the delivery workers let
//! their attempts in flight end (at most the request timeout), so a stop takes at most the
//! longer of the two. Broker consumers (`ingest`) finish the messages they are publishing
//! and stop taking new ones. With `tls` the API's listener speaks HTTPS, and SIGHUP reloads its
//! certificate.

use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::config::{redacted_database_url, Config};
use crate::dispatch;
use crate::rpc::BodyLimits;
use crate::server;
use crate::store;
use crate::time::now_millis;

pub struct Application {
    listener: TcpListener,
    /// `/metrics`'s own listener (`metrics_listen`); None: it is served on the API's.
    metrics_listener: Option<TcpListener>,
    app: App,
    config: Config,
    /// The API listener's face: HTTPS (loaded at build) and the trusted proxies.
    front: server::Front,
    /// Held while this server may run on its SQLite file (see `lock_sqlite_file`).
    _sqlite_lock: Option<File>,
    /// Where other nodes' peer links come in (`peer_listen`).
    peer_listener: Option<TcpListener>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        return_large_blocks_to_the_system();
        let catalog = config.load_catalog()?;
        // Before the database: a bad certificate is found at once, whatever the database.
        let tls = config.tls.clone().map(server::Tls::load).transpose()?;
        let front = server::Front {
            tls,
            trusted_proxies: config.trusted_proxies.clone(),
        };
        let sqlite_lock = lock_sqlite_file(&config.database_url).await?;
        let store = store::connect(&config.database_url, &config.pool, config.encryption_keys.clone())
            .await
            .with_context(|| format!("opening database {}", redacted_database_url(&config.database_url)))?;
        store.migrate().await.context("applying migrations")?;
        // Before serving: secrets the keys do not open would only make bad signatures.
        crate::sealing::reencrypt::check_keys(&*store, &config.encryption_keys).await?;
        let listener = TcpListener::bind(&config.listen).await.with_context(|| {
            format!(
                "binding {} (the listen address is HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080)",
                config.listen
            )
        })?;
        let metrics_listener = match &config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("binding {address} for /metrics (metrics_listen is HOST:PORT, e.g. 127.0.0.1:9090)")
            })?),
            None => None,
        };
        let mut app = App::new(store, catalog.clone(), config.app.clone()).context("building the application state")?;
        let peer_listener = match &config.peers {
            Some(peers) => {
                let (listener, cluster) = join_peers(peers, &app).await?;
                app.cluster = Some(cluster);
                Some(listener)
            }
            None => None,
        };
        app.catalog_seed(&catalog)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("seeding the event catalog")?;
        Ok(Self {
            listener,
            metrics_listener,
            peer_listener,
            app,
            config,
            front,
            _sqlite_lock: sqlite_lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when it has a listener of its own (`metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes (tests pass their own trigger).
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = vec![
            tokio::spawn(purge_sessions(self.app.clone(), stop_rx.clone())),
            // webhook:disabled events (webhook.test can turn a webhook off on any node).
            tokio::spawn(self.app.clone().announce_disabled(stop_rx.clone())),
            tokio::spawn(dispatch::retention::run(
                self.app.store.clone(),
                self.app.settings.delivery.retention,
                stop_rx.clone(),
            )),
        ];
        if self.config.dispatch {
            background.push(tokio::spawn(dispatch::worker::run(
                self.app.engine.clone(),
                node_name(),
                stop_rx.clone(),
            )));
            background.push(tokio::spawn({
                let (store, wake, stop) = (self.app.store.clone(), self.app.wake.clone(), stop_rx.clone());
                async move { store.listen_wakeups(wake, stop).await }
            }));
        }
        if let (Some(listener), Some(cluster)) = (self.peer_listener, self.app.cluster.clone()) {
            tracing::info!(
                address = cluster.address(),
                "taking peer links on {}",
                cluster.address()
            );
            background.push(tokio::spawn(cluster.run(listener, self.app.clone(), stop_rx.clone())));
        }
        if !self.config.ingest.is_empty() {
            background.push(tokio::spawn(crate::ingest::run(
                self.app.clone(),
                self.config.ingest.clone(),
                node_name(),
                stop_rx.clone(),
            )));
        }
        let body = BodyLimits {
            max_bytes: self.config.max_body_bytes,
            read_timeout: self.config.http.body_read_timeout,
        };
        let mut router =
            crate::rpc::router(self.app.clone(), body).merge(crate::console::router(self.app.clone(), body));
        let metrics = crate::rpc::metrics_router(self.app.clone());
        let database = redacted_database_url(&self.config.database_url);
        match self.front.tls {
            Some(_) => tracing::info!(%addr, %database, "listening on {addr} (HTTPS)"),
            None => tracing::info!(%addr, %database, "listening on {addr}"),
        }
        if let Some(tls) = self.front.tls.clone() {
            background.push(tokio::spawn(reload_tls_on_sighup(tls, stop_rx.clone())));
        }
        match self.metrics_listener {
            Some(listener) => {
                let metrics_addr = listener.local_addr().expect("a bound listener has an address");
                tracing::info!(%metrics_addr, "metrics on http://{metrics_addr}/metrics");
                let (limits, mut stop) = (self.config.http.clone(), stop_rx.clone());
                background.push(tokio::spawn(async move {
                    // Plain HTTP: the metrics port is meant for a private network.
                    server::serve(listener, metrics, &limits, &server::Front::default(), async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    })
                    .await
                }));
            }
            None => router = router.merge(metrics),
        }
        if let Ok(users) = self.app.store.user_list().await {
            if users.is_empty() {
                tracing::info!(
                    "no users yet: add an admin with `hookd user add NAME --admin` and a merchant user with \
                     `hookd user add NAME --merchant CODE` (same HOOKD_DATABASE_URL; each prints its API key once)"
                );
            }
        }
        // On stop the background tasks are told at once, so the delivery workers' grace for
        // their attempts in flight runs beside the HTTP server's for open requests.
        server::serve(self.listener, router, &self.config.http, &self.front, async move {
            stop.await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        })
        .await;
        for task in background {
            let _ = task.await;
        }
        Ok(())
    }
}

/// One server per SQLite file: its delivery leases live in memory, so a second server on
/// the same file would send payloads twice. A lock on `<file>.serve-lock` refuses it (the
/// operating system lets go of the lock when the process ends, however it ends). The CLI's
/// other commands do not take it, so `hookd user add` works beside a running server.
async fn lock_sqlite_file(database_url: &str) -> anyhow::Result<Option<File>> {
    if !database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let Some(file_name) = store::sqlite::file_path(database_url) else {
        return Ok(None); // the store refuses an in-memory database with its own error
    };
    // The database's folder must exist: say so about the database, not about the lock.
    if let Some(dir) = file_name.parent().filter(|d| !d.as_os_str().is_empty()) {
        anyhow::ensure!(
            dir.is_dir(),
            "the database {} cannot be made: its folder {} does not exist",
            file_name.display(),
            dir.display()
        );
    }
    let path = format!("{}.serve-lock", file_name.display());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {path}"))?;
    // A lock can outlive its server by a moment (a process being spawned holds a copy of
    // the descriptor until it execs), so a busy lock is tried again for a short while.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "another hookd server is already running on this SQLite database ({path} is locked); \
                 run one server per SQLite file, or share PostgreSQL between several"
            ),
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {path}")),
        }
    }
}

/// Makes glibc's allocator serve every block of 256 KiB or more straight from the system
/// and give it back when freed. By default the threshold rises with each large block
/// freed (up to 32 MiB), after which request bodies of up to a megabyte come from the heap
/// and a burst of them leaves the process that much larger for good. Measured: 66 bodies
/// of a megabyte at once took a server from 23 MB to 133 MB resident for good; with this,
/// to 64 MB (the key checkers' argon2 memory, allocated once, is most of the difference).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; any value is valid to pass.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// How long a busy SQLite lock is waited for before the server is refused.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Drops expired sessions once an hour.
async fn purge_sessions(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = app.store.session_purge_expired(now_millis()).await {
            tracing::warn!(error = ?e, "purging expired sessions failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Binds the peer listener and joins the nodes sharing the database (see `cluster`).
async fn join_peers(
    peers: &crate::config::PeerSettings,
    app: &App,
) -> anyhow::Result<(TcpListener, Arc<crate::cluster::Cluster>)> {
    let listener = TcpListener::bind(&peers.listen)
        .await
        .with_context(|| format!("binding {} for peer links (peer_listen is HOST:PORT)", peers.listen))?;
    let bound = listener.local_addr().context("the peer listener's address")?;
    let advertise = match &peers.advertise {
        Some(address) => address.clone(),
        None if bound.ip().is_unspecified() => anyhow::bail!(
            "peer_listen {} binds every interface: set peer_advertise (HOOKD_PEER_ADVERTISE) to the HOST:PORT \
             other nodes reach this one at",
            peers.listen
        ),
        None => bound.to_string(),
    };
    let cluster = crate::cluster::Cluster::join(app.store.clone(), node_name(), advertise)
        .await
        .context("joining the other nodes (peer links)")?;
    Ok((listener, cluster))
}

/// This process's name on the leases it takes: host, pid and a random suffix.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() { "node".to_string() } else { host };
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Loads the certificate and key again on each SIGHUP (a renewed certificate, without a
/// restart); a reload that fails keeps the previous ones.
async fn reload_tls_on_sighup(tls: server::Tls, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the certificate is not reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => {}
                _ = stop.changed() => return,
            }
            let cert = tls.files().cert.display().to_string();
            match tls.reload() {
                Ok(()) => tracing::info!(%cert, "SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!("SIGHUP: TLS certificate not reloaded, the previous one stays: {e:#}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (tls, stop.changed().await);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
