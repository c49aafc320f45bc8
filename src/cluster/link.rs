//! One node's link to another (the owner of some merchants' publishes): a TCP connection,
//! dialed when first needed, that carries any number of forwarded publishes at once. A
//! writer task puts every frame queued meanwhile into one write; a reader task hands each
//! answer to the publish waiting for it.
//!
//! The one idea to know: a publish that never left this node may be stored here instead,
//! so `forward` says `NotSent` whenever the owner surely did not get it (the link is down,
//! the dial failed, the frame was still queued when the connection broke). Once its frame
//! was written, only the owner's answer tells what happened; a link that breaks before it
//! comes answers `OutcomeUnknown`, as a database connection breaking during a commit does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::wire::{self, Answer, Job, Reply, Request};
use crate::domain::{PublishRequest, Published};
use crate::store::StoreError;

/// How long a dial (connect and handshake) may take before the publish is stored here.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed dial, publishes are stored here for this long before the next dial.
const REDIAL_AFTER: Duration = Duration::from_secs(1);
/// How long a forwarded publish waits for the owner's answer: longer than the owner takes
/// to refuse one for load (its queue wait), so only a hung owner runs into it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames waiting for the writer, at most; a publish finding no room is stored here.
const QUEUE: usize = 4096;

/// What became of a forwarded publish.
pub enum Forwarded {
    /// The owner answered (or the link broke after the publish left: `OutcomeUnknown`).
    Answered(Result<Published, StoreError>),
    /// The owner never got it: store it here.
    NotSent,
}

pub struct Link {
    address: String,
    secret: Arc<[u8]>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

enum State {
    Down { redial_at: Option<Instant> },
    Up(Conn),
}

#[derive(Clone)]
struct Conn {
    frames: mpsc::Sender<(u64, Vec<u8>)>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
}

/// The publishes sent and not yet answered, by id. A sender dropped unanswered means the
/// link broke with it written (`OutcomeUnknown`); `None` sent means it was never written.
type Pending = StdMutex<HashMap<u64, oneshot::Sender<Option<Answer>>>>;

impl Link {
    pub fn new(address: String, secret: Arc<[u8]>) -> Self {
        Link {
            address,
            secret,
            state: Mutex::new(State::Down { redial_at: None }),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn forward(&self, req: &PublishRequest<'_>) -> Forwarded {
        let Some(conn) = self.conn().await else {
            return Forwarded::NotSent;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        let frame = wire::frame(&Request { id, job: Job::of(req) });
        if conn.frames.try_send((id, frame)).is_err() {
            lock(&conn.pending).remove(&id);
            return Forwarded::NotSent;
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(Some(answer))) => Forwarded::Answered(answer.into_result()),
            Ok(Ok(None)) => Forwarded::NotSent,
            Ok(Err(_)) => Forwarded::Answered(Err(unknown("the link to the owner node broke"))),
            Err(_) => {
                lock(&conn.pending).remove(&id);
                Forwarded::Answered(Err(unknown("the owner node did not answer in time")))
            }
        }
    }

    /// The live connection, dialed if there is none and the last dial did not just fail.
    async fn conn(&self) -> Option<Conn> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Up(c) if c.alive.load(Ordering::Acquire) => return Some(c.clone()),
            State::Down { redial_at: Some(at) } if Instant::now() < *at => return None,
            _ => {}
        }
        match tokio::time::timeout(DIAL_TIMEOUT, self.dial()).await {
            Ok(Ok(conn)) => {
                *state = State::Up(conn.clone());
                Some(conn)
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!(peer = %self.address, error = %why, "peer link down: publishing here meanwhile");
                *state = State::Down {
                    redial_at: Some(Instant::now() + REDIAL_AFTER),
                };
                None
            }
        }
    }

    async fn dial(&self) -> Result<Conn, wire::WireError> {
        let mut stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        wire::dial_handshake(&mut stream, &self.secret).await?;
        let (read, write) = stream.into_split();
        let mut replies = wire::FrameReader::new(read);
        let (frames, queued) = mpsc::channel::<(u64, Vec<u8>)>(QUEUE);
        let conn = Conn {
            frames,
            pending: Arc::default(),
            alive: Arc::new(AtomicBool::new(true)),
        };
        let (pending, alive) = (conn.pending.clone(), conn.alive.clone());
        tokio::spawn(write_queued(write, queued, pending.clone(), alive.clone()));
        tokio::spawn(async move {
            loop {
                match replies.next::<Reply>().await {
                    Ok(Some(reply)) => {
                        if let Some(tx) = lock(&pending).remove(&reply.id) {
                            let _ = tx.send(Some(reply.answer));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "peer link read failed");
                        break;
                    }
                }
            }
            alive.store(false, Ordering::Release);
            // Every publish still waiting learns its outcome is unknown (senders dropped).
            lock(&pending).clear();
        });
        Ok(conn)
    }
}

/// Writes the queued frames, all that wait in one write. When a write fails, the frames in
/// it may or may not have arrived (their publishes' outcome is unknown), and those still
/// queued surely did not (`None`: they are stored here instead).
async fn write_queued(
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut queued: mpsc::Receiver<(u64, Vec<u8>)>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
) {
    use tokio::io::AsyncWriteExt;
    let (mut batch, mut buf) = (Vec::new(), Vec::new());
    while queued.recv_many(&mut batch, 256).await > 0 {
        // Publishes made ready with the first (their callers' requests came in the same
        // read) queue theirs meanwhile: one write, and one wake-up of the owner, for all.
        tokio::task::yield_now().await;
        while batch.len() < 256 {
            match queued.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        buf.clear();
        let ids: Vec<u64> = batch.iter().map(|(id, _)| *id).collect();
        for (_, frame) in batch.drain(..) {
            buf.extend_from_slice(&frame);
        }
        if let Err(e) = to.write_all(&buf).await {
            tracing::warn!(error = %e, "peer link write failed");
            alive.store(false, Ordering::Release);
            let mut pending = lock(&pending);
            for id in ids {
                pending.remove(&id);
            }
            queued.close();
            while let Ok((id, _)) = queued.try_recv() {
                if let Some(tx) = pending.remove(&id) {
                    let _ = tx.send(None);
                }
            }
            return;
        }
    }
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unknown(why: &str) -> StoreError {
    StoreError::OutcomeUnknown(Arc::new(sqlx::Error::Protocol(why.into())))
}
