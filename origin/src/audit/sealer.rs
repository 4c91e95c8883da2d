//! The sealer: seals pending audit events after commit, chain by chain, in batches.
//!
//! A change's transaction records its event unsealed; this loop (one per origin process) wakes
//! after commits (and lets [`GATHER`] pass so that one batch takes what commits meanwhile), or
//! every [`IDLE_POLL`] for other replicas' commits, and seals each chain with pending events. One sealer works on a chain at a time — the chain's row is locked while it
//! seals, and a sealer passes over a chain another one holds (Postgres `SKIP LOCKED`; SQLite's
//! one writer serializes them) — so with several replicas every event is sealed exactly once, in
//! the order it was recorded among those visible, and a sealer that dies mid-batch leaves its
//! batch pending (its transaction rolls back) for the next.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditLog, SEAL_BATCH};
use crate::error::Result;
use crate::store::{SealOutcome, Store};

/// How often to look for pending events when nothing wakes the sealer.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How long a woken sealer lets commits gather before it seals: one batch (one transaction, one
/// signature, one commit flush) for the events of a few milliseconds instead of one per event,
/// which otherwise doubles the database's work when writers come one at a time.
const GATHER: Duration = Duration::from_millis(10);
/// Chains looked at per pass.
const CHAINS_PER_PASS: u32 = 100;

pub struct Sealer {
    store: Arc<dyn Store>,
    log: Arc<AuditLog>,
}

impl Sealer {
    pub fn new(store: Arc<dyn Store>, log: Arc<AuditLog>) -> Self {
        Sealer { store, log }
    }

    /// Seals until `stopping` turns true.
    pub async fn run(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.pass().await {
                Ok(sealed) if sealed > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "audit sealer pass failed"),
            }
            if *stopping.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::timeout(IDLE_POLL, self.store.signals().audit.notified()) => {}
                _ = stopping.changed() => {}
            }
            tokio::time::sleep(GATHER).await;
        }
    }

    /// Seals what is pending now, passing over chains another sealer holds; returns how many
    /// events it sealed. A chain that cannot be sealed (its stored tree does not match its last
    /// checkpoint) is logged and left pending; the others go on.
    pub async fn pass(&self) -> Result<u64> {
        let mut sealed = 0;
        for chain in self.store.pending_chains(CHAINS_PER_PASS).await? {
            loop {
                match self
                    .store
                    .seal_chain(&chain, self.log.key(), SEAL_BATCH, false)
                    .await
                {
                    Ok(SealOutcome::Sealed { events, .. }) => {
                        sealed += events;
                        metrics::counter!("vouch_audit_events_sealed_total").increment(events);
                        metrics::histogram!("vouch_audit_seal_batch_events").record(events as f64);
                    }
                    Ok(SealOutcome::Idle | SealOutcome::Busy) => break,
                    Err(e) => {
                        tracing::error!(chain = %chain, error = ?e, "could not seal audit events");
                        break;
                    }
                }
            }
        }
        Ok(sealed)
    }
}
