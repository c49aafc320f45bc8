//! hookd: a webhook delivery service with a JSON-RPC management API.
//!
//! The layers, outermost first: `cli` and `startup` wire things together, `server` holds
//! connections (cap, timeouts, shutdown), `rpc` speaks JSON-RPC and maps errors to codes,
//! `console` serves the web pages for people and `ingest` takes events in from brokers
//! (all three call into `app`),
//! `app` holds the operations, `domain` holds validated types, `store` persists them
//! (SQLite or PostgreSQL), `dispatch` delivers payloads, `cluster` forwards publishes
//! between PostgreSQL nodes.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod ingest;
pub mod metrics;
pub mod redact;
pub mod rpc;
pub mod sealing;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod wake;
