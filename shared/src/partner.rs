//! Partners (SPEC §14): whoever calls the edge's `/verify` routes for its own business, known by
//! a bearer key (`vk_partner_…`) the origin shows once and keeps only as a SHA-256.
//!
//! The origin publishes each key's hash to KV (`partner:{sha256}` → [`PartnerKey`]) and every
//! change of a key (issued, revoked) to the status journal ([`crate::journal::Change::PartnerKey`]),
//! so a revoked key is refused within the propagation bound and a new one works before KV has it.
//! The edge hashes the key it is shown, looks the hash up, and lays the journal over KV
//! ([`overlay`]). Nothing it stores or reads can be turned back into a key.
//!
//! A commit (spending against an agent's daily caps) needs a partner *and* an agent token whose
//! `aud` names that partner ([`check_commit_audience`]); idempotency keys are the partner's own
//! ([`scoped_idempotency_key`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::PartnerId;

/// What every partner key starts with.
pub const KEY_PREFIX: &str = "vk_partner_";

/// The stored (and published) form of a partner key: lowercase hex SHA-256 of the key, as the
/// origin stores every secret.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The KV key (and status-journal key) of a partner key's record: `partner:{sha256 hex}`.
pub fn kv_key(key_hash: &str) -> String {
    format!("partner:{key_hash}")
}

/// Whether a partner key may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PartnerStatus {
    Active,
    /// The partner was revoked, or the key was replaced by a rotation: refused for good.
    Revoked,
}

/// The KV value under `partner:{sha256}`: whose key it is and whether it works. `version`
/// orders the writes of one key (1 when issued, 2 once revoked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerKey {
    pub partner_id: PartnerId,
    pub status: PartnerStatus,
    pub version: i64,
}

/// The key record as the edge must see it: KV's (`None`: not in KV yet, or never issued) with
/// the status journal's newer change of the same key laid over it (`change`, a
/// [`crate::journal::Change::PartnerKey`]). `None`: the key is unknown.
pub fn overlay(
    kv: Option<&PartnerKey>,
    change: Option<&crate::journal::Change>,
) -> Option<PartnerKey> {
    let journal = match change {
        Some(crate::journal::Change::PartnerKey {
            partner_id,
            version,
            status,
            ..
        }) => Some(PartnerKey {
            partner_id: partner_id.clone(),
            status: *status,
            version: *version,
        }),
        _ => None,
    };
    match (kv, journal) {
        (Some(kv), Some(journal)) if journal.version > kv.version => Some(journal),
        (Some(kv), _) => Some(kv.clone()),
        (None, journal) => journal,
    }
}

/// The partner key an `Authorization` header value presents: `Bearer vk_partner_…` (the scheme
/// in any case). `Err` for anything else — a header that is there must be a partner key, never
/// silently ignored.
pub fn key_of_authorization(value: &str) -> Result<&str, &'static str> {
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or("send `Authorization: Bearer vk_partner_…`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(
            "send the partner key as a bearer token (`Authorization: Bearer vk_partner_…`)",
        );
    }
    let key = key.trim();
    if !key.starts_with(KEY_PREFIX) || key.len() <= KEY_PREFIX.len() {
        return Err("the bearer token is not a partner key (`vk_partner_…`)");
    }
    Ok(key)
}

/// The idempotency key a partner's commit is recorded under in the agent's ledger:
/// `{partner_id}/{key}`, so two partners using the same key never meet.
pub fn scoped_idempotency_key(partner: &PartnerId, key: &str) -> String {
    format!("{partner}/{key}")
}

/// The partner's own key from a [`scoped_idempotency_key`] (the text itself when it is not one).
pub fn unscoped_idempotency_key(scoped: &str) -> &str {
    match scoped.split_once('/') {
        Some((partner, key)) if PartnerId::parse(partner).is_ok() => key,
        _ => scoped,
    }
}

/// Checks that a token a partner commits with was issued for that partner: its `aud` names the
/// partner id. `Err` is the sentence to refuse it with.
pub fn check_commit_audience(partner: &PartnerId, aud: &[String]) -> Result<(), String> {
    if aud.iter().any(|a| a == partner.as_str()) {
        return Ok(());
    }
    Err(match aud {
        [] => format!(
            "the agent token has no `aud`; a commit needs a token issued for this partner \
             (POST /oauth/token … audience={partner})"
        ),
        _ => format!(
            "the agent token's `aud` does not name this partner; a commit needs a token issued \
             for it (POST /oauth/token … audience={partner})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Change;
    use crate::timestamp::Timestamp;

    fn pt(n: u8) -> PartnerId {
        PartnerId::parse(&format!("pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f{n:02x}")).expect("id")
    }

    /// A golden value: the edge and the origin must hash a key the same way, and a change of the
    /// hash would orphan every published key.
    #[test]
    fn key_hashes_are_sha256_hex() {
        assert_eq!(
            key_hash("vk_partner_test"),
            // printf %s vk_partner_test | sha256sum
            "633ab48e40fbf08bd1b1e5d5601d7c4862a39668f0efa87dd51d00d096e84b97"
        );
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(kv_key("ab"), "partner:ab");
    }

    #[test]
    fn authorization_headers_must_present_a_partner_key() {
        assert_eq!(
            key_of_authorization("Bearer vk_partner_x"),
            Ok("vk_partner_x")
        );
        assert_eq!(
            key_of_authorization("bearer  vk_partner_x "),
            Ok("vk_partner_x")
        );
        for bad in [
            "",
            "vk_partner_x",
            "Basic dXNlcjpwYXNz",
            "Bearer vk_agent_x",
            "Bearer vk_partner_",
            "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
        ] {
            assert!(key_of_authorization(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_journal_wins_when_newer_and_finds_keys_kv_lacks() {
        let active = PartnerKey {
            partner_id: pt(1),
            status: PartnerStatus::Active,
            version: 1,
        };
        let revoked = Change::PartnerKey {
            key_hash: "h".into(),
            partner_id: pt(1),
            version: 2,
            status: PartnerStatus::Revoked,
            changed_at: Timestamp::from_unix_millis(1),
        };
        assert_eq!(overlay(Some(&active), None), Some(active.clone()));
        assert_eq!(overlay(None, None), None);
        assert_eq!(
            overlay(Some(&active), Some(&revoked)).map(|k| k.status),
            Some(PartnerStatus::Revoked)
        );
        let issued = Change::PartnerKey {
            key_hash: "h".into(),
            partner_id: pt(1),
            version: 1,
            status: PartnerStatus::Active,
            changed_at: Timestamp::from_unix_millis(1),
        };
        assert_eq!(overlay(None, Some(&issued)), Some(active.clone()));
        // KV caught up past the journal: KV's record.
        let gone = PartnerKey {
            status: PartnerStatus::Revoked,
            version: 2,
            ..active.clone()
        };
        assert_eq!(overlay(Some(&gone), Some(&issued)), Some(gone));
        assert_eq!(revoked.key(), "partner:h");
        assert_eq!(revoked.droppable_after_ms(), None);
    }

    #[test]
    fn idempotency_keys_are_the_partners_own() {
        let a = scoped_idempotency_key(&pt(1), "order/42");
        let b = scoped_idempotency_key(&pt(2), "order/42");
        assert_ne!(a, b);
        assert_eq!(a, "pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f01/order/42");
        assert_eq!(unscoped_idempotency_key(&a), "order/42");
        assert_eq!(unscoped_idempotency_key("order/42"), "order/42");
    }

    #[test]
    fn commits_need_a_token_for_the_partner() {
        assert!(check_commit_audience(&pt(1), &[pt(1).to_string()]).is_ok());
        assert!(check_commit_audience(&pt(1), &["x".into(), pt(1).to_string()]).is_ok());
        let none = check_commit_audience(&pt(1), &[]).unwrap_err();
        assert!(none.contains("no `aud`"), "{none}");
        let other = check_commit_audience(&pt(1), &[pt(2).to_string()]).unwrap_err();
        assert!(other.contains("does not name"), "{other}");
    }
}
