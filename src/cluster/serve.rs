//! The owner's side of peer links: takes links from nodes that prove the cluster's secret,
//! stores each publish they forward through this node's group commit (as if it had come in
//! here, see `App::publish_forwarded`), and answers it on the same link.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::wire::{self, Answer, Reply, Request};
use crate::app::App;

/// How long a dialer has to prove itself.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Forwarded publishes one link may have in the store at once; more wait to be read.
const IN_FLIGHT: usize = 4096;

/// Links open at once, at most (each node keeps one to each other node; the rest is room
/// for restarts): a connection beyond is closed at once, before its handshake.
const MAX_LINKS: usize = 256;

/// Takes links on `listener` until `stop` turns true.
pub async fn run(listener: TcpListener, app: App, secret: Arc<[u8]>, stop: watch::Receiver<bool>) {
    let mut stopping = stop.clone();
    let links = Arc::new(Semaphore::new(MAX_LINKS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let Ok(link) = links.clone().try_acquire_owned() else {
                        tracing::warn!(%from, "peer link refused: {MAX_LINKS} links open");
                        continue;
                    };
                    let (app, secret, stop) = (app.clone(), secret.clone(), stop.clone());
                    tokio::spawn(async move {
                        if let Err(e) = serve_link(stream, app, &secret, stop).await {
                            tracing::warn!(%from, error = %e, "peer link closed");
                        }
                        drop(link);
                    });
                }
                // Out of file descriptors, say: the next accept may work.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a peer link failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stopping) => return,
        }
    }
}

async fn serve_link(
    mut stream: TcpStream,
    app: App,
    secret: &[u8],
    mut stop: watch::Receiver<bool>,
) -> Result<(), wire::WireError> {
    stream.set_nodelay(true)?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, wire::accept_handshake(&mut stream, secret))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no handshake in time"))??;
    let (read, write) = stream.into_split();
    // Frames come in bursts (a forwarder writes all it has queued at once): one read each.
    let mut read = tokio::io::BufReader::with_capacity(64 * 1024, read);
    let (frames, queued) = mpsc::channel(IN_FLIGHT);
    let writer = tokio::spawn(wire::write_frames(write, queued));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = Vec::new();
    let ended = loop {
        let next = tokio::select! {
            next = wire::read::<Request>(&mut read, &mut buf) => next,
            // A node stopping takes no more; what it took is answered below.
            _ = stopped(&mut stop) => break Ok(()),
        };
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let permit = in_flight.clone().acquire_owned().await.expect("never closed");
        let (app, frames) = (app.clone(), frames.clone());
        tokio::spawn(async move {
            let answer = Answer::of(app.publish_forwarded(&request.job).await);
            let _ = frames.send(wire::frame(&Reply { id: request.id, answer })).await;
            drop(permit);
        });
    };
    // Every publish taken is answered before the link closes.
    let _ = in_flight.acquire_many(IN_FLIGHT as u32).await;
    drop(frames);
    let _ = writer.await;
    ended
}

/// Returns once `stop` turns true (the guard `wait_for` gives is dropped here, not held
/// in a `select!`).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
