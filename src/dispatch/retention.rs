//! Retention: finished payloads (delivered, failed or canceled) and their attempts are
//! deleted once older than the configured period (default 30 days), hourly.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::time::now_millis;

const EVERY: Duration = Duration::from_secs(3600);

pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let keep = app.settings.delivery.retention.as_millis() as i64;
    loop {
        match app.store.purge_finished(now_millis() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged finished payloads past retention"),
            Err(e) => tracing::warn!(error = ?e, "purging finished payloads failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
