//! Delegation (SPEC §6): the rules for creating a grant, for exchanging tokens under one
//! (RFC 8693, at the origin), and for checking a delegated token's chain (at the edge).
//!
//! A **grant** lets `delegator` have `delegatee` act on its behalf for some of its capabilities
//! until `expires_at`. A token resting on grants carries them in `dlg` (oldest first) and the
//! actors in `act` (newest outermost); see [`crate::token`] for the claim layout. Hop `i`
//! (0-based, counted from the subject) is `dlg[i]`, from the `i`-th agent of the chain read
//! subject-first to the next one.
//!
//! **Depth.** `max_depth` bounds how far the chain may go *from the grant on*: the grant at hop
//! `i` of a chain of `n` actors is used by `n − i` hops (itself and every one after it), which
//! must be at most its `max_depth`. So `max_depth: 1` means "the delegatee may not delegate
//! further", `2` allows one more hop, and so on. Measured from the grant because a grant is not
//! tied to a position: the same grant can be the first hop of one chain and the third of
//! another. No chain is ever longer than [`MAX_DEPTH`] actors, whatever its grants say.
//!
//! **Liveness.** A grant is dead when it is revoked (deleted), when `now ≥ expires_at`, or when
//! either party is not `active` (SPEC §6).
//!
//! **At the origin**, a token exchange is: verify and validate both tokens
//! ([`crate::token::verify`]), then [`exchange_checked`], which runs [`check_links`] on the
//! subject token with its grants (its chain must still stand), [`exchange`], then
//! [`check_links`] on the new claims with every grant (this catches an *earlier* grant whose
//! `max_depth` the new hop would exceed; [`exchange`] sees only the new grant) — in that order,
//! written once. **At the edge**, [`check_chain`] on every token, beside
//! [`crate::policy::decide`] on the subject's passport.
//!
//! No agent may appear twice in a chain (no cycles, no self-delegation).

mod checked;

pub use checked::{
    agents_to_check, exchange_checked, ExchangeError, ExchangeFacts, ExchangeRequest,
};

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, DelegationId, OrgId};
use crate::passport::{Capability, CapabilityId, Passport, Status};
use crate::policy::{codes as policy_codes, Reason};
use crate::timestamp::Timestamp;
use crate::token::{self, codes as token_codes, Actor, Claims};

/// The lifetimes a grant may ask for, in seconds (SPEC §6).
pub const TTL_SECONDS: RangeInclusive<i64> = 60..=86_400;
/// The largest `max_depth` of a grant, and the most actors any token chain may have.
pub const MAX_DEPTH: u32 = 5;

/// Error and decision codes of delegation (SPEC §6, §11).
pub mod codes {
    /// A grant (or an exchange) asks for scopes the delegator does not have (`400`).
    pub const SCOPE_ESCALATION: &str = "scope_escalation";
    /// A grant in the chain is unknown, deleted, expired, or has a party that is not active.
    pub const DELEGATION_REVOKED: &str = "delegation_revoked";
    /// The capability is not in the token's scope, or not in some grant of its chain.
    pub const SCOPE_NOT_DELEGATED: &str = "scope_not_delegated";
    /// The chain is longer than a grant's `max_depth`, or than [`super::MAX_DEPTH`].
    pub const CHAIN_TOO_DEEP: &str = "chain_too_deep";
}

/// A delegation grant, as stored by the origin and published to KV (`delegation:{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub delegation_id: DelegationId,
    pub delegator: AgentId,
    pub delegatee: AgentId,
    /// Capability ids of the delegator that the delegatee may use on its behalf.
    pub scopes: Vec<CapabilityId>,
    /// The first instant at which the grant is dead.
    pub expires_at: Timestamp,
    /// How many hops the chain may take from this grant on, this one included (≥ 1).
    pub max_depth: u32,
    /// Deleted (`DELETE /v1/delegations/{id}`), or killed by a party leaving `active`.
    #[serde(default)]
    pub revoked: bool,
}

impl Grant {
    /// A new grant from checked parts ([`validate_new`], [`validate_parties`]): it expires
    /// `ttl_seconds` after `now`.
    pub fn issue(
        delegation_id: DelegationId,
        delegator: AgentId,
        delegatee: AgentId,
        scopes: Vec<CapabilityId>,
        now: Timestamp,
        ttl_seconds: i64,
        max_depth: u32,
    ) -> Grant {
        let expires_at = now
            .unix_millis()
            .saturating_add(ttl_seconds.saturating_mul(1000));
        Grant {
            delegation_id,
            delegator,
            delegatee,
            scopes,
            expires_at: Timestamp::from_unix_millis(expires_at),
            max_depth,
            revoked: false,
        }
    }

    /// Not revoked and not expired at `now` (the parties' statuses are the caller's to add).
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// Whether the grant delegates this capability id.
    pub fn allows(&self, capability: &str) -> bool {
        self.scopes.iter().any(|s| s.as_str() == capability)
    }

    /// Its KV key.
    pub fn kv_key(&self) -> String {
        kv_key(&self.delegation_id)
    }
}

/// The KV key of a grant: `delegation:{delegation_id}` (SPEC §9).
pub fn kv_key(id: &DelegationId) -> String {
    format!("delegation:{id}")
}

/// Why a grant or an exchange is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// A malformed or out-of-range field.
    #[error("{message}")]
    InvalidRequest { field: String, message: String },
    /// Scopes the delegator (or, in an exchange, the subject token and the grant) does not have.
    #[error("not delegable: {}", scopes.join(", "))]
    ScopeEscalation { scopes: Vec<String> },
    /// A party of a new grant is not `active`.
    #[error("agent {agent} is {status}, not active")]
    AgentNotActive { agent: AgentId, status: Status },
    /// The parties of a new grant belong to different orgs.
    #[error("agent {delegatee} belongs to another organization than the delegator; a delegation joins two agents of one organization")]
    CrossOrg { delegatee: AgentId },
    /// The grant does not connect the two tokens of an exchange, or the actor is already in
    /// the chain.
    #[error("{0}")]
    ChainMismatch(String),
    /// The grant of an exchange is revoked or expired (or expires within the second).
    #[error("delegation {0} is no longer valid")]
    DelegationRevoked(DelegationId),
    /// The subject token and the grant share no scope.
    #[error("the grant delegates none of the subject token's scopes")]
    ScopeNotDelegated,
    /// The new chain would be longer than [`MAX_DEPTH`] or than the grant allows.
    #[error("a chain of {depth} actors is longer than the {max} allowed")]
    ChainTooDeep { depth: usize, max: u32 },
    /// A token of the exchange has expired; `field` is `subject_token` or `actor_token`.
    #[error("the {field} has expired")]
    TokenExpired { field: &'static str },
}

impl DelegationError {
    fn invalid(field: &str, message: impl Into<String>) -> DelegationError {
        DelegationError::InvalidRequest {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A stable snake_case code (SPEC §2, §6, §11).
    pub fn code(&self) -> &'static str {
        match self {
            DelegationError::InvalidRequest { .. } => "invalid_request",
            DelegationError::ScopeEscalation { .. } => codes::SCOPE_ESCALATION,
            DelegationError::AgentNotActive { .. } => "agent_not_active",
            DelegationError::CrossOrg { .. } => "cross_org_delegation",
            DelegationError::ChainMismatch(_) => "delegation_mismatch",
            DelegationError::DelegationRevoked(_) => codes::DELEGATION_REVOKED,
            DelegationError::ScopeNotDelegated => codes::SCOPE_NOT_DELEGATED,
            DelegationError::ChainTooDeep { .. } => codes::CHAIN_TOO_DEEP,
            DelegationError::TokenExpired { .. } => token_codes::TOKEN_EXPIRED,
        }
    }

    /// The OAuth 2.0 error of the token endpoint (RFC 6749 §5.2, RFC 8693 §2.2.2) for a failed
    /// exchange: `invalid_request`, `invalid_scope` or `invalid_grant`.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            DelegationError::InvalidRequest { .. } => "invalid_request",
            DelegationError::ScopeEscalation { .. } | DelegationError::ScopeNotDelegated => {
                "invalid_scope"
            }
            _ => "invalid_grant",
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            DelegationError::InvalidRequest { field, .. } => Some(field),
            DelegationError::ScopeEscalation { .. } | DelegationError::ScopeNotDelegated => {
                Some("scope")
            }
            DelegationError::TokenExpired { field } => Some(field),
            DelegationError::CrossOrg { .. } => Some("delegatee"),
            _ => None,
        }
    }
}

/// Checks a new grant's terms (SPEC §6) and returns its scopes, deduplicated in request order:
/// at least one scope, each a capability id the delegator holds (else `scope_escalation`
/// naming every missing one), `ttl_seconds` in [`TTL_SECONDS`], `max_depth` in
/// `1..=`[`MAX_DEPTH`]. Field names are those of `POST /v1/delegations`.
pub fn validate_new(
    delegator_capabilities: &[Capability],
    scopes: &[String],
    ttl_seconds: i64,
    max_depth: i64,
) -> Result<Vec<CapabilityId>, DelegationError> {
    if scopes.is_empty() {
        return Err(DelegationError::invalid(
            "scopes",
            "`scopes` must name at least one capability",
        ));
    }
    let mut parsed: Vec<CapabilityId> = Vec::with_capacity(scopes.len());
    for (i, scope) in scopes.iter().enumerate() {
        let id = CapabilityId::parse(scope).map_err(|_| {
            DelegationError::invalid(
                &format!("scopes[{i}]"),
                format!("`{scope}` is not a capability id"),
            )
        })?;
        if !parsed.contains(&id) {
            parsed.push(id);
        }
    }
    let missing: Vec<String> = parsed
        .iter()
        .filter(|s| !delegator_capabilities.iter().any(|c| c.id == **s))
        .map(|s| s.as_str().to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(DelegationError::ScopeEscalation { scopes: missing });
    }
    if !TTL_SECONDS.contains(&ttl_seconds) {
        return Err(DelegationError::invalid(
            "ttl_seconds",
            format!(
                "`ttl_seconds` must be between {} and {}",
                TTL_SECONDS.start(),
                TTL_SECONDS.end()
            ),
        ));
    }
    if !(1..=i64::from(MAX_DEPTH)).contains(&max_depth) {
        return Err(DelegationError::invalid(
            "max_depth",
            format!("`max_depth` must be between 1 and {MAX_DEPTH}"),
        ));
    }
    Ok(parsed)
}

/// One party of a new grant, as its passport says.
#[derive(Clone, Copy, Debug)]
pub struct Party<'a> {
    pub agent: &'a AgentId,
    pub org: &'a OrgId,
    pub status: Status,
}

impl<'a> From<&'a Passport> for Party<'a> {
    fn from(passport: &'a Passport) -> Party<'a> {
        Party {
            agent: &passport.agent_id,
            org: &passport.org_id,
            status: passport.status,
        }
    }
}

/// Checks a new grant's parties: two different agents of one org, both `active`. A grant is
/// the delegator's org's record; a delegatee of another org could use it while its own org
/// could neither see it nor revoke it (`cross_org_delegation`).
pub fn validate_parties(delegator: Party<'_>, delegatee: Party<'_>) -> Result<(), DelegationError> {
    if delegator.agent == delegatee.agent {
        return Err(DelegationError::invalid(
            "delegatee",
            "an agent cannot delegate to itself",
        ));
    }
    if delegator.org != delegatee.org {
        return Err(DelegationError::CrossOrg {
            delegatee: delegatee.agent.clone(),
        });
    }
    for party in [delegator, delegatee] {
        if party.status != Status::Active {
            return Err(DelegationError::AgentNotActive {
                agent: party.agent.clone(),
                status: party.status,
            });
        }
    }
    Ok(())
}

fn reason(code: &str, message: String) -> Reason {
    let mut reason = Reason::new(code, message);
    reason.field = Some("token".to_owned());
    reason
}

/// The reason [`check_links`] gives for one agent of a chain with this status (`None`: no such
/// agent): `agent_not_found`, `oap.passport_suspended` when it is not `active`, nothing when it
/// is. A caller that also runs `policy::decide` on the subject's passport uses it to recognise
/// the chain's reason about the subject, which that decision already gives.
pub fn agent_status_reason(agent: &AgentId, status: Option<Status>) -> Option<Reason> {
    match status {
        None => Some(reason(
            policy_codes::AGENT_NOT_FOUND,
            format!("agent {agent} in the chain does not exist"),
        )),
        Some(Status::Active) => None,
        Some(other) => Some(reason(
            policy_codes::PASSPORT_SUSPENDED,
            format!("agent {agent} in the chain is {other}"),
        )),
    }
}

/// Everything about a token's chain except the capability: its shape, its agents and its
/// grants. `grants[i]` is the grant named by `claims.dlg[i]` as the caller found it (`None`:
/// unknown or deleted; missing entries count as `None`); `status` answers an agent's status
/// (`None`: no such agent). Every failure is listed, in this order:
///
/// * `chain_too_deep` when the chain has more than [`MAX_DEPTH`] actors;
/// * `token_invalid` when an agent appears twice, when `dlg` does not name one grant per actor,
///   or when a grant is not the one named or does not join the adjacent agents of its hop;
/// * per agent, outermost first: `agent_not_found`, or `oap.passport_suspended` when it is
///   not `active` ([`agent_status_reason`]; the subject included, which a caller that also
///   runs `policy::decide` on the subject's passport drops, as
///   [`crate::decision::merge_token_checks`] does);
/// * per grant, oldest first: `delegation_revoked` (unknown, revoked, expired, or a party not
///   active), and `chain_too_deep` when more hops follow it than its `max_depth`.
///
/// An empty list means the chain stands. An agent's own token has no grants to check.
pub fn check_links(
    claims: &Claims,
    grants: &[Option<Grant>],
    status: &dyn Fn(&AgentId) -> Option<Status>,
    now: Timestamp,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let chain = token::chain(claims);
    let hops: Vec<&AgentId> = chain.iter().rev().collect();
    let depth = chain.len() - 1;

    if depth > MAX_DEPTH as usize {
        reasons.push(reason(
            codes::CHAIN_TOO_DEEP,
            format!("the chain has {depth} actors; at most {MAX_DEPTH} are allowed"),
        ));
    }
    let mut seen = BTreeSet::new();
    for agent in &chain {
        if !seen.insert(agent) {
            reasons.push(reason(
                token_codes::TOKEN_INVALID,
                format!("agent {agent} appears more than once in the chain"),
            ));
        }
    }
    let counts_match = claims.dlg.len() == depth;
    if !counts_match {
        reasons.push(reason(
            token_codes::TOKEN_INVALID,
            format!(
                "the chain has {depth} actors but `dlg` names {} grants",
                claims.dlg.len()
            ),
        ));
    }

    for agent in &chain {
        reasons.extend(agent_status_reason(agent, status(agent)));
    }

    for (i, id) in claims.dlg.iter().enumerate() {
        let Some(grant) = grants.get(i).and_then(Option::as_ref) else {
            reasons.push(reason(
                codes::DELEGATION_REVOKED,
                format!("delegation {id} does not exist (deleted or never granted)"),
            ));
            continue;
        };
        if grant.delegation_id != *id {
            reasons.push(reason(
                token_codes::TOKEN_INVALID,
                format!(
                    "`dlg` names {id} but delegation {} was given for it",
                    grant.delegation_id
                ),
            ));
            continue;
        }
        if counts_match {
            let joins = hops.get(i).is_some_and(|from| grant.delegator == **from)
                && hops.get(i + 1).is_some_and(|to| grant.delegatee == **to);
            if !joins {
                reasons.push(reason(
                    token_codes::TOKEN_INVALID,
                    format!(
                        "delegation {id} is from {} to {}, which is not hop {} of the chain",
                        grant.delegator,
                        grant.delegatee,
                        i + 1
                    ),
                ));
            }
        }
        let inactive_party = [&grant.delegator, &grant.delegatee]
            .into_iter()
            .find(|agent| status(agent) != Some(Status::Active));
        if grant.revoked {
            reasons.push(reason(
                codes::DELEGATION_REVOKED,
                format!("delegation {id} has been revoked"),
            ));
        } else if now >= grant.expires_at {
            reasons.push(reason(
                codes::DELEGATION_REVOKED,
                format!("delegation {id} expired at {}", grant.expires_at),
            ));
        } else if let Some(agent) = inactive_party {
            reasons.push(reason(
                codes::DELEGATION_REVOKED,
                format!("delegation {id} ended when {agent} stopped being active"),
            ));
        }
        let used = depth.saturating_sub(i);
        if used > grant.max_depth as usize {
            reasons.push(reason(
                codes::CHAIN_TOO_DEEP,
                format!(
                    "delegation {id} allows {} hop(s) from it; the chain takes {used}",
                    grant.max_depth
                ),
            ));
        }
    }
    reasons
}

/// The edge's chain check for a verified, validated token asking to use `capability`:
/// [`check_links`], then `scope_not_delegated` when the capability is not in the token's
/// `scope` or not in the scopes of every (known, matching) grant of the chain. An empty list
/// means the chain allows the capability; the passport's limits are `policy::decide`'s.
pub fn check_chain(
    claims: &Claims,
    grants: &[Option<Grant>],
    status: &dyn Fn(&AgentId) -> Option<Status>,
    capability: &str,
    now: Timestamp,
) -> Vec<Reason> {
    let mut reasons = check_links(claims, grants, status, now);
    if !claims.has_scope(capability) {
        reasons.push(reason(
            codes::SCOPE_NOT_DELEGATED,
            format!("the token's scope does not include `{capability}`"),
        ));
    }
    for (id, grant) in claims.dlg.iter().zip(grants) {
        if let Some(grant) = grant {
            if grant.delegation_id == *id && !grant.allows(capability) {
                reasons.push(reason(
                    codes::SCOPE_NOT_DELEGATED,
                    format!("delegation {id} does not delegate `{capability}`"),
                ));
            }
        }
    }
    reasons
}

/// RFC 8693 token exchange under `grant` (SPEC §5): the claims of a token whose `sub` stays the
/// subject's, whose `act` gains `actor.sub` as the new outermost actor, whose `dlg` gains the
/// grant, whose scope is `requested_scope` (or, without one, every scope of the subject token
/// that the grant delegates) and only ever narrows, and whose `exp` is at most
/// `min(now + default_ttl_seconds, grant expiry, subject exp)`. `iat = nbf = now`; `iss`,
/// `aud`, `org` and `ver` are the subject token's; `jti` is the caller's fresh id.
///
/// Refused: an actor token that is itself delegated, or from another issuer
/// (`invalid_request`); a grant that is not from the subject token's current actor to the
/// actor token's agent, or an actor already in the chain (`delegation_mismatch`); a revoked
/// or expired grant (`delegation_revoked`); a chain longer than [`MAX_DEPTH`]
/// (`chain_too_deep`); a requested scope beyond the subject token and the grant
/// (`scope_escalation`), an empty one (`invalid_request`) or nothing in common
/// (`scope_not_delegated`); an expired token (`token_expired`). The caller has verified
/// both tokens and checks the chains: use [`exchange_checked`], which does.
pub fn exchange(
    subject: &Claims,
    actor: &Claims,
    grant: &Grant,
    requested_scope: Option<&str>,
    now: Timestamp,
    default_ttl_seconds: i64,
    jti: &str,
) -> Result<Claims, DelegationError> {
    let now_s = now.unix_seconds();
    if actor.act.is_some() || !actor.dlg.is_empty() {
        return Err(DelegationError::invalid(
            "actor_token",
            "the actor token must be the delegatee's own token, not a delegated one",
        ));
    }
    if actor.iss != subject.iss {
        return Err(DelegationError::invalid(
            "actor_token",
            "the actor token comes from another issuer",
        ));
    }
    if default_ttl_seconds < 1 {
        return Err(DelegationError::invalid(
            "default_ttl_seconds",
            "a token lives at least one second",
        ));
    }
    if now_s >= subject.exp {
        return Err(DelegationError::TokenExpired {
            field: "subject_token",
        });
    }
    if now_s >= actor.exp {
        return Err(DelegationError::TokenExpired {
            field: "actor_token",
        });
    }
    let current = subject.current_actor();
    if grant.delegator != *current || grant.delegatee != actor.sub {
        return Err(DelegationError::ChainMismatch(format!(
            "delegation {} is from {} to {}, not from {current} to {}",
            grant.delegation_id, grant.delegator, grant.delegatee, actor.sub
        )));
    }
    if token::chain(subject).contains(&actor.sub) {
        return Err(DelegationError::ChainMismatch(format!(
            "agent {} is already in the chain",
            actor.sub
        )));
    }
    if !grant.is_live(now) {
        return Err(DelegationError::DelegationRevoked(
            grant.delegation_id.clone(),
        ));
    }
    let depth = subject.depth() + 1;
    if depth > MAX_DEPTH as usize || grant.max_depth < 1 {
        return Err(DelegationError::ChainTooDeep {
            depth,
            max: MAX_DEPTH.min(grant.max_depth),
        });
    }

    let mut available: Vec<&str> = Vec::new();
    for scope in subject.scopes() {
        if grant.allows(scope) && !available.contains(&scope) {
            available.push(scope);
        }
    }
    let scopes = match requested_scope {
        None if available.is_empty() => return Err(DelegationError::ScopeNotDelegated),
        None => available,
        Some(requested) => {
            let mut scopes: Vec<&str> = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            if scopes.is_empty() {
                return Err(DelegationError::invalid(
                    "scope",
                    "`scope` must name at least one capability",
                ));
            }
            let beyond: Vec<String> = scopes
                .iter()
                .filter(|s| !available.contains(s))
                .map(|s| (*s).to_owned())
                .collect();
            if !beyond.is_empty() {
                return Err(DelegationError::ScopeEscalation { scopes: beyond });
            }
            scopes
        }
    };

    let grant_end = grant.expires_at.unix_seconds();
    let exp = now_s
        .saturating_add(default_ttl_seconds)
        .min(grant_end)
        .min(subject.exp);
    if exp <= now_s {
        // The subject token is live (checked above), so the grant ends within this second.
        return Err(DelegationError::DelegationRevoked(
            grant.delegation_id.clone(),
        ));
    }

    let mut dlg = subject.dlg.clone();
    dlg.push(grant.delegation_id.clone());
    Ok(Claims {
        iss: subject.iss.clone(),
        sub: subject.sub.clone(),
        aud: subject.aud.clone(),
        iat: now_s,
        nbf: now_s,
        exp,
        jti: jti.to_owned(),
        org: subject.org.clone(),
        scope: token::join_scopes(&scopes),
        ver: subject.ver,
        act: Some(Actor::nest(actor.sub.clone(), subject.act.clone())),
        dlg,
        // The subject's place: a delegated token speaks for the same subject.
        status: subject.status.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::tests::test_key;
    use crate::jwk::{kid, JwkSet};
    use crate::token::tests::{agent, grant_id, own_token, ISS, NOW};
    use crate::token::{chain, Expectations};
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000)
    }

    fn caps(ids: &[&str]) -> Vec<Capability> {
        ids.iter()
            .map(|id| serde_json::from_value(json!({ "id": id })).unwrap())
            .collect()
    }

    fn cap_ids(ids: &[&str]) -> Vec<CapabilityId> {
        ids.iter()
            .map(|id| CapabilityId::parse(id).unwrap())
            .collect()
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A live grant `n` from agent `from` to agent `to`, for an hour from `NOW`.
    fn grant(n: u8, from: u8, to: u8, scopes: &[&str], max_depth: u32) -> Grant {
        Grant::issue(
            grant_id(n),
            agent(from),
            agent(to),
            cap_ids(scopes),
            at(NOW),
            3600,
            max_depth,
        )
    }

    fn all_active(_: &AgentId) -> Option<Status> {
        Some(Status::Active)
    }

    const SCOPE: &str = "payments.refund data.export";

    /// Subject 1 → 2 → 3 built by exchange, with its grants (both `max_depth` 2).
    fn two_hop_chain() -> (Claims, Vec<Option<Grant>>) {
        let g1 = grant(1, 1, 2, &["payments.refund", "data.export"], 2);
        let g2 = grant(2, 2, 3, &["payments.refund"], 2);
        let one = exchange(
            &own_token(agent(1), SCOPE),
            &own_token(agent(2), "x"),
            &g1,
            None,
            at(NOW),
            300,
            "j1",
        )
        .unwrap();
        let two = exchange(
            &one,
            &own_token(agent(3), "y"),
            &g2,
            None,
            at(NOW),
            300,
            "j2",
        )
        .unwrap();
        (two, vec![Some(g1), Some(g2)])
    }

    fn codes_of(reasons: &[Reason]) -> Vec<&str> {
        reasons.iter().map(|r| r.code.as_str()).collect()
    }

    // ---- creating grants ----------------------------------------------------------------

    #[test]
    fn new_grants_take_only_the_delegators_capabilities() {
        let held = caps(&["payments.refund", "data.export"]);
        assert_eq!(
            validate_new(&held, &strings(&["payments.refund"]), 3600, 2),
            Ok(cap_ids(&["payments.refund"]))
        );
        assert_eq!(
            validate_new(
                &held,
                &strings(&["data.export", "payments.refund", "data.export"]),
                60,
                1
            ),
            Ok(cap_ids(&["data.export", "payments.refund"])),
            "deduplicated, in order"
        );
        let err = validate_new(
            &held,
            &strings(&["payments.refund", "payments.payout", "admin.all"]),
            3600,
            2,
        )
        .unwrap_err();
        assert_eq!(err.code(), "scope_escalation");
        assert_eq!(
            err,
            DelegationError::ScopeEscalation {
                scopes: strings(&["payments.payout", "admin.all"])
            }
        );
        // A prefix or a parent of a held capability is not held.
        for not_held in ["payments", "payments.refund.all", "Payments.refund"] {
            assert!(validate_new(&held, &strings(&[not_held]), 3600, 2).is_err());
        }
        assert_eq!(
            validate_new(&[], &strings(&["payments.refund"]), 3600, 2)
                .unwrap_err()
                .code(),
            "scope_escalation"
        );
    }

    #[test]
    fn new_grants_need_well_formed_scopes() {
        let held = caps(&["payments.refund"]);
        let err = validate_new(&held, &[], 3600, 2).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_request", Some("scopes"))
        );
        let err =
            validate_new(&held, &strings(&["payments.refund", "NOT A CAP"]), 3600, 2).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_request", Some("scopes[1]"))
        );
    }

    #[test]
    fn new_grants_have_bounded_ttls() {
        let held = caps(&["a"]);
        let scopes = strings(&["a"]);
        for ok in [60, 61, 3600, 86_399, 86_400] {
            assert!(validate_new(&held, &scopes, ok, 1).is_ok(), "{ok}");
        }
        for bad in [i64::MIN, -1, 0, 59, 86_401, i64::MAX] {
            let err = validate_new(&held, &scopes, bad, 1).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("invalid_request", Some("ttl_seconds")),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_grants_have_bounded_depths() {
        let held = caps(&["a"]);
        let scopes = strings(&["a"]);
        for ok in 1..=5 {
            assert!(validate_new(&held, &scopes, 3600, ok).is_ok(), "{ok}");
        }
        for bad in [i64::MIN, -1, 0, 6, 100] {
            let err = validate_new(&held, &scopes, 3600, bad).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("invalid_request", Some("max_depth")),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_grants_join_two_active_agents_of_one_org() {
        fn party<'a>(agent: &'a AgentId, org: &'a OrgId, status: Status) -> Party<'a> {
            Party { agent, org, status }
        }
        let org = &OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap();
        let other_org = &OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f72").unwrap();
        let (a1, a2) = (&agent(1), &agent(2));
        let active = Status::Active;
        assert_eq!(
            validate_parties(party(a1, org, active), party(a2, org, active)),
            Ok(())
        );
        let err = validate_parties(party(a1, org, active), party(a1, org, active)).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_request", Some("delegatee"))
        );
        let err =
            validate_parties(party(a1, org, active), party(a2, other_org, active)).unwrap_err();
        assert_eq!(
            err,
            DelegationError::CrossOrg {
                delegatee: a2.clone()
            }
        );
        assert_eq!(
            (err.code(), err.field()),
            ("cross_org_delegation", Some("delegatee"))
        );
        for status in [Status::Draft, Status::Suspended, Status::Revoked] {
            assert_eq!(
                validate_parties(party(a1, org, status), party(a2, org, active)),
                Err(DelegationError::AgentNotActive {
                    agent: a1.clone(),
                    status
                })
            );
            assert_eq!(
                validate_parties(party(a1, org, active), party(a2, org, status))
                    .unwrap_err()
                    .code(),
                "agent_not_active"
            );
        }
    }

    #[test]
    fn grants_live_until_they_expire_or_are_revoked() {
        let g = grant(1, 1, 2, &["a"], 1);
        assert_eq!(g.expires_at, at(NOW + 3600));
        assert!(g.is_live(at(NOW)));
        assert!(g.is_live(Timestamp::from_unix_millis((NOW + 3600) * 1000 - 1)));
        assert!(!g.is_live(at(NOW + 3600)));
        let mut revoked = g.clone();
        revoked.revoked = true;
        assert!(!revoked.is_live(at(NOW)));
        assert!(g.allows("a") && !g.allows("b"));
        assert_eq!(
            g.kv_key(),
            "delegation:dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f01"
        );
        // The stored form round-trips; `revoked` defaults to false.
        let mut value = serde_json::to_value(&g).unwrap();
        assert_eq!(value["expires_at"], at(NOW + 3600).to_rfc3339());
        value.as_object_mut().unwrap().remove("revoked");
        assert_eq!(serde_json::from_value::<Grant>(value).unwrap(), g);
    }

    // ---- exchange -----------------------------------------------------------------------

    #[test]
    fn exchange_nests_the_actor_and_appends_the_grant() {
        let subject = own_token(agent(1), SCOPE);
        let g1 = grant(1, 1, 2, &["payments.refund", "data.export"], 2);
        let one = exchange(
            &subject,
            &own_token(agent(2), "z"),
            &g1,
            None,
            at(NOW + 5),
            300,
            "j1",
        )
        .unwrap();
        assert_eq!(one.sub, agent(1));
        assert_eq!(one.act, Some(Actor::nest(agent(2), None)));
        assert_eq!(one.dlg, [grant_id(1)]);
        assert_eq!(one.scope, SCOPE);
        assert_eq!((one.iat, one.nbf), (NOW + 5, NOW + 5));
        assert_eq!(one.exp, NOW + 300, "capped by the subject token");
        assert_eq!(one.jti, "j1");
        assert_eq!(
            (&one.iss, &one.aud, &one.org, one.ver),
            (&subject.iss, &subject.aud, &subject.org, subject.ver)
        );
        assert_eq!(chain(&one), [agent(2), agent(1)]);

        let g2 = grant(2, 2, 3, &["payments.refund"], 2);
        let two = exchange(
            &one,
            &own_token(agent(3), "z"),
            &g2,
            None,
            at(NOW + 6),
            300,
            "j2",
        )
        .unwrap();
        assert_eq!(two.sub, agent(1));
        assert_eq!(
            serde_json::to_value(&two.act).unwrap(),
            json!({ "sub": agent(3), "act": { "sub": agent(2) } })
        );
        assert_eq!(two.dlg, [grant_id(1), grant_id(2)]);
        assert_eq!(two.scope, "payments.refund");
        assert_eq!(chain(&two), [agent(3), agent(2), agent(1)]);
        assert!(check_links(&two, &[Some(g1), Some(g2)], &all_active, at(NOW + 6)).is_empty());
    }

    #[test]
    fn exchange_narrows_scopes() {
        let subject = own_token(agent(1), SCOPE);
        let actor = own_token(agent(2), "something.else");
        let g = grant(1, 1, 2, &["payments.refund", "data.export", "mail.send"], 1);
        let run = |scope: Option<&str>| exchange(&subject, &actor, &g, scope, at(NOW), 300, "j");
        // Without a request: what the subject token has and the grant delegates.
        assert_eq!(run(None).unwrap().scope, SCOPE);
        assert_eq!(run(Some("data.export")).unwrap().scope, "data.export");
        assert_eq!(
            run(Some("data.export  payments.refund data.export"))
                .unwrap()
                .scope,
            "data.export payments.refund"
        );
        // The grant has mail.send, the subject token does not.
        assert_eq!(
            run(Some("mail.send data.export")),
            Err(DelegationError::ScopeEscalation {
                scopes: strings(&["mail.send"])
            })
        );
        // The subject token has it, the grant does not.
        let narrow = grant(1, 1, 2, &["data.export"], 1);
        let err = exchange(
            &subject,
            &actor,
            &narrow,
            Some("payments.refund"),
            at(NOW),
            300,
            "j",
        )
        .unwrap_err();
        assert_eq!(
            (err.code(), err.oauth_error()),
            ("scope_escalation", "invalid_scope")
        );
        assert_eq!(
            exchange(&subject, &actor, &narrow, None, at(NOW), 300, "j")
                .unwrap()
                .scope,
            "data.export"
        );
        // Nothing in common.
        let other = grant(1, 1, 2, &["mail.send"], 1);
        let err = exchange(&subject, &actor, &other, None, at(NOW), 300, "j").unwrap_err();
        assert_eq!(
            (err.code(), err.oauth_error()),
            ("scope_not_delegated", "invalid_scope")
        );
        // An empty request.
        for empty in ["", "   "] {
            let err = run(Some(empty)).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("invalid_request", Some("scope"))
            );
        }
    }

    #[test]
    fn exchange_caps_the_lifetime() {
        let subject = own_token(agent(1), SCOPE); // exp NOW + 300
        let actor = own_token(agent(2), "x");
        let g = grant(1, 1, 2, &["payments.refund"], 1); // expires NOW + 3600
        let exp = |g: &Grant, now: i64, ttl: i64| {
            exchange(&subject, &actor, g, None, at(now), ttl, "j").map(|c| c.exp)
        };
        assert_eq!(exp(&g, NOW, 60), Ok(NOW + 60), "default ttl");
        assert_eq!(exp(&g, NOW, 3000), Ok(NOW + 300), "subject exp");
        let mut short = g.clone();
        short.expires_at = at(NOW + 100);
        assert_eq!(exp(&short, NOW, 3000), Ok(NOW + 100), "grant expiry");
        // A grant ending mid-second: the token ends at the whole second before.
        short.expires_at = Timestamp::from_unix_millis((NOW + 100) * 1000 + 999);
        assert_eq!(exp(&short, NOW, 3000), Ok(NOW + 100));
        // A grant ending within the current second gives no token.
        short.expires_at = Timestamp::from_unix_millis(NOW * 1000 + 500);
        assert_eq!(
            exp(&short, NOW, 3000).unwrap_err().code(),
            "delegation_revoked"
        );
        assert_eq!(exp(&g, NOW, 0).unwrap_err().code(), "invalid_request");
        assert_eq!(exp(&g, NOW, i64::MAX), Ok(NOW + 300), "no overflow");
    }

    #[test]
    fn exchange_needs_a_live_grant_joining_the_two_tokens() {
        let subject = own_token(agent(1), SCOPE);
        let actor = own_token(agent(2), "x");
        let g = grant(1, 1, 2, &["payments.refund"], 1);
        let run = |g: &Grant, now: i64| exchange(&subject, &actor, g, None, at(now), 300, "j");
        assert!(run(&g, NOW).is_ok());
        let mut revoked = g.clone();
        revoked.revoked = true;
        assert_eq!(
            run(&revoked, NOW),
            Err(DelegationError::DelegationRevoked(grant_id(1)))
        );
        let mut expired = g.clone();
        expired.expires_at = at(NOW);
        assert_eq!(run(&expired, NOW).unwrap_err().code(), "delegation_revoked");
        for wrong in [
            grant(1, 3, 2, &["payments.refund"], 1),
            grant(1, 1, 3, &["payments.refund"], 1),
            grant(1, 2, 1, &["payments.refund"], 1),
        ] {
            let err = run(&wrong, NOW).unwrap_err();
            assert_eq!(
                (err.code(), err.oauth_error()),
                ("delegation_mismatch", "invalid_grant")
            );
        }
        // On a delegated subject token, the delegator is its current actor, not its subject.
        let one = run(&g, NOW).unwrap();
        let from_subject = grant(2, 1, 3, &["payments.refund"], 1);
        let err = exchange(
            &one,
            &own_token(agent(3), "x"),
            &from_subject,
            None,
            at(NOW),
            300,
            "j",
        )
        .unwrap_err();
        assert_eq!(err.code(), "delegation_mismatch");
    }

    #[test]
    fn exchange_refuses_odd_tokens() {
        let subject = own_token(agent(1), SCOPE);
        let g = grant(1, 1, 2, &["payments.refund"], 2);
        let one = exchange(
            &subject,
            &own_token(agent(2), "x"),
            &g,
            None,
            at(NOW),
            300,
            "j",
        )
        .unwrap();
        // A delegated token is no actor token.
        let g3 = grant(3, 1, 1, &["payments.refund"], 1);
        let err = exchange(&subject, &one, &g3, None, at(NOW), 300, "j").unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_request", Some("actor_token"))
        );
        // Another issuer.
        let mut foreign = own_token(agent(2), "x");
        foreign.iss = "https://elsewhere.example".into();
        let err = exchange(&subject, &foreign, &g, None, at(NOW), 300, "j").unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_request", Some("actor_token"))
        );
        // Expired tokens.
        let err = exchange(
            &subject,
            &own_token(agent(2), "x"),
            &g,
            None,
            at(NOW + 300),
            300,
            "j",
        )
        .unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("token_expired", Some("subject_token"))
        );
        let mut old_actor = own_token(agent(2), "x");
        old_actor.exp = NOW;
        let err = exchange(&subject, &old_actor, &g, None, at(NOW), 300, "j").unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("token_expired", Some("actor_token"))
        );
        // Back to an agent already in the chain: 1 → 2 → 1.
        let back = grant(4, 2, 1, &["payments.refund"], 1);
        let err = exchange(
            &one,
            &own_token(agent(1), "x"),
            &back,
            None,
            at(NOW),
            300,
            "j",
        )
        .unwrap_err();
        assert_eq!(err.code(), "delegation_mismatch");
    }

    #[test]
    fn exchange_stops_at_the_maximum_depth() {
        let mut claims = own_token(agent(1), SCOPE);
        let mut grants = Vec::new();
        for n in 1..=5u8 {
            let g = grant(n, n, n + 1, &["payments.refund"], 5);
            claims = exchange(
                &claims,
                &own_token(agent(n + 1), "x"),
                &g,
                None,
                at(NOW),
                300,
                "j",
            )
            .unwrap();
            grants.push(Some(g));
        }
        assert_eq!(claims.depth(), 5);
        assert!(check_links(&claims, &grants, &all_active, at(NOW)).is_empty());
        let g6 = grant(6, 6, 7, &["payments.refund"], 5);
        assert_eq!(
            exchange(
                &claims,
                &own_token(agent(7), "x"),
                &g6,
                None,
                at(NOW),
                300,
                "j"
            ),
            Err(DelegationError::ChainTooDeep { depth: 6, max: 5 })
        );
    }

    #[test]
    fn the_origin_finds_an_earlier_grants_depth_with_check_links() {
        // Grant 1 allows one hop only; exchange sees grant 2 alone and succeeds, the chain
        // check the origin runs on the result refuses it.
        let g1 = grant(1, 1, 2, &["payments.refund"], 1);
        let g2 = grant(2, 2, 3, &["payments.refund"], 5);
        let one = exchange(
            &own_token(agent(1), SCOPE),
            &own_token(agent(2), "x"),
            &g1,
            None,
            at(NOW),
            300,
            "j",
        )
        .unwrap();
        let two = exchange(
            &one,
            &own_token(agent(3), "x"),
            &g2,
            None,
            at(NOW),
            300,
            "j",
        )
        .unwrap();
        let reasons = check_links(&two, &[Some(g1), Some(g2)], &all_active, at(NOW));
        assert_eq!(codes_of(&reasons), ["chain_too_deep"]);
        assert!(reasons[0].message.contains(grant_id(1).as_str()));
    }

    // ---- the edge's chain check ---------------------------------------------------------

    #[test]
    fn a_sound_chain_has_no_reasons() {
        let (claims, grants) = two_hop_chain();
        assert_eq!(chain(&claims), [agent(3), agent(2), agent(1)]);
        assert!(check_chain(
            &claims,
            &grants,
            &all_active,
            "payments.refund",
            at(NOW + 10)
        )
        .is_empty());
    }

    #[test]
    fn own_tokens_check_status_and_scope_only() {
        let own = own_token(agent(1), SCOPE);
        assert!(check_chain(&own, &[], &all_active, "data.export", at(NOW)).is_empty());
        let reasons = check_chain(&own, &[], &all_active, "mail.send", at(NOW));
        assert_eq!(codes_of(&reasons), ["scope_not_delegated"]);
        assert_eq!(reasons[0].field.as_deref(), Some("token"));
        let suspended = |_: &AgentId| Some(Status::Suspended);
        assert_eq!(
            codes_of(&check_chain(&own, &[], &suspended, "data.export", at(NOW))),
            ["oap.passport_suspended"]
        );
        assert_eq!(
            codes_of(&check_chain(&own, &[], &|_| None, "data.export", at(NOW))),
            ["agent_not_found"]
        );
    }

    #[test]
    fn the_capability_must_be_delegated_at_every_hop() {
        let (claims, grants) = two_hop_chain();
        // data.export: grant 2 does not delegate it (and exchange dropped it from the scope).
        let reasons = check_chain(&claims, &grants, &all_active, "data.export", at(NOW));
        assert_eq!(
            codes_of(&reasons),
            ["scope_not_delegated", "scope_not_delegated"]
        );
        // A token whose scope claims more than its grants delegate (forged before signing).
        let mut wide = claims.clone();
        wide.scope = SCOPE.to_owned();
        let reasons = check_chain(&wide, &grants, &all_active, "data.export", at(NOW));
        assert_eq!(codes_of(&reasons), ["scope_not_delegated"]);
        assert!(reasons[0].message.contains(grant_id(2).as_str()));
        // The first hop not delegating it.
        let mut g = grants.clone();
        g[0] = Some(grant(1, 1, 2, &["data.export"], 2));
        let reasons = check_chain(&claims, &g, &all_active, "payments.refund", at(NOW));
        assert_eq!(codes_of(&reasons), ["scope_not_delegated"]);
        assert!(reasons[0].message.contains(grant_id(1).as_str()));
    }

    #[test]
    fn dead_grants_are_revoked_delegations() {
        let (claims, grants) = two_hop_chain();
        let check = |grants: &[Option<Grant>], now: i64| {
            codes_of(&check_chain(
                &claims,
                grants,
                &all_active,
                "payments.refund",
                at(now),
            ))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        };
        // Unknown (deleted from KV, or never published).
        assert_eq!(
            check(&[grants[0].clone(), None], NOW),
            ["delegation_revoked"]
        );
        assert_eq!(
            check(&grants[..1], NOW),
            ["delegation_revoked"],
            "missing entries are unknown"
        );
        assert_eq!(
            check(&[], NOW),
            ["delegation_revoked", "delegation_revoked"]
        );
        // Revoked.
        let mut revoked = grants.clone();
        if let Some(g) = revoked[0].as_mut() {
            g.revoked = true;
        }
        assert_eq!(check(&revoked, NOW), ["delegation_revoked"]);
        // Expired: live one millisecond before, dead at the instant.
        assert!(check(&grants, NOW + 3599).is_empty());
        assert_eq!(
            check(&grants, NOW + 3600),
            ["delegation_revoked", "delegation_revoked"]
        );
    }

    #[test]
    fn every_agent_of_the_chain_must_be_active() {
        let (claims, grants) = two_hop_chain();
        for (who, status) in [
            (2u8, Status::Suspended),
            (3, Status::Revoked),
            (1, Status::Draft),
        ] {
            let lookup = |a: &AgentId| {
                Some(if *a == agent(who) {
                    status
                } else {
                    Status::Active
                })
            };
            let reasons = check_chain(&claims, &grants, &lookup, "payments.refund", at(NOW));
            // The agent, and every grant it is a party of (a grant dies with its parties).
            let grants_of = match who {
                2 => 2,
                _ => 1,
            };
            let mut expected = vec!["oap.passport_suspended"];
            expected.extend(std::iter::repeat_n("delegation_revoked", grants_of));
            assert_eq!(codes_of(&reasons), expected, "{who}");
            assert!(reasons[0].message.contains(agent(who).as_str()));
        }
        let unknown = |a: &AgentId| (*a != agent(3)).then_some(Status::Active);
        let reasons = check_chain(&claims, &grants, &unknown, "payments.refund", at(NOW));
        assert_eq!(
            codes_of(&reasons),
            ["agent_not_found", "delegation_revoked"]
        );
    }

    #[test]
    fn grants_bound_the_depth_from_their_hop_on() {
        let (claims, mut grants) = two_hop_chain();
        // Grant 2 is the last hop: max_depth 1 suffices.
        if let Some(g) = grants[1].as_mut() {
            g.max_depth = 1;
        }
        assert!(check_links(&claims, &grants, &all_active, at(NOW)).is_empty());
        // Grant 1 has two hops from it on.
        if let Some(g) = grants[0].as_mut() {
            g.max_depth = 1;
        }
        let reasons = check_links(&claims, &grants, &all_active, at(NOW));
        assert_eq!(codes_of(&reasons), ["chain_too_deep"]);
    }

    #[test]
    fn no_chain_is_longer_than_the_maximum() {
        let mut claims = own_token(agent(1), SCOPE);
        let mut grants = Vec::new();
        for n in 1..=6u8 {
            claims.act = Some(Actor::nest(agent(n + 1), claims.act.take()));
            claims.dlg.push(grant_id(n));
            grants.push(Some(grant(n, n, n + 1, &["payments.refund"], 100)));
        }
        let reasons = check_links(&claims, &grants, &all_active, at(NOW));
        assert_eq!(codes_of(&reasons), ["chain_too_deep"]);
    }

    #[test]
    fn inconsistent_chains_are_invalid_tokens() {
        let (claims, grants) = two_hop_chain();
        let invalid = |claims: &Claims, grants: &[Option<Grant>]| {
            let reasons = check_links(claims, grants, &all_active, at(NOW));
            assert!(codes_of(&reasons).contains(&"token_invalid"), "{reasons:?}");
            reasons
        };
        // Grants swapped: each answers for another hop than the one `dlg` says.
        invalid(&claims, &[grants[1].clone(), grants[0].clone()]);
        // `dlg` in the wrong order, grants looked up in that order: neither joins its hop.
        let mut reordered = claims.clone();
        reordered.dlg.reverse();
        let reasons = invalid(&reordered, &[grants[1].clone(), grants[0].clone()]);
        assert_eq!(codes_of(&reasons), ["token_invalid", "token_invalid"]);
        // A grant from the wrong delegator (3 delegating to 2's place).
        let mut wrong = grants.clone();
        wrong[0] = Some(grant(1, 3, 2, &["payments.refund"], 2));
        invalid(&claims, &wrong);
        // More or fewer grants than actors.
        let mut extra = claims.clone();
        extra.dlg.push(grant_id(9));
        invalid(&extra, &grants);
        let mut fewer = claims.clone();
        fewer.dlg.pop();
        invalid(&fewer, &grants);
        // `dlg` without `act`, and `act` without `dlg`.
        let mut no_act = claims.clone();
        no_act.act = None;
        invalid(&no_act, &grants);
        let mut no_dlg = claims.clone();
        no_dlg.dlg.clear();
        invalid(&no_dlg, &[]);
        // A cycle: 1 → 2 → 1 under two grants that do join their hops.
        let mut cycle = own_token(agent(1), SCOPE);
        cycle.act = Some(Actor::nest(agent(1), Some(Actor::nest(agent(2), None))));
        cycle.dlg = vec![grant_id(1), grant_id(2)];
        let cycle_grants = [
            Some(grant(1, 1, 2, &["payments.refund"], 2)),
            Some(grant(2, 2, 1, &["payments.refund"], 2)),
        ];
        let reasons = invalid(&cycle, &cycle_grants);
        assert_eq!(codes_of(&reasons), ["token_invalid"]);
    }

    #[test]
    fn a_denial_lists_every_failure() {
        let (claims, mut grants) = two_hop_chain();
        if let Some(g) = grants[0].as_mut() {
            g.revoked = true;
            g.max_depth = 1;
        }
        grants[1] = None;
        let lookup = |a: &AgentId| {
            Some(if *a == agent(3) {
                Status::Suspended
            } else {
                Status::Active
            })
        };
        let reasons = check_chain(&claims, &grants, &lookup, "data.export", at(NOW));
        assert_eq!(
            codes_of(&reasons),
            [
                "oap.passport_suspended",
                "delegation_revoked",
                "chain_too_deep",
                "delegation_revoked",
                "scope_not_delegated",
            ]
        );
        assert!(reasons.iter().all(|r| r.field.as_deref() == Some("token")));
    }

    #[test]
    fn end_to_end_sign_verify_check() {
        let (claims, grants) = two_hop_chain();
        let key = test_key(4);
        let set = JwkSet::from_keys([key.verifying_key()]);
        let token = claims.sign(&key, &kid(key.verifying_key()));
        let expect = Expectations {
            issuer: ISS,
            audience: Some("https://partner.example"),
            skew_seconds: 30,
            max_len: token::DEFAULT_MAX_LEN,
        };
        let (_, verified) = token::verify(&token, &|k| set.get(k), &expect, NOW + 1).unwrap();
        let statuses: BTreeMap<AgentId, Status> = [
            (agent(1), Status::Active),
            (agent(2), Status::Active),
            (agent(3), Status::Active),
        ]
        .into();
        let lookup = |a: &AgentId| statuses.get(a).copied();
        let found: Vec<Option<Grant>> = verified
            .dlg
            .iter()
            .map(|id| {
                grants
                    .iter()
                    .flatten()
                    .find(|g| g.delegation_id == *id)
                    .cloned()
            })
            .collect();
        assert!(check_chain(&verified, &found, &lookup, "payments.refund", at(NOW + 1)).is_empty());
    }

    #[test]
    fn error_codes() {
        let all = [
            DelegationError::invalid("x", "y"),
            DelegationError::ScopeEscalation { scopes: vec![] },
            DelegationError::AgentNotActive {
                agent: agent(1),
                status: Status::Draft,
            },
            DelegationError::CrossOrg {
                delegatee: agent(2),
            },
            DelegationError::ChainMismatch("x".into()),
            DelegationError::DelegationRevoked(grant_id(1)),
            DelegationError::ScopeNotDelegated,
            DelegationError::ChainTooDeep { depth: 6, max: 5 },
            DelegationError::TokenExpired {
                field: "subject_token",
            },
        ];
        let mut codes: Vec<&str> = all.iter().map(DelegationError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            assert!(
                ["invalid_request", "invalid_scope", "invalid_grant"].contains(&e.oauth_error())
            );
        }
    }

    proptest! {
        /// Whatever is asked, an exchanged token's scope is a subset of the subject token's
        /// scope and of the grant's, and its lifetime is within the grant's and the subject's.
        #[test]
        fn exchange_only_narrows(
            subject_scopes in proptest::sample::subsequence(vec!["a", "b", "c", "d", "e"], 0..=5),
            grant_scopes in proptest::sample::subsequence(vec!["a", "b", "c", "d", "e", "f"], 0..=6),
            requested in proptest::option::of(proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "c", "d", "e", "f", "g"]), 0..5)),
            ttl in 1i64..10_000,
            subject_life in 1i64..10_000,
            grant_life_ms in 1i64..10_000_000,
            now_ms in 0i64..1000,
        ) {
            let mut subject = own_token(agent(1), &subject_scopes.join(" "));
            subject.exp = NOW + subject_life;
            let mut g = grant(1, 1, 2, &grant_scopes, 1);
            g.expires_at = Timestamp::from_unix_millis(NOW * 1000 + grant_life_ms);
            let now = Timestamp::from_unix_millis(NOW * 1000 + now_ms);
            let requested = requested.map(|r| r.join(" "));
            if let Ok(new) = exchange(&subject, &own_token(agent(2), "x"), &g, requested.as_deref(), now, ttl, "j") {
                prop_assert!(new.scopes().count() > 0);
                for scope in new.scopes() {
                    prop_assert!(subject.has_scope(scope), "{} not in the subject's scope", scope);
                    prop_assert!(g.allows(scope), "{} not delegated", scope);
                    if let Some(r) = &requested {
                        prop_assert!(r.split(' ').any(|s| s == scope));
                    }
                }
                prop_assert!(new.exp > new.iat);
                prop_assert!(new.exp <= subject.exp);
                prop_assert!(new.exp * 1000 <= g.expires_at.unix_millis());
                prop_assert!(new.exp <= new.iat + ttl);
                prop_assert!(check_chain(&new, &[Some(g.clone())], &all_active, new.scopes().next().unwrap_or(""), now).is_empty());
            }
        }
    }
}
