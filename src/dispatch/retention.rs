//! Retention: finished payloads (delivered, failed or canceled) and their attempts are
//! deleted once older than the configured period (default 30 days).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;
use crate::time::now_millis;

/// How often to purge: hourly, or more often for a short retention (a quarter of it, at
/// least every second).
fn period(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

pub async fn run(store: Arc<dyn Store>, retention: Duration, mut stop: watch::Receiver<bool>) {
    let keep = retention.as_millis() as i64;
    loop {
        match store.purge_finished(now_millis() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged finished payloads past retention"),
            Err(e) => tracing::warn!(error = ?e, "purging finished payloads failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period(retention)) => {}
            _ = stop.changed() => return,
        }
    }
}
