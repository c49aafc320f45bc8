//! Headless Chromium for the console tests: finds chromedriver, starts it on a free port,
//! opens a WebDriver session, and ends both when the test ends, however it ends.
//!
//! Without chromedriver a test says `SKIPPED …` on stderr and passes, except under CI
//! (env `CI` set), where it fails: CI installs Chromium, so a missing driver is a broken
//! machine, not a reason to skip.

use std::future::Future;
use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

use crate::helpers::skipped;

/// One browser at a time: each test has its own, and two Chromiums on a small machine
/// would only slow each other down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Where chromedriver is: `HOOKD_CHROMEDRIVER`, Debian's `/usr/bin/chromedriver`, or PATH.
fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HOOKD_CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromedriver");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

/// A running chromedriver and a browser session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// A browser 1024 px wide; None (after saying so) when there is no chromedriver here.
    pub async fn start(test: &str) -> Option<Browser> {
        let Some(path) = find_chromedriver() else {
            let why = "no chromedriver (install chromium and chromium-driver, or set HOOKD_CHROMEDRIVER)";
            assert!(std::env::var_os("CI").is_none(), "{test}: {why}, and CI is set");
            skipped(test, why);
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let mut driver = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || driver.try_wait().unwrap().is_some() {
                let _ = driver.kill();
                panic!("chromedriver did not start listening on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1024,900", "--hide-scrollbars", "--lang=en-US"],
        });
        if let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
        {
            options["binary"] = json!(chromium);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                panic!("opening a Chromium session through chromedriver: {e}");
            }
        };
        Some(Browser {
            client,
            driver,
            _turn: turn,
        })
    }

    /// Ends the session (Chromium quits) and chromedriver.
    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs `scenario` with a browser (or skips, see `Browser::start`), and ends the browser
/// whether the scenario passed or panicked.
pub async fn with_browser<F: Future<Output = ()>>(test: &str, scenario: impl FnOnce(Client) -> F) {
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let outcome = AssertUnwindSafe(scenario(browser.client.clone())).catch_unwind().await;
    browser.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Saves a screenshot of the whole page, `width` px wide, as `NAME.png` in the folder
/// `HOOKD_CONSOLE_SCREENSHOTS` names (e.g. `docs/console`); does nothing without it.
pub async fn screenshot(c: &Client, name: &str, width: u32) {
    let Some(dir) = std::env::var_os("HOOKD_CONSOLE_SCREENSHOTS") else {
        return;
    };
    c.set_window_size(width, 900).await.unwrap();
    // The window's height includes what is not page (the window's own frame).
    let script = "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]";
    let sizes = c.execute(script, vec![]).await.unwrap();
    let page = sizes[0].as_u64().unwrap_or(900).clamp(600, 2400);
    let frame = sizes[1].as_u64().unwrap_or(0).min(400);
    c.set_window_size(width, (page + frame) as u32).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let path = PathBuf::from(dir).join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    c.set_window_size(1024, 900).await.unwrap();
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a failed test: chromedriver goes (Chromium with it, its pipe closed).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
