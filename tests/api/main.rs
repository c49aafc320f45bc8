//! Integration tests of the management API. Each test runs its own hookd server on port 0
//! with a database of its own: SQLite in a temporary directory, or a fresh PostgreSQL
//! database with `HOOKD_TEST_BACKEND=postgres` (see `helpers`).

mod helpers;

mod auth;
mod cli;
mod envelope;
mod failures;
mod persistence;
mod seed;
mod tenancy;
mod webhooks;
mod receiver;
mod process;
mod ledger;
mod crash;
mod multinode;
mod delivery_support;
mod delivery;
mod delivery_retry;
mod delivery_log;
mod delivery_faults;
mod delivery_publish;
