//! Access-token claims (SPEC §5) and their checks.
//!
//! ```json
//! { "iss": "https://registry.example", "sub": "ap_…", "aud": "https://partner.example",
//!   "iat": 1795000000, "nbf": 1795000000, "exp": 1795000300, "jti": "…", "org": "org_…",
//!   "scope": "payments.refund data.export", "ver": 7,
//!   "act": { "sub": "ap_…actor", "act": { "sub": "ap_…older actor" } },
//!   "dlg": ["dlg_…", "dlg_…"],
//!   "status": { "status_list": { "idx": 5, "uri": "https://edge.example/status/0" } } }
//! ```
//!
//! * `sub` is always the agent on whose behalf the token acts (the original subject); exchange
//!   never changes it.
//! * `act` (RFC 8693 §4.1) nests the actors, **the current actor outermost**: `act.sub` is the
//!   agent presenting the token, `act.act.sub` the one that delegated to it, and so on inward
//!   to the first actor, which the subject itself delegated to. A token without `act` is the
//!   agent's own token.
//! * `dlg` lists the grants the chain rests on **in the order the chain was built**: `dlg[0]`
//!   is the grant from the subject to the innermost actor, the last entry the grant to the
//!   current actor. So `dlg.len()` equals the number of actors.
//! * [`chain`] lists the agents **outermost actor first**, the subject last (SPEC §11's
//!   decision `chain`): `[act.sub, act.act.sub, …, sub]`; just `[sub]` without `act`.
//!
//! Times are NumericDate seconds as integers (fractional values are refused as malformed).
//! `aud` is a string or an array of strings (RFC 7519 §4.1.3); it is written as a string when
//! there is one and left out when there is none. Unknown claims are ignored.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{AgentId, DelegationId, OrgId};
use crate::jws;
use crate::policy::Reason;
use crate::timestamp::Timestamp;

pub use crate::jws::{codes, Header, TokenError};

/// The largest clock skew a verifier may allow (SPEC §5); larger values are clamped to it.
pub const MAX_SKEW_SECONDS: u32 = 60;
/// A token's lifetime when the request does not ask for less (SPEC §5).
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// A generous bound on a compact token's length: a five-hop delegated token is under 2 KiB.
pub const DEFAULT_MAX_LEN: usize = 8 * 1024;

/// The claims of a registry token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The registry (`VOUCH_ISSUER`).
    pub iss: String,
    /// The agent the token speaks for: its own, or the original subject of a delegated token.
    pub sub: AgentId,
    /// Who the token is for; empty when the request named no audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "audience")]
    pub aud: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A unique token id (the caller generates it).
    pub jti: String,
    /// The subject's org.
    pub org: OrgId,
    /// Capability ids, space-separated (RFC 6749 §3.3).
    pub scope: String,
    /// The subject's passport version when the token was issued.
    pub ver: i64,
    /// The actors, current one outermost (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The delegation grants the chain rests on, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dlg: Vec<DelegationId>,
    /// Where the subject's status sits in a token status list (SPEC §16), so a verifier can
    /// refuse a suspended subject offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status_list::StatusClaim>,
}

/// One level of RFC 8693's `act` claim: the actor, and the actor before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: AgentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// `sub` acting as the newest, outermost actor on top of `previous`.
    pub fn nest(sub: AgentId, previous: Option<Actor>) -> Actor {
        Actor {
            sub,
            act: previous.map(Box::new),
        }
    }
}

impl Claims {
    /// Reads a verified payload.
    pub fn from_json(payload: &[u8]) -> Result<Claims, TokenError> {
        serde_json::from_slice(payload).map_err(|e| TokenError::BadClaims(e.to_string()))
    }

    /// The payload to sign.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings, numbers and ids: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The actors, outermost (current) first; empty for an agent's own token.
    pub fn actors(&self) -> Vec<&AgentId> {
        let mut actors = Vec::new();
        let mut next = self.act.as_ref();
        while let Some(actor) = next {
            actors.push(&actor.sub);
            next = actor.act.as_deref();
        }
        actors
    }

    /// How many actors the chain has (0 for an agent's own token).
    pub fn depth(&self) -> usize {
        self.actors().len()
    }

    /// The agent presenting the token: the outermost actor, or the subject itself.
    pub fn current_actor(&self) -> &AgentId {
        self.act.as_ref().map_or(&self.sub, |actor| &actor.sub)
    }

    /// The scope's capability ids, in order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the scope grants exactly this capability id.
    pub fn has_scope(&self, capability: &str) -> bool {
        self.scopes().any(|s| s == capability)
    }

    /// Signs the claims: a compact ES256 JWS.
    pub fn sign(&self, key: &p256::ecdsa::SigningKey, kid: &str) -> String {
        jws::sign(&self.to_json(), key, kid)
    }
}

/// The agents of a token, **outermost actor first and the subject last** (SPEC §11):
/// `[act.sub, act.act.sub, …, sub]`, or `[sub]` without `act`. The i-th hop of the chain,
/// counted from the subject, is `dlg[i]`: from `chain[len-1-i]` to `chain[len-2-i]`.
pub fn chain(claims: &Claims) -> Vec<AgentId> {
    claims
        .actors()
        .into_iter()
        .chain(std::iter::once(&claims.sub))
        .cloned()
        .collect()
}

/// The reason to refuse a token issued before an agent of its chain had its tokens revoked
/// (`POST /v1/agents/{id}/tokens/revoke`): `token_revoked`, naming the first such agent, outermost
/// first. `tokens_not_before` gives each agent's cut-off (`None`: never revoked, or unknown).
/// A delegated token's `iat` is when it was exchanged, so a cut-off of any agent it names after
/// that kills it too.
pub fn revoked(
    claims: &Claims,
    tokens_not_before: &dyn Fn(&AgentId) -> Option<Timestamp>,
) -> Option<Reason> {
    let issued_ms = claims.iat.saturating_mul(1_000);
    chain(claims).into_iter().find_map(|agent| {
        let cut = tokens_not_before(&agent)?;
        (issued_ms < cut.unix_millis()).then(|| {
            let mut reason = Reason::new(
                codes::TOKEN_REVOKED,
                format!("the tokens of agent {agent} issued before {cut} were revoked"),
            );
            reason.field = Some("token".to_owned());
            reason
        })
    })
}

/// Joins capability ids into a `scope` claim.
pub fn join_scopes<S: AsRef<str>>(scopes: &[S]) -> String {
    scopes
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the registered claims at `now_seconds`, allowing `skew_seconds` (clamped to
/// [`MAX_SKEW_SECONDS`]) of clock difference either way:
///
/// 1. `iss` equals `expected_iss` → else [`TokenError::WrongIssuer`];
/// 2. with `expected_aud`, `aud` contains it → else [`TokenError::WrongAudience`] (without it,
///    `aud` is not checked: SPEC §5 "aud when configured");
/// 3. `now < exp + skew` → else [`TokenError::Expired`] (reason `token_expired`);
/// 4. `now ≥ nbf − skew` → else [`TokenError::NotYetValid`];
/// 5. `iat ≤ now + skew` → else [`TokenError::IssuedInFuture`].
///
/// Every failure but expiry is `token_invalid` in a decision.
pub fn validate(
    claims: &Claims,
    now_seconds: i64,
    expected_iss: &str,
    expected_aud: Option<&str>,
    skew_seconds: u32,
) -> Result<(), TokenError> {
    let skew = i64::from(skew_seconds.min(MAX_SKEW_SECONDS));
    if claims.iss != expected_iss {
        return Err(TokenError::WrongIssuer);
    }
    if let Some(aud) = expected_aud {
        if !claims.aud.iter().any(|a| a == aud) {
            return Err(TokenError::WrongAudience);
        }
    }
    if now_seconds >= claims.exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    if now_seconds < claims.nbf.saturating_sub(skew) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat > now_seconds.saturating_add(skew) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

/// What a verifier expects of every token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// `None`: `aud` is not checked.
    pub audience: Option<&'a str>,
    /// At most [`MAX_SKEW_SECONDS`].
    pub skew_seconds: u32,
    /// The longest token accepted, in bytes ([`DEFAULT_MAX_LEN`]).
    pub max_len: usize,
}

/// The whole token check: [`jws::verify`], then [`Claims::from_json`], then [`validate`].
/// Delegation chains are checked by [`crate::delegation::check_chain`].
pub fn verify(
    token: &str,
    keys: &dyn Fn(&str) -> Option<p256::ecdsa::VerifyingKey>,
    expect: &Expectations<'_>,
    now_seconds: i64,
) -> Result<(Header, Claims), TokenError> {
    let (header, payload) = jws::verify(token, keys, expect.max_len)?;
    Ok((header, checked_claims(&payload, expect, now_seconds)?))
}

/// The claims of a token whose signature the caller verified some other way (WebCrypto at the
/// edge), validated like [`verify`] does.
pub fn claims_of(
    verified: &jws::Unverified<'_>,
    expect: &Expectations<'_>,
    now_seconds: i64,
) -> Result<Claims, TokenError> {
    checked_claims(&verified.payload()?, expect, now_seconds)
}

/// The claims of a verified payload, validated against `expect` at `now_seconds`.
fn checked_claims(
    payload: &[u8],
    expect: &Expectations<'_>,
    now_seconds: i64,
) -> Result<Claims, TokenError> {
    let claims = Claims::from_json(payload)?;
    validate(
        &claims,
        now_seconds,
        expect.issuer,
        expect.audience,
        expect.skew_seconds,
    )?;
    Ok(claims)
}

/// `aud`: one string or an array of strings in, a string (one) or an array (several) out.
mod audience {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwk::tests::test_key;
    use crate::jwk::{kid, JwkSet};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    pub(crate) const ISS: &str = "https://registry.example";
    pub(crate) const NOW: i64 = 1_795_000_000;

    pub(crate) fn agent(n: u8) -> AgentId {
        AgentId::parse(&format!("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f{n:02x}")).unwrap()
    }

    pub(crate) fn grant_id(n: u8) -> DelegationId {
        DelegationId::parse(&format!("dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f{n:02x}")).unwrap()
    }

    /// An agent's own token, valid from `NOW` for 300 s.
    pub(crate) fn own_token(sub: AgentId, scope: &str) -> Claims {
        Claims {
            iss: ISS.to_owned(),
            sub,
            aud: vec!["https://partner.example".to_owned()],
            iat: NOW,
            nbf: NOW,
            exp: NOW + 300,
            jti: "jti-1".to_owned(),
            org: OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap(),
            scope: scope.to_owned(),
            ver: 7,
            act: None,
            dlg: Vec::new(),
            status: None,
        }
    }

    /// A token of subject 1 acted on by 2, then 3 (3 outermost), under grants 1 and 2.
    fn two_hops() -> Claims {
        let mut claims = own_token(agent(1), "payments.refund");
        claims.act = Some(Actor::nest(agent(3), Some(Actor::nest(agent(2), None))));
        claims.dlg = vec![grant_id(1), grant_id(2)];
        claims
    }

    #[test]
    fn serializes_the_spec_claims() {
        let value = serde_json::to_value(two_hops()).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "iss", "sub", "aud", "iat", "nbf", "exp", "jti", "org", "scope", "ver", "act", "dlg",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(value["aud"], "https://partner.example");
        assert_eq!(
            value["act"],
            json!({ "sub": agent(3), "act": { "sub": agent(2) } })
        );
        assert_eq!(value["dlg"], json!([grant_id(1), grant_id(2)]));
        // An own token has neither `act` nor `dlg`, and no `aud` without an audience.
        let mut own = own_token(agent(1), "a");
        own.aud.clear();
        let value = serde_json::to_value(&own).unwrap();
        for absent in ["act", "dlg", "aud"] {
            assert!(value.get(absent).is_none(), "{absent}");
        }
        assert_eq!(Claims::from_json(&own.to_json()).unwrap(), own);
    }

    #[test]
    fn reads_audiences_as_string_or_array() {
        let mut value = serde_json::to_value(own_token(agent(1), "a")).unwrap();
        value["aud"] = json!(["x", "y"]);
        let claims = Claims::from_json(value.to_string().as_bytes()).unwrap();
        assert_eq!(claims.aud, ["x", "y"]);
        assert_eq!(
            serde_json::to_value(&claims).unwrap()["aud"],
            json!(["x", "y"])
        );
        value["aud"] = json!(42);
        assert!(Claims::from_json(value.to_string().as_bytes()).is_err());
    }

    #[test]
    fn refuses_malformed_claims() {
        let good = serde_json::to_value(two_hops()).unwrap();
        type Edit = fn(&mut Value);
        let edits: [(&str, Edit); 9] = [
            ("missing exp", |v| {
                v.as_object_mut().unwrap().remove("exp");
            }),
            ("missing iss", |v| {
                v.as_object_mut().unwrap().remove("iss");
            }),
            ("fractional exp", |v| v["exp"] = json!(1.5)),
            ("string exp", |v| v["exp"] = json!("soon")),
            ("sub not an agent", |v| v["sub"] = json!("user@example.com")),
            ("org not an org", |v| {
                v["org"] = json!("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")
            }),
            (
                "actor without sub",
                |v| v["act"] = json!({ "act": { "sub": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f02" } }),
            ),
            ("dlg not delegation ids", |v| {
                v["dlg"] = json!(["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f02"])
            }),
            ("scope not a string", |v| v["scope"] = json!(["a", "b"])),
        ];
        for (what, edit) in edits {
            let mut value = good.clone();
            edit(&mut value);
            let err = Claims::from_json(value.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.code(), "token_bad_claims", "{what}");
            assert_eq!(err.reason_code(), "token_invalid", "{what}");
        }
        // Unknown claims are ignored.
        let mut extra = good.clone();
        extra["cnf"] = json!({ "jkt": "x" });
        assert_eq!(
            Claims::from_json(extra.to_string().as_bytes()).unwrap(),
            two_hops()
        );
        // Duplicate claims are refused.
        let json = good.to_string().replacen('{', r#"{"exp":1,"#, 1);
        assert!(Claims::from_json(json.as_bytes()).is_err());
    }

    #[test]
    fn chains_list_the_outermost_actor_first_and_the_subject_last() {
        let claims = two_hops();
        assert_eq!(chain(&claims), [agent(3), agent(2), agent(1)]);
        assert_eq!(claims.actors(), [&agent(3), &agent(2)]);
        assert_eq!(claims.depth(), 2);
        assert_eq!(claims.current_actor(), &agent(3));
        let own = own_token(agent(1), "a");
        assert_eq!(chain(&own), [agent(1)]);
        assert_eq!(own.depth(), 0);
        assert_eq!(own.current_actor(), &agent(1));
    }

    #[test]
    fn scopes() {
        let claims = own_token(agent(1), "payments.refund  data.export");
        assert_eq!(
            claims.scopes().collect::<Vec<_>>(),
            ["payments.refund", "data.export"]
        );
        assert!(claims.has_scope("data.export"));
        assert!(!claims.has_scope("data"));
        assert!(!claims.has_scope(""));
        assert_eq!(join_scopes(&["a", "b.c"]), "a b.c");
        assert_eq!(own_token(agent(1), "").scopes().count(), 0);
    }

    fn check(claims: &Claims, now: i64, skew: u32) -> Result<(), TokenError> {
        validate(claims, now, ISS, Some("https://partner.example"), skew)
    }

    #[test]
    fn validates_lifetimes_with_bounded_skew() {
        let claims = own_token(agent(1), "a"); // nbf = iat = NOW, exp = NOW + 300
        assert_eq!(check(&claims, NOW, 0), Ok(()));
        assert_eq!(check(&claims, NOW + 299, 0), Ok(()));
        assert_eq!(check(&claims, NOW + 300, 0), Err(TokenError::Expired));
        assert_eq!(check(&claims, NOW + 359, 60), Ok(()), "within skew");
        assert_eq!(check(&claims, NOW + 360, 60), Err(TokenError::Expired));
        assert_eq!(
            check(&claims, NOW + 360, 3600),
            Err(TokenError::Expired),
            "skew clamped to 60"
        );
        assert_eq!(check(&claims, NOW - 1, 0), Err(TokenError::NotYetValid));
        assert_eq!(check(&claims, NOW - 60, 60), Ok(()), "within skew");
        assert_eq!(check(&claims, NOW - 61, 60), Err(TokenError::NotYetValid));
        assert_eq!(
            check(&claims, NOW - 61, 600),
            Err(TokenError::NotYetValid),
            "skew clamped"
        );
        let mut future = claims.clone();
        future.nbf = NOW - 1000;
        future.iat = NOW + 61;
        assert_eq!(check(&future, NOW, 60), Err(TokenError::IssuedInFuture));
        future.iat = NOW + 60;
        assert_eq!(check(&future, NOW, 60), Ok(()));
        assert_eq!(TokenError::Expired.reason_code(), "token_expired");
        assert_eq!(TokenError::NotYetValid.reason_code(), "token_invalid");
        // No overflow at the edges of time.
        let mut forever = claims.clone();
        forever.exp = i64::MAX;
        forever.nbf = i64::MIN;
        assert_eq!(check(&forever, NOW, 60), Ok(()));
    }

    #[test]
    fn validates_issuer_and_audience() {
        let claims = own_token(agent(1), "a");
        assert_eq!(
            validate(&claims, NOW, "https://evil.example", None, 0),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            validate(&claims, NOW, ISS, Some("https://other.example"), 0),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            validate(&claims, NOW, ISS, None, 0),
            Ok(()),
            "aud not configured"
        );
        let mut none = claims.clone();
        none.aud.clear();
        assert_eq!(
            validate(&none, NOW, ISS, Some("https://partner.example"), 0),
            Err(TokenError::WrongAudience)
        );
        let mut several = claims.clone();
        several.aud = vec!["x".into(), "https://partner.example".into()];
        assert_eq!(
            validate(&several, NOW, ISS, Some("https://partner.example"), 0),
            Ok(())
        );
        // Issuer and audience are checked before time.
        assert_eq!(
            validate(&claims, NOW + 10_000, "x", None, 0),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn verifies_signed_tokens_end_to_end() {
        let key = test_key(1);
        let set = JwkSet::from_keys([key.verifying_key()]);
        let claims = two_hops();
        let token = claims.sign(&key, &kid(key.verifying_key()));
        let expect = Expectations {
            issuer: ISS,
            audience: Some("https://partner.example"),
            skew_seconds: 60,
            max_len: DEFAULT_MAX_LEN,
        };
        let (header, back) = verify(&token, &|k| set.get(k), &expect, NOW + 10).unwrap();
        assert_eq!(back, claims);
        assert_eq!(header.kid, kid(key.verifying_key()));
        assert!(token.len() < 1024, "{}", token.len());
        assert_eq!(
            verify(&token, &|k| set.get(k), &expect, NOW + 400).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            verify(&token, &|k| set.get(k), &expect, NOW - 100).unwrap_err(),
            TokenError::NotYetValid
        );
        let wrong_aud = Expectations {
            audience: Some("x"),
            ..expect
        };
        assert_eq!(
            verify(&token, &|k| set.get(k), &wrong_aud, NOW).unwrap_err(),
            TokenError::WrongAudience
        );
        let wrong_iss = Expectations {
            issuer: "x",
            ..expect
        };
        assert_eq!(
            verify(&token, &|k| set.get(k), &wrong_iss, NOW).unwrap_err(),
            TokenError::WrongIssuer
        );
        let tiny = Expectations {
            max_len: 100,
            ..expect
        };
        assert_eq!(
            verify(&token, &|k| set.get(k), &tiny, NOW).unwrap_err(),
            TokenError::TooLong { max: 100 }
        );
        // A signed payload that is JSON but not our claims.
        let other = jws::sign(br#"{"hello":"world"}"#, &key, &kid(key.verifying_key()));
        assert_eq!(
            verify(&other, &|k| set.get(k), &expect, NOW)
                .unwrap_err()
                .code(),
            "token_bad_claims"
        );
    }

    #[test]
    fn a_five_hop_token_stays_small() {
        let mut claims = own_token(agent(1), "payments.refund data.export");
        for n in 2..=6 {
            claims.act = Some(Actor::nest(agent(n), claims.act.take()));
            claims.dlg.push(grant_id(n));
        }
        let key = test_key(1);
        let token = claims.sign(&key, &kid(key.verifying_key()));
        assert!(token.len() < 2048, "{}", token.len());
        assert_eq!(chain(&claims).len(), 6);
        assert_eq!(chain(&claims)[0], agent(6));
    }

    proptest! {
        /// The chain always has one agent per actor plus the subject, outermost first.
        #[test]
        fn chain_has_depth_plus_one_agents(actors in proptest::collection::vec(2u8..200, 0..8)) {
            let mut claims = own_token(agent(1), "a");
            for n in &actors {
                claims.act = Some(Actor::nest(agent(*n), claims.act.take()));
            }
            let chain = chain(&claims);
            prop_assert_eq!(chain.len(), actors.len() + 1);
            prop_assert_eq!(chain.last(), Some(&agent(1)));
            let expected: Vec<AgentId> = actors.iter().rev().map(|n| agent(*n)).collect();
            prop_assert_eq!(&chain[..actors.len()], &expected[..]);
            let back = Claims::from_json(&claims.to_json()).unwrap();
            prop_assert_eq!(back, claims);
        }

        /// A token is accepted exactly inside [nbf − skew, exp + skew).
        #[test]
        fn lifetime_window(now in NOW - 200..NOW + 500, skew in 0u32..120) {
            let claims = own_token(agent(1), "a");
            let s = i64::from(skew.min(MAX_SKEW_SECONDS));
            let inside = now >= NOW - s && now < NOW + 300 + s;
            prop_assert_eq!(check(&claims, now, skew).is_ok(), inside);
        }
    }
}
