//! hookd in-process, the way `hookd serve` runs it: `Application::build` on a fresh database
//! (a SQLite file in a temporary directory, or a PostgreSQL database of its own), served on
//! 127.0.0.1:0 until the bench stops it.
//!
//! The one idea to know: hookd gets its own tokio runtime (threads `hookd-rt`), separate
//! from the bench's, so the bench can tell hookd's CPU time from its own. Everything that
//! touches hookd's sockets or database pools runs on that runtime (`BenchServer::on_hookd`).
//!
//! On PostgreSQL every server gets a database `hookd_bench_<pid>_<random>`, created through
//! the admin URL and dropped `WITH (FORCE)` when the last server using it stops (a second
//! node joins the first one's database with `BenchServer::join`); a scenario that fails
//! half-way drops it from `Drop`, best effort.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use hookd::app::App;
use hookd::config::Config;
use hookd::domain::{ApiKey, MerchantCode, MerchantId, Role, UserName};
use hookd::startup::Application;
use sqlx::Connection;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Which store hookd runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// An embedded SQLite file per server
    Sqlite,
    /// A fresh database per server on a PostgreSQL server (`--postgres-url`)
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the bench makes its fresh databases.
#[derive(Clone, Debug)]
pub enum Databases {
    /// SQLite files in directories under this one.
    Sqlite { root: PathBuf },
    /// PostgreSQL databases, created and dropped through this URL.
    Postgres { admin_url: String },
}

impl Databases {
    pub fn backend(&self) -> Backend {
        match self {
            Databases::Sqlite { .. } => Backend::Sqlite,
            Databases::Postgres { .. } => Backend::Postgres,
        }
    }
}

/// The prefix of every PostgreSQL database this process makes (the CPU meter uses it to
/// tell the bench's PostgreSQL backends from other clients').
pub fn pg_database_prefix() -> String {
    format!("hookd_bench_{}_", std::process::id())
}

/// The server's version (`SHOW server_version`), through the admin URL.
pub async fn postgres_version(admin_url: &str) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(admin_url)))?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut admin).await?;
    let _ = admin.close().await;
    Ok(version)
}

/// A database URL without its password, for the record.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => database_url.to_string(),
    }
}

/// A server's fresh database; removed when the last server using it lets go.
enum Fresh {
    Dir(PathBuf),
    Pg(Arc<PgDatabase>),
}

/// A PostgreSQL database made for the bench; dropped on `Drop` unless `drop_now` ran.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: std::sync::atomic::AtomicBool,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("{}{:08x}", pg_database_prefix(), rand::random::<u32>());
        let mut url =
            url::Url::parse(admin_url).with_context(|| format!("reading --postgres-url {}", redact(admin_url)))?;
        url.set_path(&format!("/{name}"));
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(admin_url)))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = admin.close().await;
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
            dropped: Default::default(),
        })
    }

    /// `DROP DATABASE … WITH (FORCE)`: ends any connection still open on it. New ones are
    /// refused first, or a server still running would reconnect in between.
    async fn drop_now(&self) -> anyhow::Result<()> {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
        for sql in [
            format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", self.name),
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        ] {
            sqlx::query(&sql).execute(&mut admin).await?;
        }
        self.dropped.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = admin.close().await;
        Ok(())
    }
}

impl Drop for PgDatabase {
    /// Best effort, for servers dropped without `stop`: a thread with a runtime of its own
    /// (this may run inside the bench's runtime, which must not be blocked on itself).
    fn drop(&mut self) {
        if self.dropped.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropping = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let db = PgDatabase {
                admin_url,
                name,
                url: String::new(),
                dropped: true.into(),
            };
            match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), db.drop_now()).await }) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("no answer within 10 s".into()),
            }
        });
        if let Some(why) = dropping.join().unwrap_or_else(|_| Some("the thread panicked".into())) {
            eprintln!("warning: could not drop the bench database {}: {why}", self.name);
        }
    }
}

/// A name and API key for HTTP Basic auth.
#[derive(Clone)]
pub struct Login {
    pub name: String,
    pub key: String,
}

pub struct BenchServer {
    /// The in-process hookd; None for a server started elsewhere (`--external`).
    app: Option<App>,
    /// `http://127.0.0.1:PORT/api/jsonrpc`
    pub endpoint: String,
    pub admin: Login,
    pub merchant_user: Login,
    pub merchant: MerchantId,
    hookd: Handle,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
    dispatcher: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    fresh: Option<Fresh>,
}

/// `--per-webhook`: every hookd's attempts in flight per webhook.
pub static PER_WEBHOOK: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Settings every scenario shares; a scenario adjusts the rest through `tweak`.
fn bench_config(database_url: String) -> anyhow::Result<Config> {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".into();
    config.database_url = database_url;
    config.app.allow_private_targets = true;
    if let Some(&n) = PER_WEBHOOK.get() {
        config.app.delivery.per_webhook = n;
    }
    // Short retries, so a failed attempt during a run comes back within seconds.
    config.app.delivery.schedule = "1s,1s,2s,2s,5s".parse()?;
    Ok(config)
}

impl BenchServer {
    /// Builds and starts hookd on `hookd` with a fresh database from `dbs`, and makes
    /// the merchant `bench` with a merchant user and an admin.
    pub async fn start(hookd: &Handle, dbs: &Databases, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let (fresh, url) = match dbs {
            Databases::Sqlite { root } => {
                let dir = root.join(format!(
                    "hookd-bench-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("hookd.db").display());
                (Fresh::Dir(dir), url)
            }
            Databases::Postgres { admin_url } => {
                let db = PgDatabase::create(admin_url).await?;
                let url = db.url.clone();
                (Fresh::Pg(Arc::new(db)), url)
            }
        };
        let mut config = bench_config(url)?;
        tweak(&mut config);
        let (application, app) = build(hookd, config).await?;
        let (admin, merchant_user, merchant) = hookd.spawn(make_users(app.clone())).await??;
        Ok(Self::serve(
            hookd,
            application,
            app,
            (admin, merchant_user, merchant),
            fresh,
        ))
    }

    /// A second node on this server's PostgreSQL database, with the same users: builds and
    /// starts another hookd (its own pool, HTTP listener and dispatcher) on `hookd`.
    pub async fn join(&self, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let Some(Fresh::Pg(db)) = &self.fresh else {
            anyhow::bail!("only servers on PostgreSQL can share their database");
        };
        let mut config = bench_config(db.url.clone())?;
        tweak(&mut config);
        let (application, app) = build(&self.hookd, config).await?;
        let users = (self.admin.clone(), self.merchant_user.clone(), self.merchant);
        Ok(Self::serve(&self.hookd, application, app, users, Fresh::Pg(db.clone())))
    }

    fn serve(
        hookd: &Handle,
        application: Application,
        app: App,
        (admin, merchant_user, merchant): (Login, Login, MerchantId),
        fresh: Fresh,
    ) -> Self {
        let addr = application.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = hookd.spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            app: Some(app),
            endpoint: format!("http://{addr}/api/jsonrpc"),
            admin,
            merchant_user,
            merchant,
            hookd: hookd.clone(),
            stop: Some(stop),
            serving: Some(serving),
            dispatcher: None,
            fresh: Some(fresh),
        }
    }

    /// A `hookd serve` started elsewhere (`--external`): only its endpoint and the logins the
    /// bench is given; stopping it stops nothing, and nothing of it is removed.
    pub fn external(hookd: &Handle, endpoint: String, admin: Login, merchant_user: Login) -> Self {
        Self {
            app: None,
            endpoint,
            admin,
            merchant_user,
            merchant: MerchantId(0),
            hookd: hookd.clone(),
            stop: None,
            serving: None,
            dispatcher: None,
            fresh: None,
        }
    }

    /// The in-process hookd (scenarios that read its store directly never run `--external`).
    pub fn app(&self) -> &App {
        self.app
            .as_ref()
            .expect("this scenario needs hookd in-process; it does not run with --external")
    }

    /// Runs `fut` on hookd's runtime (for direct store calls) and waits for it.
    pub async fn on_hookd<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.hookd
            .spawn(fut)
            .await
            .expect("a task on the hookd runtime panicked")
    }

    /// Starts delivery workers on a server built with `dispatch = false`, with the
    /// cross-node wake-up listener as `hookd serve` runs it (on SQLite it returns at once).
    pub fn start_dispatcher(&mut self) {
        let (tx, rx) = watch::channel(false);
        let app = self.app().clone();
        let worker = hookd::dispatch::worker::run(app.engine.clone(), hookd::startup::node_name(), rx.clone());
        let (store, wake) = (app.store.clone(), app.wake.clone());
        let worker = async move {
            tokio::join!(worker, store.listen_wakeups(wake, rx));
        };
        self.dispatcher = Some((tx, self.hookd.spawn(worker)));
    }

    /// Stops serving (and the dispatcher started here) and waits for it, then removes the
    /// database (on PostgreSQL, once no other node uses it).
    pub async fn stop(mut self) {
        let deadline = Duration::from_secs(30);
        if let Some((tx, task)) = self.dispatcher.take() {
            let _ = tx.send(true);
            if tokio::time::timeout(deadline, task).await.is_err() {
                eprintln!("warning: the dispatcher did not stop within {deadline:?}");
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.serving.take() {
            match tokio::time::timeout(deadline, task).await {
                Ok(Ok(Err(e))) => eprintln!("warning: hookd stopped with an error: {e:#}"),
                Err(_) => eprintln!("warning: hookd did not stop within {deadline:?}"),
                _ => {}
            }
        }
        let pg = match self.fresh.take() {
            Some(Fresh::Pg(db)) => Some(db),
            dir => {
                self.fresh = dir;
                None
            }
        };
        // Our handle on hookd's pool goes first, so its idle connections close before the
        // database is dropped under them.
        drop(self);
        if let Some(db) = pg {
            if let Some(db) = Arc::into_inner(db) {
                if let Err(e) = db.drop_now().await {
                    eprintln!("warning: dropping the bench database {}: {e:#}", db.name);
                }
            }
        }
    }
}

/// A scenario that failed half-way drops its server without `stop`: signal it to stop
/// (without waiting) and remove the database either way (PostgreSQL: when its last server
/// goes, through `PgDatabase`'s own `Drop`).
impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some((tx, _)) = self.dispatcher.take() {
            let _ = tx.send(true);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(Fresh::Dir(dir)) = self.fresh.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `Application::build` on hookd's runtime; the application and its `App`.
async fn build(hookd: &Handle, config: Config) -> anyhow::Result<(Application, App)> {
    let application = hookd
        .spawn(Application::build(config))
        .await?
        .context("building hookd")?;
    let app = application.app().clone();
    Ok((application, app))
}

async fn make_users(app: App) -> anyhow::Result<(Login, Login, MerchantId)> {
    let merchant = app.store.merchant_ensure(&MerchantCode::parse("bench")?).await?;
    let mut logins = Vec::new();
    for (name, role, of) in [
        ("bench-admin", Role::Admin, None),
        ("bench-shop", Role::Merchant, Some(merchant)),
    ] {
        let key = ApiKey::generate();
        let hash = {
            let key = ApiKey::from_plain(key.expose());
            tokio::task::spawn_blocking(move || key.hash()).await?
        };
        app.store.user_create(&UserName::parse(name)?, role, of, &hash).await?;
        logins.push(Login {
            name: name.into(),
            key: key.expose().into(),
        });
    }
    let merchant_user = logins.pop().expect("two users made");
    let admin = logins.pop().expect("two users made");
    Ok((admin, merchant_user, merchant))
}
