//! hookd in-process, the way `hookd serve` runs it: `Application::build` on a fresh SQLite
//! file in a temporary directory, served on 127.0.0.1:0 until the bench stops it.
//!
//! The one idea to know: hookd gets its own tokio runtime (threads `hookd-rt`), separate
//! from the bench's, so the bench can tell hookd's CPU time from its own. Everything that
//! touches hookd's sockets or database pools runs on that runtime (`BenchServer::on_hookd`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hookd::app::App;
use hookd::config::Config;
use hookd::domain::{ApiKey, MerchantCode, MerchantId, Role, UserName};
use hookd::startup::Application;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// A name and API key for HTTP Basic auth.
#[derive(Clone)]
pub struct Login {
    pub name: String,
    pub key: String,
}

pub struct BenchServer {
    pub app: App,
    /// `http://127.0.0.1:PORT/api/jsonrpc`
    pub endpoint: String,
    pub admin: Login,
    pub merchant_user: Login,
    pub merchant: MerchantId,
    hookd: Handle,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
    dispatcher: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    dir: PathBuf,
}

/// Settings every scenario shares; a scenario adjusts the rest through `tweak`.
fn bench_config(dir: &Path) -> anyhow::Result<Config> {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".into();
    config.database_url = format!("sqlite://{}", dir.join("hookd.db").display());
    config.app.allow_private_targets = true;
    // Short retries, so a failed attempt during a run comes back within seconds.
    config.app.delivery.schedule = "1s,1s,2s,2s,5s".parse()?;
    Ok(config)
}

impl BenchServer {
    /// Builds and starts hookd on `hookd` with a fresh database under `db_root`, and makes
    /// the merchant `bench` with a merchant user and an admin.
    pub async fn start(hookd: &Handle, db_root: &Path, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = db_root.join(format!(
            "hookd-bench-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut config = bench_config(&dir)?;
        tweak(&mut config);
        let application = hookd
            .spawn(Application::build(config))
            .await?
            .context("building hookd")?;
        let addr = application.local_addr();
        let app = application.app().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = hookd.spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        let (admin, merchant_user, merchant) = hookd.spawn(make_users(app.clone())).await??;
        Ok(Self {
            app,
            endpoint: format!("http://{addr}/api/jsonrpc"),
            admin,
            merchant_user,
            merchant,
            hookd: hookd.clone(),
            stop: Some(stop),
            serving: Some(serving),
            dispatcher: None,
            dir,
        })
    }

    /// Runs `fut` on hookd's runtime (for direct store calls) and waits for it.
    pub async fn on_hookd<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.hookd
            .spawn(fut)
            .await
            .expect("a task on the hookd runtime panicked")
    }

    /// Starts delivery workers on a server built with `dispatch = false`.
    pub fn start_dispatcher(&mut self) {
        let (tx, rx) = watch::channel(false);
        let worker = hookd::dispatch::worker::run(self.app.engine.clone(), hookd::startup::node_name(), rx);
        self.dispatcher = Some((tx, self.hookd.spawn(worker)));
    }

    /// Stops serving (and the dispatcher started here) and waits for it; dropping the
    /// server then removes the database.
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
    }
}

/// A scenario that failed half-way drops its server without `stop`: signal it to stop
/// (without waiting) and remove the database either way.
impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some((tx, _)) = self.dispatcher.take() {
            let _ = tx.send(true);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
