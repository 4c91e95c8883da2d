//! `POST /verify` (SPEC §8, §11): reading a verify request and wrapping an evaluation into the
//! decision the edge answers. Pure, so the origin and the edge build decisions the same way.
//!
//! A request naming an `agent_id` is [`VerifyRequest::evaluate`]d against that agent's passport.
//! A request carrying a `token` is [`VerifyRequest::evaluate_token`]d: the caller verifies the
//! token ([`crate::token::verify`]), reads the grants of its `dlg` and the passports of every
//! agent of its chain, and this module checks the chain ([`delegation::check_chain`]) and the
//! subject's passport, and merges both into one list of reasons ([`merge_token_checks`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caps::IdempotencyKey;
use crate::delegation::{self, Grant};
use crate::edge_view::EdgePassport;
use crate::error::CoreError;
use crate::ids::{AgentId, OrgId, PartnerId};
use crate::passport::{deserialize_field, AssuranceLevel};
use crate::policy::{self, codes, Context, DecisionRequest, Evaluation, Reason, SpentToday};
use crate::timestamp::Timestamp;
use crate::token::{self, codes as token_codes, Claims};

mod batch_reads;

pub use batch_reads::{BatchReads, BATCH_MAX_KV_READS};

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
    /// `"commit": true` with its `idempotency_key`: record the decision against the agent's
    /// daily caps, once per key. `None`: only ask (a key sent without `commit` is checked, then
    /// has no use).
    pub commit: Option<IdempotencyKey>,
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
        let key = idempotency_key
            .map(IdempotencyKey::parse)
            .transpose()
            .map_err(|message| CoreError::field(field("idempotency_key"), message))?;
        let commit =
            match (commit.unwrap_or(false), key) {
                (true, Some(key)) => Some(key),
                (true, None) => return Err(CoreError::field(
                    field("idempotency_key"),
                    "`commit: true` needs an `idempotency_key`, so that a retry never counts twice",
                )),
                (false, _) => None,
            };
        if commit.is_some() && matches!(subject, Subject::Agent(_)) {
            // Spending counts against the agent's caps: only a token proves the agent (or an
            // agent it delegated to) is the one spending; an id alone would let anyone use up
            // any agent's cap.
            return Err(CoreError::field(
                field("token"),
                "`commit: true` needs the agent's `token`, not an `agent_id`",
            ));
        }
        let context = Context::from_json(take("context")).map_err(|mut reason| {
            reason.field = reason.field.map(|f| format!("{at}{f}"));
            reason
        });
        Ok(VerifyRequest {
            subject,
            capability,
            context,
            min_assurance,
            commit,
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

    /// What identifies a commit for its `idempotency_key` (SHA-256, hex): the agents it rests
    /// on (`chain`, from the verified token, so a refreshed token is the same request), the
    /// capability, the minimum assurance and the context with its amount in minor units (so
    /// `250` and `250.0` are the same request, and key order never matters).
    pub fn fingerprint(&self, chain: &[AgentId]) -> String {
        use sha2::{Digest, Sha256};
        let context = match &self.context {
            Ok(context) => context.canonical(),
            Err(reason) => serde_json::json!({ "unreadable": reason.message }),
        };
        let canonical = serde_json::json!({
            "chain": chain,
            "capability": self.capability,
            "min_assurance": self.min_assurance,
            "context": context,
        });
        hex::encode(Sha256::digest(canonical.to_string()))
    }

    /// Evaluates the request against the agent's passport (`None`: no such agent), with
    /// nothing spent today.
    pub fn evaluate(&self, passport: Option<&EdgePassport>) -> Evaluation {
        self.evaluate_with_spent(passport, &SpentToday::new())
    }

    /// [`VerifyRequest::evaluate`] counting `spent` against the daily caps: what the agent's
    /// ledger holds for today, by cap path (see [`SpentToday`]). A decision that only asks reads
    /// it, so that it never allows an amount a commit would refuse (SPEC §11).
    pub fn evaluate_with_spent(
        &self,
        passport: Option<&EdgePassport>,
        spent: &SpentToday,
    ) -> Evaluation {
        let Some(passport) = passport else {
            return Evaluation {
                allow: false,
                reasons: vec![Reason::new(codes::AGENT_NOT_FOUND, "no such agent")],
                spend: None,
            };
        };
        match &self.context {
            Ok(context) => policy::decide_with_spent(
                passport,
                &DecisionRequest {
                    capability: self.capability.clone(),
                    context: context.clone(),
                    min_assurance: self.min_assurance,
                },
                spent,
            ),
            Err(reason) => {
                policy::decide_unreadable_context(passport, &self.capability, reason.clone())
            }
        }
    }
}

impl VerifyRequest {
    /// Evaluates a token request (SPEC §8, §11) from what the caller verified and read:
    ///
    /// * `verified`: the token's claims once [`crate::token::verify`] accepted it, or why it did not
    ///   ([`crate::token::TokenError::to_reason`], or [`token_unverifiable`] when the caller has no
    ///   signing keys or issuer to verify with). A refused token is a denial with that one
    ///   reason and nothing else: nothing an unverified token says is looked at.
    /// * `grants[i]`: the grant `claims.dlg[i]` names, as the caller found it (`None`: missing).
    /// * `passport(agent)`: the passport of an agent of [`crate::token::chain`] (`None`: not found).
    ///
    /// A verified token gets [`delegation::check_chain`] for the request's capability (statuses
    /// from `passport`) and [`VerifyRequest::evaluate`] on the passport of its subject (`sub`),
    /// merged by [`merge_token_checks`].
    pub fn evaluate_token<'p>(
        &self,
        verified: Result<&Claims, Reason>,
        grants: &[Option<Grant>],
        passport: &dyn Fn(&AgentId) -> Option<&'p EdgePassport>,
        now: Timestamp,
    ) -> Evaluation {
        self.evaluate_token_with_spent(verified, grants, passport, now, &SpentToday::new())
    }

    /// [`VerifyRequest::evaluate_token`] counting `spent` (the subject's ledger today, see
    /// [`VerifyRequest::evaluate_with_spent`]) against the daily caps.
    pub fn evaluate_token_with_spent<'p>(
        &self,
        verified: Result<&Claims, Reason>,
        grants: &[Option<Grant>],
        passport: &dyn Fn(&AgentId) -> Option<&'p EdgePassport>,
        now: Timestamp,
        spent: &SpentToday,
    ) -> Evaluation {
        let claims = match verified {
            Ok(claims) => claims,
            Err(reason) => {
                return Evaluation {
                    allow: false,
                    reasons: vec![reason],
                    spend: None,
                }
            }
        };
        let (chain, subject_status) = token_checks(claims, grants, passport, &self.capability, now);
        merge_token_checks(
            chain,
            self.evaluate_with_spent(passport(&claims.sub), spent),
            subject_status.as_ref(),
        )
    }
}

/// What a verified token adds to a decision about its subject for `capability` (SPEC §11),
/// from the grants of its `dlg` and the passports of its chain (as for
/// [`VerifyRequest::evaluate_token`]): the reasons of its chain
/// ([`delegation::check_chain`]), led by [`token::revoked`] when an agent's cut-off refuses it,
/// and what the chain says about the subject's own status (for [`merge_token_checks`]).
pub fn token_checks<'p>(
    claims: &Claims,
    grants: &[Option<Grant>],
    passport: &dyn Fn(&AgentId) -> Option<&'p EdgePassport>,
    capability: &str,
    now: Timestamp,
) -> (Vec<Reason>, Option<Reason>) {
    let status = |agent: &AgentId| passport(agent).map(|p| p.status);
    let mut chain = delegation::check_chain(claims, grants, &status, capability, now);
    let cut_off = |agent: &AgentId| passport(agent).and_then(|p| p.tokens_not_before);
    if let Some(revoked) = token::revoked(claims, &cut_off) {
        chain.insert(0, revoked);
    }
    let subject_status =
        delegation::agent_status_reason(&claims.sub, passport(&claims.sub).map(|p| p.status));
    (chain, subject_status)
}

/// The reason to refuse every token with when the verifier cannot verify any: no signing keys
/// or no issuer published, or unusable ones. `token_invalid`, about the request's `token`.
pub fn token_unverifiable(message: impl Into<String>) -> Reason {
    let mut reason = Reason::new(token_codes::TOKEN_INVALID, message);
    reason.field = Some("token".to_owned());
    reason
}

/// Merges the two checks of a verified token into one evaluation (SPEC §11):
///
/// * `chain`: the reasons of [`delegation::check_chain`] (empty: the chain allows it);
/// * `passport`: [`VerifyRequest::evaluate`] on the subject's passport;
/// * `subject_status`: what the chain check says about the subject's own status,
///   [`delegation::agent_status_reason`] of the subject (`None`: active).
///
/// The reasons are the chain's, then the passport decision's, without `oap.allowed`, each
/// listed once: a reason equal to one already listed is dropped, and so is the chain's
/// `subject_status` when the passport decision has a reason of the same code, which says the
/// same of the same agent in the passport's own words (so a suspended subject is one
/// `oap.passport_suspended`, not two; a suspended actor is listed as well, as the other agent it
/// is). `allow` only when no reason is left; the reasons are then the passport's `oap.allowed`.
/// `spend` is the passport decision's.
pub fn merge_token_checks(
    chain: Vec<Reason>,
    passport: Evaluation,
    subject_status: Option<&Reason>,
) -> Evaluation {
    let mut reasons: Vec<Reason> = Vec::with_capacity(chain.len() + passport.reasons.len());
    let said_by_passport = |reason: &Reason| {
        subject_status == Some(reason) && passport.reasons.iter().any(|r| r.code == reason.code)
    };
    for reason in chain {
        if !said_by_passport(&reason) && !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    for reason in &passport.reasons {
        if reason.code != codes::ALLOWED && !reasons.contains(reason) {
            reasons.push(reason.clone());
        }
    }
    if reasons.is_empty() && passport.allow {
        return passport;
    }
    if reasons.is_empty() {
        // A denial always says why; a passport decision never denies without a reason.
        reasons.push(Reason::new(
            codes::POLICY_ERROR,
            "the decision was a denial without a reason",
        ));
    }
    Evaluation {
        allow: false,
        reasons,
        spend: passport.spend,
    }
}

/// The decision of SPEC §11.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// `sha256:` + hex of the SHA-256 of the JCS form of the passport view decided on
    /// ([`EdgePassport::digest`], SPEC §12); `null` when the agent was not found. Whoever holds
    /// the view (the edge caches it with its digest) sets it: [`Decision::with_passport_digest`].
    pub passport_digest: Option<String>,
    /// The agents the decision rests on, outermost actor first and the subject last
    /// ([`crate::token::chain`]); just the agent for an `agent_id` request; empty for a refused token.
    pub chain: Vec<AgentId>,
    /// The partner the decision was made for (SPEC §14), when the caller presented a partner
    /// key; absent for an anonymous caller. Set by the edge once the decision is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<PartnerId>,
}

impl Decision {
    /// Wraps an evaluation. `chain` lists the agents it rests on, outermost actor first: the
    /// token's [`crate::token::chain`], `[agent_id]` for an `agent_id` request, or nothing for a token
    /// that was refused. Its last agent is the subject, the decision's `agent_id`, whose
    /// `passport` (`None`: not found, or a refused token) names the owner, assurance level and
    /// passport version.
    pub fn new(
        decision_id: String,
        request: &VerifyRequest,
        chain: Vec<AgentId>,
        passport: Option<&EdgePassport>,
        evaluation: Evaluation,
        now: Timestamp,
        expires_in: u32,
    ) -> Decision {
        Decision {
            decision_id,
            allow: evaluation.allow,
            reasons: evaluation.reasons,
            agent_id: chain.last().cloned(),
            owner_id: passport.map(|p| p.org_id.clone()),
            assurance_level: passport.map(|p| p.assurance_level),
            capability: request.capability.clone(),
            created_at: now,
            expires_in,
            passport_version: passport.map(|p| p.version),
            passport_digest: None,
            chain,
            partner_id: None,
        }
    }

    /// The decision with the digest of the passport view it was decided on.
    pub fn with_passport_digest(mut self, digest: Option<String>) -> Decision {
        self.passport_digest = digest;
        self
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
    fn commits_need_a_token_and_a_key_and_have_a_canonical_fingerprint() {
        let token_body = |key: Value, context: Value| {
            json!({ "token": "a.b.c", "capability": "payments.refund", "context": context,
                    "commit": true, "idempotency_key": key })
        };
        let usd = |amount: Value| json!({ "amount": amount, "currency": "USD", "region": "US-CA" });
        let err = request(token_body(Value::Null, usd(json!(1)))).unwrap_err();
        assert_eq!(err.field_name(), Some("idempotency_key"));
        let err = request(token_body(json!("has space"), usd(json!(1)))).unwrap_err();
        assert_eq!(err.field_name(), Some("idempotency_key"));
        let err = request(json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
                                  "capability": "a", "commit": true, "idempotency_key": "k" }))
        .unwrap_err();
        assert_eq!(err.field_name(), Some("token"));
        let committed = request(token_body(json!("k1"), usd(json!(1)))).unwrap();
        assert_eq!(
            committed.commit.as_ref().map(IdempotencyKey::as_str),
            Some("k1")
        );
        // A key without `commit` is checked, and asks nothing to be recorded.
        let mut asking = token_body(json!("k1"), usd(json!(1)));
        asking["commit"] = json!(false);
        assert_eq!(request(asking.clone()).unwrap().commit, None);
        asking["idempotency_key"] = json!("");
        let err = request(asking).unwrap_err();
        assert_eq!(err.field_name(), Some("idempotency_key"));

        let chain = [AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap()];
        let fp = |context: Value| {
            request(token_body(json!("k1"), context))
                .unwrap()
                .fingerprint(&chain)
        };
        let a = fp(usd(json!(250)));
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            fp(usd(json!(250.0))),
            "250 and 250.0 are the same amount"
        );
        assert_eq!(
            a,
            fp(json!({ "region": "US-CA", "currency": "USD", "amount": 250 })),
            "key order does not matter"
        );
        assert_ne!(a, fp(usd(json!(250.01))));
        let other_chain = [AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap()];
        let r = request(token_body(json!("k1"), usd(json!(250)))).unwrap();
        assert_ne!(r.fingerprint(&chain), r.fingerprint(&other_chain));
    }

    /// A golden value: a change to the canonical form (field names, amount units, key order)
    /// would orphan every stored idempotency key, so it must fail a test, not pass silently.
    #[test]
    fn fingerprint_golden_value() {
        let r = request(json!({
            "token": "a.b.c",
            "capability": "payments.refund",
            "context": { "region": "US-CA", "currency": "USD", "amount": 250.5 },
            "min_assurance": "L2",
            "commit": true,
            "idempotency_key": "order-42"
        }))
        .unwrap();
        let chain = [
            AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap(),
            AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap(),
        ];
        // SHA-256 of this text: sorted keys, no spaces, the amount in minor units (the hex
        // was computed outside Rust).
        let canonical = r#"{"capability":"payments.refund","chain":["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71","ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"],"context":{"amount":{"minor":25050},"currency":"USD","region":"US-CA"},"min_assurance":"L2"}"#;
        let golden = "96541d0208f5014065f66e471a0d647a6f8c6a130be6b71df065d43f059e960a";
        use sha2::{Digest, Sha256};
        assert_eq!(hex::encode(Sha256::digest(canonical)), golden);
        assert_eq!(r.fingerprint(&chain), golden);
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
        assert_eq!(r.commit, None);
        let eval = r.evaluate(Some(&active()));
        assert!(eval.allow, "{eval:?}");
        let d = Decision::new(
            "dec_1".into(),
            &r,
            vec![active().agent_id],
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

    // ---- token requests ---------------------------------------------------------------

    use crate::delegation::codes as dlg_codes;
    use crate::jwk::tests::test_key;
    use crate::jwk::{kid, JwkSet};
    use crate::passport::CapabilityId;
    use crate::token::tests::{agent, grant_id, own_token, ISS, NOW};
    use crate::token::{Actor, Expectations, DEFAULT_MAX_LEN};
    use std::collections::BTreeMap;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000)
    }

    /// The seed passport as agent `n`'s, with this status.
    fn passport_of(n: u8, status: Status) -> EdgePassport {
        let mut view = active();
        view.agent_id = agent(n);
        view.status = status;
        if status != Status::Active {
            view.status_reason = Some("fraud review".into());
        }
        view
    }

    /// A live grant `n` from agent `from` to agent `to`, for an hour from `NOW`.
    fn grant(n: u8, from: u8, to: u8, scopes: &[&str]) -> Grant {
        let scopes = scopes
            .iter()
            .map(|s| CapabilityId::parse(s).unwrap())
            .collect();
        Grant::issue(
            grant_id(n),
            agent(from),
            agent(to),
            scopes,
            at(NOW),
            3600,
            2,
        )
    }

    /// Subject 1's token acted on by 2 under grant 1.
    fn delegated(scope: &str) -> Claims {
        let mut claims = own_token(agent(1), scope);
        claims.act = Some(Actor::nest(agent(2), None));
        claims.dlg = vec![grant_id(1)];
        claims
    }

    /// Signs `claims` with test key 1 and verifies the token as the edge does at `now`.
    fn verify_at(claims: &Claims, now: i64) -> Result<Claims, Reason> {
        let key = test_key(1);
        let set = JwkSet::from_keys([key.verifying_key()]);
        let token = claims.sign(&key, &kid(key.verifying_key()));
        let expect = Expectations {
            issuer: ISS,
            audience: None,
            skew_seconds: 60,
            max_len: DEFAULT_MAX_LEN,
        };
        crate::token::verify(&token, &|k| set.get(k), &expect, now)
            .map(|(_, claims)| claims)
            .map_err(|e| e.to_reason())
    }

    fn refund(amount: u32) -> VerifyRequest {
        request(json!({
            "token": "(verified separately)",
            "capability": "payments.refund",
            "context": { "amount": amount, "currency": "USD", "region": "US-CA" }
        }))
        .unwrap()
    }

    /// Evaluates `claims` (verified at `NOW + 10`) with these grants and passports.
    fn evaluate(
        r: &VerifyRequest,
        claims: &Claims,
        grants: &[Option<Grant>],
        passports: &[EdgePassport],
    ) -> Evaluation {
        evaluate_at(r, claims, NOW + 10, grants, passports)
    }

    fn evaluate_at(
        r: &VerifyRequest,
        claims: &Claims,
        now: i64,
        grants: &[Option<Grant>],
        passports: &[EdgePassport],
    ) -> Evaluation {
        let by_id: BTreeMap<AgentId, &EdgePassport> =
            passports.iter().map(|p| (p.agent_id.clone(), p)).collect();
        let verified = verify_at(claims, now);
        r.evaluate_token(
            verified.as_ref().map_err(Clone::clone),
            grants,
            &|id| by_id.get(id).copied(),
            at(now),
        )
    }

    fn count(e: &Evaluation, code: &str) -> usize {
        e.reasons.iter().filter(|r| r.code == code).count()
    }

    #[test]
    fn reads_token_requests() {
        let r = refund(50);
        assert_eq!(r.subject, Subject::Token("(verified separately)".into()));
    }

    #[test]
    fn tokens_issued_before_an_agents_cut_off_are_revoked_and_only_those() {
        let r = refund(50);
        let own = own_token(agent(1), "payments.refund");
        let mut subject = passport_of(1, Status::Active);
        // Issued at NOW: a cut-off one millisecond later kills it, one at NOW does not.
        subject.tokens_not_before = Some(Timestamp::from_unix_millis(NOW * 1_000 + 1));
        let e = evaluate(&r, &own, &[], std::slice::from_ref(&subject));
        assert!(!e.allow);
        assert_eq!(e.codes(), ["token_revoked"]);
        assert!(e.reasons[0].message.contains(agent(1).as_str()), "{e:?}");
        subject.tokens_not_before = Some(Timestamp::from_unix_millis(NOW * 1_000));
        let e = evaluate(&r, &own, &[], std::slice::from_ref(&subject));
        assert!(e.allow, "{e:?}");

        // A delegated token dies with the cut-off of any agent it names: here the actor's.
        let claims = delegated("payments.refund");
        let subject = passport_of(1, Status::Active);
        let mut actor = passport_of(2, Status::Active);
        let grants = [Some(grant(1, 1, 2, &["payments.refund"]))];
        let e = evaluate(&r, &claims, &grants, &[subject.clone(), actor.clone()]);
        assert!(e.allow, "{e:?}");
        actor.tokens_not_before = Some(Timestamp::from_unix_millis((NOW + 1) * 1_000));
        let e = evaluate(&r, &claims, &grants, &[subject, actor]);
        assert!(!e.allow);
        assert_eq!(e.codes(), ["token_revoked"]);
        assert!(e.reasons[0].message.contains(agent(2).as_str()), "{e:?}");
    }

    #[test]
    fn an_agents_own_token_is_allowed_like_the_agent() {
        let r = refund(50);
        let claims = own_token(agent(1), "payments.refund data.export");
        let subject = passport_of(1, Status::Active);
        let e = evaluate(&r, &claims, &[], std::slice::from_ref(&subject));
        assert!(e.allow, "{e:?}");
        assert_eq!(e.codes(), ["oap.allowed"]);
        assert!(e.spend.is_some(), "the passport decision's spend is kept");
        let d = Decision::new(
            "dec_1".into(),
            &r,
            crate::token::chain(&claims),
            Some(&subject),
            e,
            at(NOW),
            1,
        );
        assert_eq!(d.agent_id, Some(agent(1)));
        assert_eq!(d.chain, [agent(1)]);
        assert_eq!(d.passport_version, Some(subject.version));
        assert_eq!(d.owner_id, Some(subject.org_id.clone()));
        // The limits still apply to a token's subject.
        let over = evaluate(&refund(250), &claims, &[], &[subject]);
        assert!(!over.allow);
        assert!(!over.reasons.is_empty());
        assert!(
            over.codes().iter().all(|c| *c == "oap.limit_exceeded"),
            "{over:?}"
        );
    }

    #[test]
    fn a_capability_outside_the_scope_is_not_delegated() {
        let claims = own_token(agent(1), "data.export");
        let e = evaluate(&refund(50), &claims, &[], &[passport_of(1, Status::Active)]);
        assert!(!e.allow);
        assert_eq!(e.codes(), [dlg_codes::SCOPE_NOT_DELEGATED]);
        assert_eq!(e.reasons[0].field.as_deref(), Some("token"));
        // Beside the passport's own reasons, never instead of them.
        let e = evaluate(
            &refund(250),
            &claims,
            &[],
            &[passport_of(1, Status::Active)],
        );
        assert_eq!(e.codes()[0], dlg_codes::SCOPE_NOT_DELEGATED);
        assert!(e.codes().len() > 1, "{e:?}");
        assert!(e.codes()[1..].iter().all(|c| *c == "oap.limit_exceeded"));
    }

    #[test]
    fn a_refused_token_is_its_one_reason() {
        let r = refund(250); // over the limit too, which is not looked at
        let claims = own_token(agent(1), "data.export"); // nor is the scope
        let suspended = passport_of(1, Status::Suspended); // nor the subject's status
        let e = evaluate_at(
            &r,
            &claims,
            NOW + 400,
            &[],
            std::slice::from_ref(&suspended),
        );
        assert!(!e.allow);
        assert_eq!(e.codes(), ["token_expired"]);
        assert_eq!(e.reasons[0].field.as_deref(), Some("token"));
        assert_eq!(e.spend, None);
        let d = Decision::new("dec_2".into(), &r, Vec::new(), None, e, at(NOW), 1);
        assert_eq!(
            (d.agent_id, d.chain, d.passport_version),
            (None, vec![], None)
        );

        // A token from another issuer, or with no keys to check it against: token_invalid.
        let mut other = claims.clone();
        other.iss = "https://evil.example".into();
        let e = evaluate(&r, &other, &[], std::slice::from_ref(&suspended));
        assert_eq!(e.codes(), ["token_invalid"]);
        let e = r.evaluate_token(
            Err(token_unverifiable("signing keys not published")),
            &[],
            &|_| Some(&suspended),
            at(NOW),
        );
        assert_eq!(e.codes(), ["token_invalid"]);
        assert_eq!(e.reasons[0].message, "signing keys not published");
    }

    #[test]
    fn a_delegated_token_is_allowed_while_its_chain_stands() {
        let r = refund(50);
        let claims = delegated("payments.refund");
        let grants = [Some(grant(1, 1, 2, &["payments.refund"]))];
        let passports = [
            passport_of(1, Status::Active),
            passport_of(2, Status::Active),
        ];
        let e = evaluate(&r, &claims, &grants, &passports);
        assert!(e.allow, "{e:?}");
        assert_eq!(e.codes(), ["oap.allowed"]);
        let d = Decision::new(
            "dec_3".into(),
            &r,
            crate::token::chain(&claims),
            Some(&passports[0]),
            e,
            at(NOW),
            1,
        );
        assert_eq!(d.chain, [agent(2), agent(1)], "outermost actor first");
        assert_eq!(d.agent_id, Some(agent(1)), "the subject");

        // The grant must delegate the capability too.
        let narrow = [Some(grant(1, 1, 2, &["data.export"]))];
        let e = evaluate(&r, &claims, &narrow, &passports);
        assert_eq!(e.codes(), [dlg_codes::SCOPE_NOT_DELEGATED]);
        // The actor's passport does not need the capability; the subject's does.
        let mut poor = passports.clone();
        poor[1].capabilities.clear();
        assert!(evaluate(&r, &claims, &grants, &poor).allow);
        poor[0].capabilities.clear();
        assert_eq!(
            evaluate(&r, &claims, &grants, &poor).codes(),
            ["oap.unknown_capability"]
        );
    }

    #[test]
    fn an_unknown_grant_is_a_revoked_delegation() {
        let claims = delegated("payments.refund");
        let passports = [
            passport_of(1, Status::Active),
            passport_of(2, Status::Active),
        ];
        let e = evaluate(&refund(50), &claims, &[None], &passports);
        assert!(!e.allow);
        assert_eq!(e.codes(), [dlg_codes::DELEGATION_REVOKED]);
        // Missing entries count as missing grants.
        assert_eq!(
            evaluate(&refund(50), &claims, &[], &passports).codes(),
            [dlg_codes::DELEGATION_REVOKED]
        );
        let mut revoked = grant(1, 1, 2, &["payments.refund"]);
        revoked.revoked = true;
        assert_eq!(
            evaluate(&refund(50), &claims, &[Some(revoked)], &passports).codes(),
            [dlg_codes::DELEGATION_REVOKED]
        );
    }

    #[test]
    fn a_suspended_agent_is_listed_once() {
        let r = refund(50);
        let claims = delegated("payments.refund");
        let grants = [Some(grant(1, 1, 2, &["payments.refund"]))];

        // A suspended actor: its status, and the grant it ended.
        let e = evaluate(
            &r,
            &claims,
            &grants,
            &[
                passport_of(1, Status::Active),
                passport_of(2, Status::Suspended),
            ],
        );
        assert!(!e.allow);
        assert_eq!(
            e.codes(),
            ["oap.passport_suspended", dlg_codes::DELEGATION_REVOKED]
        );
        assert!(e.reasons[0].message.contains(agent(2).as_str()));

        // A suspended subject: the passport decision says it, in its words, once.
        let e = evaluate(
            &r,
            &claims,
            &grants,
            &[
                passport_of(1, Status::Suspended),
                passport_of(2, Status::Active),
            ],
        );
        assert_eq!(count(&e, "oap.passport_suspended"), 1, "{e:?}");
        assert_eq!(
            e.codes(),
            [dlg_codes::DELEGATION_REVOKED, "oap.passport_suspended"]
        );
        assert!(e.reasons[1].message.contains("fraud review"));
        let own = own_token(agent(1), "payments.refund");
        let e = evaluate(&r, &own, &[], &[passport_of(1, Status::Revoked)]);
        assert_eq!(e.codes(), ["oap.passport_suspended"]);

        // Both suspended: one reason per agent.
        let e = evaluate(
            &r,
            &claims,
            &grants,
            &[
                passport_of(1, Status::Suspended),
                passport_of(2, Status::Suspended),
            ],
        );
        assert_eq!(count(&e, "oap.passport_suspended"), 2, "{e:?}");

        // An unknown subject or actor is agent_not_found, once each.
        let e = evaluate(&r, &own, &[], &[]);
        assert_eq!(e.codes(), ["agent_not_found"]);
        let e = evaluate(&r, &claims, &grants, &[passport_of(1, Status::Active)]);
        assert_eq!(
            e.codes(),
            ["agent_not_found", dlg_codes::DELEGATION_REVOKED]
        );
    }

    #[test]
    fn merging_keeps_every_reason_once() {
        let allowed = refund(50).evaluate(Some(&active()));
        assert!(allowed.allow);
        // Nothing from the chain: the passport's answer as it is.
        assert_eq!(
            merge_token_checks(Vec::new(), allowed.clone(), None),
            allowed
        );
        // A chain reason turns an allow into a denial without `oap.allowed`.
        let scope = token_unverifiable("x");
        let e = merge_token_checks(vec![scope.clone(), scope.clone()], allowed.clone(), None);
        assert!(!e.allow);
        assert_eq!(
            e.reasons,
            std::slice::from_ref(&scope),
            "exact repeats are dropped"
        );
        assert_eq!(e.spend, allowed.spend);
        // The subject's status is dropped only when the passport decision says it too.
        let status = delegation::agent_status_reason(&agent(1), Some(Status::Suspended));
        let e = merge_token_checks(
            status.clone().into_iter().collect(),
            allowed,
            status.as_ref(),
        );
        assert_eq!(e.codes(), ["oap.passport_suspended"]);
        assert!(!e.allow);
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
