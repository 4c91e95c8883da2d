//! The status journal (SPEC §10): the few facts that must reach every edge within seconds,
//! beside the KV views that may take a minute or more.
//!
//! The origin appends one [`Change`] per key (`passport:{id}`, `delegation:{id}`), carrying the
//! version it describes; the journal keeps the newest change per key, numbers each stored change
//! with a sequence number (`seq`, only growing), and drops a key's entry once the origin says KV
//! has long caught up with that version ([`Settled`]). Each edge isolate pulls the
//! changes after the last `seq` it saw and lays them over what KV says: a change newer than the
//! KV view wins ([`overlay_passport`], [`overlay_grant`]).

use serde::{Deserialize, Serialize};

use crate::delegation::Grant;
use crate::edge_view::{EdgePassport, BODY_REVISION};
use crate::ids::{AgentId, DelegationId, OrgId, PartnerId};
use crate::partner::PartnerStatus;
use crate::passport::Status;
use crate::timestamp::Timestamp;

/// What changed, as the origin appends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An agent's status, as of passport `version`.
    Agent {
        agent_id: AgentId,
        version: i64,
        status: Status,
        #[serde(default)]
        status_reason: Option<String>,
        #[serde(default)]
        suspended_at: Option<Timestamp>,
        #[serde(default)]
        revoked_at: Option<Timestamp>,
        /// The agent's tokens issued before this are dead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_not_before: Option<Timestamp>,
        updated_at: Timestamp,
    },
    /// A delegation grant that is dead (deleted, or a party left `active`), as of grant
    /// `version` (the one that recorded the revocation, which KV's view of the grant carries).
    DelegationRevoked {
        delegation_id: DelegationId,
        version: i64,
        /// When the grant expires anyway: after that (and the verifiers' clock skew) no token
        /// can rest on it, so the journal may drop the entry whether or not KV has caught up.
        expires_at: Timestamp,
        revoked_at: Timestamp,
    },
    /// A token-signing key taken out of the JWKS at once (a leak): its tokens are refused until
    /// `refuse_until`, by when every token it signed has expired (the JWKS in KV, which may still
    /// list it for a while, then no longer matters).
    KeyWithdrawn {
        kid: String,
        withdrawn_at: Timestamp,
        refuse_until: Timestamp,
    },
    /// A whole org frozen (every active agent suspended in one call) or unfrozen, as of the
    /// org's freeze `version`. While frozen, every active agent of the org is refused as
    /// suspended with `reason`, whatever KV says; unfrozen, the entry only replaces the frozen
    /// one (the agents' reactivations carry their own entries) and expires soon.
    Org {
        org_id: OrgId,
        version: i64,
        frozen: bool,
        #[serde(default)]
        reason: Option<String>,
        changed_at: Timestamp,
    },
    /// A partner key issued or revoked (SPEC §14), as of the key's `version` (1 issued, 2
    /// revoked), keyed like its KV record by the key's SHA-256 ([`crate::partner::kv_key`]): a
    /// revoked key is refused within the bound, and a new one works before KV has it.
    PartnerKey {
        key_hash: String,
        partner_id: PartnerId,
        version: i64,
        status: PartnerStatus,
        changed_at: Timestamp,
    },
}

/// The journal key of an org's freeze: `org:{org_id}`.
pub fn org_key(org_id: &OrgId) -> String {
    format!("org:{org_id}")
}

/// The journal key of a withdrawn signing key: `signing_key:{kid}`.
pub fn key_withdrawal_key(kid: &str) -> String {
    format!("signing_key:{kid}")
}

impl Change {
    /// The key the change is about: the KV key of the same record.
    pub fn key(&self) -> String {
        match self {
            Change::Agent { agent_id, .. } => crate::kv::passport_key(agent_id),
            Change::DelegationRevoked { delegation_id, .. } => {
                crate::delegation::kv_key(delegation_id)
            }
            Change::KeyWithdrawn { kid, .. } => key_withdrawal_key(kid),
            Change::Org { org_id, .. } => org_key(org_id),
            Change::PartnerKey { key_hash, .. } => crate::partner::kv_key(key_hash),
        }
    }

    /// The version of its record the change describes: the journal settles (drops) the entry
    /// once the origin says KV has long held this version or a newer one.
    pub fn version(&self) -> i64 {
        match self {
            Change::Agent { version, .. }
            | Change::DelegationRevoked { version, .. }
            | Change::Org { version, .. }
            | Change::PartnerKey { version, .. } => *version,
            // A withdrawal is final and is never settled: it expires.
            Change::KeyWithdrawn { .. } => 1,
        }
    }

    /// When the entry stops mattering whatever KV says (Unix ms), if it ever does: a revoked
    /// grant's entry once the grant has expired and every token resting on it is dead
    /// everywhere ([`EXPIRY_MARGIN_MS`] later). An agent's status never expires.
    pub fn droppable_after_ms(&self) -> Option<i64> {
        match self {
            // A key's status holds until KV has long caught up with it (settled by version).
            Change::Agent { .. } | Change::PartnerKey { .. } => None,
            Change::DelegationRevoked { expires_at, .. } => {
                Some(expires_at.unix_millis().saturating_add(EXPIRY_MARGIN_MS))
            }
            Change::KeyWithdrawn { refuse_until, .. } => {
                Some(refuse_until.unix_millis().saturating_add(EXPIRY_MARGIN_MS))
            }
            // A freeze holds until it is lifted; a lifted one only has to reach the isolates
            // that hold the freeze, or let the floor pass it.
            Change::Org { frozen: true, .. } => None,
            Change::Org { changed_at, .. } => {
                Some(changed_at.unix_millis().saturating_add(EXPIRY_MARGIN_MS))
            }
        }
    }
}

/// How long past a grant's expiry its revocation is kept: tokens resting on a grant expire with
/// it at the latest, and verifiers allow at most [`crate::token::MAX_SKEW_SECONDS`] of clock
/// difference; twice that leaves room for the journal's own clock.
pub const EXPIRY_MARGIN_MS: i64 = 2 * crate::token::MAX_SKEW_SECONDS as i64 * 1_000;

/// `POST /internal/journal`: changes to store, entries KV has long caught up with, and what the
/// origin knows of the journal.
///
/// A journal is born with a random `epoch` and *unseeded*: isolates refuse to answer from it
/// (`503`) until the origin has appended everything the journal must hold and says so with
/// `seed: true`. An append naming another epoch than the journal's is refused (`409` with the
/// journal's epoch), so an origin notices a journal that was reset (or replaced) and appends its
/// recent changes again before seeding it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// The journal epoch the origin appends to (`None`: it does not know one yet).
    #[serde(default)]
    pub epoch: Option<i64>,
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Entries KV has long caught up with: each key's entry may be dropped if its version is
    /// at most the one given.
    #[serde(default)]
    pub settled: Vec<Settled>,
    /// Everything the journal must hold has been appended: isolates may answer from it.
    #[serde(default)]
    pub seed: bool,
}

/// An entry KV has long caught up with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    pub key: String,
    pub version: i64,
}

/// The journal's answer to an append naming another epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochMismatch {
    pub epoch: i64,
}

/// The most changes one append may carry.
pub const APPEND_MAX: usize = 1_000;
/// The most entries one pull returns (the caller pulls again while `more`).
pub const PULL_MAX: usize = 10_000;

/// A stored change. The journal object itself hands out the change as the JSON text it stored
/// (`C` = a raw JSON value), so a pull costs it no parsing; everyone else reads a [`Change`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C = Change> {
    pub seq: i64,
    /// When the journal stored it.
    pub stored_at: Timestamp,
    pub change: C,
}

/// The journal's answer to an append: for each change, in order, where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    pub stored: Vec<Stored>,
    pub head: i64,
    pub epoch: i64,
    pub seeded: bool,
}

/// One appended change: the `seq` of the entry that now holds its key at `version` or newer,
/// and when that entry was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub key: String,
    pub version: i64,
    pub seq: i64,
    pub stored_at: Timestamp,
}

/// `entries since N`: what an isolate pulls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pull<C = Change> {
    /// Entries with `seq` above the one asked for, in `seq` order.
    pub entries: Vec<Entry<C>>,
    /// The highest `seq` the journal has given out.
    pub head: i64,
    /// No entry below this `seq` is left (the lowest one held, or `head + 1`): an isolate may
    /// forget what it holds below it, KV has long caught up with those.
    pub floor: i64,
    /// More entries follow `entries`; pull again from the last one.
    pub more: bool,
    /// The journal's identity: a different epoch is a different journal (pull it from 0).
    pub epoch: i64,
    /// Whether the origin has seeded this journal; an unseeded one must not be answered from.
    pub seeded: bool,
}

/// Whether an append of `incoming` must replace the stored `current` of the same key.
pub fn supersedes(incoming: &Change, current: Option<&Change>) -> bool {
    current.is_none_or(|c| incoming.version() > c.version())
}

/// The passport as the edge must see it: `kv` with the journal's newer status laid over it,
/// or `None` when the journal has nothing newer than KV. The result carries the journal's
/// version, so a decision says which version it used.
pub fn overlay_passport(kv: &EdgePassport, change: &Change) -> Option<EdgePassport> {
    let Change::Agent {
        agent_id,
        version,
        status,
        status_reason,
        suspended_at,
        revoked_at,
        tokens_not_before,
        updated_at,
    } = change
    else {
        return None;
    };
    if *agent_id != kv.agent_id || *version <= kv.version {
        return None;
    }
    let mut view = kv.clone();
    view.status = *status;
    view.status_reason = status_reason.clone();
    view.suspended_at = *suspended_at;
    view.revoked_at = *revoked_at;
    view.tokens_not_before = *tokens_not_before;
    view.updated_at = *updated_at;
    view.version = *version;
    Some(view)
}

/// The ETag of a view the journal changed: it names both versions, since the rest of the body
/// is the KV view's (a later KV view of the same version may differ in other fields).
pub fn overlay_etag(journal_version: i64, kv_version: i64) -> String {
    format!("\"passport-r{BODY_REVISION}-v{journal_version}-k{kv_version}\"")
}

/// The grant as the edge must see it: revoked when the journal says so.
pub fn overlay_grant(kv: &Grant, change: &Change) -> Option<Grant> {
    match change {
        Change::DelegationRevoked { delegation_id, .. }
            if *delegation_id == kv.delegation_id && !kv.revoked =>
        {
            let mut grant = kv.clone();
            grant.revoked = true;
            Some(grant)
        }
        _ => None,
    }
}

/// The passport as the edge must see it while its org is frozen (`change` a frozen
/// [`Change::Org`] of its org): an active agent is suspended with the freeze's reason. `None`
/// when the change does not apply (unfrozen, another org, or an agent that is not active).
pub fn overlay_org(view: &EdgePassport, change: &Change) -> Option<EdgePassport> {
    let Change::Org {
        org_id,
        frozen: true,
        reason,
        changed_at,
        ..
    } = change
    else {
        return None;
    };
    if *org_id != view.org_id || view.status != Status::Active {
        return None;
    }
    let mut frozen = view.clone();
    frozen.status = Status::Suspended;
    frozen.status_reason = reason.clone();
    frozen.suspended_at = Some(*changed_at);
    Some(frozen)
}

/// The ETag of a view a frozen org changed: the view's own ETag with the freeze's version.
pub fn frozen_etag(etag: &str, org_version: i64) -> String {
    format!("{}-f{org_version}\"", etag.trim_end_matches('"'))
}

/// Whether `change` withdraws the signing key `kid`.
pub fn withdraws_key(change: &Change, kid: &str) -> bool {
    matches!(change, Change::KeyWithdrawn { kid: withdrawn, .. } if withdrawn == kid)
}

/// How the edge treats its copy of the journal, given how long ago it last refreshed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Refreshed within the refresh interval: use it.
    Fresh,
    /// Older than the refresh interval but inside the bound: use it, refresh in the background.
    Refresh,
    /// Older than the bound (or never refreshed): refresh before answering; fail closed if that fails.
    Stale,
}

/// Classifies a copy refreshed `age_ms` ago (`None`: never).
pub fn freshness(age_ms: Option<u64>, refresh_ms: u64, bound_ms: u64) -> Freshness {
    match age_ms {
        Some(age) if age < refresh_ms => Freshness::Fresh,
        Some(age) if age < bound_ms => Freshness::Refresh,
        _ => Freshness::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::tests::seed_passport;

    fn view(version: i64, status: Status) -> EdgePassport {
        let mut v = EdgePassport::from(&seed_passport());
        v.version = version;
        v.status = status;
        v
    }

    fn agent_change(agent_id: &AgentId, version: i64, status: Status) -> Change {
        Change::Agent {
            agent_id: agent_id.clone(),
            version,
            status,
            status_reason: Some("fraud review".into()),
            suspended_at: Some(Timestamp::from_unix_millis(5_000)),
            revoked_at: None,
            tokens_not_before: Some(Timestamp::from_unix_millis(4_000)),
            updated_at: Timestamp::from_unix_millis(5_000),
        }
    }

    #[test]
    fn a_newer_change_wins_over_kv_and_says_its_version() {
        let kv = view(3, Status::Active);
        let change = agent_change(&kv.agent_id, 4, Status::Suspended);
        let seen = overlay_passport(&kv, &change).expect("newer");
        assert_eq!(seen.status, Status::Suspended);
        assert_eq!(seen.version, 4);
        assert_eq!(seen.status_reason.as_deref(), Some("fraud review"));
        assert_eq!(
            seen.tokens_not_before,
            Some(Timestamp::from_unix_millis(4_000))
        );
        assert_eq!(seen.capabilities, kv.capabilities);
        let answer = seen.verify_answer();
        assert_eq!(answer.status, 403);
        assert_eq!(answer.body["error"], "agent_suspended");
        assert_eq!(answer.body["version"], 4);
    }

    #[test]
    fn kv_wins_when_it_has_caught_up() {
        let kv = view(4, Status::Suspended);
        assert!(overlay_passport(&kv, &agent_change(&kv.agent_id, 4, Status::Suspended)).is_none());
        let kv = view(5, Status::Active);
        assert!(overlay_passport(&kv, &agent_change(&kv.agent_id, 4, Status::Suspended)).is_none());
    }

    #[test]
    fn a_change_about_another_agent_is_ignored() {
        let kv = view(1, Status::Active);
        let other = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").expect("id");
        assert!(overlay_passport(&kv, &agent_change(&other, 9, Status::Revoked)).is_none());
    }

    #[test]
    fn reactivation_in_the_journal_wins_too() {
        let kv = view(4, Status::Suspended);
        let seen =
            overlay_passport(&kv, &agent_change(&kv.agent_id, 5, Status::Active)).expect("newer");
        assert_eq!(seen.verify_answer().status, 200);
    }

    #[test]
    fn overlay_etags_differ_from_kv_etags_and_from_each_other() {
        let kv = view(4, Status::Active);
        assert_ne!(overlay_etag(5, 4), kv.etag());
        assert_ne!(overlay_etag(5, 4), overlay_etag(5, 3));
        assert_ne!(overlay_etag(5, 4), view(5, Status::Active).etag());
    }

    #[test]
    fn revocations_carry_their_grants_version_and_expire_with_it() {
        let id = DelegationId::parse("dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").expect("id");
        let revoked = Change::DelegationRevoked {
            delegation_id: id.clone(),
            version: 2,
            expires_at: Timestamp::from_unix_millis(3_600_000),
            revoked_at: Timestamp::from_unix_millis(1),
        };
        // Settled like any other entry: by the version KV's view of the grant carries.
        assert_eq!(revoked.version(), 2);
        assert_eq!(revoked.droppable_after_ms(), Some(3_600_000 + 120_000));
        assert!(!supersedes(&revoked, Some(&revoked.clone())));
        let agent = agent_change(&view(1, Status::Active).agent_id, 7, Status::Active);
        assert!(supersedes(&agent, None));
        assert!(!supersedes(&agent, Some(&agent)));
        let newer = agent_change(&view(1, Status::Active).agent_id, 8, Status::Suspended);
        assert!(supersedes(&newer, Some(&agent)));
        assert!(!supersedes(&agent, Some(&newer)));
        assert_eq!(agent.droppable_after_ms(), None);
        assert_eq!(revoked.key(), format!("delegation:{}", id.as_str()));
    }

    #[test]
    fn key_withdrawals_name_their_key_and_expire_when_its_tokens_have() {
        let change = Change::KeyWithdrawn {
            kid: "k1".into(),
            withdrawn_at: Timestamp::from_unix_millis(1_000),
            refuse_until: Timestamp::from_unix_millis(366_000),
        };
        assert_eq!(change.key(), "signing_key:k1");
        assert!(withdraws_key(&change, "k1"));
        assert!(!withdraws_key(&change, "k2"));
        assert_eq!(
            change.droppable_after_ms(),
            Some(366_000 + EXPIRY_MARGIN_MS)
        );
        let text = serde_json::to_string(&change).expect("json");
        assert!(text.contains(r#""kind":"key_withdrawn""#), "{text}");
        assert_eq!(
            serde_json::from_str::<Change>(&text).expect("reads"),
            change
        );
    }

    #[test]
    fn a_frozen_org_suspends_its_active_agents_only() {
        let kv = view(3, Status::Active);
        let frozen = Change::Org {
            org_id: kv.org_id.clone(),
            version: 1,
            frozen: true,
            reason: Some("incident 42".into()),
            changed_at: Timestamp::from_unix_millis(9_000),
        };
        assert_eq!(frozen.key(), format!("org:{}", kv.org_id));
        assert_eq!(frozen.droppable_after_ms(), None);
        let seen = overlay_org(&kv, &frozen).expect("applies");
        assert_eq!(seen.status, Status::Suspended);
        assert_eq!(seen.status_reason.as_deref(), Some("incident 42"));
        assert_eq!(seen.version, 3, "the agent's own version");
        assert_eq!(seen.verify_answer().body["error"], "agent_suspended");
        // Not an agent already refused, not another org, not once lifted.
        assert!(overlay_org(&view(3, Status::Revoked), &frozen).is_none());
        let mut elsewhere = kv.clone();
        elsewhere.org_id = OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f99").expect("id");
        assert!(overlay_org(&elsewhere, &frozen).is_none());
        let lifted = Change::Org {
            org_id: kv.org_id.clone(),
            version: 2,
            frozen: false,
            reason: None,
            changed_at: Timestamp::from_unix_millis(10_000),
        };
        assert!(overlay_org(&kv, &lifted).is_none());
        assert_eq!(lifted.droppable_after_ms(), Some(10_000 + EXPIRY_MARGIN_MS));
        assert!(supersedes(&lifted, Some(&frozen)));
        assert_eq!(
            frozen_etag("\"passport-r1-v3\"", 7),
            "\"passport-r1-v3-f7\""
        );
        assert_ne!(frozen_etag(&kv.etag(), 1), kv.etag());
    }

    #[test]
    fn freshness_bounds() {
        assert_eq!(freshness(None, 1_000, 10_000), Freshness::Stale);
        assert_eq!(freshness(Some(0), 1_000, 10_000), Freshness::Fresh);
        assert_eq!(freshness(Some(999), 1_000, 10_000), Freshness::Fresh);
        assert_eq!(freshness(Some(1_000), 1_000, 10_000), Freshness::Refresh);
        assert_eq!(freshness(Some(9_999), 1_000, 10_000), Freshness::Refresh);
        assert_eq!(freshness(Some(10_000), 1_000, 10_000), Freshness::Stale);
    }

    #[test]
    fn append_requests_refuse_unknown_fields_and_read_both_kinds() {
        let text = r#"{"changes":[
            {"kind":"agent","agent_id":"ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","version":3,"status":"suspended",
             "status_reason":"x","suspended_at":"2026-11-22T00:00:00.000Z","updated_at":"2026-11-22T00:00:00.000Z"},
            {"kind":"delegation_revoked","delegation_id":"dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
             "version":2,"expires_at":"2026-11-22T01:00:00.000Z","revoked_at":"2026-11-22T00:00:00.000Z"}],
            "settled": [{"key": "passport:ap_x", "version": 2}]}"#;
        let req: AppendRequest = serde_json::from_str(text).expect("reads");
        assert_eq!(req.changes.len(), 2);
        assert_eq!(
            req.settled,
            vec![Settled {
                key: "passport:ap_x".into(),
                version: 2
            }]
        );
        assert!(!req.seed);
        assert_eq!(req.changes[1].version(), 2);
        // A revocation without its grant's version (the format that pinned the journal) is refused.
        let legacy = r#"{"epoch":1,"changes":[{"kind":"delegation_revoked",
            "delegation_id":"dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","revoked_at":"2026-11-22T00:00:00.000Z"}]}"#;
        assert!(serde_json::from_str::<AppendRequest>(legacy).is_err());
        assert!(serde_json::from_str::<AppendRequest>(r#"{"changes":[],"x":1}"#).is_err());
    }
}
