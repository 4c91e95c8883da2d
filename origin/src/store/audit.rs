//! The audit log's storage: events recorded unsealed by every change, the sealer's batches, the
//! chains' trees and checkpoints, and the log-signing key (docs/api.md, "Audit log").

use async_trait::async_trait;
use vouch_core::audit::checkpoint::LogKey;
use vouch_core::audit::tree::Hashes;
use vouch_core::audit::AuditEvent;
use vouch_core::Timestamp;

use crate::error::Result;
use crate::store::{Page, PageRequest};

/// What one call of [`AuditStore::seal_chain`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealOutcome {
    /// This many events were sealed; the tree now has `tree_size` leaves.
    Sealed { events: u64, tree_size: u64 },
    /// Nothing was pending.
    Idle,
    /// Another sealer holds the chain (Postgres, background sealing only).
    Busy,
}

/// A chain's signed state.
#[derive(Clone, Debug)]
pub struct ChainHead {
    pub chain_id: String,
    pub tree_size: u64,
    /// Base64; `None` before the first seal.
    pub root_hash: Option<String>,
    /// The newest checkpoint (a signed note).
    pub checkpoint: Option<String>,
    pub signed_at: Option<Timestamp>,
    /// The last checkpoint the KV publisher wrote, and when.
    pub published: Option<(String, Timestamp)>,
    /// Events recorded but not sealed yet.
    pub pending: i64,
}

/// The log-signing key as stored: its name, verifier key and sealed seed.
#[derive(Clone, Debug)]
pub struct AuditKeyRow {
    pub name: String,
    pub verifier_key: String,
    /// Sealed with the master key, the name as associated data.
    pub private_key: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait AuditStore {
    /// Sealed events of a chain (of one target, if given), newest first.
    async fn list_events(
        &self,
        chain_id: &str,
        target_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>>;
    /// Every sealed event of a chain, oldest first.
    async fn chain_events(&self, chain_id: &str) -> Result<Vec<AuditEvent>>;
    /// A sealed or pending event: its chain, and the event once sealed.
    async fn audit_event(&self, event_id: &str) -> Result<Option<(String, Option<AuditEvent>)>>;
    /// Chains with pending events (at most `limit`).
    async fn pending_chains(&self, limit: u32) -> Result<Vec<String>>;
    /// Seals up to `limit` pending events of `chain_id`, oldest first, with `key` (see
    /// [`vouch_core::audit::seal`]). `wait`: wait for another sealer of the chain to finish
    /// instead of answering [`SealOutcome::Busy`].
    async fn seal_chain(
        &self,
        chain_id: &str,
        key: &LogKey,
        limit: u32,
        wait: bool,
    ) -> Result<SealOutcome>;
    async fn chain_head(&self, chain_id: &str) -> Result<Option<ChainHead>>;
    /// The chain's stored tree hashes at these indexes (those that exist).
    async fn tree_hashes(&self, chain_id: &str, indexes: &[u64]) -> Result<Hashes>;
    /// `(chain_id, tree_size, checkpoint)` of these chains' newest checkpoints.
    async fn checkpoints(&self, chain_ids: &[String]) -> Result<Vec<(String, u64, String)>>;
    /// Records that KV now holds `checkpoint` for `chain_id` (unless it holds a larger tree).
    async fn checkpoint_published(
        &self,
        chain_id: &str,
        tree_size: u64,
        checkpoint: &str,
        at: Timestamp,
    ) -> Result<()>;
    async fn audit_key(&self) -> Result<Option<AuditKeyRow>>;
    /// Stores the log key unless one exists or any chain already has a signed tree (a lost key
    /// is not replaced quietly). Returns whether it stored `row`.
    async fn create_audit_key(&self, row: &AuditKeyRow) -> Result<bool>;
}
