//! The nodes that take forwarded publishes (`cluster`), and the secret their links prove.
//! Times are the database's (`now()`), so nodes whose clocks disagree still agree on who is
//! live.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::{Peer, StoreResult};

/// Records `node` at `address` as seen now; returns every node seen within `fresh`, itself
/// included, ordered by name.
pub(super) async fn beat(pool: &PgPool, node: &str, address: &str, fresh: Duration) -> StoreResult<Vec<Peer>> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO peers (node, address, seen_at) VALUES ($1, $2, now()) \
         ON CONFLICT (node) DO UPDATE SET address = EXCLUDED.address, seen_at = EXCLUDED.seen_at",
    )
    .bind(node)
    .bind(address)
    .execute(&mut *tx)
    .await?;
    // Rows of nodes long gone (killed, never left) are dropped on the way.
    sqlx::query("DELETE FROM peers WHERE seen_at < now() - interval '1 day'")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT node, address FROM peers WHERE seen_at >= now() - make_interval(secs => $1) ORDER BY node",
    )
    .bind(fresh.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(node, address)| Peer { node, address }).collect())
}

/// Takes `node` out of the choice of owners (a node stopping).
pub(super) async fn leave(pool: &PgPool, node: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM peers WHERE node = $1")
        .bind(node)
        .execute(pool)
        .await?;
    Ok(())
}

/// The peer links' secret: `fresh` if none is stored yet (the first node to ask), else the
/// stored one.
pub(super) async fn secret(pool: &PgPool, fresh: [u8; 32]) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO peer_secret (secret) VALUES ($1) ON CONFLICT (id) DO NOTHING")
        .bind(&fresh[..])
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT secret FROM peer_secret")
        .fetch_one(pool)
        .await?)
}
