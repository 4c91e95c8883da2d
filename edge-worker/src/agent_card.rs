//! `GET /agents/{id}/agent-card.json` (and `/agents/{id}/.well-known/agent-card.json`, where an
//! A2A client given the agent's record URL as its base looks): the agent's A2A card, signed with
//! the decision key (SPEC §15). The same truth as `/verify`: the journal's freshness first (a
//! stale copy is `503`, fail closed), then the passport; only an active agent has a card, every
//! other status answers `/verify`'s refusal (`410` once revoked), never cached.

use vouch_core::{a2a, kv, AgentId, Status};
use worker::{Context, Env, Request, Response, Url};

use crate::decision_key;
use crate::journal;
use crate::kv_cache;
use crate::respond::{cacheable, json_response, EdgeError};

pub async fn card(
    req: &Request,
    url: &Url,
    env: &Env,
    ctx: &Context,
    host: &str,
    raw: &str,
) -> Result<Response, EdgeError> {
    let agent_id =
        AgentId::parse(raw).map_err(|e| EdgeError::bad(e.to_string(), Some("agent_id")))?;
    journal::ensure_fresh(env, ctx, host).await?;
    let entry = kv_cache::passport(env, &kv::passport_key(&agent_id))
        .await?
        .ok_or_else(|| EdgeError::NotFound {
            code: "agent_not_found",
            message: "no such agent".into(),
        })?;
    match entry.view.status {
        Status::Active => {}
        // Gone for good, as its DID document is.
        Status::Revoked => {
            return Ok(json_response(
                410,
                &entry.verify_body,
                &[("cache-control", "no-store")],
            ))
        }
        Status::Suspended | Status::Draft => {
            return Ok(json_response(
                entry.verify_status,
                &entry.verify_body,
                &[("cache-control", "no-store")],
            ))
        }
    }
    let key = decision_key::current(env)?;
    let edge = url.origin().ascii_serialization();
    let unsigned = a2a::card_to_sign(&entry.view, &edge, &key)
        .map_err(|e| EdgeError::Internal(format!("an agent card: {e}")))?;
    let etag = unsigned.etag();
    Ok(cacheable(req, 200, &unsigned.sign().to_string(), &etag))
}
