//! Cross-node wake-ups over PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! A writer that makes work due (publish, retry, re-activation) runs `pg_notify('hookd_wake',
//! ids)` in its own transaction; PostgreSQL delivers it to every listener at commit, never
//! before, so a woken dispatcher always finds the rows. The payload is the comma-separated
//! webhook ids, or empty for "rescan" (when the ids would not fit PostgreSQL's 8000-byte limit).
//!
//! A node's listener passes over the notifications of its own publish runners (told by the
//! server process that sent them, see `publisher::Backends`): `App::publish` has already
//! woken its dispatcher for those webhooks, and a second wake-up only made it claim again,
//! mostly for nothing. Other nodes' publishes and every other writer's wake-ups (retries,
//! re-activations, from any node) still wake it.
//!
//! The webhooks named are woken a moment later than the writer's own (`Wake::from_afar`).
//!
//! A second channel, `hookd_changed`, names webhooks updated, deleted or turned off (empty:
//! possibly all of them), sent in the changing transaction like a wake-up. Every node's
//! dispatcher then forgets what it holds of them (`Wake::forget`): its cached target and
//! pacing, and the payloads its own publishes handed it (`store::handoff`), which it gives
//! back to be claimed under the new settings. Without it a node went on sending those as
//! handed: to the old URL, unpaced, or for a webhook turned off.
//!
//! Notifications sent while a listener is disconnected are lost, so after every (re)connect
//! the listener asks for a queue scan, which finds whatever they would have announced, and
//! has the dispatcher forget every webhook, as a change it missed would have. The periodic
//! scan remains the backstop for anything else.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use sqlx::PgConnection;
use tokio::sync::watch;

use super::publisher::Backends;
use crate::domain::WebhookId;
use crate::store::{PoolSettings, StoreResult};
use crate::wake::Wake;

pub(super) const CHANNEL: &str = "hookd_wake";

/// Webhooks changed (see the module docs).
pub(super) const CHANGED: &str = "hookd_changed";

/// Payloads longer than this become the rescan marker (PostgreSQL refuses 8000 bytes or more).
pub(super) const MAX_PAYLOAD: usize = 7900;

/// With no notification for this long, the listener checks its connection is still alive (a
/// server that vanished without closing the socket would otherwise leave it waiting forever).
const HEARTBEAT: Duration = Duration::from_secs(30);

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Queues a wake-up for these webhooks, sent when the caller's transaction commits.
pub(super) async fn notify(conn: &mut PgConnection, webhooks: &[i64]) -> StoreResult<()> {
    send(conn, CHANNEL, webhooks).await
}

/// Tells every node, when the caller's transaction commits, that these webhooks changed
/// (updated, deleted or turned off); empty: any may have.
pub(super) async fn changed(conn: &mut PgConnection, webhooks: &[i64]) -> StoreResult<()> {
    send(conn, CHANGED, webhooks).await
}

async fn send(conn: &mut PgConnection, channel: &str, webhooks: &[i64]) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload(webhooks))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) fn payload(webhooks: &[i64]) -> String {
    let joined = webhooks.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    if joined.len() > MAX_PAYLOAD {
        String::new()
    } else {
        joined
    }
}

/// The webhooks a payload names; None for "all" (empty or unreadable).
fn named(payload: &str) -> Option<Vec<WebhookId>> {
    let ids: Option<Vec<WebhookId>> = payload
        .split(',')
        .map(|s| s.trim().parse::<i64>().ok().map(WebhookId))
        .collect();
    ids.filter(|_| !payload.is_empty())
}

/// Applies one wake-up's payload: webhook ids, or a rescan when empty or unreadable.
fn apply(wake: &Wake, payload: &str) {
    match named(payload) {
        Some(ids) => wake.from_afar(ids),
        None => wake.rescan(),
    }
}

/// Applies one change's payload: the webhooks named (or all) are forgotten, and woken so
/// that what their hand-off gave back is claimed again.
fn apply_changed(wake: &Wake, payload: &str) {
    match named(payload) {
        Some(ids) => {
            // Woken first: whoever sees them forgotten sees them woken too.
            wake.from_afar(ids.iter().copied());
            wake.forget(ids);
        }
        None => wake.forget_all(),
    }
}

/// Forwards wake-ups to `wake` until `stop` turns true, reconnecting with backoff.
pub(super) async fn listen(
    options: &PgConnectOptions,
    settings: &PoolSettings,
    wake: Arc<Wake>,
    own: Arc<Backends>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            _ = stop.changed() => return,
            r = subscribe(options, settings) => r,
        };
        match connected {
            Ok(mut listener) => {
                // Anything announced while we were not listening is found by a scan, and any
                // change is taken for all; asked for only now that LISTEN is active, so
                // nothing falls between the two.
                wake.forget_all();
                wake.rescan();
                backoff = BACKOFF_MIN;
                tracing::debug!(channel = CHANNEL, "listening for wake-ups");
                match receive(&mut listener, &wake, &own, &mut stop).await {
                    Ended::Stopped => return,
                    Ended::Lost(error) => {
                        tracing::warn!(?error, "wake-up listener lost its connection; reconnecting")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, retry_in = ?backoff, "wake-up listener cannot connect")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A listener on its own single-connection pool (dropped with the listener, so a broken
/// connection is never reused) with `LISTEN hookd_wake` and `LISTEN hookd_changed` done.
async fn subscribe(options: &PgConnectOptions, settings: &PoolSettings) -> Result<PgListener, sqlx::Error> {
    let app = options.get_application_name().unwrap_or("hookd");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone().application_name(&format!("{app}-listener")))
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // We reconnect ourselves, so that we know when to rescan.
    listener.eager_reconnect(false);
    listener.listen_all([CHANNEL, CHANGED]).await?;
    Ok(listener)
}

enum Ended {
    Stopped,
    /// The connection failed (None: the server closed it).
    Lost(Option<sqlx::Error>),
}

async fn receive(listener: &mut PgListener, wake: &Wake, own: &Backends, stop: &mut watch::Receiver<bool>) -> Ended {
    loop {
        // `try_recv` is cancel-safe: a notification half read stays buffered.
        let received = tokio::select! {
            _ = stop.changed() => return Ended::Stopped,
            r = tokio::time::timeout(HEARTBEAT, listener.try_recv()) => r,
        };
        match received {
            Ok(Ok(Some(n))) => handle(wake, own, &n),
            Ok(Ok(None)) => return Ended::Lost(None),
            Ok(Err(e)) => return Ended::Lost(Some(e)),
            Err(_idle) => {
                let alive = tokio::time::timeout(HEARTBEAT, sqlx::query("SELECT 1").execute(&mut *listener)).await;
                match alive {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(Some(e)),
                    Err(_) => {
                        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer to the heartbeat");
                        return Ended::Lost(Some(sqlx::Error::Io(e)));
                    }
                }
            }
        }
    }
}

fn handle(wake: &Wake, own: &Backends, n: &PgNotification) {
    match n.channel() {
        CHANNEL if !own.contains(n.process_id()) => apply(wake, n.payload()),
        // This node's own changes too: cheap, and not worth telling apart from its publishes'
        // backends (it forgot them already, so this finds little to give back).
        CHANGED => apply_changed(wake, n.payload()),
        _ => {}
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn payloads_name_webhooks_or_ask_for_a_rescan() {
        assert_eq!(payload(&[3, 1, 20]), "3,1,20");
        let many: Vec<i64> = (1_000_000_000..1_000_001_000).collect();
        assert_eq!(payload(&many), "");

        let wake = Wake::default();
        apply(&wake, "3,1,20");
        let (now, rescan) = wake.take();
        assert!(now.is_empty(), "another node's webhooks are woken a moment later");
        let mut ids = wake.take_afar();
        ids.sort();
        assert_eq!(ids, vec![WebhookId(1), WebhookId(3), WebhookId(20)]);
        assert!(!rescan);

        for rescan_marker in ["", "x", "1,,2"] {
            apply(&wake, rescan_marker);
            assert_eq!(wake.take(), (vec![], true), "payload {rescan_marker:?}");
        }
    }

    #[test]
    fn changes_make_the_dispatcher_forget_the_webhooks_named_or_all() {
        let wake = Wake::default();
        apply_changed(&wake, "7,2");
        let (mut forgotten, all) = wake.take_forgotten();
        forgotten.sort();
        assert_eq!((forgotten, all), (vec![WebhookId(2), WebhookId(7)], false));
        let mut woken = wake.take_afar();
        woken.sort();
        assert_eq!(
            woken,
            vec![WebhookId(2), WebhookId(7)],
            "woken to claim what was given back"
        );

        for all_marker in ["", "x"] {
            apply_changed(&wake, all_marker);
            assert_eq!(wake.take_forgotten(), (vec![], true), "payload {all_marker:?}");
        }
    }
}
