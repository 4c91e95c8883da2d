//! Delegation grants (SPEC §6): an agent lets another act on its behalf, within a subset of its
//! capabilities, for a while, a bounded number of hops deep.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vouch_core::delegation::{self, Grant};
use vouch_core::ids::DelegationId;
use vouch_core::{AgentId, CapabilityId, EventType, OrgId, Timestamp};

use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{JsonBody, QueryParams};
use crate::routes::{wait_propagated, List, Pagination, WaitQuery};
use crate::store::{ChangeEvent, DelegationFilter, DelegationRecord, DelegationState};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDelegation {
    pub delegator: AgentId,
    pub delegatee: AgentId,
    /// A subset of the delegator's capability ids.
    pub scopes: Vec<String>,
    /// 60 to 86400.
    pub ttl_seconds: i64,
    /// How many hops the chain may take from this grant on (1: the delegatee may not delegate further).
    pub max_depth: i64,
}

/// A grant as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DelegationView {
    #[schema(value_type = String)]
    pub delegation_id: DelegationId,
    pub org_id: OrgId,
    pub delegator: AgentId,
    pub delegatee: AgentId,
    pub scopes: Vec<CapabilityId>,
    pub max_depth: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// `DELETE …?wait=propagated`: when the edge's status journal stored the revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagated_at: Option<Timestamp>,
}

impl From<DelegationRecord> for DelegationView {
    fn from(r: DelegationRecord) -> Self {
        let status = if r.grant.revoked {
            "revoked"
        } else if r.grant.expires_at <= now() {
            "expired"
        } else {
            "active"
        };
        DelegationView {
            delegation_id: r.grant.delegation_id,
            org_id: r.org_id,
            delegator: r.grant.delegator,
            delegatee: r.grant.delegatee,
            scopes: r.grant.scopes,
            max_depth: r.grant.max_depth,
            created_at: r.created_at,
            expires_at: r.grant.expires_at,
            revoked_at: r.revoked_at,
            status,
            propagated_at: None,
        }
    }
}

/// Grant a delegation (the delegator's org: owner or admin; or the platform admin).
#[utoipa::path(post, path = "/v1/delegations", tag = "delegations", request_body = NewDelegation,
    responses((status = 201, body = DelegationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewDelegation>,
) -> Result<(StatusCode, Json<DelegationView>)> {
    caller
        .authorize_agent_write(&state, &body.delegator)
        .await?;
    let scope = caller.scope();
    let delegator = state
        .store
        .get_agent(&scope, &body.delegator)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    let delegatee = state
        .store
        .get_agent(&scope, &body.delegatee)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    let scopes = delegation::validate_new(
        &delegator.fields.capabilities,
        &body.scopes,
        body.ttl_seconds,
        body.max_depth,
    )?;
    delegation::validate_parties((&delegator).into(), (&delegatee).into())?;
    let at = now();
    let grant = Grant::issue(
        DelegationId::from_uuid(Uuid::now_v7()),
        delegator.agent_id.clone(),
        delegatee.agent_id.clone(),
        scopes,
        at,
        body.ttl_seconds,
        u32::try_from(body.max_depth).unwrap_or(1),
    );
    let record = DelegationRecord {
        grant,
        org_id: delegator.org_id.clone(),
        created_at: at,
        revoked_at: None,
        version: 1,
    };
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&record.org_id),
        EventType::DelegationCreated,
        "delegation",
        record.grant.delegation_id.as_str(),
        record.version,
        json!({ "delegation": record.grant }),
        at,
    );
    state.store.create_delegation(&record, &event).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Filters of the grant list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DelegationQuery {
    /// `active`, `expired` or `revoked` (as each grant's `status` says now).
    #[param(inline)]
    pub status: Option<DelegationState>,
    /// Grants naming this agent (`ap_…`) as delegator or delegatee.
    pub agent_id: Option<AgentId>,
    /// Platform admin only: one org's grants.
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List grants, newest first.
#[utoipa::path(get, path = "/v1/delegations", tag = "delegations", params(DelegationQuery),
    responses((status = 200, body = List<DelegationView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<DelegationQuery>,
) -> Result<Json<List<DelegationView>>> {
    let page = Pagination {
        limit: query.limit,
        cursor: query.cursor,
    }
    .request()?;
    let filter = DelegationFilter {
        org_id: query.org_id,
        agent_id: query.agent_id,
        state: query.status,
        now: now(),
    };
    let page = state
        .store
        .list_delegations(&caller.scope(), &filter, &page)
        .await?;
    Ok(Json(List::from(page).map(DelegationView::from)))
}

fn parse_id(raw: &str) -> Result<DelegationId> {
    DelegationId::parse(raw).map_err(|e| Error::field("delegation_id", e.to_string()))
}

fn not_found() -> Error {
    Error::NotFound {
        code: "delegation_not_found",
        message: "no such delegation".into(),
    }
}

/// The grant, if the caller may see its org.
async fn visible(state: &AppState, caller: &Caller, id: &DelegationId) -> Result<DelegationRecord> {
    state
        .store
        .get_delegation(id)
        .await?
        .filter(|r| caller.sees_org(&r.org_id))
        .ok_or_else(not_found)
}

/// One grant.
#[utoipa::path(get, path = "/v1/delegations/{delegation_id}", tag = "delegations",
    params(("delegation_id" = String, Path, description = "`dlg_…`")),
    responses((status = 200, body = DelegationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DelegationView>> {
    let id = parse_id(&id)?;
    Ok(Json(visible(&state, &caller, &id).await?.into()))
}

/// Revoke a grant: every token whose chain rests on it stops working at the edge.
#[utoipa::path(delete, path = "/v1/delegations/{delegation_id}", tag = "delegations",
    params(("delegation_id" = String, Path, description = "`dlg_…`"), WaitQuery),
    responses((status = 200, body = DelegationView), (status = 202, body = DelegationView, description = "`?wait=propagated` timed out"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(wait): QueryParams<WaitQuery>,
) -> Result<(StatusCode, Json<DelegationView>)> {
    let id = parse_id(&id)?;
    let wait = wait.wants_propagation(&state)?;
    visible(&state, &caller, &id).await?;
    caller.require_writer()?;
    let record = state
        .store
        .revoke_delegation(&id, now(), &caller.actor, "deleted")
        .await?
        .ok_or_else(not_found)?;
    let key = record.grant.kv_key();
    let version = record.version;
    let mut view = DelegationView::from(record);
    if !wait {
        return Ok((StatusCode::OK, Json(view)));
    }
    view.propagated_at = wait_propagated(&state, &key, version).await?;
    let status = if view.propagated_at.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)))
}
