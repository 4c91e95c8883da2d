//! Sealing: the one order in which pending events enter a chain's tree.
//!
//! The origin records an event unsealed, in its change's transaction; one sealer per chain then
//! calls [`seal`] with the chain's stored state and a batch of pending events (oldest first).
//! It refuses to extend a tree that is not the one it last signed — so a rewrite of the stored
//! tree behind the origin's back stops the log instead of being signed over — then numbers the
//! events, appends their leaves and signs the new tree head.

use super::checkpoint::{self, CheckpointError, LogKey, TreeHead};
use super::tree::{self, Hash, Hashes, TreeError};
use super::{AuditDraft, AuditEvent};

/// Why a batch cannot be sealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The stored tree is not the one the last checkpoint signed: the database was changed
    /// behind the origin's back. The chain is not extended until someone looks.
    #[error(
        "the stored audit tree of {chain_id} does not match its last signed checkpoint: {why}"
    )]
    Tampered { chain_id: String, why: String },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What the store writes for a sealed batch, in one transaction.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// The events with their `seq` and leaf hash.
    pub events: Vec<AuditEvent>,
    /// New stored tree hashes `(index, hash)`.
    pub stored: Vec<(u64, Hash)>,
    pub head: TreeHead,
    /// The new checkpoint (a signed note) for `head`.
    pub checkpoint: String,
}

/// Seals `pending` (oldest first) onto chain `chain_id`, whose stored tree has `size` leaves,
/// its [`tree::frontier`] hashes in `frontier` and `last_checkpoint` as its newest checkpoint.
pub fn seal(
    key: &LogKey,
    chain_id: &str,
    size: u64,
    last_checkpoint: Option<&str>,
    frontier: &Hashes,
    pending: Vec<AuditDraft>,
) -> Result<Sealed, SealError> {
    let tampered = |why: String| SealError::Tampered {
        chain_id: chain_id.to_owned(),
        why,
    };
    match last_checkpoint {
        None if size == 0 => {}
        None => return Err(tampered(format!("{size} leaves and no checkpoint"))),
        Some(note) => {
            let head = checkpoint::open(note, &key.verifier_key(), chain_id)
                .map_err(|e| tampered(format!("the stored checkpoint does not open: {e}")))?;
            if head.size != size {
                return Err(tampered(format!(
                    "the checkpoint is for {} leaves, the tree has {size}",
                    head.size
                )));
            }
            let root = tree::root(size, frontier)
                .map_err(|e| tampered(format!("the stored tree is incomplete: {e}")))?;
            if root != head.root {
                return Err(tampered("the stored tree hashes to another root".into()));
            }
        }
    }
    let first = i64::try_from(size).map_err(|_| TreeError::OutOfRange("the tree is too large"))?;
    let events: Vec<AuditEvent> = pending
        .into_iter()
        .zip(1..)
        .map(|(draft, offset)| draft.seal(first + offset))
        .collect();
    let leaves: Vec<Hash> = events.iter().map(AuditEvent::expected_leaf_hash).collect();
    let appended = tree::append(size, frontier, &leaves)?;
    let head = TreeHead {
        size: appended.size,
        root: appended.root,
    };
    let checkpoint = key.sign(chain_id, &head)?;
    Ok(Sealed {
        events,
        stored: appended.stored,
        head,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{chain, ORG};
    use crate::audit::verify_log;

    fn key() -> LogKey {
        LogKey::from_seed("origin.test/audit", &[3; 32]).unwrap()
    }

    fn drafts(n: usize) -> Vec<AuditDraft> {
        chain(n)
            .into_iter()
            .map(|e| AuditDraft {
                event_id: e.event_id,
                chain_id: e.chain_id,
                actor: e.actor,
                action: e.action,
                target_type: e.target_type,
                target_id: e.target_id,
                data: e.data,
                created_at: e.created_at,
            })
            .collect()
    }

    /// A stored chain: every stored hash, and the newest checkpoint.
    #[derive(Default)]
    struct Stored {
        hashes: Hashes,
        size: u64,
        checkpoint: Option<String>,
        events: Vec<AuditEvent>,
    }

    impl Stored {
        fn seal(&mut self, batch: Vec<AuditDraft>) -> Result<Sealed, SealError> {
            let front = Hashes::new(
                tree::frontier(self.size)
                    .into_iter()
                    .filter_map(|i| self.hashes.0.get(&i).map(|h| (i, *h))),
            );
            let sealed = seal(
                &key(),
                ORG,
                self.size,
                self.checkpoint.as_deref(),
                &front,
                batch,
            )?;
            self.hashes.0.extend(sealed.stored.iter().copied());
            self.size = sealed.head.size;
            self.checkpoint = Some(sealed.checkpoint.clone());
            self.events.extend(sealed.events.iter().cloned());
            Ok(sealed)
        }
    }

    #[test]
    fn batches_number_events_in_order_and_sign_each_head() {
        let all = drafts(7);
        let mut stored = Stored::default();
        let mut heads = Vec::new();
        for batch in [&all[..1], &all[1..4], &all[4..7]] {
            let sealed = stored.seal(batch.to_vec()).unwrap();
            let opened = checkpoint::open(&sealed.checkpoint, &key().verifier_key(), ORG).unwrap();
            assert_eq!(opened, sealed.head);
            heads.push(sealed.head);
        }
        let seqs: Vec<i64> = stored.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        let ids: Vec<_> = stored.events.iter().map(|e| e.event_id.clone()).collect();
        let want: Vec<_> = all.iter().map(|d| d.event_id.clone()).collect();
        assert_eq!(ids, want, "in the order given");
        let report = verify_log(ORG, &stored.events, &heads);
        assert!(report.ok, "{report:?}");
    }

    #[test]
    fn a_tampered_store_is_not_signed_over() {
        let all = drafts(6);
        let mut stored = Stored::default();
        stored.seal(all[..4].to_vec()).unwrap();
        // Stored hashes rewritten behind the sealer's back.
        let mut forged = Stored {
            hashes: stored.hashes.clone(),
            size: stored.size,
            checkpoint: stored.checkpoint.clone(),
            events: Vec::new(),
        };
        if let Some(h) = forged.hashes.0.values_mut().next() {
            *h = tree::leaf_hash(b"forged");
        }
        let root_index = tree::frontier(4)[0];
        forged
            .hashes
            .0
            .insert(root_index, tree::leaf_hash(b"forged root"));
        assert!(matches!(
            forged.seal(all[4..].to_vec()),
            Err(SealError::Tampered { .. })
        ));
        // The checkpoint replaced by an older one, or removed, or a leaf count that does not
        // match it.
        let mut rolled_back = Stored {
            hashes: stored.hashes.clone(),
            size: stored.size,
            checkpoint: None,
            events: Vec::new(),
        };
        assert!(matches!(
            rolled_back.seal(all[4..].to_vec()),
            Err(SealError::Tampered { .. })
        ));
        rolled_back.checkpoint = stored.checkpoint.clone();
        rolled_back.size = 3;
        assert!(matches!(
            rolled_back.seal(all[4..].to_vec()),
            Err(SealError::Tampered { .. })
        ));
        // A checkpoint signed by another key.
        let other = LogKey::from_seed("origin.test/audit", &[4; 32]).unwrap();
        let head = checkpoint::open(
            stored.checkpoint.as_deref().unwrap(),
            &key().verifier_key(),
            ORG,
        )
        .unwrap();
        rolled_back.size = 4;
        rolled_back.checkpoint = Some(other.sign(ORG, &head).unwrap());
        assert!(matches!(
            rolled_back.seal(all[4..].to_vec()),
            Err(SealError::Tampered { .. })
        ));
        // The honest store goes on.
        stored.seal(all[4..].to_vec()).unwrap();
        assert_eq!(stored.size, 6);
    }
}
