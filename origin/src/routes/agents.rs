//! Agents: register, list, read, PATCH, lifecycle, API-key rotation, token revocation, events,
//! heartbeat.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vouch_core::audit::AuditEvent;
use vouch_core::patch::apply_merge_patch;
use vouch_core::{etag, lifecycle};
use vouch_core::{
    AgentId, CapabilityId, CoreError, EventType, Health, NewAgent, OrgId, Passport, Region, Status,
    Timestamp,
};

use crate::app::AppState;
use crate::auth::{AgentCaller, Caller};
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{JsonBody, MergePatchBody, OptionalJsonBody, QueryParams};
use crate::routes::{target_org, wait_propagated, List, Pagination, WaitQuery};
use crate::secrets;
use crate::store::{AgentChange, AgentFilter, ChangeEvent, PageRequest};

pub(crate) fn parse_agent_id(raw: &str) -> Result<AgentId> {
    AgentId::parse(raw).map_err(|e| Error::field("agent_id", e.to_string()))
}

/// `body` as JSON with the `ETag` of the passport it was made from.
pub(crate) fn with_etag_of<T: Serialize>(status: StatusCode, etag: &str, body: T) -> Response {
    let etag = HeaderValue::from_str(etag).ok();
    let mut response = (status, Json(body)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The passport as JSON with its `ETag`.
fn with_etag(status: StatusCode, passport: Passport) -> Response {
    let etag = passport.etag();
    with_etag_of(status, &etag, passport)
}

/// A conditional header's values joined into one list (a header may be sent more than once),
/// or `None` when it is absent.
fn conditional(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<String>> {
    let mut values = Vec::new();
    for value in headers.get_all(&name) {
        let value = value.to_str().map_err(|_| {
            Error::field(
                name.as_str(),
                format!("`{name}` must be an ETag such as \"7\""),
            )
        })?;
        values.push(value);
    }
    Ok((!values.is_empty()).then(|| values.join(", ")))
}

/// The `If-Match` header, if sent.
fn if_match(headers: &HeaderMap) -> Result<Option<String>> {
    conditional(headers, header::IF_MATCH)
}

/// `412 version_mismatch` unless `If-Match` (strong comparison, RFC 9110 §13.1.1) holds for
/// the current passport.
fn check_version(expected: &Option<String>, current: &Passport) -> Result<()> {
    match expected {
        Some(tag) if !etag::precondition_holds(tag, &current.etag()) => {
            Err(Error::VersionMismatch {
                expected: tag.clone(),
                current: current.version,
            })
        }
        _ => Ok(()),
    }
}

/// A new agent and its API key, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Registered {
    pub agent: Passport,
    /// `vk_agent_…`: the agent's secret, shown once.
    pub api_key: String,
}

/// Register an agent.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = NewAgent,
    responses((status = 201, body = Registered), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn register_agent(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response> {
    caller.require_writer()?;
    let body = NewAgent::from_json(body)?;
    let org_id = target_org(&caller, body.org_id.clone())?;
    // An org that does not exist fails the insert's foreign key: `404 org_not_found`.
    let at = now();
    let passport = Passport::register(body, AgentId::from_uuid(Uuid::now_v7()), org_id, at)?;
    create(&state, &caller, passport, json!({})).await
}

/// Stores a new passport with its `passport.created` event (`extra` joins the event's data)
/// and answers `201 { agent, api_key }`, the key shown once.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    passport: Passport,
    extra: serde_json::Value,
) -> Result<Response> {
    let api_key = secrets::generate(secrets::AGENT_KEY_PREFIX);
    let mut data = json!({ "passport": passport });
    if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&passport.org_id),
        EventType::PassportCreated,
        "agent",
        passport.agent_id.as_str(),
        passport.version,
        data,
        passport.created_at,
    );
    state
        .store
        .insert_agent(&passport, &secrets::hash(&api_key), &event)
        .await?;
    let location = HeaderValue::from_str(&format!("/v1/agents/{}", passport.agent_id)).ok();
    let etag = HeaderValue::from_str(&passport.etag()).ok();
    let mut response = (
        StatusCode::CREATED,
        Json(Registered {
            agent: passport,
            api_key,
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Filters of the agent list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    pub status: Option<Status>,
    /// Agents holding this capability id.
    pub capability: Option<String>,
    /// Agents allowed in this region (listed exactly, through their country, or `*`).
    pub region: Option<String>,
    /// Case-insensitive part of the name.
    pub q: Option<String>,
    /// Platform admin only: one org's agents.
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List agents, newest first.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = List<Passport>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AgentQuery>,
) -> Result<Json<List<Passport>>> {
    let page = Pagination {
        limit: query.limit,
        cursor: query.cursor,
    }
    .request()?;
    let capability = query
        .capability
        .as_deref()
        .map(CapabilityId::parse)
        .transpose()?;
    let region = query.region.as_deref().map(Region::parse).transpose()?;
    if let Some(q) = &query.q {
        vouch_core::validate::optional_text("q", q, vouch_core::validate::MAX_NAME)?;
    }
    let filter = AgentFilter {
        org_id: query.org_id,
        status: query.status,
        capability,
        region,
        q: query.q.filter(|q| !q.is_empty()),
    };
    let page = state
        .store
        .list_agents(&caller.scope(), &filter, &page)
        .await?;
    Ok(Json(page.into()))
}

/// One passport, with `ETag: "<version>"`; `If-None-Match` answers `304`.
#[utoipa::path(get, path = "/v1/agents/{agent_id}", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`")),
    responses((status = 200, body = Passport), (status = 304), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let agent_id = parse_agent_id(&agent_id)?;
    let passport = state
        .store
        .get_agent(&caller.scope(), &agent_id)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    let etag = passport.etag();
    // Weak comparison (RFC 9110 §13.1.2); an unreadable header is as good as none.
    let not_modified = conditional(&headers, header::IF_NONE_MATCH)
        .ok()
        .flatten()
        .is_some_and(|v| etag::not_modified(&v, &etag));
    if not_modified {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(response);
    }
    Ok(with_etag(StatusCode::OK, passport))
}

/// Change mutable fields with a JSON merge patch (RFC 7396). `If-Match` guards against lost updates.
#[utoipa::path(patch, path = "/v1/agents/{agent_id}", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`"),
           ("If-Match" = Option<String>, Header, description = "the ETag you read, e.g. \"7\"")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Passport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 412, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn patch_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    MergePatchBody(patch): MergePatchBody,
) -> Result<Response> {
    let agent_id = parse_agent_id(&agent_id)?;
    // A body that is no patch at all is refused before any precondition is checked.
    if !patch.is_object() {
        return Err(Error::Core(CoreError::invalid(
            "a merge patch must be a JSON object",
        )));
    }
    caller.authorize_agent_write(&state, &agent_id).await?;
    let expected = if_match(&headers)?;
    let actor = caller.actor.clone();
    let changed = state
        .store
        .mutate_agent(
            &caller.scope(),
            &agent_id,
            Box::new(move |current| {
                check_version(&expected, current)?;
                let at = now();
                let outcome = apply_merge_patch(current, &patch, at)?;
                if !outcome.changed() {
                    return Ok(None);
                }
                let event = ChangeEvent::new(
                    &actor,
                    Some(&current.org_id),
                    EventType::PassportUpdated,
                    "agent",
                    current.agent_id.as_str(),
                    outcome.passport.version,
                    json!({
                        "agent_id": current.agent_id,
                        "version": outcome.passport.version,
                        "changes": outcome.changes,
                    }),
                    at,
                );
                Ok(Some(AgentChange {
                    passport: outcome.passport,
                    api_key_hash: None,
                    event,
                }))
            }),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, changed.after))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: Status,
    /// Why (kept as `status_reason`, shown by the edge to partners).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusChanged {
    pub agent_id: AgentId,
    pub previous_status: Status,
    pub new_status: Status,
    pub changed_at: Timestamp,
    pub version: i64,
    /// With `?wait=propagated`: when the edge's status journal stored the change (from then on
    /// every edge refuses or allows by it within the bound); `null` otherwise.
    pub propagated_at: Option<Timestamp>,
}

/// Move an agent through its lifecycle (`draft → active ⇄ suspended`, any `→ revoked`).
#[utoipa::path(put, path = "/v1/agents/{agent_id}/status", tag = "agents", request_body = StatusRequest,
    params(("agent_id" = String, Path, description = "`ap_…`"), WaitQuery),
    responses((status = 200, body = StatusChanged), (status = 202, body = StatusChanged, description = "`?wait=propagated` timed out: the change is committed, the journal has not stored it yet"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 412, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    QueryParams(wait): QueryParams<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StatusRequest>,
) -> Result<(StatusCode, Json<StatusChanged>)> {
    let agent_id = parse_agent_id(&agent_id)?;
    let wait = wait.wants_propagation(&state)?;
    caller.authorize_agent_write(&state, &agent_id).await?;
    let expected = if_match(&headers)?;
    let actor = caller.actor.clone();
    let changed = state
        .store
        .mutate_agent(
            &caller.scope(),
            &agent_id,
            Box::new(move |current| {
                check_version(&expected, current)?;
                let at = now();
                let next = lifecycle::change_status(current, body.status, body.reason, at)?;
                let typed = match next.status {
                    Status::Active => "agent.activated",
                    Status::Suspended => "agent.suspended",
                    Status::Revoked => "agent.revoked",
                    Status::Draft => "agent.drafted",
                };
                let event = ChangeEvent::new(
                    &actor,
                    Some(&current.org_id),
                    EventType::PassportStatusChanged,
                    "agent",
                    current.agent_id.as_str(),
                    next.version,
                    json!({
                        "agent_id": current.agent_id,
                        "previous_status": current.status,
                        "new_status": next.status,
                        "reason": next.status_reason,
                        "version": next.version,
                        "typed_event": typed,
                    }),
                    at,
                );
                Ok(Some(AgentChange {
                    passport: next,
                    api_key_hash: None,
                    event,
                }))
            }),
        )
        .await?;
    let propagated_at = if wait {
        let key = vouch_core::kv::passport_key(&changed.after.agent_id);
        wait_propagated(&state, &key, changed.after.version).await?
    } else {
        None
    };
    let status = if wait && propagated_at.is_none() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(StatusChanged {
            previous_status: changed.before.status,
            agent_id: changed.after.agent_id,
            new_status: changed.after.status,
            changed_at: changed.after.updated_at,
            version: changed.after.version,
            propagated_at,
        }),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedKey {
    pub agent_id: AgentId,
    /// The new `vk_agent_…`, shown once; the previous key stopped working.
    pub api_key: String,
    pub rotated_at: Timestamp,
}

/// Rotate the agent's API key: the new one is shown once, the old one dies at once.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/keys", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`")),
    responses((status = 201, body = RotatedKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<(StatusCode, Json<RotatedKey>)> {
    let agent_id = parse_agent_id(&agent_id)?;
    caller.authorize_agent_write(&state, &agent_id).await?;
    let api_key = secrets::generate(secrets::AGENT_KEY_PREFIX);
    let key_hash = secrets::hash(&api_key);
    let actor = caller.actor.clone();
    let at = now();
    state
        .store
        .mutate_agent(
            &caller.scope(),
            &agent_id,
            Box::new(move |current| {
                lifecycle::ensure_not_revoked(current, "it cannot get a new API key")?;
                let event = ChangeEvent::new(
                    &actor,
                    Some(&current.org_id),
                    EventType::AgentApiKeyRotated,
                    "agent",
                    current.agent_id.as_str(),
                    current.version,
                    json!({ "agent_id": current.agent_id }),
                    at,
                );
                Ok(Some(AgentChange {
                    passport: current.clone(),
                    api_key_hash: Some(key_hash),
                    event,
                }))
            }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedKey {
            agent_id,
            api_key,
            rotated_at: at,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokensRequest {
    /// Why, for the audit log and the webhook (≤ 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokensRevoked {
    pub agent_id: AgentId,
    /// Every token of the agent issued before this instant is dead, and so is every delegated
    /// token naming it; a token issued from then on is not.
    pub tokens_not_before: Timestamp,
    pub version: i64,
    /// With `?wait=propagated`: when the edge's status journal stored the cut-off.
    pub propagated_at: Option<Timestamp>,
}

/// Kill every token the agent holds now (the emergency brake for a leaked key or token): tokens
/// issued before the next whole second are refused by the edge within the propagation bound,
/// not when they expire. Rotate the API key too if it leaked (`POST …/keys`).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/tokens/revoke", tag = "agents",
    request_body(content = RevokeTokensRequest, description = "optional"),
    params(("agent_id" = String, Path, description = "`ap_…`"), WaitQuery),
    responses((status = 200, body = TokensRevoked), (status = 202, body = TokensRevoked, description = "`?wait=propagated` timed out"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    QueryParams(wait): QueryParams<WaitQuery>,
    OptionalJsonBody(body): OptionalJsonBody<RevokeTokensRequest>,
) -> Result<(StatusCode, Json<TokensRevoked>)> {
    let agent_id = parse_agent_id(&agent_id)?;
    let wait = wait.wants_propagation(&state)?;
    caller.authorize_agent_write(&state, &agent_id).await?;
    let reason = body.reason;
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Error::field("reason", "`reason` is at most 500 characters"));
    }
    let actor = caller.actor.clone();
    let changed = state
        .store
        .mutate_agent(
            &caller.scope(),
            &agent_id,
            Box::new(move |current| {
                if current.status == Status::Revoked {
                    return Err(Error::Conflict {
                        code: "agent_revoked",
                        message: "a revoked agent's tokens are all dead already".into(),
                    });
                }
                let at = now();
                let next = lifecycle::revoke_tokens(current, at);
                let event = ChangeEvent::new(
                    &actor,
                    Some(&current.org_id),
                    EventType::AgentTokensRevoked,
                    "agent",
                    current.agent_id.as_str(),
                    next.version,
                    json!({
                        "agent_id": current.agent_id,
                        "tokens_not_before": next.tokens_not_before,
                        "reason": reason,
                        "version": next.version,
                    }),
                    at,
                );
                Ok(Some(AgentChange {
                    passport: next,
                    api_key_hash: None,
                    event,
                }))
            }),
        )
        .await?;
    let propagated_at = if wait {
        let key = vouch_core::kv::passport_key(&changed.after.agent_id);
        wait_propagated(&state, &key, changed.after.version).await?
    } else {
        None
    };
    let status = if wait && propagated_at.is_none() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let tokens_not_before = changed
        .after
        .tokens_not_before
        .ok_or_else(|| Error::internal(anyhow::anyhow!("the cut-off was not recorded")))?;
    Ok((
        status,
        Json(TokensRevoked {
            agent_id: changed.after.agent_id,
            tokens_not_before,
            version: changed.after.version,
            propagated_at,
        }),
    ))
}

/// The agent's audit events, newest first.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/events", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`"), Pagination),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn agent_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    QueryParams(pagination): QueryParams<Pagination>,
) -> Result<Json<List<AuditEvent>>> {
    let agent_id = parse_agent_id(&agent_id)?;
    let page: PageRequest = pagination.request()?;
    let passport = state
        .store
        .get_agent(&caller.scope(), &agent_id)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    state.audit.seal_for_read(passport.org_id.as_str()).await;
    let events = state
        .store
        .list_events(passport.org_id.as_str(), Some(agent_id.as_str()), &page)
        .await?;
    Ok(Json(events.into()))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// `healthy` (default), `degraded` or `unhealthy`.
    pub health: Option<Health>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeartbeatAck {
    pub agent_id: AgentId,
    /// The agent's current status, so it can drain work when suspended.
    pub status: Status,
    pub last_seen_at: Timestamp,
    pub health: Health,
}

/// An agent reports that it is alive (authenticated by its own API key or access token).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/heartbeat", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`")),
    request_body(content = Option<Heartbeat>),
    responses((status = 200, body = HeartbeatAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("agent_key" = []), ("agent_token" = [])))]
pub async fn heartbeat(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    Path(agent_id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<Heartbeat>,
) -> Result<Json<HeartbeatAck>> {
    let agent_id = parse_agent_id(&agent_id)?;
    if agent.agent_id != agent_id {
        return Err(Error::agent_not_found());
    }
    let health = body.health.unwrap_or(Health::Healthy);
    if health == Health::Unknown {
        return Err(Error::field(
            "health",
            "`health` is `healthy`, `degraded` or `unhealthy`",
        ));
    }
    let at = now();
    state.store.record_heartbeat(&agent_id, health, at).await?;
    Ok(Json(HeartbeatAck {
        agent_id,
        status: agent.status,
        last_seen_at: at,
        health,
    }))
}
