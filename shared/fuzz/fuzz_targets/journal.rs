//! The status journal's wire types and the edge's overlay: `AppendRequest` (what the origin
//! appends, `POST /internal/journal`), `Pull` (what isolates read), and `overlay_passport` /
//! `overlay_grant` / `overlay_org` / `supersedes` / `partner::overlay` on every change they
//! carry, and when each change may be dropped.
//!
//! Input: a JSON document, read both as an append and as a pull.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use vouch_core::delegation::Grant;
use vouch_core::journal::{
    frozen_etag, key_withdrawal_key, org_key, overlay_etag, overlay_grant, overlay_org,
    overlay_passport, supersedes, withdraws_key, AppendRequest, Change, Pull, EXPIRY_MARGIN_MS,
};
use vouch_core::{kv, Timestamp};
use vouch_core_fuzz::{agent, grant_id, seed_view};

fuzz_target!(|data: &[u8]| {
    if let Ok(append) = serde_json::from_slice::<AppendRequest>(data) {
        // The journal stores each change as JSON and hands it back in pulls: it must read back.
        round_trips(&append);
        for change in &append.changes {
            round_trips(change);
            check_change(change);
        }
        for (a, b) in append.changes.iter().zip(append.changes.iter().skip(1)) {
            // At most one of two changes replaces the other, and neither replaces itself.
            assert!(!(supersedes(a, Some(b)) && supersedes(b, Some(a))));
            assert!(!supersedes(a, Some(a)));
        }
    }
    if let Ok(pull) = serde_json::from_slice::<Pull>(data) {
        round_trips(&pull);
        for entry in &pull.entries {
            check_change(&entry.change);
        }
    }
});

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&text).expect("reads back what it wrote");
    assert_eq!(&back, value, "{text}");
}

/// One change against the KV views it may overlay.
fn check_change(change: &Change) {
    assert!(supersedes(change, None));
    match change {
        Change::Agent {
            agent_id, version, ..
        } => {
            assert_eq!(change.key(), kv::passport_key(agent_id));
            assert_eq!(change.version(), *version);
            // The same agent in KV: an older view is overlaid, a view as new or newer is not.
            let mut kv_view = seed_view();
            kv_view.agent_id = agent_id.clone();
            for kv_version in [
                version.saturating_sub(1),
                *version,
                version.saturating_add(1),
            ] {
                kv_view.version = kv_version;
                match overlay_passport(&kv_view, change) {
                    Some(seen) => {
                        assert!(kv_version < *version);
                        assert_eq!(seen.version, *version);
                        assert_eq!(&seen.agent_id, agent_id);
                        // Only the status and its timestamps come from the journal.
                        let mut rest = seen.clone();
                        rest.status = kv_view.status;
                        rest.status_reason = kv_view.status_reason.clone();
                        rest.suspended_at = kv_view.suspended_at;
                        rest.revoked_at = kv_view.revoked_at;
                        rest.tokens_not_before = kv_view.tokens_not_before;
                        rest.updated_at = kv_view.updated_at;
                        rest.version = kv_view.version;
                        assert_eq!(rest, kv_view);
                        assert_ne!(overlay_etag(seen.version, kv_version), kv_view.etag());
                        let _ = seen.verify_answer();
                    }
                    None => assert!(kv_version >= *version),
                }
            }
            // Another agent's view is never touched.
            let mut other = seed_view();
            other.agent_id = if *agent_id == agent(1) {
                agent(2)
            } else {
                agent(1)
            };
            other.version = i64::MIN;
            assert!(overlay_passport(&other, change).is_none());
            assert!(overlay_grant(&grant(grant_id(0), false), change).is_none());
            assert!(overlay_org(&seed_view(), change).is_none());
            assert_eq!(change.droppable_after_ms(), None, "a status never expires");
        }
        Change::DelegationRevoked { delegation_id, .. } => {
            assert_eq!(change.key(), vouch_core::delegation::kv_key(delegation_id));
            assert!(overlay_passport(&seed_view(), change).is_none());
            // The named grant is revoked, once; no other grant is touched.
            let live = grant(delegation_id.clone(), false);
            let seen = overlay_grant(&live, change).expect("a live grant is revoked");
            assert!(seen.revoked);
            assert_eq!(
                Grant {
                    revoked: false,
                    ..seen
                },
                live
            );
            assert!(overlay_grant(&grant(delegation_id.clone(), true), change).is_none());
            let other = if *delegation_id == grant_id(1) {
                grant_id(2)
            } else {
                grant_id(1)
            };
            assert!(overlay_grant(&grant(other, false), change).is_none());
            // Settled by the grant's own version, and dropped once the grant has expired.
            let Change::DelegationRevoked {
                version,
                expires_at,
                ..
            } = change
            else {
                unreachable!()
            };
            assert_eq!(change.version(), *version);
            assert_eq!(
                change.droppable_after_ms(),
                Some(expires_at.unix_millis().saturating_add(EXPIRY_MARGIN_MS))
            );
        }
        Change::KeyWithdrawn {
            kid, refuse_until, ..
        } => {
            assert_eq!(change.key(), key_withdrawal_key(kid));
            assert!(withdraws_key(change, kid));
            assert!(!withdraws_key(change, &format!("{kid}x")));
            assert!(overlay_passport(&seed_view(), change).is_none());
            assert!(overlay_org(&seed_view(), change).is_none());
            assert_eq!(
                change.droppable_after_ms(),
                Some(refuse_until.unix_millis().saturating_add(EXPIRY_MARGIN_MS))
            );
        }
        Change::Org {
            org_id,
            frozen,
            reason,
            ..
        } => {
            assert_eq!(change.key(), org_key(org_id));
            assert!(overlay_passport(&seed_view(), change).is_none());
            assert!(overlay_grant(&grant(grant_id(0), false), change).is_none());
            let mut member = seed_view();
            member.org_id = org_id.clone();
            match overlay_org(&member, change) {
                // Frozen: an active member is suspended with the reason, nothing else changes.
                Some(seen) => {
                    assert!(*frozen);
                    assert_eq!(seen.status, vouch_core::Status::Suspended);
                    assert_eq!(&seen.status_reason, reason);
                    let mut rest = seen.clone();
                    rest.status = member.status;
                    rest.status_reason = member.status_reason.clone();
                    rest.suspended_at = member.suspended_at;
                    assert_eq!(rest, member);
                    assert_ne!(frozen_etag(&member.etag(), change.version()), member.etag());
                }
                None => assert!(!*frozen),
            }
            member.status = vouch_core::Status::Revoked;
            assert!(overlay_org(&member, change).is_none());
            assert_eq!(change.droppable_after_ms().is_none(), *frozen);
        }
        Change::PartnerKey {
            key_hash,
            partner_id,
            version,
            status,
            ..
        } => {
            assert_eq!(change.key(), vouch_core::partner::kv_key(key_hash));
            assert_eq!(change.version(), *version);
            assert!(overlay_passport(&seed_view(), change).is_none());
            assert!(overlay_grant(&grant(grant_id(0), false), change).is_none());
            assert!(overlay_org(&seed_view(), change).is_none());
            assert_eq!(change.droppable_after_ms(), None, "settled by version only");
            // Laid over KV's record of the key: the newer version wins, KV's when it is as new.
            use vouch_core::partner::{overlay, PartnerKey, PartnerStatus};
            let from_journal = overlay(None, Some(change)).expect("the journal finds the key");
            assert_eq!(
                (
                    &from_journal.partner_id,
                    from_journal.status,
                    from_journal.version
                ),
                (partner_id, *status, *version)
            );
            for kv_version in [version.saturating_sub(1), *version] {
                let kv = PartnerKey {
                    partner_id: partner_id.clone(),
                    status: PartnerStatus::Active,
                    version: kv_version,
                };
                let seen = overlay(Some(&kv), Some(change)).expect("known");
                let expect = if kv_version < *version {
                    *status
                } else {
                    kv.status
                };
                assert_eq!(seen.status, expect);
            }
        }
    }
}

fn grant(id: vouch_core::ids::DelegationId, revoked: bool) -> Grant {
    Grant {
        delegation_id: id,
        delegator: agent(0),
        delegatee: agent(1),
        scopes: Vec::new(),
        expires_at: Timestamp::from_unix_millis(1_795_000_300_000),
        max_depth: 1,
        revoked,
    }
}
