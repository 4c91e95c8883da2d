//! What the edge needs to know about an agent: the passport without secrets, telemetry or
//! internal bookkeeping. The origin writes it to KV as `passport:{agent_id}`; `/verify` reads it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AgentId, OrgId};
use crate::passport::{AssuranceLevel, Capability, Passport, Region, Status, Tier};
use crate::timestamp::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgePassport {
    pub agent_id: AgentId,
    pub org_id: OrgId,
    pub status: Status,
    pub name: String,
    pub owner_display: String,
    pub contact: String,
    pub role: Option<String>,
    pub capabilities: Vec<Capability>,
    pub limits: Map<String, Value>,
    pub regions: Vec<Region>,
    pub assurance_level: AssuranceLevel,
    pub tier: Tier,
    pub require_act_as: bool,
    pub public_jwk: Option<Map<String, Value>>,
    pub status_reason: Option<String>,
    pub suspended_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The passport version this view was built from; KV writes never go backwards in it.
    pub version: i64,
    pub updated_at: Timestamp,
}

impl From<&Passport> for EdgePassport {
    fn from(p: &Passport) -> Self {
        EdgePassport {
            agent_id: p.agent_id.clone(),
            org_id: p.org_id.clone(),
            status: p.status,
            name: p.name.clone(),
            owner_display: p.owner.display_name.clone(),
            contact: p.owner.contact.clone(),
            role: p.fields.role.clone(),
            capabilities: p.fields.capabilities.clone(),
            limits: p.fields.limits.clone(),
            regions: p.fields.regions.clone(),
            assurance_level: p.fields.assurance_level,
            tier: p.fields.tier,
            require_act_as: p.fields.require_act_as,
            public_jwk: p.fields.public_jwk.clone(),
            status_reason: p.status_reason.clone(),
            suspended_at: p.suspended_at,
            revoked_at: p.revoked_at,
            version: p.version,
            updated_at: p.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::tests::seed_passport;

    #[test]
    fn carries_what_verify_answers_and_no_telemetry() {
        let view = EdgePassport::from(&seed_passport());
        let json = serde_json::to_value(&view).unwrap();
        for field in [
            "agent_id",
            "status",
            "name",
            "owner_display",
            "role",
            "capabilities",
            "limits",
            "regions",
            "assurance_level",
            "tier",
            "version",
            "updated_at",
            "contact",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        for absent in ["last_seen_at", "health", "metadata", "owner"] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
        let back: EdgePassport = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
