//! Checking a chain's events against signed tree heads.
//!
//! [`verify_log`] recomputes every event's leaf from its fields, checks that the events are
//! numbered 1, 2, 3… and that the first is the chain's creation, builds the tree, and checks its
//! root at the size of each trusted head (a checkpoint whose signature the caller verified):
//! - an event edited in place (its stored leaf hash left as it was) → `hash_mismatch` at it;
//! - an event deleted → `missing_event` at the gap; the chain's first events deleted, or the
//!   whole chain wiped → `missing_genesis`;
//! - the newest events deleted → `truncated` (the head commits to more events than there are);
//! - history rewritten, hashes recomputed (a fork of the same size or longer) → `root_mismatch`:
//!   the events no longer produce the root the head was signed with.

use serde::{Deserialize, Serialize};

use super::checkpoint::TreeHead;
use super::tree::MemoryTree;
use super::{opens_chain, AuditEvent};
use crate::ids::EventId;

/// Why a chain does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BreakKind {
    /// The event's fields do not match its stored leaf hash: it was edited.
    HashMismatch,
    /// A sequence number is missing: an event was deleted (or one was inserted out of order).
    MissingEvent,
    /// The chain does not start with its creation event (or has no events at all).
    MissingGenesis,
    /// A signed tree head commits to more events than the chain holds: the newest were deleted.
    Truncated,
    /// The events do not produce the root a signed tree head commits to: the history was
    /// rewritten (a fork).
    RootMismatch,
    /// A newer tree head does not extend an older one (the consistency proof fails).
    Inconsistent,
    /// A checkpoint does not carry a valid signature by the log key: it was replaced.
    BadCheckpoint,
    /// The origin's stored tree hashes do not give the root its events give (proofs served from
    /// them would fail).
    TreeMismatch,
}

/// Where verification stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainBreak {
    /// The first sequence number that cannot be trusted (for a root that does not match: the
    /// size of the tree head it was checked against — somewhere at or before it).
    pub seq: i64,
    /// The stored event at that place, when there is one.
    pub event_id: Option<EventId>,
    pub kind: BreakKind,
}

/// The outcome of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    pub ok: bool,
    /// Events whose place and leaf verified before the first break (all of them when `ok`).
    pub events_checked: i64,
    /// The size of the tree the events build, and its root (base64).
    pub tree_size: u64,
    pub root_hash: String,
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Records a break found outside [`verify_log`] (the first one found wins).
    pub fn broken(&mut self, seq: i64, event_id: Option<EventId>, kind: BreakKind) {
        if self.first_break.is_none() {
            self.ok = false;
            self.first_break = Some(ChainBreak {
                seq,
                event_id,
                kind,
            });
        }
    }
}

/// Checks the events of `chain_id` (ascending `seq`) against `heads`, each a tree head whose
/// signature the caller checked (the last published checkpoint, the newest one…).
pub fn verify_log(chain_id: &str, events: &[AuditEvent], heads: &[TreeHead]) -> ChainReport {
    let mut report = ChainReport {
        ok: true,
        events_checked: 0,
        tree_size: 0,
        root_hash: String::new(),
        first_break: None,
    };
    let mut tree = MemoryTree::default();
    match events.first() {
        Some(first) if opens_chain(chain_id, first) => {}
        first => report.broken(
            1,
            first.map(|e| e.event_id.clone()),
            BreakKind::MissingGenesis,
        ),
    }
    for (i, event) in events.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if event.seq != expected_seq || event.chain_id != chain_id {
            report.broken(expected_seq, None, BreakKind::MissingEvent);
            break;
        }
        let leaf = event.expected_leaf_hash();
        if leaf.to_string() != event.leaf_hash {
            report.broken(
                event.seq,
                Some(event.event_id.clone()),
                BreakKind::HashMismatch,
            );
        }
        if tree.push(leaf).is_err() {
            report.broken(
                event.seq,
                Some(event.event_id.clone()),
                BreakKind::MissingEvent,
            );
            break;
        }
        if report.ok {
            report.events_checked += 1;
        }
    }
    report.tree_size = tree.size();
    report.root_hash = tree
        .root(tree.size())
        .map(|h| h.to_string())
        .unwrap_or_default();
    for head in heads {
        if head.size > tree.size() {
            let seq = i64::try_from(tree.size())
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            report.broken(seq, None, BreakKind::Truncated);
        } else if tree.root(head.size).ok() != Some(head.root) {
            let seq = i64::try_from(head.size).unwrap_or(i64::MAX);
            report.broken(seq, None, BreakKind::RootMismatch);
        }
    }
    if !report.ok {
        report.events_checked = report.events_checked.min(
            report
                .first_break
                .as_ref()
                .map_or(i64::MAX, |b| (b.seq - 1).max(0)),
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{chain, ORG};
    use crate::audit::tree;

    fn head_of(events: &[AuditEvent]) -> TreeHead {
        let mut t = MemoryTree::default();
        for e in events {
            t.push(e.expected_leaf_hash()).unwrap();
        }
        TreeHead {
            size: t.size(),
            root: t.root(t.size()).unwrap(),
        }
    }

    fn kind(report: &ChainReport) -> (i64, BreakKind) {
        let b = report.first_break.clone().unwrap();
        (b.seq, b.kind)
    }

    #[test]
    fn an_untouched_chain_verifies_against_its_heads() {
        let events = chain(5);
        let heads = [head_of(&events[..3]), head_of(&events)];
        let report = verify_log(ORG, &events, &heads);
        assert!(report.ok, "{report:?}");
        assert_eq!((report.events_checked, report.tree_size), (5, 5));
        assert_eq!(report.root_hash, heads[1].root.to_string());
    }

    #[test]
    fn an_edit_in_place_is_found_at_the_event() {
        let mut events = chain(5);
        let head = head_of(&events);
        events[2].data = "{\"forged\":true}".into();
        let report = verify_log(ORG, &events, &[head]);
        assert_eq!(kind(&report), (3, BreakKind::HashMismatch));
        assert_eq!(report.events_checked, 2);
    }

    #[test]
    fn a_rewrite_with_its_hash_recomputed_misses_the_signed_root() {
        let mut events = chain(5);
        let head = head_of(&events);
        events[2].data = "{\"forged\":true}".into();
        events[2].leaf_hash = events[2].expected_leaf_hash().to_string();
        // Consistent in itself…
        assert!(verify_log(ORG, &events, &[]).ok);
        // …but not with what was signed.
        assert_eq!(
            kind(&verify_log(ORG, &events, &[head])),
            (5, BreakKind::RootMismatch)
        );
    }

    #[test]
    fn a_fork_of_the_same_size_misses_the_root() {
        let events = chain(4);
        let head = head_of(&events);
        let mut fork = chain(4);
        fork[0] = events[0].clone();
        for e in &mut fork[1..] {
            e.data = "{\"other\":1}".into();
            e.leaf_hash = e.expected_leaf_hash().to_string();
        }
        assert_eq!(
            kind(&verify_log(ORG, &fork, &[head])),
            (4, BreakKind::RootMismatch)
        );
    }

    #[test]
    fn deletions_and_wipes() {
        let events = chain(5);
        let head = head_of(&events);
        let mut gap = events.clone();
        gap.remove(1);
        assert_eq!(
            kind(&verify_log(ORG, &gap, &[head])),
            (2, BreakKind::MissingEvent)
        );
        assert_eq!(
            kind(&verify_log(ORG, &events[..3], &[head])),
            (4, BreakKind::Truncated)
        );
        // A wiped chain, or one without its creation, does not verify even with no head at all.
        assert_eq!(
            kind(&verify_log(ORG, &[], &[])),
            (1, BreakKind::MissingGenesis)
        );
        assert_eq!(
            kind(&verify_log(ORG, &[], &[head])),
            (1, BreakKind::MissingGenesis)
        );
        let mut headless = chain(3);
        headless.remove(0);
        for (i, e) in headless.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
            e.leaf_hash = e.expected_leaf_hash().to_string();
        }
        assert_eq!(
            kind(&verify_log(ORG, &headless, &[])),
            (1, BreakKind::MissingGenesis)
        );
        // Another chain's events.
        assert_eq!(
            kind(&verify_log(
                "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f7f",
                &events,
                &[]
            )),
            (1, BreakKind::MissingGenesis)
        );
        assert_eq!(tree::EMPTY_ROOT, MemoryTree::default().root(0).unwrap());
    }
}
