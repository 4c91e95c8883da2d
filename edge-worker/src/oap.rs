//! The OAP 1.0 verifier interface (SPEC §13): `POST /api/verify/policy/{pack_id}`,
//! `GET /api/policies/{pack_id}`, the `GET /.well-known/oap/` discovery document and the keys
//! decisions are signed with, `GET /.well-known/oap/jwks.json` (SPEC §12).
//! Parsing, the packs and the decision are the core's; this is the shell around them.

use serde_json::Value;
use vouch_core::caps::CommitRequest;
use vouch_core::decision::merge_token_checks;
use vouch_core::packs::{self, AgentRef, OapDecision, OapRequest, PackEvaluation};
use vouch_core::policy::{codes, Evaluation, Reason, SpentToday};
use vouch_core::token::codes as token_codes;
use vouch_core::{kv, AgentId};
use worker::{Context, Env, Request, Response, Url};

use crate::journal;
use crate::kv_cache;
use crate::ledger;
use crate::partners;
use crate::respond::{cacheable, json_response, EdgeError, MAX_AGE_SECONDS};
use crate::routes::{decision_id, json_body, now};
use crate::tokens;

/// The largest body the OAP route reads.
const BODY_LIMIT: usize = 16 * 1024;

fn pack_not_found(id: &str) -> EdgeError {
    EdgeError::NotFound {
        code: "pack_not_found",
        message: format!("no policy pack `{id}`; GET /.well-known/oap/ lists them"),
    }
}

/// The header an OAP commit carries the agent's token in (`Authorization` holds the partner's
/// key, and the OAP body has no member for it).
pub const AGENT_TOKEN_HEADER: &str = "vouch-agent-token";

/// `POST /api/verify/policy/{pack_id}`: one OAP decision; with an `Idempotency-Key` header and
/// a daily cap in play, committed against the agent's ledger like `POST /verify`'s commits.
///
/// A commit (an `Idempotency-Key`) needs a partner key and the agent's token in
/// `Vouch-Agent-Token`, issued for that partner (SPEC §14); it is recorded under the partner's
/// own key. A decision that only asks reads what the agent spent today where a daily cap
/// applies (SPEC §11).
pub async fn verify(
    req: Request,
    env: &Env,
    ctx: &Context,
    host: &str,
    pack_id: &str,
) -> Result<Response, EdgeError> {
    let header_key = req.headers().get("idempotency-key").ok().flatten();
    let agent_token = req.headers().get(AGENT_TOKEN_HEADER).ok().flatten();
    let authorization = partners::authorization(&req);
    // The body first, always (see `json_body`).
    let body = json_body(req, BODY_LIMIT).await?;
    let pack = packs::builtin(pack_id).ok_or_else(|| pack_not_found(pack_id))?;
    let request = OapRequest::from_json(body, &pack.id, header_key.as_deref())?;
    journal::ensure_fresh(env, ctx, host).await?;
    let partner = partners::identify(env, authorization.as_deref()).await?;
    let commit = match (&request.commit, &partner) {
        (None, _) => None,
        (Some(_), None) => return Err(EdgeError::commit_needs_partner()),
        (Some(key), Some(partner)) => {
            let token = agent_token
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    EdgeError::bad(
                        "a commit (`Idempotency-Key`) needs the agent's token, issued for this \
                     partner, in the `Vouch-Agent-Token` header",
                        Some("Vouch-Agent-Token"),
                    )
                })?;
            Some((key.scoped_to(partner), partner, token))
        }
    };
    let now = now();
    let agent = resolve(env, &request.agent).await?;
    let entry = match &agent {
        Some(agent_id) => kv_cache::passport(env, &kv::passport_key(agent_id)).await?,
        None => None,
    };
    let Some(entry) = entry else {
        let mut decision = OapDecision::not_found(
            decision_id(),
            &pack.id,
            &request.agent,
            now,
            MAX_AGE_SECONDS,
        );
        decision.partner_id = partner;
        return respond(&sign(env, &decision).await?, None);
    };
    let evaluate = |spent: &SpentToday| {
        packs::evaluate(
            pack,
            &entry.view,
            &request.context,
            spent,
            request.idempotency_key.as_deref(),
        )
    };
    let mut evaluation = evaluate(&SpentToday::new());
    if commit.is_none() {
        let spent = crate::routes::read_spent(
            env,
            &entry.view.agent_id,
            evaluation.spend.as_ref(),
            evaluation.allow,
            now,
        )
        .await?;
        if let Some(spent) = spent {
            evaluation = evaluate(&spent);
        }
    }
    // A commit whose token does not hold is a denial that is answered and not recorded (the
    // partner retries with a good token and the same key).
    let mut token_holds = true;
    if let Some((_, partner, token)) = &commit {
        token_holds = token_checks(
            env,
            token,
            partner,
            &entry.view.agent_id,
            &mut evaluation,
            now,
        )
        .await?;
    }
    let spend = evaluation.spend.take();
    let mut decision = OapDecision::new(
        decision_id(),
        &pack.id,
        &request.agent,
        &entry.view,
        evaluation,
        now,
        MAX_AGE_SECONDS,
    )
    .with_passport_digest(Some(entry.digest.clone()));
    decision.partner_id = partner.clone();
    // Every commit whose token holds is recorded (once per key, a receipt: SPEC §12); its amount
    // counts against the agent's daily caps where the pack's capability has one.
    let (Some((key, _, _)), true) = (&commit, token_holds) else {
        return respond(&sign(env, &decision).await?, None);
    };
    let allow = decision.allow;
    let commit = CommitRequest {
        agent_id: entry.view.agent_id.clone(),
        idempotency_key: key.to_string(),
        fingerprint: request.fingerprint(&pack.id, &entry.view.agent_id),
        day: now.utc_day(),
        spend: spend.filter(|s| allow && !s.daily_caps.is_empty()),
        decision: serde_json::to_value(&decision).map_err(internal)?,
    };
    match ledger::record(env, commit).await {
        Ok((settled, replayed)) => respond(&settled, Some(replayed)),
        // OAP names this case: a decision, not an HTTP error.
        Err(EdgeError::Conflict { message, .. }) => {
            let mut denied = decision;
            denied.allow = false;
            denied.reasons = vec![Reason::new(codes::IDEMPOTENCY_CONFLICT, message)];
            respond(&sign(env, &denied).await?, Some(false))
        }
        Err(other) => Err(other),
    }
}

/// Checks the agent token of a commit and lays what it says into `evaluation`: a token that
/// does not verify, is not about `agent`, or whose chain does not hold turns the decision into a
/// denial with those reasons (`false`: answered, never recorded); a verified token not issued
/// for `partner` is `403 token_audience_mismatch`.
async fn token_checks(
    env: &Env,
    token: &str,
    partner: &vouch_core::PartnerId,
    agent: &AgentId,
    evaluation: &mut PackEvaluation,
    now: vouch_core::Timestamp,
) -> Result<bool, EdgeError> {
    let (chain, subject_status) = match tokens::verify(env, token, now).await? {
        Err(reason) => (vec![reason], None),
        Ok(claims) if claims.sub != *agent => {
            let mut reason = Reason::new(
                token_codes::TOKEN_INVALID,
                format!("the agent token is about {}, not this agent", claims.sub),
            );
            reason.field = Some(AGENT_TOKEN_HEADER.to_owned());
            (vec![reason], None)
        }
        Ok(claims) => {
            vouch_core::partner::check_commit_audience(partner, &claims.aud)
                .map_err(EdgeError::CommitForbidden)?;
            let facts = crate::routes::ChainFacts::read(env, &claims).await?;
            vouch_core::decision::token_checks(
                &claims,
                &facts.grants,
                &|a| facts.passport(a),
                &evaluation.capability,
                now,
            )
        }
    };
    if chain.is_empty() {
        return Ok(true);
    }
    let merged = merge_token_checks(
        chain,
        Evaluation {
            allow: evaluation.allow,
            reasons: std::mem::take(&mut evaluation.reasons),
            spend: None,
        },
        subject_status.as_ref(),
    );
    evaluation.allow = merged.allow;
    evaluation.reasons = merged.reasons;
    Ok(false)
}

fn internal(e: serde_json::Error) -> EdgeError {
    EdgeError::Internal(e.to_string())
}

/// The decision, signed (SPEC §12): the last step before it is answered.
async fn sign(env: &Env, decision: &OapDecision) -> Result<Value, EdgeError> {
    crate::decision_key::sign(env, serde_json::to_value(decision).map_err(internal)?).await
}

/// `GET /.well-known/oap/jwks.json`: the public keys every decision is signed with (the current
/// one and, during a rotation, the previous one).
pub fn jwks(req: &Request, env: &Env) -> Result<Response, EdgeError> {
    let body = crate::decision_key::jwks(env)?.to_string();
    Ok(cacheable(req, 200, &body, &packs::discovery_etag(&body)))
}

fn respond(decision: &Value, replayed: Option<bool>) -> Result<Response, EdgeError> {
    let text = serde_json::to_string(decision).map_err(internal)?;
    let replayed = replayed.map(|r| if r { "true" } else { "false" });
    let mut headers = vec![("cache-control", "no-store")];
    if let Some(r) = replayed {
        headers.push(("idempotent-replayed", r));
    }
    Ok(json_response(200, &text, &headers))
}

/// The agent a request names: an `ap_…` id as is; an OAP `passport_id` through its import
/// alias, else as the UUID of an agent this registry minted (its export's `passport_id`).
async fn resolve(env: &Env, agent: &AgentRef) -> Result<Option<AgentId>, EdgeError> {
    match agent {
        AgentRef::Agent(id) => Ok(Some(id.clone())),
        AgentRef::Passport(uuid) => match kv_cache::oap_alias(env, uuid).await? {
            Some(agent) => Ok(Some(agent)),
            None => Ok(agent.derived_agent()),
        },
    }
}

/// `GET /api/policies/{pack_id}`: the pack itself, as data.
pub fn policy(req: &Request, pack_id: &str) -> Result<Response, EdgeError> {
    let pack = packs::builtin(pack_id).ok_or_else(|| pack_not_found(pack_id))?;
    let body = serde_json::to_string(pack).map_err(internal)?;
    Ok(cacheable(req, 200, &body, &packs::etag(pack)))
}

/// `GET /.well-known/oap/`: where OAP verifiers find the routes and the keys.
pub async fn discovery(req: &Request, url: &Url, env: &Env) -> Result<Response, EdgeError> {
    let edge = url.origin().ascii_serialization();
    // The origin's address, as it published it in the OpenID discovery document.
    let origin = kv_cache::document(env, kv::DISCOVERY_KEY, "discovery")
        .await?
        .and_then(|d| {
            d.document
                .get("issuer")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let document = packs::discovery(&edge, origin.as_deref());
    let body = document.to_string();
    Ok(cacheable(req, 200, &body, &packs::discovery_etag(&body)))
}
