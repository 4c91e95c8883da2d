//! What the edge needs to know about an agent: the passport without secrets, telemetry or
//! internal bookkeeping. The origin writes it to KV as `passport:{agent_id}`; `/verify` reads it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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
    /// The passport's description, public like the rest of this view (an A2A agent card says
    /// it, SPEC §15). Views written before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
    /// Tokens of this agent issued before this instant are dead (also those of chains naming it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_not_before: Option<Timestamp>,
    /// The OAP `passport_id` it was imported under, if any (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oap_passport_id: Option<String>,
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
            description: p.fields.description.clone(),
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
            tokens_not_before: p.tokens_not_before,
            oap_passport_id: p.oap_passport_id.clone(),
            version: p.version,
            updated_at: p.updated_at,
        }
    }
}

/// Bumped whenever the edge changes the shape of a body it derives from a stored view, so that
/// an ETag never names two different bodies across deploys.
pub const BODY_REVISION: u32 = 1;

/// The strong ETag of everything the edge derives from one stored version of a KV value.
pub fn etag(kind: &str, version: i64) -> String {
    format!("\"{kind}-r{BODY_REVISION}-v{version}\"")
}

/// The answer of `GET /verify` for this agent: `200` with the public view when active, `403`
/// with the reason otherwise (SPEC §8).
pub struct VerifyAnswer {
    pub status: u16,
    pub body: Value,
}

impl EdgePassport {
    /// `sha256:` + hex of the SHA-256 of this view's RFC 8785 form: what a signed decision names
    /// as the passport it was decided on (SPEC §12).
    pub fn digest(&self) -> String {
        // A view is plain data (strings, integers, maps): canonicalizing it cannot fail.
        crate::signing::digest(self).unwrap_or_default()
    }

    /// The ETag of every body derived from this version of the passport.
    pub fn etag(&self) -> String {
        etag("passport", self.version)
    }

    /// SPEC §8 `GET /verify`.
    pub fn verify_answer(&self) -> VerifyAnswer {
        match self.status {
            Status::Active => VerifyAnswer {
                status: 200,
                body: json!({
                    "agent_id": self.agent_id,
                    "status": self.status,
                    "name": self.name,
                    "owner_display": self.owner_display,
                    "role": self.role,
                    "capabilities": self.capabilities,
                    "limits": self.limits,
                    "regions": self.regions,
                    "assurance_level": self.assurance_level,
                    "tier": self.tier,
                    "version": self.version,
                    "updated_at": self.updated_at,
                }),
            },
            Status::Suspended => self.refusal(
                "agent_suspended",
                "is suspended",
                Some(("suspended_at", self.suspended_at)),
            ),
            Status::Revoked => self.refusal(
                "agent_revoked",
                "has been revoked",
                Some(("revoked_at", self.revoked_at)),
            ),
            Status::Draft => self.refusal("agent_not_active", "has not been activated", None),
        }
    }

    /// A `403` of `GET /verify`: the code, a sentence, the status, when it changed (if `since`),
    /// why (for suspensions and revocations) and whom to contact.
    fn refusal(
        &self,
        code: &str,
        what: &str,
        since: Option<(&str, Option<Timestamp>)>,
    ) -> VerifyAnswer {
        let mut body = json!({
            "error": code,
            "message": format!("agent {} {what}", self.agent_id),
            "agent_id": self.agent_id,
            "status": self.status,
            "contact": self.contact,
            "version": self.version,
        });
        if let Some((field, at)) = since {
            body[field] = json!(at);
            body["reason"] = json!(self.status_reason);
        }
        VerifyAnswer { status: 403, body }
    }

    /// A `did:web` DID document for the agent, served at `https://{host}/agents/{id}/did.json`.
    /// `host` is the edge's host (with its port, if any). The agent's `public_jwk`, if any, is its
    /// verification method; the registry's `/verify` is a service.
    pub fn did_document(&self, host: &str) -> Value {
        let did = format!(
            "did:web:{}:agents:{}",
            host.replace(':', "%3A"),
            self.agent_id
        );
        let mut doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"],
            "id": did,
            "alsoKnownAs": [format!("urn:vouch:agent:{}", self.agent_id)],
            "service": [{
                "id": format!("{did}#vouch-verify"),
                "type": "VouchVerification",
                "serviceEndpoint": format!("https://{host}/verify?agent_id={}", self.agent_id),
            }],
        });
        if let Some(jwk) = &self.public_jwk {
            let method = format!("{did}#key-1");
            doc["verificationMethod"] = json!([{
                "id": method,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": jwk,
            }]);
            doc["authentication"] = json!([method]);
            doc["assertionMethod"] = json!([method]);
        }
        doc
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

    fn view_in(status: Status) -> EdgePassport {
        let mut view = EdgePassport::from(&seed_passport());
        view.status = status;
        view.status_reason = Some("fraud review".into());
        view.suspended_at = Some(Timestamp::from_unix_millis(5));
        view
    }

    #[test]
    fn verify_answers_per_status() {
        let ok = view_in(Status::Active).verify_answer();
        assert_eq!(ok.status, 200);
        let keys: Vec<&str> = ok
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
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
        ] {
            assert!(keys.contains(&key), "{key}");
        }
        assert!(
            ok.body.get("contact").is_none(),
            "an active agent's answer carries no contact"
        );
        let suspended = view_in(Status::Suspended).verify_answer();
        assert_eq!(
            (suspended.status, suspended.body["error"].as_str()),
            (403, Some("agent_suspended"))
        );
        assert_eq!(suspended.body["reason"], "fraud review");
        assert_eq!(suspended.body["contact"], "security@acme.com");
        assert_eq!(suspended.body["suspended_at"], "1970-01-01T00:00:00.005Z");
        let revoked = view_in(Status::Revoked).verify_answer();
        assert_eq!(revoked.body["error"], "agent_revoked");
        assert!(revoked.body.get("revoked_at").is_some());
        let draft = view_in(Status::Draft).verify_answer();
        assert_eq!(
            (draft.status, draft.body["error"].as_str()),
            (403, Some("agent_not_active"))
        );
    }

    #[test]
    fn etags_are_stable_per_version_and_change_with_it() {
        let a = view_in(Status::Active);
        let mut b = a.clone();
        assert_eq!(a.etag(), b.etag());
        assert_eq!(a.etag(), "\"passport-r1-v1\"");
        b.version += 1;
        assert_ne!(a.etag(), b.etag());
        assert_ne!(etag("jwks", 1), etag("passport", 1));
    }

    #[test]
    fn did_documents() {
        let mut view = view_in(Status::Active);
        let doc = view.did_document("edge.example.com");
        assert_eq!(
            doc["id"],
            "did:web:edge.example.com:agents:ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
        );
        assert!(doc.get("verificationMethod").is_none());
        view.public_jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        let doc = view.did_document("127.0.0.1:8787");
        assert_eq!(
            doc["id"],
            "did:web:127.0.0.1%3A8787:agents:ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
        );
        assert_eq!(
            doc["verificationMethod"][0]["publicKeyJwk"]["crv"],
            "Ed25519"
        );
        assert_eq!(doc["authentication"][0], doc["verificationMethod"][0]["id"]);
    }
}
