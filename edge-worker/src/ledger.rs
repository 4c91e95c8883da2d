//! Committing a decision to the agent's daily-caps ledger (SPEC §11): the `DailyCaps` Durable
//! Object named by the agent id ([`crate::objects::daily_caps`]) applies the core's rule, signs
//! the decision it settles on (SPEC §12) and keeps it as a receipt for the origin.

use serde_json::Value;
use vouch_core::caps::IdempotencyKey;
use vouch_core::decision::{Decision, VerifyRequest};
use vouch_core::policy::SpentToday;
use vouch_core::AgentId;
use worker::{Env, Method};

use crate::respond::EdgeError;

/// The Durable Object namespace of the per-agent daily-caps ledgers.
const CAPS_BINDING: &str = "VOUCH_CAPS";
/// A ledger that has not answered after this long is unavailable (503, retry with the same key).
const LEDGER_TIMEOUT_MS: u64 = 3_000;

/// What `agent_id` spent on `day` (`2026-11-22`) against each of `caps` (passport paths),
/// read from its ledger without changing it: the [`SpentToday`] a decision that only asks
/// counts against its daily caps (SPEC §11). A ledger that cannot be read is
/// `503 ledger_unavailable`.
pub async fn spent(
    env: &Env,
    agent_id: &AgentId,
    day: &str,
    caps: &[String],
) -> Result<SpentToday, EdgeError> {
    let mut url = worker::Url::parse("https://object/spent")
        .map_err(|e| EdgeError::Internal(e.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("day", day);
        for cap in caps {
            query.append_pair("cap", cap);
        }
    }
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let unavailable = |e: worker::Error| EdgeError::LedgerUnavailable(e.to_string());
    let stub = env
        .durable_object(CAPS_BINDING)
        .and_then(|ns| ns.get_by_name(agent_id.as_str()))
        .map_err(unavailable)?;
    let call = async {
        let mut response = crate::objects::call(&stub, Method::Get, &path, None)
            .await
            .map_err(|e| e.to_string())?;
        if response.status_code() != 200 {
            return Err(format!("the ledger answered {}", response.status_code()));
        }
        response
            .json::<SpentAnswer>()
            .await
            .map_err(|e| e.to_string())
    };
    let answer = crate::objects::within(LEDGER_TIMEOUT_MS, call)
        .await
        .map_err(EdgeError::LedgerUnavailable)?;
    Ok(answer.spent)
}

#[derive(serde::Deserialize)]
struct SpentAnswer {
    spent: SpentToday,
}

/// Records a commit in the ledger of the decision's agent (SPEC §11) and returns the signed
/// decision the ledger settled on: the same one, a cap denial, or the first decision for a
/// replayed key.
pub async fn commit(
    env: &Env,
    request: &VerifyRequest,
    key: &IdempotencyKey,
    decision: Decision,
    spend: Option<vouch_core::policy::Spend>,
) -> Result<(Value, bool), EdgeError> {
    // A decision about no known agent (unknown agent, refused token) has no ledger: it is a
    // denial, answered and not recorded.
    let (Some(agent_id), Some(_)) = (decision.agent_id.clone(), decision.passport_version) else {
        let body =
            serde_json::to_value(&decision).map_err(|e| EdgeError::Internal(e.to_string()))?;
        return Ok((crate::decision_key::sign(env, body).await?, false));
    };
    let request = vouch_core::caps::CommitRequest {
        agent_id: agent_id.clone(),
        idempotency_key: key.to_string(),
        fingerprint: request.fingerprint(&decision.chain),
        day: decision.created_at.utc_day(),
        spend: spend.filter(|s| decision.allow && !s.daily_caps.is_empty()),
        decision: serde_json::to_value(&decision)
            .map_err(|e| EdgeError::Internal(e.to_string()))?,
    };
    record(env, request).await
}

/// Sends a commit to its agent's ledger and returns the signed decision the ledger settled on
/// and whether it replayed the key. A key used before for another request is `409`
/// (`idempotency_key_reused`).
pub async fn record(
    env: &Env,
    request: vouch_core::caps::CommitRequest,
) -> Result<(Value, bool), EdgeError> {
    // The ledger signs with the same secret: without one, say so rather than "unavailable".
    crate::decision_key::current(env)?;
    let agent_id = request.agent_id.clone();
    let key = request.idempotency_key.clone();
    let text = serde_json::to_string(&request).map_err(|e| EdgeError::Internal(e.to_string()))?;
    let unavailable = |e: worker::Error| EdgeError::LedgerUnavailable(e.to_string());
    let stub = env
        .durable_object(CAPS_BINDING)
        .and_then(|ns| ns.get_by_name(agent_id.as_str()))
        .map_err(unavailable)?;
    let call = async {
        crate::objects::call(&stub, Method::Post, "/commit", Some(text))
            .await
            .map_err(|e| e.to_string())
    };
    let mut response = crate::objects::within(LEDGER_TIMEOUT_MS, call)
        .await
        .map_err(EdgeError::LedgerUnavailable)?;
    match response.status_code() {
        200 => {}
        409 => {
            // The partner's own key, not the ledger's partner-scoped one.
            let key = vouch_core::partner::unscoped_idempotency_key(&key);
            return Err(EdgeError::Conflict {
                code: "idempotency_key_reused",
                message: format!(
                    "`idempotency_key` {key:?} was already used for a different request; use a new key"
                ),
            });
        }
        status => {
            return Err(EdgeError::LedgerUnavailable(format!(
                "the ledger answered {status}"
            )))
        }
    }
    #[derive(serde::Deserialize)]
    struct Settled {
        decision: Value,
        replayed: bool,
    }
    let settled: Settled = response.json().await.map_err(unavailable)?;
    Ok((settled.decision, settled.replayed))
}
