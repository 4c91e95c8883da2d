//! Publishing the edge's views to Workers KV (SPEC §9) from the `kv_outbox`.

pub mod client;
pub mod publisher;

pub use client::{KvClient, KvTarget, KvWriteError};
pub use publisher::Publisher;
