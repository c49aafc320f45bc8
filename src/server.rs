//! The HTTP server under the API: accepts connections up to a cap, serves each with
//! hyper's HTTP/1, and on stop lets open requests finish for a bounded grace, then closes
//! whatever is left.
//!
//! The one idea to know: everything a client can hold without finishing a request is
//! bounded, in number (`max_connections`: beyond it new connections wait in the kernel's
//! backlog, the accept loop does not spin) and in time (`header_read_timeout` closes a
//! connection that does not finish a request head, idle keep-alive ones included; the
//! rpc handler reads bodies against `body_read_timeout`; `shutdown_grace` bounds the stop).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of the HTTP layer (part of the resolved config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; more wait until one closes.
    pub max_connections: usize,
    /// Time allowed for a request head, from its first byte or from the end of the
    /// previous response (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Time allowed for a request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// On stop, how long open requests may still take before their connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// After a failed accept (e.g. out of file descriptors), wait this long before the next,
/// so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stop` completes, then shuts down within
/// `limits.shutdown_grace` (plus a moment to close the connections still open).
pub async fn serve(listener: TcpListener, router: Router, limits: &HttpLimits, stop: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = slots.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; pausing before the next");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            builder.clone(),
            stream,
            remote,
            router.clone(),
            closing.clone(),
            permit,
        ));
    }
    drop(listener);
    tracing::info!(open = connections.len(), grace = ?limits.shutdown_grace, "closing connections");
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still busy after the shutdown grace are closed"
        );
        connections.shutdown().await;
    }
}

/// One connection, until the client closes it, a timeout does, or the server stops.
async fn connection(
    builder: http1::Builder,
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(request)
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        }
        // Only ever changes once, to true (or ends with the server).
        _ = closing.changed() => {
            // Finishes the request in progress, if any, then closes; the caller's grace
            // bounds how long that may take.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
