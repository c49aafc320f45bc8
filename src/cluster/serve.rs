//! The owner's side of peer links: takes links from nodes that prove the cluster's secret,
//! stores each publish they forward through this node's group commit (as if it had come in
//! here, see `App::publish_forwarded`), and answers it on the same link.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::wire::{self, Reply, Request};
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

/// One link, served by one task: it reads the forwarded publishes, stores each through the
/// group commit, and writes every answer ready at once in one write. (A task per publish
/// and a writer task cost a wake-up per publish and per burst, on top of one node's.)
/// While it writes it does not read, which is safe because the forwarder's reader task
/// always reads: a write here waits only for the network, never for this side to read.
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
    let (read, mut write) = stream.into_split();
    let mut requests = wire::FrameReader::new(read);
    let mut working = FuturesUnordered::new();
    let mut answers = Vec::new();
    let mut ended = Ok(());
    let mut taking = true;
    loop {
        tokio::select! {
            biased;
            Some(reply) = working.next() => {
                answers.clear();
                wire::push_frame(&mut answers, &reply);
                // The rest of its batch is being answered meanwhile: one write for all.
                tokio::task::yield_now().await;
                while let Some(Some(reply)) = working.next().now_or_never() {
                    wire::push_frame(&mut answers, &reply);
                }
                // A failed write ends the link: the forwarder tells its callers that their
                // publishes' outcome is unknown.
                write.write_all(&answers).await?;
            }
            next = requests.next::<Request>(), if taking && working.len() < IN_FLIGHT => {
                let mut next = next;
                loop {
                    match next {
                        Ok(Some(request)) => working.push(answer(&app, request)),
                        Ok(None) => taking = false,
                        // What was taken is still answered; then the link closes.
                        Err(e) => (ended, taking) = (Err(e), false),
                    }
                    if !taking || working.len() >= IN_FLIGHT {
                        break;
                    }
                    // The rest of the burst that came in the same read.
                    next = requests.take::<Request>();
                    if matches!(next, Ok(None)) {
                        break;
                    }
                }
            }
            // A node stopping takes no more; what it took is answered first.
            _ = stopped(&mut stop), if taking => taking = false,
            else => return ended,
        }
    }
}

async fn answer(app: &App, request: Request) -> Reply {
    let answer = app.publish_forwarded(&request.job).await;
    Reply { id: request.id, answer }
}

/// Returns once `stop` turns true (the guard `wait_for` gives is dropped here, not held
/// in a `select!`).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
