//! What travels on a peer link: a handshake that proves both sides hold the cluster's
//! secret, then frames (a 4-byte big-endian length, then JSON) carrying forwarded publishes
//! one way and their answers the other, each tagged with the id the forwarder gave it.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::domain::filter::Verdicts;
use crate::domain::records::SchemaChecked;
use crate::domain::{BodyTemplate, EventId, KeyCheck, MerchantId, PublishRequest, Published, TraceParent};
use crate::store::StoreError;
use crate::time::Millis;

/// A frame's body, at most: a publish is limited well below this by `max_body_bytes`.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

const NONCE: usize = 32;

/// How much a frame reader asks the socket for at once.
const READ_CHUNK: usize = 64 * 1024;

/// A publish one node hands another: everything `PublishRequest` holds, the message already
/// checked against its schema and judged by the filters it may meet.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub merchant: MerchantId,
    pub topic: String,
    pub body: BodyTemplate,
    pub key: Option<String>,
    pub now: Millis,
    pub verdicts: Vec<(String, bool)>,
    pub trace: Option<String>,
    /// `SchemaChecked::Version` (None: `Unconfirmed`).
    pub schema: Option<Option<i64>>,
    pub key_check: Option<KeyCheck>,
}

impl Job {
    pub fn of(req: &PublishRequest<'_>) -> Self {
        Job {
            merchant: req.merchant,
            topic: req.topic.as_str().to_owned(),
            body: req.body.clone(),
            key: req.idempotency_key.map(str::to_owned),
            now: req.now,
            verdicts: req.verdicts.pairs().map(|(f, v)| (f.to_owned(), v)).collect(),
            trace: req.trace.map(|t| t.to_string()),
            schema: match req.schema {
                SchemaChecked::Unconfirmed => None,
                SchemaChecked::Version(v) => Some(v),
            },
            key_check: req.key_check.cloned(),
        }
    }

    pub fn verdicts(&self) -> Verdicts {
        Verdicts::from_pairs(self.verdicts.iter().map(|(f, v)| (Arc::from(f.as_str()), *v)))
    }

    pub fn trace(&self) -> Option<TraceParent> {
        self.trace.as_deref().and_then(TraceParent::parse)
    }

    pub fn schema(&self) -> SchemaChecked {
        match self.schema {
            None => SchemaChecked::Unconfirmed,
            Some(v) => SchemaChecked::Version(v),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub job: Job,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub answer: Answer,
}

/// A forwarded publish's outcome. Only what the forwarder tells its caller travels: the
/// payloads' webhooks stay with the owner, whose dispatcher sends them.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Answer {
    Published {
        event_id: i64,
        payloads: i64,
        replayed: bool,
    },
    Overloaded,
    CatalogMoved,
    KeyRevoked,
    FiltersUnjudged(Vec<String>),
    /// Nothing was stored (the owner's database was unreachable).
    Unavailable(String),
    /// Stored or not, nobody can tell.
    OutcomeUnknown(String),
    Failed(String),
}

impl Answer {
    pub fn of(result: Result<Published, StoreError>) -> Self {
        match result {
            Ok(p) => Answer::Published {
                event_id: p.event_id.0,
                payloads: p.payloads,
                replayed: p.replayed,
            },
            Err(StoreError::Overloaded) => Answer::Overloaded,
            Err(StoreError::CatalogMoved) => Answer::CatalogMoved,
            Err(StoreError::KeyRevoked) => Answer::KeyRevoked,
            Err(StoreError::FiltersUnjudged(f)) => Answer::FiltersUnjudged(f.iter().map(|f| f.to_string()).collect()),
            Err(e @ StoreError::Unavailable(_)) => Answer::Unavailable(e.to_string()),
            Err(e @ StoreError::OutcomeUnknown(_)) => Answer::OutcomeUnknown(e.to_string()),
            Err(e) => Answer::Failed(e.to_string()),
        }
    }

    /// The outcome as the forwarder's caller sees it.
    pub fn into_result(self) -> Result<Published, StoreError> {
        let lost = |why: String| Arc::new(sqlx::Error::Protocol(format!("on the owner node: {why}")));
        match self {
            Answer::Published {
                event_id,
                payloads,
                replayed,
            } => Ok(Published {
                event_id: EventId(event_id),
                payloads,
                webhooks: Vec::new(),
                replayed,
                handed: Vec::new(),
            }),
            Answer::Overloaded => Err(StoreError::Overloaded),
            Answer::CatalogMoved => Err(StoreError::CatalogMoved),
            Answer::KeyRevoked => Err(StoreError::KeyRevoked),
            Answer::FiltersUnjudged(f) => Err(StoreError::FiltersUnjudged(
                f.iter().map(|f| Arc::from(f.as_str())).collect(),
            )),
            Answer::Unavailable(why) => Err(StoreError::Unavailable(lost(why))),
            Answer::OutcomeUnknown(why) => Err(StoreError::OutcomeUnknown(lost(why))),
            Answer::Failed(why) => Err(StoreError::BatchFailed(lost(why))),
        }
    }
}

/// `value` as a frame, length first.
pub fn frame(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    push_frame(&mut out, value);
    out
}

/// Appends `value` to `out` as a frame.
pub fn push_frame(out: &mut Vec<u8>, value: &impl Serialize) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, value).expect("wire values serialize");
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes, more than {MAX_FRAME}")]
    TooLarge(usize),
    #[error("a frame that is not what was expected: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the other side does not hold the cluster's secret")]
    Refused,
}

/// Reads frames from a stream. Cancel-safe: bytes read stay here until their frame is
/// whole, so `next` may lose a `select!` without losing anything.
pub struct FrameReader<R> {
    from: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(from: R) -> Self {
        FrameReader {
            from,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The next frame's value; None at a clean end of the stream (between frames).
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        loop {
            if let Some(value) = self.take()? {
                return Ok(Some(value));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 16 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.from.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let cut = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stream ended inside a frame");
                return Err(cut.into());
            }
        }
    }

    /// The next frame's value if it was already read whole (no I/O): a burst of frames
    /// comes in one read.
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let Some(len) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(len.try_into().expect("sized")) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        let value = serde_json::from_slice(&self.buf[4..4 + len]);
        self.buf.advance(4 + len);
        Ok(Some(value?))
    }
}

fn proof(secret: &[u8], side: &[u8], theirs: &[u8; NONCE], ours: &[u8; NONCE]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"hookd-peer-link/1 ");
    mac.update(side);
    mac.update(theirs);
    mac.update(ours);
    mac
}

/// The listening side: sends a nonce, checks the dialer's proof over both nonces, proves
/// itself in turn.
pub async fn accept_handshake(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    secret: &[u8],
) -> Result<(), WireError> {
    let ours: [u8; NONCE] = rand::random();
    stream.write_all(&ours).await?;
    let mut got = [0u8; NONCE + 32];
    stream.read_exact(&mut got).await?;
    let theirs: [u8; NONCE] = got[..NONCE].try_into().expect("sized");
    proof(secret, b"dialer", &ours, &theirs)
        .verify_slice(&got[NONCE..])
        .map_err(|_| WireError::Refused)?;
    let answer = proof(secret, b"listener", &theirs, &ours).finalize().into_bytes();
    stream.write_all(&answer).await?;
    Ok(())
}

/// The dialing side: proves itself over the listener's nonce and its own, then checks the
/// listener's proof.
pub async fn dial_handshake(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    secret: &[u8],
) -> Result<(), WireError> {
    let mut theirs = [0u8; NONCE];
    stream.read_exact(&mut theirs).await?;
    let ours: [u8; NONCE] = rand::random();
    let mut out = ours.to_vec();
    out.extend_from_slice(&proof(secret, b"dialer", &theirs, &ours).finalize().into_bytes());
    stream.write_all(&out).await?;
    let mut answer = [0u8; 32];
    stream.read_exact(&mut answer).await?;
    proof(secret, b"listener", &ours, &theirs)
        .verify_slice(&answer)
        .map_err(|_| WireError::Refused)
}
