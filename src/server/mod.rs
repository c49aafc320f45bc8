//! The HTTP server under the API: accepts connections up to a cap, serves each with
//! hyper's HTTP/1, and on stop lets open requests finish for a bounded grace, then closes
//! whatever is left.
//!
//! The one idea to know: everything a client can hold without finishing a request is
//! bounded, in number (`max_connections`: beyond it new connections wait in the kernel's
//! backlog, the accept loop does not spin) and in time (`header_read_timeout` closes a
//! connection that does not finish a request head, idle keep-alive ones included; the
//! rpc handler reads bodies against `body_read_timeout`; `write_timeout` closes a
//! connection whose client stops reading its answers; `shutdown_grace` bounds the stop).
//!
//! `Front` says how the listener faces its clients: HTTPS or not (`tls`), and which
//! proxies' forwarding headers are believed (`forwarded`); each request carries the
//! resulting `Client` as an extension.

mod forwarded;
mod tls;

pub use forwarded::{Client, TrustedProxies};
pub use tls::{Tls, TlsFiles};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;
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
    /// How long writing an answer may stall because the client does not read it.
    pub write_timeout: Duration,
    /// On stop, how long open requests may still take before their connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The largest request head, request line and headers (431 beyond it), and hyper's read
/// buffer per connection: hyper's default (~400 KiB) would let each slow client hold that
/// much. The buffer alone does not bound the head (a read may fill more than it asks for,
/// and a head read whole is parsed before the buffer is checked), so both are set.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// After a failed accept (e.g. out of file descriptors), wait this long before the next,
/// so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How a listener faces its clients.
#[derive(Clone, Default)]
pub struct Front {
    /// Speak HTTPS with this certificate; None: plain HTTP.
    pub tls: Option<Tls>,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: TrustedProxies,
}

/// Serves `router` on `listener` until `stop` completes, then shuts down within
/// `limits.shutdown_grace` (plus a moment to close the connections still open).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    front: &Front,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
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
            front.clone(),
            limits.clone(),
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

/// One connection, until the client closes it, a timeout does, or the server stops. Over
/// HTTPS the handshake must end within the header read timeout.
#[allow(clippy::too_many_arguments)]
async fn connection(
    builder: http1::Builder,
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    front: Front,
    limits: HttpLimits,
    closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let https = front.tls.is_some();
    let proxies = front.trusted_proxies;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let client = proxies.client(remote, https, request.headers());
        request.extensions_mut().insert(ConnectInfo(remote));
        request.extensions_mut().insert(client);
        router.clone().oneshot(request)
    });
    let Some(tls) = front.tls else {
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        return http(builder, stream, remote, service, closing).await;
    };
    let handshake = async {
        if !starts_with_tls(&stream).await? {
            refuse_plain_http(stream).await;
            return Ok(None);
        }
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        tls.acceptor().accept(stream).await.map(Some)
    };
    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
        Ok(Ok(Some(stream))) => http(builder, stream, remote, service, closing).await,
        Ok(Ok(None)) => tracing::debug!(%remote, "plain HTTP on the HTTPS port refused"),
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake did not finish in time"),
    }
}

/// Serves HTTP/1 on `io` (plain or TLS) until the client closes it, a timeout does, or
/// the server stops.
async fn http<I, S>(builder: http1::Builder, io: I, remote: SocketAddr, service: S, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(TokioIo::new(io), service);
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

/// Whether the client's first byte opens a TLS handshake record (0x16); false for plain
/// HTTP (or a client that closed without a byte).
async fn starts_with_tls(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0] == 0x16)
}

/// A plain HTTP request on the HTTPS port: a short 400 saying so, then the connection closes.
async fn refuse_plain_http(mut stream: TcpStream) {
    const BODY: &str = "This port speaks HTTPS: use https:// in the URL.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read what the client sent before closing: closing with unread bytes would reset the
    // connection, and the client might lose the answer.
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut read = 0;
        while read < MAX_HEAD_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A stream whose writes fail once they have been stalled (the client not reading, its
/// window closed) for longer than `limit`; hyper then drops the connection. Reads pass
/// through: their time limits are the header and body timeouts.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write could not proceed, cleared when one does.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: still pending, or the error once the stall is too long.
    fn poll_stall<T>(&mut self, cx: &mut Context<'_>, progress: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if progress.is_ready() {
            self.stalled = None;
            return progress;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.poll_stall(cx, progress)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.poll_stall(cx, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_flush(cx);
        this.poll_stall(cx, progress)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.poll_stall(cx, progress)
    }
}
