//! `POST /verify` (SPEC §8, §11): reading a verify request and wrapping an evaluation into the
//! decision the edge answers. Pure, so the origin and the edge build decisions the same way.

use serde::Serialize;
use serde_json::Value;

use crate::edge_view::EdgePassport;
use crate::error::CoreError;
use crate::ids::{AgentId, OrgId};
use crate::passport::{deserialize_field, AssuranceLevel};
use crate::policy::{self, codes, Context, DecisionRequest, Evaluation, Reason};
use crate::timestamp::Timestamp;

/// The most requests one `POST /verify/batch` may carry.
pub const BATCH_MAX: usize = 100;

/// Who a verify request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Agent(AgentId),
    /// A bearer token (verified by the tokens release).
    Token(String),
}

/// One parsed verify request. A malformed `context` is not an error here: it becomes an
/// `oap.invalid_context` reason in the decision, beside every other failed check.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyRequest {
    pub subject: Subject,
    pub capability: String,
    pub context: Result<Context, Reason>,
    pub min_assurance: Option<AssuranceLevel>,
    pub commit: bool,
    pub idempotency_key: Option<String>,
}

const FIELDS: [&str; 7] = [
    "agent_id",
    "token",
    "capability",
    "context",
    "min_assurance",
    "commit",
    "idempotency_key",
];

impl VerifyRequest {
    /// Reads one request; `at` prefixes field names (`requests[3].` inside a batch).
    pub fn from_json(value: Value, at: &str) -> Result<VerifyRequest, CoreError> {
        let Value::Object(mut object) = value else {
            return Err(CoreError::field(
                at.trim_end_matches('.'),
                "a verify request must be a JSON object",
            ));
        };
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(CoreError::field(
                format!("{at}{unknown}"),
                format!("unknown field `{unknown}`"),
            ));
        }
        let mut take = |key: &str| object.remove(key).unwrap_or(Value::Null);
        let field = |name: &str| format!("{at}{name}");
        let agent_id: Option<String> = deserialize_field(take("agent_id"), &field("agent_id"))?;
        let token: Option<String> = deserialize_field(take("token"), &field("token"))?;
        let subject = match (agent_id, token) {
            (Some(id), None) => Subject::Agent(
                AgentId::parse(&id)
                    .map_err(|e| CoreError::field(field("agent_id"), e.to_string()))?,
            ),
            (None, Some(token)) => Subject::Token(token),
            (Some(_), Some(_)) => {
                return Err(CoreError::field(
                    field("token"),
                    "send either `agent_id` or `token`, not both",
                ))
            }
            (None, None) => {
                return Err(CoreError::field(
                    field("agent_id"),
                    "`agent_id` (or `token`) is required",
                ))
            }
        };
        let capability: Option<String> =
            deserialize_field(take("capability"), &field("capability"))?;
        let capability = capability
            .filter(|c| !c.is_empty())
            .ok_or_else(|| CoreError::field(field("capability"), "`capability` is required"))?;
        let min_assurance = deserialize_field(take("min_assurance"), &field("min_assurance"))?;
        let commit: Option<bool> = deserialize_field(take("commit"), &field("commit"))?;
        let idempotency_key: Option<String> =
            deserialize_field(take("idempotency_key"), &field("idempotency_key"))?;
        let context = Context::from_json(take("context")).map_err(|mut reason| {
            reason.field = reason.field.map(|f| format!("{at}{f}"));
            reason
        });
        Ok(VerifyRequest {
            subject,
            capability,
            context,
            min_assurance,
            commit: commit.unwrap_or(false),
            idempotency_key,
        })
    }

    /// Reads `{ "requests": [ … ] }` of at most [`BATCH_MAX`] requests.
    pub fn batch_from_json(value: Value) -> Result<Vec<VerifyRequest>, CoreError> {
        let Value::Object(mut object) = value else {
            return Err(CoreError::invalid(
                "a batch must be a JSON object with `requests`",
            ));
        };
        if let Some(unknown) = object.keys().find(|k| k.as_str() != "requests") {
            return Err(CoreError::field(
                unknown.clone(),
                format!("unknown field `{unknown}`"),
            ));
        }
        let Some(Value::Array(items)) = object.remove("requests") else {
            return Err(CoreError::field("requests", "`requests` must be an array"));
        };
        if items.is_empty() || items.len() > BATCH_MAX {
            return Err(CoreError::field(
                "requests",
                format!("a batch holds 1 to {BATCH_MAX} requests"),
            ));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| VerifyRequest::from_json(item, &format!("requests[{i}].")))
            .collect()
    }

    /// Evaluates the request against the agent's passport (`None`: no such agent).
    pub fn evaluate(&self, passport: Option<&EdgePassport>) -> Evaluation {
        let Some(passport) = passport else {
            return Evaluation {
                allow: false,
                reasons: vec![Reason::new(codes::AGENT_NOT_FOUND, "no such agent")],
                spend: None,
            };
        };
        match &self.context {
            Ok(context) => policy::decide(
                passport,
                &DecisionRequest {
                    capability: self.capability.clone(),
                    context: context.clone(),
                    min_assurance: self.min_assurance,
                },
            ),
            Err(reason) => {
                policy::decide_unreadable_context(passport, &self.capability, reason.clone())
            }
        }
    }
}

/// The decision of SPEC §11.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub decision_id: String,
    pub allow: bool,
    pub reasons: Vec<Reason>,
    pub agent_id: Option<AgentId>,
    /// The org that answers for the agent.
    pub owner_id: Option<OrgId>,
    pub assurance_level: Option<AssuranceLevel>,
    pub capability: String,
    pub created_at: Timestamp,
    /// How many seconds the caller may rely on this decision.
    pub expires_in: u32,
    /// The passport version the decision read (`null` when the agent was not found).
    pub passport_version: Option<i64>,
    /// The agents the decision rests on, outermost actor first (just the agent without a token).
    pub chain: Vec<AgentId>,
}

impl Decision {
    pub fn new(
        decision_id: String,
        request: &VerifyRequest,
        agent_id: Option<&AgentId>,
        passport: Option<&EdgePassport>,
        evaluation: Evaluation,
        now: Timestamp,
        expires_in: u32,
    ) -> Decision {
        Decision {
            decision_id,
            allow: evaluation.allow,
            reasons: evaluation.reasons,
            agent_id: agent_id.cloned(),
            owner_id: passport.map(|p| p.org_id.clone()),
            assurance_level: passport.map(|p| p.assurance_level),
            capability: request.capability.clone(),
            created_at: now,
            expires_in,
            passport_version: passport.map(|p| p.version),
            chain: agent_id.into_iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::tests::seed_passport;
    use crate::Status;
    use serde_json::json;

    fn active() -> EdgePassport {
        let mut view = EdgePassport::from(&seed_passport());
        view.status = Status::Active;
        view
    }

    fn request(value: Value) -> Result<VerifyRequest, CoreError> {
        VerifyRequest::from_json(value, "")
    }

    #[test]
    fn reads_agent_requests() {
        let r = request(json!({
            "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
            "capability": "payments.refund",
            "context": { "amount": 50, "currency": "USD", "region": "US-CA" }
        }))
        .unwrap();
        assert!(matches!(r.subject, Subject::Agent(_)));
        assert!(!r.commit);
        let eval = r.evaluate(Some(&active()));
        assert!(eval.allow, "{eval:?}");
        let d = Decision::new(
            "dec_1".into(),
            &r,
            Some(&active().agent_id),
            Some(&active()),
            eval,
            Timestamp::from_unix_millis(0),
            1,
        );
        let v = serde_json::to_value(&d).unwrap();
        for key in [
            "decision_id",
            "allow",
            "reasons",
            "agent_id",
            "owner_id",
            "assurance_level",
            "capability",
            "created_at",
            "expires_in",
            "passport_version",
            "chain",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["chain"], json!(["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"]));
        assert_eq!(v["reasons"][0]["code"], "oap.allowed");
    }

    #[test]
    fn names_bad_fields() {
        for (body, field) in [
            (json!({ "capability": "a" }), "agent_id"),
            (
                json!({ "agent_id": "ap_bad", "capability": "a" }),
                "agent_id",
            ),
            (
                json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70" }),
                "capability",
            ),
            (
                json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "a", "colour": 1 }),
                "colour",
            ),
            (
                json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "a", "commit": "yes" }),
                "commit",
            ),
            (
                json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "token": "t", "capability": "a" }),
                "token",
            ),
        ] {
            assert_eq!(
                request(body.clone()).unwrap_err().field_name(),
                Some(field),
                "{body}"
            );
        }
    }

    #[test]
    fn a_bad_context_is_a_reason_not_an_error() {
        let r = request(json!({
            "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
            "capability": "payments.refund",
            "context": { "amount": 50, "colour": "red" }
        }))
        .unwrap();
        let eval = r.evaluate(Some(&active()));
        assert!(!eval.allow);
        assert!(eval.has("oap.invalid_context"));
        let missing = r.evaluate(None);
        assert_eq!(missing.codes(), vec!["agent_not_found"]);
    }

    #[test]
    fn batches() {
        let one = json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "data.export" });
        let ok = VerifyRequest::batch_from_json(json!({ "requests": [one, one] })).unwrap();
        assert_eq!(ok.len(), 2);
        let too_many: Vec<Value> = (0..=BATCH_MAX).map(|_| one.clone()).collect();
        assert!(VerifyRequest::batch_from_json(json!({ "requests": too_many })).is_err());
        assert!(VerifyRequest::batch_from_json(json!({ "requests": [] })).is_err());
        let bad =
            VerifyRequest::batch_from_json(json!({ "requests": [one, { "capability": "x" }] }))
                .unwrap_err();
        assert_eq!(bad.field_name(), Some("requests[1].agent_id"));
    }
}
