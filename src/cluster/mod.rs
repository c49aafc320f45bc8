//! Publishes gathered on one node per merchant (PostgreSQL, several nodes; off unless
//! `peer_listen` is set). A node that takes a publish for a merchant another node owns
//! forwards it there over a peer link, and the owner stores it in its next group commit.
//!
//! Why: a publish batch costs the database about the same whatever its size (issue 28), and
//! a webhook's increment ids make nodes publishing to it take its row lock in turns. Two
//! nodes each publishing half of one merchant's events make twice as many, smaller batches
//! that wait on each other's locks; gathered on one node they make the batches one node
//! would (measured: `docs/performance.md`, 2026-12-07 last).
//!
//! The one idea to know: forwarding is only ever a shortcut. Any node may store any
//! publish (the increment ids stay gap-free through the webhook's row lock, whoever takes
//! it), so a node that cannot reach the owner, or disagrees with another about who owns a
//! merchant for a moment, stores the publish itself and nothing is wrong, only slower. The
//! owner of a merchant is chosen by rendezvous hashing over the nodes seen live in the
//! `peers` table (each node refreshes its row every `BEAT`), so every node picks the same
//! owner without talking to the others, and a node leaving moves only its own merchants.
//! A publish is acknowledged by the node its caller reached only once the owner answered,
//! which it does after its commit is flushed, so an acknowledged event is on disk.

mod link;
mod serve;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::domain::{MerchantId, PublishRequest, Published};
use crate::store::{Store, StoreError};
use link::{Forwarded, Link};

/// How often a node records itself as live and reads who else is.
const BEAT: Duration = Duration::from_secs(2);
/// A node not seen for this long is no longer chosen as an owner (it stopped or hangs):
/// publishes for its merchants are stored by the others.
const FRESH: Duration = Duration::from_secs(8);

/// How long a stopping node goes on taking forwarded publishes after leaving the table:
/// longer than a beat, so every other node has read that it left.
const DRAIN: Duration = Duration::from_millis(2500);

/// This node's view of the nodes that take forwarded publishes.
pub struct Cluster {
    node: String,
    address: String,
    secret: Arc<[u8]>,
    store: Arc<dyn Store>,
    /// Every live node by name, this one included (None: no link to itself).
    live: RwLock<Vec<(String, Option<Arc<Link>>)>>,
}

impl Cluster {
    /// Joins the nodes sharing `store`: reads (or makes) the links' secret and records
    /// this node as taking links at `address`.
    pub async fn join(store: Arc<dyn Store>, node: String, address: String) -> anyhow::Result<Arc<Cluster>> {
        let secret = store
            .peer_secret(rand::random())
            .await?
            .ok_or_else(|| anyhow::anyhow!("peer links need PostgreSQL (HOOKD_DATABASE_URL=postgres://…)"))?;
        let cluster = Arc::new(Cluster {
            node,
            address,
            secret: secret.into(),
            store,
            live: RwLock::new(Vec::new()),
        });
        cluster.beat().await?;
        Ok(cluster)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The nodes this one last saw live, itself included.
    pub fn live_nodes(&self) -> usize {
        self.live.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Serves peer links on `listener` and keeps this node's row fresh until `stop`. Then
    /// it leaves the table and goes on serving its links for `DRAIN`, while the others,
    /// at their next beat, choose new owners for its merchants: a node stopping answers
    /// every publish forwarded to it.
    pub async fn run(self: Arc<Self>, listener: TcpListener, app: App, stop: watch::Receiver<bool>) {
        let (links_stop, links_stopping) = watch::channel(false);
        let serving = tokio::spawn(serve::run(listener, app, self.secret.clone(), links_stopping));
        let mut stopped = stop.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(BEAT) => {}
                _ = serve::stopped(&mut stopped) => break,
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "recording this node in the peers table failed");
            }
        }
        if let Err(e) = self.store.peers_leave(&self.node).await {
            tracing::warn!(error = %e, "taking this node out of the peers table failed");
        }
        tokio::time::sleep(DRAIN).await;
        let _ = links_stop.send(true);
        let _ = serving.await;
    }

    /// Records this node as live and takes the others' list, keeping links that still
    /// lead where they did.
    async fn beat(&self) -> Result<(), StoreError> {
        let peers = self.store.peers_beat(&self.node, &self.address, FRESH).await?;
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if live.len() != peers.len() || live.iter().zip(&peers).any(|((node, _), peer)| *node != peer.node) {
            let n = peers.len();
            tracing::info!(nodes = n, "peer links: {n} nodes live");
        }
        let mut links: HashMap<String, Arc<Link>> =
            live.drain(..).filter_map(|(node, link)| Some((node, link?))).collect();
        for peer in peers {
            let link = if peer.node == self.node {
                None
            } else {
                match links.remove(&peer.node) {
                    Some(link) if link.address() == peer.address => Some(link),
                    _ => Some(Arc::new(Link::new(peer.address, self.secret.clone()))),
                }
            };
            live.push((peer.node, link));
        }
        Ok(())
    }

    /// The link to `merchant`'s owner; None when this node owns it (or knows no other).
    fn owner(&self, merchant: MerchantId) -> Option<Arc<Link>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        if live.len() < 2 {
            return None;
        }
        let (_, link) = live.iter().max_by_key(|(node, _)| score(node, merchant))?;
        link.clone()
    }

    /// Stores `req` through its merchant's owner, or here when this node owns it or the
    /// owner cannot be reached.
    pub async fn publish(&self, store: &dyn Store, req: &PublishRequest<'_>) -> Result<Published, StoreError> {
        if let Some(link) = self.owner(req.merchant) {
            match link.forward(req).await {
                Forwarded::Answered(result) => {
                    if result.is_ok() {
                        crate::metrics::PEER_PUBLISHES_FORWARDED.inc();
                    }
                    return result;
                }
                Forwarded::NotSent => {}
            }
        }
        store.event_publish(req).await
    }
}

/// Rendezvous hashing: the node with the highest score owns the merchant.
fn score(node: &str, merchant: MerchantId) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(merchant.0.to_be_bytes());
    h.finalize()[..8].try_into().expect("sized")
}

#[cfg(test)]
mod tests;
