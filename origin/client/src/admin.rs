//! The origin's admin API (SPEC §4), one method per operation, typed with `vouch-core`'s types
//! where it has them and with the answers' own shapes here otherwise. Operations whose answer
//! has no type here return its JSON; every call is also reachable as a [`Request`] through
//! [`Client::send`].

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use vouch_core::audit::{AuditEvent, ChainReport};
use vouch_core::delegation::Grant;
use vouch_core::partner::PartnerStatus;
use vouch_core::{AgentId, Health, OrgId, PartnerId, Passport, Status, Timestamp, TokenId};

use crate::error::{Error, Result};
use crate::request::MERGE_PATCH;
use crate::{Client, Method, Request};

/// One page of a list, newest first; `next_cursor` asks for the next one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub org_id: OrgId,
    pub name: String,
    pub slug: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub frozen_at: Option<Timestamp>,
    #[serde(default)]
    pub frozen_reason: Option<String>,
}

/// What an admin token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Platform,
    Owner,
    Admin,
    Viewer,
}

/// A new admin token; `token` is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token_id: TokenId,
    pub org_id: Option<OrgId>,
    pub role: Role,
    pub name: String,
    pub created_at: Timestamp,
    pub token: String,
}

/// A registered agent and its API key (`vk_agent_…`, shown this once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub agent: Passport,
    pub api_key: String,
}

/// A passport and its version as an ETag, for `If-Match`.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub agent_id: AgentId,
    pub previous_status: Status,
    pub new_status: Status,
    pub changed_at: Timestamp,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotatedKey {
    pub agent_id: AgentId,
    pub api_key: String,
    pub rotated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokensRevoked {
    pub agent_id: AgentId,
    pub tokens_not_before: Timestamp,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub agent_id: AgentId,
    pub status: Status,
    pub last_seen_at: Timestamp,
    pub health: Health,
}

/// The filters of `GET /v1/agents`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentFilter {
    pub status: Option<Status>,
    pub capability: Option<String>,
    pub region: Option<String>,
    pub q: Option<String>,
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The caller's own token (`GET /v1/whoami`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub role: Role,
    /// `None` for the platform admin.
    #[serde(default)]
    pub org_id: Option<OrgId>,
    #[serde(default)]
    pub token_id: Option<TokenId>,
}

/// A delegation grant as the API lists it (`GET /v1/delegations`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    pub delegation_id: String,
    pub org_id: OrgId,
    pub delegator: AgentId,
    pub delegatee: AgentId,
    pub scopes: Vec<String>,
    pub max_depth: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// The filters of `GET /v1/delegations`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DelegationFilter {
    /// `active`, `expired` or `revoked`.
    pub status: Option<String>,
    /// Grants naming this agent as either party.
    pub agent_id: Option<AgentId>,
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A webhook subscription as the API shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub webhook_id: String,
    pub org_id: OrgId,
    pub url: String,
    #[serde(default)]
    pub description: String,
    pub events: Vec<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The origin's own check of an audit chain (`GET /v1/audit/verify`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainCheck {
    pub chain_id: String,
    #[serde(flatten)]
    pub report: ChainReport,
    /// The key the checkpoints must be signed by.
    pub verifier_key: String,
    /// Events recorded but not sealed yet.
    pub pending: i64,
}

/// The newest signed tree head of an audit chain (`GET /v1/audit/checkpoint`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain_id: String,
    pub tree_size: u64,
    pub root_hash: String,
    /// The C2SP signed note.
    pub checkpoint: String,
    #[serde(default)]
    pub signed_at: Option<Timestamp>,
    /// `<name>+<key id>+<base64 public key>`.
    pub verifier_key: String,
}

fn org_query(request: Request, org: Option<&OrgId>) -> Request {
    request.query("org_id", org)
}

/// A partner (SPEC §14): a verifier calling the edge with its own key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partner {
    pub partner_id: PartnerId,
    pub name: String,
    pub contact: String,
    pub status: PartnerStatus,
    pub created_at: Timestamp,
    pub key_issued_at: Timestamp,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

/// A new partner and its key (`vk_partner_…`, shown this once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedPartner {
    #[serde(flatten)]
    pub partner: Partner,
    pub key: String,
}

/// A partner's new key (shown this once); the old one is refused within the bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotatedPartnerKey {
    pub partner_id: PartnerId,
    pub key: String,
    pub rotated_at: Timestamp,
}

/// `{}` when `reason` is absent, else `{ "reason": … }`.
fn reason_body(reason: Option<&str>) -> Value {
    match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    }
}

impl Client {
    // ---- orgs and admin tokens ---------------------------------------------------------

    /// `POST /v1/orgs` (the platform admin).
    pub async fn create_org(&self, name: &str, slug: &str) -> Result<Org> {
        let call = Request::post(&["v1", "orgs"]).json(json!({ "name": name, "slug": slug }));
        self.call(&call).await
    }

    /// `GET /v1/whoami`: the caller's role and org.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.call(&Request::get(&["v1", "whoami"])).await
    }

    pub async fn get_org(&self, org: &OrgId) -> Result<Org> {
        self.call(&Request::get(&["v1", "orgs", org.as_str()]))
            .await
    }

    /// `POST /v1/orgs/{id}/tokens`: a new admin token of the org.
    pub async fn create_token(&self, org: &OrgId, role: Role, name: &str) -> Result<CreatedToken> {
        let call = Request::post(&["v1", "orgs", org.as_str(), "tokens"])
            .json(json!({ "role": role, "name": name }));
        self.call(&call).await
    }

    pub async fn revoke_token(&self, org: &OrgId, token: &TokenId) -> Result<Value> {
        let call = Request::delete(&["v1", "orgs", org.as_str(), "tokens", token.as_str()]);
        self.json(&call).await
    }

    /// `POST /v1/orgs/{id}/freeze`: the org's agents stop verifying at once (SPEC §14).
    pub async fn freeze_org(&self, org: &OrgId, reason: Option<&str>) -> Result<Value> {
        let call = Request::post(&["v1", "orgs", org.as_str(), "freeze"]).json(reason_body(reason));
        self.json(&call).await
    }

    pub async fn unfreeze_org(&self, org: &OrgId) -> Result<Value> {
        self.json(&Request::post(&["v1", "orgs", org.as_str(), "unfreeze"]))
            .await
    }

    // ---- agents ------------------------------------------------------------------------

    /// `POST /v1/agents` with a registration body (`name`, `owner`, the mutable fields,
    /// `status`, `org_id` for the platform admin; docs/api.md).
    pub async fn register_agent(&self, passport: &Value) -> Result<Registered> {
        self.call(&Request::post(&["v1", "agents"]).json(passport.clone()))
            .await
    }

    /// `POST /v1/agents/import/oap[?org_id=]`: registers an Open Agent Passport 1.0 document
    /// as it is (docs/api.md, "OAP 1.0"); `org` is required with the platform token.
    pub async fn import_oap(&self, document: &Value, org: Option<&OrgId>) -> Result<Registered> {
        let request = Request::post(&["v1", "agents", "import", "oap"])
            .query("org_id", org.map(OrgId::as_str))
            .json(document.clone());
        self.call(&request).await
    }

    /// `GET /v1/agents/{id}/oap`: the passport as an OAP 1.0 document.
    pub async fn export_oap(&self, agent: &AgentId) -> Result<Value> {
        self.call(&Request::get(&["v1", "agents", agent.as_str(), "oap"]))
            .await
    }

    /// `GET /v1/agents/{id}`, with its ETag for a later `If-Match`.
    pub async fn get_agent(&self, agent: &AgentId) -> Result<Versioned<Passport>> {
        let answer = self
            .send(&Request::get(&["v1", "agents", agent.as_str()]))
            .await?;
        let value = serde_json::from_value(answer.body)
            .map_err(|e| Error::Protocol(format!("the passport is not readable ({e})")))?;
        Ok(Versioned {
            value,
            etag: answer.etag,
        })
    }

    /// Every agent the filter selects (all pages), newest first; `limit` and `cursor` of
    /// `filter` are ignored.
    pub async fn all_agents(&self, filter: &AgentFilter) -> Result<Vec<Passport>> {
        let mut filter = AgentFilter {
            limit: Some(500),
            cursor: None,
            ..filter.clone()
        };
        let mut agents = Vec::new();
        loop {
            let page = self.list_agents(&filter).await?;
            agents.extend(page.data);
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(agents),
            }
        }
    }

    pub async fn list_agents(&self, filter: &AgentFilter) -> Result<Page<Passport>> {
        let call = Request::get(&["v1", "agents"])
            .query("status", filter.status.map(|s| s.as_str()))
            .query("capability", filter.capability.as_ref())
            .query("region", filter.region.as_ref())
            .query("q", filter.q.as_ref())
            .query("org_id", filter.org_id.as_ref())
            .query("limit", filter.limit)
            .query("cursor", filter.cursor.as_ref());
        self.call(&call).await
    }

    /// `PATCH /v1/agents/{id}` with a JSON merge patch (RFC 7396), only if the passport is
    /// still at `if_match` when given.
    pub async fn update_agent(
        &self,
        agent: &AgentId,
        patch: &Map<String, Value>,
        if_match: Option<String>,
    ) -> Result<Passport> {
        let call = Request::new(Method::PATCH, &["v1", "agents", agent.as_str()])
            .body_as(MERGE_PATCH, Value::Object(patch.clone()))
            .if_match(if_match);
        self.call(&call).await
    }

    /// `PUT /v1/agents/{id}/status`: activate, suspend, reinstate or revoke.
    pub async fn set_status(
        &self,
        agent: &AgentId,
        status: Status,
        reason: Option<&str>,
        if_match: Option<String>,
    ) -> Result<StatusChanged> {
        let mut body = reason_body(reason);
        body["status"] = json!(status);
        let call = Request::new(Method::PUT, &["v1", "agents", agent.as_str(), "status"])
            .json(body)
            .if_match(if_match);
        self.call(&call).await
    }

    /// `POST /v1/agents/{id}/keys`: a new API key; the old one stops working.
    pub async fn rotate_agent_key(&self, agent: &AgentId) -> Result<RotatedKey> {
        self.call(&Request::post(&["v1", "agents", agent.as_str(), "keys"]))
            .await
    }

    /// `POST /v1/agents/{id}/tokens/revoke`: every access token issued so far dies.
    pub async fn revoke_agent_tokens(
        &self,
        agent: &AgentId,
        reason: Option<&str>,
    ) -> Result<TokensRevoked> {
        let call = Request::post(&["v1", "agents", agent.as_str(), "tokens", "revoke"])
            .json(reason_body(reason));
        self.call(&call).await
    }

    /// `GET /v1/agents/{id}/events`: the agent's audit events, newest first.
    pub async fn agent_events(
        &self,
        agent: &AgentId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>> {
        let call = Request::get(&["v1", "agents", agent.as_str(), "events"])
            .query("limit", limit)
            .query("cursor", cursor);
        self.call(&call).await
    }

    /// `POST /v1/agents/{id}/heartbeat` with the agent's own key: this client's token must be
    /// the `vk_agent_…` key.
    pub async fn heartbeat(&self, agent: &AgentId, health: Option<Health>) -> Result<HeartbeatAck> {
        let body = match health {
            Some(health) => json!({ "health": health }),
            None => json!({}),
        };
        let call = Request::post(&["v1", "agents", agent.as_str(), "heartbeat"]).json(body);
        self.call(&call).await
    }

    /// `POST /oauth/token` (client credentials, RFC 6749 §4.4): an access token for the
    /// agent, with its key as the client secret. Sends no admin token.
    pub async fn agent_token(&self, agent: &AgentId, api_key: &str) -> Result<Value> {
        let call = Request::post(&["oauth", "token"])
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", agent.as_str()),
                ("client_secret", api_key),
            ])
            .anonymous();
        self.json(&call).await
    }

    /// [`Client::agent_token`] for `audience` (`aud`): with a partner id (`pt_…`), a token that
    /// partner may commit with (SPEC §14).
    pub async fn agent_token_for(
        &self,
        agent: &AgentId,
        api_key: &str,
        audience: &str,
    ) -> Result<Value> {
        let call = Request::post(&["oauth", "token"])
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", agent.as_str()),
                ("client_secret", api_key),
                ("audience", audience),
            ])
            .anonymous();
        self.json(&call).await
    }

    // ---- partners (the platform admin) -------------------------------------------------

    /// `POST /v1/partners`: the answer carries the partner's key, shown this once.
    pub async fn create_partner(&self, name: &str, contact: &str) -> Result<CreatedPartner> {
        let call =
            Request::post(&["v1", "partners"]).json(json!({ "name": name, "contact": contact }));
        self.call(&call).await
    }

    /// `GET /v1/partners`: one page, newest first.
    pub async fn list_partners(&self, cursor: Option<&str>) -> Result<Page<Partner>> {
        self.call(&Request::get(&["v1", "partners"]).query("cursor", cursor))
            .await
    }

    /// Every partner (all pages), newest first.
    pub async fn all_partners(&self) -> Result<Vec<Partner>> {
        let mut partners = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let call = Request::get(&["v1", "partners"])
                .query("limit", Some(500))
                .query("cursor", cursor.as_ref());
            let page: Page<Partner> = self.call(&call).await?;
            partners.extend(page.data);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(partners);
            }
        }
    }

    pub async fn get_partner(&self, partner: &PartnerId) -> Result<Partner> {
        self.call(&Request::get(&["v1", "partners", partner.as_str()]))
            .await
    }

    /// `DELETE /v1/partners/{id}`: its key is refused at every edge within the bound.
    pub async fn revoke_partner(&self, partner: &PartnerId) -> Result<Partner> {
        self.call(&Request::delete(&["v1", "partners", partner.as_str()]))
            .await
    }

    /// `POST /v1/partners/{id}/keys`: a new key, shown this once; the old one dies.
    pub async fn rotate_partner_key(&self, partner: &PartnerId) -> Result<RotatedPartnerKey> {
        self.call(&Request::post(&[
            "v1",
            "partners",
            partner.as_str(),
            "keys",
        ]))
        .await
    }

    // ---- delegations -------------------------------------------------------------------

    /// `POST /v1/delegations`: `delegator` lets `delegatee` act for it within `scopes`.
    pub async fn create_delegation(
        &self,
        delegator: &AgentId,
        delegatee: &AgentId,
        scopes: &[&str],
        ttl_seconds: i64,
        max_depth: i64,
    ) -> Result<Grant> {
        let call = Request::post(&["v1", "delegations"]).json(json!({
            "delegator": delegator, "delegatee": delegatee, "scopes": scopes,
            "ttl_seconds": ttl_seconds, "max_depth": max_depth,
        }));
        self.call(&call).await
    }

    /// `GET /v1/delegations`: one page of grants, newest first.
    pub async fn list_delegations(&self, filter: &DelegationFilter) -> Result<Page<Delegation>> {
        let call = Request::get(&["v1", "delegations"])
            .query("status", filter.status.as_ref())
            .query("agent_id", filter.agent_id.as_ref())
            .query("org_id", filter.org_id.as_ref())
            .query("limit", filter.limit)
            .query("cursor", filter.cursor.as_ref());
        self.call(&call).await
    }

    /// Every grant the filter selects (all pages), newest first.
    pub async fn all_delegations(&self, filter: &DelegationFilter) -> Result<Vec<Delegation>> {
        let mut filter = DelegationFilter {
            limit: Some(500),
            cursor: None,
            ..filter.clone()
        };
        let mut grants = Vec::new();
        loop {
            let page = self.list_delegations(&filter).await?;
            grants.extend(page.data);
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(grants),
            }
        }
    }

    pub async fn get_delegation(&self, delegation_id: &str) -> Result<Grant> {
        self.call(&Request::get(&["v1", "delegations", delegation_id]))
            .await
    }

    pub async fn revoke_delegation(&self, delegation_id: &str) -> Result<Value> {
        self.json(&Request::delete(&["v1", "delegations", delegation_id]))
            .await
    }

    // ---- webhooks ----------------------------------------------------------------------

    /// `POST /v1/webhooks`: the answer carries the signing secret, shown this once.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: Option<&[&str]>,
        org: Option<&OrgId>,
    ) -> Result<Value> {
        let mut body = json!({ "url": url });
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        if let Some(org) = org {
            body["org_id"] = json!(org);
        }
        self.json(&Request::post(&["v1", "webhooks"]).json(body))
            .await
    }

    pub async fn list_webhooks(&self, cursor: Option<&str>) -> Result<Page<Value>> {
        self.call(&Request::get(&["v1", "webhooks"]).query("cursor", cursor))
            .await
    }

    /// Every subscription the caller sees (all pages), newest first.
    pub async fn all_webhooks(&self) -> Result<Vec<Webhook>> {
        let mut hooks = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let call = Request::get(&["v1", "webhooks"])
                .query("limit", Some(500))
                .query("cursor", cursor.as_ref());
            let page: Page<Webhook> = self.call(&call).await?;
            hooks.extend(page.data);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(hooks);
            }
        }
    }

    pub async fn get_webhook(&self, webhook_id: &str) -> Result<Value> {
        self.json(&Request::get(&["v1", "webhooks", webhook_id]))
            .await
    }

    /// `PATCH /v1/webhooks/{id}` with a merge patch (`url`, `events`, `enabled`, …).
    pub async fn update_webhook(&self, webhook_id: &str, patch: &Value) -> Result<Value> {
        let call = Request::new(Method::PATCH, &["v1", "webhooks", webhook_id])
            .body_as(MERGE_PATCH, patch.clone());
        self.json(&call).await
    }

    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<Value> {
        self.json(&Request::delete(&["v1", "webhooks", webhook_id]))
            .await
    }

    pub async fn rotate_webhook_secret(&self, webhook_id: &str) -> Result<Value> {
        let call =
            Request::post(&["v1", "webhooks", webhook_id, "secret", "rotate"]).json(json!({}));
        self.json(&call).await
    }

    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        cursor: Option<&str>,
    ) -> Result<Page<Value>> {
        let call =
            Request::get(&["v1", "webhooks", webhook_id, "deliveries"]).query("cursor", cursor);
        self.call(&call).await
    }

    pub async fn redeliver(&self, webhook_id: &str, event_id: &str) -> Result<Value> {
        let call = Request::post(&[
            "v1",
            "webhooks",
            webhook_id,
            "deliveries",
            event_id,
            "redeliver",
        ]);
        self.json(&call).await
    }

    // ---- signing keys ------------------------------------------------------------------

    /// `POST /v1/keys/rotate` (the platform admin).
    pub async fn rotate_signing_key(&self) -> Result<Value> {
        self.json(&Request::post(&["v1", "keys", "rotate"])).await
    }

    pub async fn list_signing_keys(&self) -> Result<Value> {
        self.json(&Request::get(&["v1", "keys"])).await
    }

    pub async fn withdraw_signing_key(&self, kid: &str, reason: Option<&str>) -> Result<Value> {
        let call = Request::post(&["v1", "keys", kid, "withdraw"]).json(reason_body(reason));
        self.json(&call).await
    }

    // ---- the audit log -----------------------------------------------------------------

    /// `GET /v1/audit`: one page of the chain's events, newest first.
    pub async fn audit_events(
        &self,
        org: Option<&OrgId>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>> {
        let call = org_query(Request::get(&["v1", "audit"]), org)
            .query("limit", limit)
            .query("cursor", cursor);
        self.call(&call).await
    }

    /// Every sealed event of the chain, oldest first (all pages).
    pub async fn all_audit_events(&self, org: Option<&OrgId>) -> Result<Vec<AuditEvent>> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.audit_events(org, Some(500), cursor.as_deref()).await?;
            events.extend(page.data);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        events.reverse();
        Ok(events)
    }

    /// `GET /v1/audit/verify`: the origin's own check (it seals what is pending first).
    pub async fn verify_audit(&self, org: Option<&OrgId>) -> Result<ChainCheck> {
        self.call(&org_query(Request::get(&["v1", "audit", "verify"]), org))
            .await
    }

    /// `GET /v1/audit/checkpoint`: the newest signed tree head.
    pub async fn audit_checkpoint(&self, org: Option<&OrgId>) -> Result<Checkpoint> {
        self.call(&org_query(
            Request::get(&["v1", "audit", "checkpoint"]),
            org,
        ))
        .await
    }

    /// `GET /v1/audit/events/{id}/proof`: the event's inclusion proof.
    pub async fn audit_proof(&self, event_id: &str, size: Option<u64>) -> Result<Value> {
        let call =
            Request::get(&["v1", "audit", "events", event_id, "proof"]).query("tree_size", size);
        self.json(&call).await
    }

    /// `GET /v1/audit/consistency`: the proof that tree `to` extends tree `from`.
    pub async fn audit_consistency(
        &self,
        org: Option<&OrgId>,
        from: u64,
        to: Option<u64>,
    ) -> Result<Value> {
        let call = org_query(Request::get(&["v1", "audit", "consistency"]), org)
            .query("from", Some(from))
            .query("to", to);
        self.json(&call).await
    }

    // ---- the live event stream ---------------------------------------------------------

    /// `GET /v1/events/stream`: the org's events as they happen (SSE), resuming after
    /// `last_event_id`; `types` filters them (`agent.suspended`, `agent.*`).
    pub async fn events(
        &self,
        types: &[&str],
        last_event_id: Option<&str>,
    ) -> Result<crate::EventStream> {
        let call = Request::get(&["v1", "events", "stream"])
            .query("types", (!types.is_empty()).then(|| types.join(",")));
        self.open_stream(&call, last_event_id).await
    }
}
