//! Integration tests of the management API. Each test runs its own hookd server on port 0
//! with a database of its own: SQLite in a temporary directory, or a fresh PostgreSQL
//! database with `HOOKD_TEST_BACKEND=postgres` (see `helpers`).

mod helpers;
#[path = "../common/skip.rs"]
mod skip;

mod auth;
mod catalog;
mod cli;
mod cli_database;
mod cli_provision;
mod clock_skew;
mod console;
mod console_support;
mod crash;
mod credentials;
mod delivery;
mod delivery_faults;
mod delivery_log;
mod delivery_publish;
mod delivery_retry;
mod delivery_support;
mod discover;
mod envelope;
mod failures;
mod filter_budget;
mod filters;
mod full_disk;
mod hardening_auth;
mod hardening_http;
mod hardening_proptest;
mod https;
mod ledger;
mod lifecycle;
mod lifecycle_nodes;
mod lifecycle_recover;
mod lifecycle_secrets;
mod limits_head;
mod metrics_ops;
mod multinode;
mod observability;
mod ops;
mod overload;
mod persistence;
mod pg_tls;
mod portal;
mod process;
mod provision;
mod provision_direct;
mod provision_proptest;
mod proxies;
mod receiver;
mod seed;
mod signatures;
mod soak;
mod steering_feedback;
mod steering_lanes;
mod steering_pacing;
mod tenancy;
mod traces;
mod traces_otlp;
mod webhooks;
