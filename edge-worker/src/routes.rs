//! Routing and the handlers: parse → core → respond.

use std::rc::Rc;

use futures_util::future::join_all;
use serde_json::Value;
use vouch_core::decision::{BatchReads, Decision, Subject, VerifyRequest};
use vouch_core::delegation::Grant;
use vouch_core::edge_view::EdgePassport;
use vouch_core::policy::{Spend, SpentToday};
use vouch_core::token::Claims;
use vouch_core::{kv, token, AgentId, PartnerId, Timestamp};
use worker::{Context, Date, Env, Method, Request, Response, Url};

use crate::decision_key;
use crate::journal;
use crate::kv_cache::{self, PassportEntry};
use crate::ledger;
use crate::partners;
use crate::rate_limit;
use crate::respond::{cacheable, json_response, EdgeError, MAX_AGE_SECONDS};
use crate::tokens;

/// This API's OpenAPI document (docs/api.md, "OpenAPI documents"), served at `/openapi.json`.
const OPENAPI: &str = include_str!("../openapi.json");

/// The largest body `POST /verify` reads; a batch may be 100 times larger.
const BODY_LIMIT: usize = 16 * 1024;

pub async fn handle(req: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let url = req.url()?;
    let method = req.method();
    let path = url.path().to_owned();
    let host = url.host_str().unwrap_or("localhost").to_owned();
    // Public routes are limited per client (the internal ones carry the edge secret).
    if !path.starts_with("/internal/") {
        if let Err(limited) = rate_limit::check(env, &req).await {
            drain(req).await;
            return Err(limited);
        }
    }
    match path.as_str() {
        "/verify" => match method {
            Method::Get | Method::Head => {
                journal::ensure_fresh(env, ctx, &host).await?;
                partners::identify(env, partners::authorization(&req).as_deref()).await?;
                verify_get(&req, &url, env).await
            }
            Method::Post => verify_post(req, env, ctx, &host).await,
            _ => Err(EdgeError::MethodNotAllowed),
        },
        "/verify/batch" => match method {
            Method::Post => verify_batch(req, env, ctx, &host).await,
            _ => Err(EdgeError::MethodNotAllowed),
        },
        "/.well-known/oap/jwks.json" => {
            require_get(&method)?;
            crate::oap::jwks(&req, env)
        }
        "/.well-known/oap/" | "/.well-known/oap" => {
            require_get(&method)?;
            crate::oap::discovery(&req, &url, env).await
        }
        policy if policy.starts_with("/api/verify/policy/") => match method {
            Method::Post => {
                let pack_id = policy.trim_start_matches("/api/verify/policy/").to_owned();
                crate::oap::verify(req, env, ctx, &host, &pack_id).await
            }
            _ => Err(EdgeError::MethodNotAllowed),
        },
        policy if policy.starts_with("/api/policies/") => {
            require_get(&method)?;
            crate::oap::policy(&req, policy.trim_start_matches("/api/policies/"))
        }
        internal if internal.starts_with("/internal/") => {
            crate::internal::handle(req, env, internal).await
        }
        "/openapi.json" => {
            require_get(&method)?;
            Ok(json_response(
                200,
                OPENAPI,
                &[("cache-control", "public, max-age=300")],
            ))
        }
        "/.well-known/jwks.json" => {
            require_get(&method)?;
            document(&req, env, kv::JWKS_KEY, "jwks").await
        }
        "/.well-known/openid-configuration" => {
            require_get(&method)?;
            document(&req, env, kv::DISCOVERY_KEY, "discovery").await
        }
        list if list.starts_with("/status/") => {
            require_get(&method)?;
            status_list(&req, env, list.trim_start_matches("/status/")).await
        }
        audit if audit.starts_with("/audit/") => {
            require_get(&method)?;
            let chain = audit
                .strip_prefix("/audit/")
                .and_then(|rest| rest.strip_suffix("/checkpoint"))
                .ok_or_else(|| EdgeError::NotFound {
                    code: "not_found",
                    message: "no such endpoint".into(),
                })?;
            checkpoint(&req, env, chain).await
        }
        agent if agent.starts_with("/agents/") => {
            let rest = agent.trim_start_matches("/agents/");
            match rest.split_once('/') {
                Some((id, "did.json")) => {
                    require_get(&method)?;
                    journal::ensure_fresh(env, ctx, &host).await?;
                    did_document(&req, &url, env, id).await
                }
                Some((id, "agent-card.json" | ".well-known/agent-card.json")) => {
                    require_get(&method)?;
                    crate::agent_card::card(&req, &url, env, ctx, &host, id).await
                }
                Some((id, "badge.svg")) => {
                    require_get(&method)?;
                    Ok(crate::public_page::badge(&req, env, ctx, &host, id).await)
                }
                None => {
                    require_get(&method)?;
                    Ok(crate::public_page::page(&req, env, ctx, &host, rest).await)
                }
                Some(_) => Err(EdgeError::NotFound {
                    code: "not_found",
                    message: "no such endpoint".into(),
                }),
            }
        }
        _ => Err(EdgeError::NotFound {
            code: "not_found",
            message: "no such endpoint".into(),
        }),
    }
}

fn require_get(method: &Method) -> Result<(), EdgeError> {
    match method {
        Method::Get | Method::Head => Ok(()),
        _ => Err(EdgeError::MethodNotAllowed),
    }
}

fn parse_agent_id(raw: &str) -> Result<AgentId, EdgeError> {
    AgentId::parse(raw).map_err(|e| EdgeError::bad(e.to_string(), Some("agent_id")))
}

fn agent_not_found() -> EdgeError {
    EdgeError::NotFound {
        code: "agent_not_found",
        message: "no such agent".into(),
    }
}

/// `GET /verify?agent_id=ap_…` (SPEC §8).
async fn verify_get(req: &Request, url: &Url, env: &Env) -> Result<Response, EdgeError> {
    let raw = url
        .query_pairs()
        .find(|(k, _)| k == "agent_id")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| EdgeError::bad("`agent_id` is required", Some("agent_id")))?;
    let agent_id = parse_agent_id(&raw)?;
    let entry = kv_cache::passport(env, &kv::passport_key(&agent_id))
        .await?
        .ok_or_else(agent_not_found)?;
    Ok(cacheable(
        req,
        entry.verify_status,
        &entry.verify_body,
        &entry.etag,
    ))
}

/// A document the origin published as-is (`jwks`, `discovery`).
async fn document(req: &Request, env: &Env, key: &str, kind: &str) -> Result<Response, EdgeError> {
    let entry = kv_cache::document(env, key, kind)
        .await?
        .ok_or_else(|| EdgeError::NotFound {
            code: "not_found",
            message: format!("the {kind} document has not been published yet"),
        })?;
    Ok(cacheable(req, 200, &entry.body, &entry.etag))
}

/// `GET /status/{list_id}`: the token status list the origin signed (SPEC §16), served as it is
/// (`application/statuslist+jwt`), with its ETag; it travels through KV only (docs/api.md,
/// "Status lists").
async fn status_list(req: &Request, env: &Env, raw: &str) -> Result<Response, EdgeError> {
    let list_id = vouch_core::status_list::parse_list_id(raw).ok_or_else(|| {
        EdgeError::bad(
            "a status list id is a decimal number without leading zeros",
            Some("list_id"),
        )
    })?;
    let kind = format!("status-{list_id}");
    let missing = || EdgeError::NotFound {
        code: "status_list_not_found",
        message: "no such status list".into(),
    };
    let entry = kv_cache::document(env, &vouch_core::status_list::kv_key(list_id), &kind)
        .await?
        .ok_or_else(missing)?;
    let token = entry
        .document
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| EdgeError::Internal(format!("the {kind} document has no token")))?;
    Ok(crate::respond::cacheable_as(
        req,
        200,
        vouch_core::status_list::MEDIA_TYPE,
        token,
        &entry.etag,
    ))
}

/// `GET /audit/{chain_id}/checkpoint`: the audit chain's newest published checkpoint, a C2SP
/// signed note, as the origin signed it (docs/api.md, "Audit log").
async fn checkpoint(req: &Request, env: &Env, chain: &str) -> Result<Response, EdgeError> {
    if chain != vouch_core::audit::PLATFORM_CHAIN {
        vouch_core::OrgId::parse(chain)
            .map_err(|e| EdgeError::bad(e.to_string(), Some("chain_id")))?;
    }
    let entry = kv_cache::checkpoint(env, chain)
        .await?
        .ok_or_else(|| EdgeError::NotFound {
            code: "checkpoint_not_found",
            message: "no checkpoint has been published for this chain".into(),
        })?;
    Ok(crate::respond::cacheable_as(
        req,
        200,
        "text/plain; charset=utf-8",
        &entry.note,
        &entry.etag,
    ))
}

/// `GET /agents/{id}/did.json`: a `did:web` document. A revoked agent's DID is gone (`410`).
async fn did_document(
    req: &Request,
    url: &Url,
    env: &Env,
    raw: &str,
) -> Result<Response, EdgeError> {
    let agent_id = parse_agent_id(raw)?;
    let entry = kv_cache::passport(env, &kv::passport_key(&agent_id))
        .await?
        .ok_or_else(agent_not_found)?;
    if entry.view.status == vouch_core::Status::Revoked {
        return Ok(crate::respond::json_response(410, &entry.verify_body, &[]));
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let body = entry.view.did_document(&host).to_string();
    Ok(cacheable(req, 200, &body, &entry.etag))
}

/// Reads the body to its end and drops it, so an early answer does not reset the connection
/// (see [`json_body`]).
async fn drain(mut req: Request) {
    use futures_util::StreamExt;
    if let Ok(mut stream) = req.stream() {
        while let Some(Ok(_)) = stream.next().await {}
    }
}

/// Reads a JSON body of at most `limit` bytes.
///
/// The body is always consumed before answering: answering while the client still has body bytes
/// in flight makes workerd close the connection, and a client reusing it would see a reset
/// instead of the JSON error. Past `limit` the rest is drained chunk by chunk and dropped, so an
/// oversized body never sits in the isolate's memory.
pub async fn json_body(mut req: Request, limit: usize) -> Result<Value, EdgeError> {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    let mut too_large = false;
    // A request without a body has no stream: it is an empty body.
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if too_large || bytes.len() + chunk.len() > limit {
                too_large = true;
                continue;
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    let content_type = req.headers().get("content-type").ok().flatten();
    let is_json = content_type
        .as_deref()
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(EdgeError::UnsupportedMediaType);
    }
    if too_large {
        return Err(EdgeError::PayloadTooLarge(limit));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| EdgeError::bad(format!("the body is not valid JSON: {e}"), None))
}

/// A fresh decision id from the runtime's CSPRNG.
pub(crate) fn decision_id() -> String {
    format!("dec_{}", crate::random::uuid_hex().unwrap_or_default())
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_millis(i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX))
}

/// One answer for `partner` (`None`: an anonymous caller), signed (SPEC §12): the decision, or
/// for a commit the decision the agent's daily-caps ledger settled on (signed there: the ledger
/// has the last word on a commit). The second value says, for a commit, whether it was a replay
/// of its idempotency key.
///
/// A commit needs a partner and, once the token is verified, a token whose `aud` names that
/// partner (`403 token_audience_mismatch` otherwise, before the ledger is asked); it is
/// recorded under the partner's own idempotency key (SPEC §14).
async fn answer(
    env: &Env,
    request: &VerifyRequest,
    partner: Option<&PartnerId>,
) -> Result<(Value, Option<bool>), EdgeError> {
    if request.commit.is_some() && partner.is_none() {
        return Err(EdgeError::commit_needs_partner());
    }
    let Decided {
        mut decision,
        spend,
        audience,
    } = decide(env, request).await?;
    decision.partner_id = partner.cloned();
    let (Some(key), Some(partner)) = (&request.commit, partner) else {
        let decision =
            serde_json::to_value(&decision).map_err(|e| EdgeError::Internal(e.to_string()))?;
        return Ok((decision_key::sign(env, decision).await?, None));
    };
    if let Some(audience) = &audience {
        vouch_core::partner::check_commit_audience(partner, audience)
            .map_err(EdgeError::CommitForbidden)?;
    }
    let key = key.scoped_to(partner);
    let (committed, replayed) = ledger::commit(env, request, &key, decision, spend).await?;
    Ok((committed, Some(replayed)))
}

/// A decision, with the amount a commit would spend and, when a token was verified, its `aud`.
struct Decided {
    decision: Decision,
    spend: Option<Spend>,
    audience: Option<Vec<String>>,
}

/// One decision (SPEC §11) from KV, the journal and the core, with the amount it would spend.
async fn decide(env: &Env, request: &VerifyRequest) -> Result<Decided, EdgeError> {
    let now = now();
    match &request.subject {
        Subject::Agent(agent_id) => {
            let entry = kv_cache::passport(env, &kv::passport_key(agent_id)).await?;
            let view = entry.as_ref().map(|e| &e.view);
            let mut evaluation = request.evaluate(view);
            if let Some(spent) = spent_today(env, request, agent_id, &evaluation, now).await? {
                evaluation = request.evaluate_with_spent(view, &spent);
            }
            let spend = evaluation.spend.take();
            let decision = Decision::new(
                decision_id(),
                request,
                vec![agent_id.clone()],
                view,
                evaluation,
                now,
                MAX_AGE_SECONDS,
            )
            .with_passport_digest(entry.as_ref().map(|e| e.digest.clone()));
            Ok(Decided {
                decision,
                spend,
                audience: None,
            })
        }
        Subject::Token(token) => decide_token(env, request, token, now).await,
    }
}

/// What `agent`'s ledger holds today for the daily caps `evaluation` counts against, when a
/// decision that only asks must read it (SPEC §11: never `allow` an amount a commit would
/// refuse); `None` when there is nothing to read or nothing was spent. A commit does not read
/// it here: its ledger checks the caps itself, atomically. A ledger that cannot be read fails
/// an allow closed (`503`); a denial stands without it.
async fn spent_today(
    env: &Env,
    request: &VerifyRequest,
    agent: &AgentId,
    evaluation: &vouch_core::policy::Evaluation,
    now: Timestamp,
) -> Result<Option<SpentToday>, EdgeError> {
    if request.commit.is_some() {
        return Ok(None);
    }
    read_spent(env, agent, evaluation.spend.as_ref(), evaluation.allow, now).await
}

/// [`spent_today`] for any decision: what `agent` spent today against the caps of `spend`.
pub(crate) async fn read_spent(
    env: &Env,
    agent: &AgentId,
    spend: Option<&Spend>,
    allow: bool,
    now: Timestamp,
) -> Result<Option<SpentToday>, EdgeError> {
    let Some(spend) = spend.filter(|s| !s.daily_caps.is_empty()) else {
        return Ok(None);
    };
    let caps: Vec<String> = spend.daily_caps.iter().map(|c| c.limit.clone()).collect();
    match ledger::spent(env, agent, &now.utc_day(), &caps).await {
        Ok(spent) if spent.values().all(|amount| *amount == 0) => Ok(None),
        Ok(spent) => Ok(Some(spent)),
        Err(error) if !allow => {
            worker::console_warn!("daily caps not read for a denial: {error:?}");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// What a verified token's chain rests on, as this edge sees it now: the grants of its `dlg`
/// and the passports of every agent of [`token::chain`].
pub(crate) struct ChainFacts {
    pub chain: Vec<AgentId>,
    pub grants: Vec<Option<Grant>>,
    passports: Vec<Option<Rc<PassportEntry>>>,
}

impl ChainFacts {
    pub(crate) async fn read(env: &Env, claims: &Claims) -> Result<ChainFacts, EdgeError> {
        let chain = token::chain(claims);
        let grants: Vec<Option<Grant>> =
            join_all(claims.dlg.iter().map(|id| kv_cache::grant(env, id)))
                .await
                .into_iter()
                .map(|found| found.map(|grant| grant.map(|g| Grant::clone(&g))))
                .collect::<Result<_, _>>()?;
        let keys: Vec<String> = chain.iter().map(kv::passport_key).collect();
        let passports: Vec<Option<Rc<PassportEntry>>> =
            join_all(keys.iter().map(|key| kv_cache::passport(env, key)))
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
        Ok(ChainFacts {
            chain,
            grants,
            passports,
        })
    }

    /// The passport of an agent of the chain, if found.
    pub(crate) fn passport(&self, agent: &AgentId) -> Option<&EdgePassport> {
        self.entry(agent).map(|entry| &entry.view)
    }

    /// The passport of an agent of the chain as the edge cached it (with its digest), if found.
    pub(crate) fn entry(&self, agent: &AgentId) -> Option<&PassportEntry> {
        self.chain
            .iter()
            .position(|a| a == agent)
            .and_then(|i| self.passports.get(i))
            .and_then(Option::as_deref)
    }
}

/// A token's decision: verify it, read its grants and the passports of its chain, and let the
/// core check the chain and the subject's passport.
async fn decide_token(
    env: &Env,
    request: &VerifyRequest,
    token: &str,
    now: Timestamp,
) -> Result<Decided, EdgeError> {
    let claims = match tokens::verify(env, token, now).await? {
        Ok(claims) => claims,
        Err(reason) => {
            let evaluation = request.evaluate_token(Err(reason), &[], &|_| None, now);
            let decision = Decision::new(
                decision_id(),
                request,
                Vec::new(),
                None,
                evaluation,
                now,
                MAX_AGE_SECONDS,
            );
            return Ok(Decided {
                decision,
                spend: None,
                audience: None,
            });
        }
    };
    let facts = ChainFacts::read(env, &claims).await?;
    let passport_of = |agent: &AgentId| facts.passport(agent);
    let mut evaluation = request.evaluate_token(Ok(&claims), &facts.grants, &passport_of, now);
    if let Some(spent) = spent_today(env, request, &claims.sub, &evaluation, now).await? {
        evaluation = request.evaluate_token_with_spent(
            Ok(&claims),
            &facts.grants,
            &passport_of,
            now,
            &spent,
        );
    }
    let spend = evaluation.spend.take();
    let subject = passport_of(&claims.sub);
    let decision = Decision::new(
        decision_id(),
        request,
        facts.chain.clone(),
        subject,
        evaluation,
        now,
        MAX_AGE_SECONDS,
    )
    .with_passport_digest(facts.entry(&claims.sub).map(|e| e.digest.clone()));
    Ok(Decided {
        decision,
        spend,
        audience: Some(claims.aud.clone()),
    })
}

fn decision_response(body: &Value) -> Result<Response, EdgeError> {
    Ok(json_response(
        200,
        &body.to_string(),
        &[("cache-control", "no-store")],
    ))
}

/// `POST /verify`: one decision.
async fn verify_post(
    req: Request,
    env: &Env,
    ctx: &Context,
    host: &str,
) -> Result<Response, EdgeError> {
    let authorization = partners::authorization(&req);
    // The body first, always (an answer before it is read would reset the connection); a bad
    // request is a 400 whatever the journal's state.
    let body = json_body(req, BODY_LIMIT).await?;
    let request = VerifyRequest::from_json(body, "")?;
    journal::ensure_fresh(env, ctx, host).await?;
    let partner = partners::identify(env, authorization.as_deref()).await?;
    let (answer, replayed) = answer(env, &request, partner.as_ref()).await?;
    let mut response = decision_response(&answer)?;
    if let Some(replayed) = replayed {
        let _ = response.headers_mut().set(
            "idempotent-replayed",
            if replayed { "true" } else { "false" },
        );
    }
    Ok(response)
}

/// The distinct KV keys `requests` will read, known before any decision is made (so a batch
/// past the bound is refused whole, before any commit). Tokens are verified here already; the
/// decisions then find them in the isolate's verified-token cache.
async fn batch_reads(env: &Env, requests: &[VerifyRequest]) -> Result<BatchReads, EdgeError> {
    let now = now();
    let mut reads = BatchReads::default();
    for request in requests {
        match &request.subject {
            Subject::Agent(agent_id) => reads.add_agent(agent_id),
            Subject::Token(token) => {
                reads.add_token();
                if let Ok(claims) = tokens::verify(env, token, now).await? {
                    reads.add_verified(&claims);
                }
            }
        }
    }
    Ok(reads)
}

/// `POST /verify/batch`: up to 100 decisions, in order. Beside them, `replayed` says for each
/// item whether its commit replayed its idempotency key (`null` for an item that did not commit):
/// outside the decisions, which are signed and must stay exactly as first answered.
async fn verify_batch(
    req: Request,
    env: &Env,
    ctx: &Context,
    host: &str,
) -> Result<Response, EdgeError> {
    let authorization = partners::authorization(&req);
    let body = json_body(req, BODY_LIMIT * vouch_core::decision::BATCH_MAX).await?;
    let requests = VerifyRequest::batch_from_json(body)?;
    journal::ensure_fresh(env, ctx, host).await?;
    let partner = partners::identify(env, authorization.as_deref()).await?;
    // An anonymous batch that commits is refused whole, before anything is recorded.
    if partner.is_none() && requests.iter().any(|r| r.commit.is_some()) {
        return Err(EdgeError::commit_needs_partner());
    }
    batch_reads(env, &requests).await?.check()?;
    let mut decisions = Vec::with_capacity(requests.len());
    let mut replays = Vec::with_capacity(requests.len());
    for request in &requests {
        // Per item: a long batch never answers a late item from a copy past the bound.
        journal::ensure_fresh(env, ctx, host).await?;
        // A commit's own failure (a token for another partner, key reused, ledger
        // unreachable) is that item's answer; the items before it stay recorded, and a retry of
        // the batch replays them. Each committed item says whether it was a replay.
        let (item, replayed) = match answer(env, request, partner.as_ref()).await {
            Ok((decision, replayed)) => (decision, replayed.map(Value::Bool)),
            Err(
                error @ (EdgeError::Conflict { .. }
                | EdgeError::LedgerUnavailable(_)
                | EdgeError::CommitForbidden(_)),
            ) => (error.body(), None),
            Err(error) => return Err(error),
        };
        decisions.push(item);
        replays.push(replayed.unwrap_or(Value::Null));
    }
    decision_response(&serde_json::json!({ "decisions": decisions, "replayed": replays }))
}
