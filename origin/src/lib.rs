//! The Vouch origin: the admin REST API (SPEC §4) over SQLite or PostgreSQL.
//! Handlers are thin: parse → authorize → core (`vouch-core`) → store; errors map to HTTP once.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod journal;
pub mod keys;
pub mod kv;
pub mod openapi;
pub mod rate_limit;
pub mod receipts;
pub mod routes;
pub mod secrets;
pub mod status_lists;
pub mod store;
pub mod telemetry;
pub mod webhooks;
