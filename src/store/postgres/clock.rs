//! Times on PostgreSQL are the database's clock's, not a node's.
//!
//! The one idea to know: nodes' clocks disagree (by a minute, in the field), and a lease or a
//! due time written by one node is judged by the others, so every time the store writes or
//! compares is placed on the database's clock within the statement that uses it. A time a
//! node hands in (`now`, a lease's end, a retry's due time) is moved by how far the node's
//! clock is behind the database's, measured by that statement: the database's clock minus
//! the node's, read just before the statement is sent (with its connection held, so waiting
//! for the pool is not counted). A time handed back to the node (when to look again) is
//! moved back the same way. So a node's `now` is the database's present, and a caller that
//! passes a later `now` (a test) is still that far ahead of it.
//!
//! The measured offset is rounded to whole seconds: the moment between
//! reading the node's clock and the statement's start varies by a few milliseconds, and
//! unrounded it would move every time handed in by that much, so a payload due at `t` might
//! not be due to a claim at `t`. Nodes thus agree on every time to within a second,
//! whatever their clocks say.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::store::StoreResult;
use crate::time::{now_millis, Millis};

/// The database's clock in unix milliseconds, as SQL: `statement_timestamp()`, the same all
/// through a statement (and stable, so an index can be searched with it; for a claim, a
/// transaction of one statement, it is `now()`).
macro_rules! db_now {
    () => {
        "(floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint)"
    };
}

/// How far the database's clock is ahead of the node's (parameter `$clock`, the node's clock
/// read just before the statement), in whole seconds (see the module doc), as SQL.
macro_rules! db_offset {
    ($clock:literal) => {
        concat!(
            "(round((",
            $crate::store::postgres::clock::db_now!(),
            " - ",
            $clock,
            ") / 1000.0)::bigint * 1000)"
        )
    };
}

/// A node's time (parameter or column `$t`) on the database's clock, as SQL.
macro_rules! on_db_clock {
    ($t:literal, $clock:literal) => {
        concat!("(", $t, " + ", $crate::store::postgres::clock::db_offset!($clock), ")")
    };
}

pub(super) use {db_now, db_offset, on_db_clock};

/// A pooled connection, and the node's clock read once it is held (see the module doc).
pub(super) async fn clocked(pool: &PgPool) -> StoreResult<(PoolConnection<Postgres>, Millis)> {
    let conn = pool.acquire().await?;
    Ok((conn, now_millis()))
}
