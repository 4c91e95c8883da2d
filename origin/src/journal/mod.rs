//! Appending status changes to the edge's status journal (SPEC §10) from the `journal_outbox`.

pub mod client;
pub mod publisher;

pub use client::{JournalClient, JournalError};
pub use publisher::JournalPublisher;
