//! Integration tests of the management API. Each test runs its own hookd server on port 0
//! with its own SQLite database in a temporary directory (see `helpers`).

mod helpers;

mod auth;
mod cli;
mod envelope;
mod failures;
mod persistence;
mod seed;
mod tenancy;
mod webhooks;
