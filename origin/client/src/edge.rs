//! The edge's public API: `GET /verify` with a revalidation cache, decisions, the published
//! documents.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vouch_core::decision::Decision;
use vouch_core::{AgentId, AssuranceLevel, Capability, Region, Status, Tier, Timestamp};

use crate::error::{from_answer, Error, Result};
use crate::{Client, Raw, Request};

/// How many `GET /verify` answers [`Edge`] keeps for revalidation.
pub const VERIFY_CACHE_ENTRIES: usize = 4096;

/// The public view of an active agent (`200` of `GET /verify`, SPEC §8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifiedAgent {
    pub agent_id: AgentId,
    pub status: Status,
    pub name: String,
    pub owner_display: String,
    pub role: Option<String>,
    pub capabilities: Vec<Capability>,
    pub limits: Map<String, Value>,
    pub regions: Vec<Region>,
    pub assurance_level: AssuranceLevel,
    pub tier: Tier,
    pub version: i64,
    pub updated_at: Timestamp,
}

/// Why an agent that exists may not act (`403` of `GET /verify`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// `agent_suspended`, `agent_revoked`, `agent_not_active`.
    #[serde(rename = "error")]
    pub code: String,
    pub message: String,
    pub agent_id: AgentId,
    pub status: Status,
    /// Whom to contact about the agent.
    pub contact: String,
    pub version: i64,
    /// Why it was suspended or revoked.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer of `GET /verify` about an agent that exists.
#[derive(Clone, Debug, PartialEq)]
pub enum Verification {
    Active(VerifiedAgent),
    Refused(Refusal),
}

/// One decision request (`POST /verify`, SPEC §11).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DecisionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// An access token of the agent (`eyJ…`) instead of its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub capability: String,
    /// The action's context (`amount`, `currency`, `region`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_assurance: Option<AssuranceLevel>,
    /// Records the decision against the agent's daily caps, once per `idempotency_key`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub commit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl DecisionRequest {
    pub fn for_agent(agent_id: AgentId, capability: impl Into<String>) -> DecisionRequest {
        DecisionRequest {
            agent_id: Some(agent_id),
            capability: capability.into(),
            ..DecisionRequest::default()
        }
    }

    pub fn for_token(token: impl Into<String>, capability: impl Into<String>) -> DecisionRequest {
        DecisionRequest {
            token: Some(token.into()),
            capability: capability.into(),
            ..DecisionRequest::default()
        }
    }

    pub fn context(mut self, context: Value) -> DecisionRequest {
        self.context = Some(context);
        self
    }

    /// Asks for the decision to be recorded (a commit), once for `idempotency_key`.
    pub fn commit(mut self, idempotency_key: impl Into<String>) -> DecisionRequest {
        self.commit = true;
        self.idempotency_key = Some(idempotency_key.into());
        self
    }
}

/// A client of the edge's public API.
///
/// `verify` keeps each agent's last answer with its ETag and asks again with
/// `If-None-Match`: an unchanged passport comes back as a bodiless `304`, served from the
/// cache. Decisions are never cached (each has its own id and expiry).
#[derive(Debug)]
pub struct Edge {
    client: Client,
    cache: Mutex<VerifyCache>,
    revalidated: AtomicU64,
    /// Whether the client's token is a partner key, sent with every call (SPEC §14).
    as_partner: bool,
}

#[derive(Debug, Default)]
struct VerifyCache {
    entries: HashMap<String, (String, Verification)>,
    /// Oldest first: the first to go when the cache is full.
    order: VecDeque<String>,
}

impl VerifyCache {
    fn insert(&mut self, agent: &str, etag: String, answer: Verification) {
        if self
            .entries
            .insert(agent.to_owned(), (etag, answer))
            .is_none()
        {
            self.order.push_back(agent.to_owned());
        }
        while self.order.len() > VERIFY_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}

impl Edge {
    /// A client of the edge at `base` (e.g. `http://127.0.0.1:8787`).
    pub fn new(base: &str) -> Result<Edge> {
        Ok(Edge::with_client(Client::new(base, None)?))
    }

    /// Over a client built with [`Client::builder`] (its token is not sent).
    pub fn with_client(client: Client) -> Edge {
        Edge {
            client,
            cache: Mutex::new(VerifyCache::default()),
            revalidated: AtomicU64::new(0),
            as_partner: false,
        }
    }

    /// A client of the edge at `base` calling as the partner whose key is `partner_key`
    /// (`vk_partner_…`, sent as `Authorization: Bearer …`; SPEC §14): its decisions name the
    /// partner, and only a partner may commit. The edge refuses a bad or revoked key with `401`.
    pub fn for_partner(base: &str, partner_key: &str) -> Result<Edge> {
        let mut edge = Edge::with_client(Client::new(base, Some(partner_key.to_owned()))?);
        edge.as_partner = true;
        Ok(edge)
    }

    /// `call` sent as this edge client calls: with the partner key, or anonymously.
    fn who(&self, call: Request) -> Request {
        if self.as_partner {
            call
        } else {
            call.anonymous()
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many `verify` calls were answered `304 Not Modified` from the cache.
    pub fn revalidated(&self) -> u64 {
        self.revalidated.load(Ordering::Relaxed)
    }

    fn cached(&self, agent: &str) -> Option<(String, Verification)> {
        self.cache.lock().ok()?.entries.get(agent).cloned()
    }

    /// `GET /verify?agent_id=…`: whether the agent may act, and its public view. An unknown
    /// agent is [`Error::Api`] `agent_not_found` (`404`).
    pub async fn verify(&self, agent_id: &AgentId) -> Result<Verification> {
        let key = agent_id.to_string();
        let cached = self.cached(&key);
        let request = Request::get(&["verify"])
            .query("agent_id", Some(&key))
            .if_none_match(cached.as_ref().map(|(etag, _)| etag.clone()));
        let request = self.who(request);
        let raw = self.client.exchange(&request).await?;
        let answer = match (raw.status, cached) {
            (304, Some((_, answer))) => {
                self.revalidated.fetch_add(1, Ordering::Relaxed);
                return Ok(answer);
            }
            (200, _) => Verification::Active(self.parse(&raw)?),
            (403, _) => Verification::Refused(self.parse(&raw)?),
            (status, _) => return Err(from_answer(status, &raw.bytes)),
        };
        if let (Some(etag), Ok(mut cache)) = (raw.etag, self.cache.lock()) {
            cache.insert(&key, etag, answer.clone());
        }
        Ok(answer)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, raw: &Raw) -> Result<T> {
        serde_json::from_value(self.client.body_of(raw)?).map_err(|e| {
            Error::Protocol(format!(
                "the edge's /verify answer is not what this client understands ({e})"
            ))
        })
    }

    /// `POST /verify`: the decision (SPEC §11). Retried like an idempotent call: without
    /// `commit` it only asks, and a commit is recorded once per idempotency key.
    pub async fn decide(&self, request: &DecisionRequest) -> Result<Decision> {
        self.client
            .call(&self.who(decision_call(&["verify"], request)?))
            .await
    }

    /// `POST /verify/batch`: up to 100 decisions in order. A commit refused on its own
    /// (`409 idempotency_key_reused`) is that item's error body, so items are JSON; a committed
    /// item carries `replayed`.
    pub async fn decide_batch(&self, requests: &[DecisionRequest]) -> Result<Vec<Value>> {
        let body = serde_json::json!({ "requests": requests });
        let call = self.who(Request::post(&["verify", "batch"]).json(body).repeatable());
        let answer: Value = self.client.json(&call).await?;
        match answer.get("decisions") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(Error::Protocol(
                "the edge's batch answer has no `decisions`".into(),
            )),
        }
    }

    /// `GET /.well-known/jwks.json`: the keys that sign access tokens.
    pub async fn jwks(&self) -> Result<vouch_core::jwk::JwkSet> {
        let call = Request::get(&[".well-known", "jwks.json"]).anonymous();
        self.client.call(&call).await
    }

    /// `GET /audit/{chain_id}/checkpoint`: the chain's newest published checkpoint (a signed
    /// note); `None` before the first one is published.
    pub async fn checkpoint(&self, chain_id: &str) -> Result<Option<String>> {
        let url = self
            .client
            .url(&Request::get(&["audit", chain_id, "checkpoint"]))?;
        self.client.fetch_public(url.as_str()).await
    }
}

fn decision_call(path: &[&str], request: &DecisionRequest) -> Result<Request> {
    let body = serde_json::to_value(request)
        .map_err(|e| Error::Config(format!("cannot encode the decision request: {e}")))?;
    Ok(Request::post(path).json(body).repeatable())
}
