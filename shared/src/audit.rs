//! The tamper-evident audit log: one hash chain per org (and one for the platform).
//!
//! Each event's hash covers its own fields and the previous event's hash; the chain's head
//! (last sequence number and hash) is kept beside it. Editing an event breaks its hash;
//! deleting one leaves a gap in the sequence; deleting the newest ones leaves the head
//! pointing past the end. [`verify_chain`] reports the first place where any of that happens.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::EventId;
use crate::timestamp::Timestamp;

/// The chain id of events that belong to no org (e.g. signing-key rotation).
pub const PLATFORM_CHAIN: &str = "platform";

/// The hash a chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub event_id: EventId,
    /// The org id, or `platform`.
    pub chain_id: String,
    /// 1, 2, 3… within the chain.
    pub seq: i64,
    /// Who did it: an admin token id (`tok_…`), `platform`, or an agent id.
    pub actor: String,
    /// What happened, e.g. `passport.created`, `passport.status_changed`.
    pub action: String,
    /// What it happened to: `org`, `token` or `agent`.
    pub target_type: String,
    pub target_id: String,
    /// The details. Stored and hashed as JSON text; served as JSON.
    #[serde(with = "json_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: String,
    pub created_at: Timestamp,
    pub prev_hash: String,
    pub hash: String,
}

/// Serves JSON text as the JSON it holds (and reads any JSON back as text).
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => value.serialize(s),
            Err(_) => s.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Value::deserialize(d)?.to_string())
    }
}

/// The fields of an event that its hash covers, before it has a place in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditDraft {
    pub event_id: EventId,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub data: String,
    pub created_at: Timestamp,
}

impl AuditDraft {
    /// Places the draft after `(prev_seq, prev_hash)` in `chain_id`, computing its hash.
    pub fn seal(self, chain_id: &str, prev_seq: i64, prev_hash: &str) -> AuditEvent {
        let mut event = AuditEvent {
            event_id: self.event_id,
            chain_id: chain_id.to_owned(),
            seq: prev_seq + 1,
            actor: self.actor,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            data: self.data,
            created_at: self.created_at,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        event.hash = event.expected_hash();
        event
    }
}

/// SHA-256 over the previous hash and every field, each length-prefixed so no two different
/// events can produce the same input.
#[allow(clippy::too_many_arguments)]
fn event_hash(
    prev_hash: &str,
    chain_id: &str,
    seq: i64,
    event_id: &EventId,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    data: &str,
    created_at: Timestamp,
) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    let created = created_at.unix_millis().to_string();
    for part in [
        prev_hash,
        chain_id,
        &seq,
        event_id.as_str(),
        actor,
        action,
        target_type,
        target_id,
        data,
        &created,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl AuditEvent {
    /// The hash this event should carry given its fields.
    pub fn expected_hash(&self) -> String {
        event_hash(
            &self.prev_hash,
            &self.chain_id,
            self.seq,
            &self.event_id,
            &self.actor,
            &self.action,
            &self.target_type,
            &self.target_id,
            &self.data,
            self.created_at,
        )
    }
}

/// Why a chain does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BreakKind {
    /// The event's fields do not match its hash: it was edited.
    HashMismatch,
    /// The event does not point at the hash of the one before it.
    PrevHashMismatch,
    /// A sequence number is missing: an event was deleted (or inserted out of order).
    MissingEvent,
    /// The chain ends before the recorded head, or the head's hash differs: the newest
    /// events were deleted or the head was altered.
    HeadMismatch,
}

/// Where verification stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainBreak {
    /// The sequence number at which the chain stops being trustworthy.
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
    /// Events that verified before the first break (all of them when `ok`).
    pub events_checked: i64,
    pub first_break: Option<ChainBreak>,
}

/// Checks events in ascending `seq` order against each other and against the recorded head
/// `(seq, hash)` (`(0, GENESIS_HASH)` for an empty chain).
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    head_seq: i64,
    head_hash: &str,
) -> ChainReport {
    let mut expected_seq = 1;
    let mut running = GENESIS_HASH.to_owned();
    let mut checked = 0;
    let broken = |seq, event_id, kind, checked| ChainReport {
        ok: false,
        events_checked: checked,
        first_break: Some(ChainBreak {
            seq,
            event_id,
            kind,
        }),
    };
    for event in events {
        if event.seq != expected_seq {
            return broken(expected_seq, None, BreakKind::MissingEvent, checked);
        }
        if event.prev_hash != running {
            return broken(
                event.seq,
                Some(event.event_id.clone()),
                BreakKind::PrevHashMismatch,
                checked,
            );
        }
        if event.expected_hash() != event.hash {
            return broken(
                event.seq,
                Some(event.event_id.clone()),
                BreakKind::HashMismatch,
                checked,
            );
        }
        running = event.hash.clone();
        expected_seq += 1;
        checked += 1;
    }
    if head_seq != expected_seq - 1 || head_hash != running {
        return broken(expected_seq, None, BreakKind::HeadMismatch, checked);
    }
    ChainReport {
        ok: true,
        events_checked: checked,
        first_break: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let (seq, prev) = events
                .last()
                .map(|e| (e.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS_HASH.to_owned()));
            let draft = AuditDraft {
                event_id: EventId::from_uuid(Uuid::now_v7()),
                actor: "tok_0192f2a4c3b87d9e8f1a2b3c4d5e6f73".into(),
                action: "passport.updated".into(),
                target_type: "agent".into(),
                target_id: "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70".into(),
                data: format!("{{\"n\":{i}}}"),
                created_at: Timestamp::from_unix_millis(1000 + i as i64),
            };
            events.push(draft.seal("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71", seq, &prev));
        }
        events
    }

    fn head(events: &[AuditEvent]) -> (i64, String) {
        events
            .last()
            .map(|e| (e.seq, e.hash.clone()))
            .unwrap_or((0, GENESIS_HASH.to_owned()))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        for n in [0, 1, 5] {
            let events = chain(n);
            let (s, h) = head(&events);
            let report = verify_chain(&events, s, &h);
            assert!(report.ok, "{report:?}");
            assert_eq!(report.events_checked, n as i64);
        }
    }

    #[test]
    fn editing_any_field_is_found_at_that_event() {
        let events = chain(5);
        let (s, h) = head(&events);
        let edits: [fn(&mut AuditEvent); 5] = [
            |e| e.data = "{\"n\":99}".into(),
            |e| e.actor = "platform".into(),
            |e| e.action = "passport.created".into(),
            |e| e.created_at = Timestamp::from_unix_millis(1),
            |e| e.target_id = "ap_00000000000000000000000000000000".into(),
        ];
        for edit in edits {
            let mut tampered = events.clone();
            edit(&mut tampered[2]);
            let report = verify_chain(&tampered, s, &h);
            let b = report.first_break.unwrap();
            assert_eq!((b.seq, b.kind), (3, BreakKind::HashMismatch));
            assert_eq!(report.events_checked, 2);
        }
    }

    #[test]
    fn rehashing_an_edited_event_breaks_the_next_link() {
        let mut events = chain(5);
        let (s, h) = head(&events);
        events[1].data = "{}".into();
        events[1].hash = events[1].expected_hash();
        let b = verify_chain(&events, s, &h).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (3, BreakKind::PrevHashMismatch));
    }

    #[test]
    fn deleting_an_event_leaves_a_gap() {
        let mut events = chain(5);
        let (s, h) = head(&events);
        events.remove(1);
        let b = verify_chain(&events, s, &h).first_break.unwrap();
        assert_eq!(
            (b.seq, b.kind, b.event_id),
            (2, BreakKind::MissingEvent, None)
        );
    }

    #[test]
    fn deleting_the_newest_events_misses_the_head() {
        let mut events = chain(5);
        let (s, h) = head(&events);
        events.truncate(3);
        let report = verify_chain(&events, s, &h);
        let b = report.first_break.unwrap();
        assert_eq!((b.seq, b.kind), (4, BreakKind::HeadMismatch));
        assert_eq!(report.events_checked, 3);
    }
}
