//! The OAP decision object (SPEC §13).

use serde::Serialize;

use super::request::{passport_id_of, AgentRef};
use super::PackEvaluation;
use crate::edge_view::EdgePassport;
use crate::ids::{AgentId, OrgId, PartnerId};
use crate::passport::AssuranceLevel;
use crate::policy::{codes, Reason};
use crate::timestamp::Timestamp;

/// What `POST /api/verify/policy/{pack_id}` answers: OAP's decision members and ours
/// (`passport_id`, `registry_agent_id`, `capability`, `passport_version`).
///
/// `kid` and `signature` (SPEC §12) are added by the signing of every decision
/// ([`crate::signing`]), over this object as serialized.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OapDecision {
    pub decision_id: String,
    pub policy_id: String,
    /// The agent as the request named it (`ap_…` or an OAP `passport_id`).
    pub agent_id: String,
    /// The OAP `passport_id` of the passport decided on (`null` when none was found).
    pub passport_id: Option<String>,
    /// The registry's own id of the agent.
    pub registry_agent_id: Option<AgentId>,
    /// The org that answers for the agent.
    pub owner_id: Option<OrgId>,
    pub assurance_level: Option<AssuranceLevel>,
    pub allow: bool,
    pub reasons: Vec<Reason>,
    /// The capability the pack decided.
    pub capability: Option<String>,
    pub created_at: Timestamp,
    /// How many seconds the caller may rely on this decision.
    pub expires_in: u32,
    /// The passport version decided on.
    pub passport_version: Option<i64>,
    /// The digest of the passport view decided on ([`EdgePassport::digest`]); `null` when none
    /// was found.
    pub passport_digest: Option<String>,
    /// The partner the decision was made for (SPEC §14), when the caller presented a partner
    /// key. Set by the edge once the decision is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<PartnerId>,
}

impl OapDecision {
    /// Wraps a pack's evaluation of `passport`.
    pub fn new(
        decision_id: String,
        policy_id: &str,
        asked: &AgentRef,
        passport: &EdgePassport,
        evaluation: PackEvaluation,
        now: Timestamp,
        expires_in: u32,
    ) -> OapDecision {
        OapDecision {
            decision_id,
            policy_id: policy_id.to_owned(),
            agent_id: asked_as(asked),
            passport_id: Some(
                passport
                    .oap_passport_id
                    .clone()
                    .unwrap_or_else(|| passport_id_of(&passport.agent_id)),
            ),
            registry_agent_id: Some(passport.agent_id.clone()),
            owner_id: Some(passport.org_id.clone()),
            assurance_level: Some(passport.assurance_level),
            allow: evaluation.allow,
            reasons: evaluation.reasons,
            capability: Some(evaluation.capability),
            created_at: now,
            expires_in,
            passport_version: Some(passport.version),
            passport_digest: None,
            partner_id: None,
        }
    }

    /// The denial for an agent no passport was found for.
    pub fn not_found(
        decision_id: String,
        policy_id: &str,
        asked: &AgentRef,
        now: Timestamp,
        expires_in: u32,
    ) -> OapDecision {
        OapDecision {
            decision_id,
            policy_id: policy_id.to_owned(),
            agent_id: asked_as(asked),
            passport_id: None,
            registry_agent_id: None,
            owner_id: None,
            assurance_level: None,
            allow: false,
            reasons: vec![Reason::new(codes::AGENT_NOT_FOUND, "no such agent")],
            capability: None,
            created_at: now,
            expires_in,
            passport_version: None,
            passport_digest: None,
            partner_id: None,
        }
    }
}

impl OapDecision {
    /// The decision with the digest of the passport view it was decided on.
    pub fn with_passport_digest(mut self, digest: Option<String>) -> OapDecision {
        self.passport_digest = digest;
        self
    }
}

fn asked_as(asked: &AgentRef) -> String {
    match asked {
        AgentRef::Agent(id) => id.to_string(),
        AgentRef::Passport(uuid) => uuid.clone(),
    }
}
