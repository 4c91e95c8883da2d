//! The tamper-evident audit log of the caller's org, and its check.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use vouch_core::audit::{AuditEvent, ChainReport, PLATFORM_CHAIN};
use vouch_core::OrgId;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::QueryParams;
use crate::routes::{List, Pagination};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Platform admin: the org whose log to read (absent: the platform's own log).
    /// Org tokens: their own org (absent or equal).
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The chain the caller asked for and may read.
fn chain_for(caller: &Caller, org_id: Option<&OrgId>) -> Result<String> {
    match (caller.is_platform(), &caller.org_id, org_id) {
        (true, _, Some(org)) => Ok(org.to_string()),
        (true, _, None) => Ok(PLATFORM_CHAIN.to_owned()),
        (false, Some(own), None) => Ok(own.to_string()),
        (false, Some(own), Some(org)) if own == org => Ok(own.to_string()),
        _ => Err(Error::org_not_found()),
    }
}

/// Audit events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<List<AuditEvent>>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    let page = Pagination {
        limit: query.limit,
        cursor: query.cursor,
    }
    .request()?;
    Ok(Json(
        state.store.list_events(&chain, None, &page).await?.into(),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    pub org_id: Option<OrgId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub chain_id: String,
    #[serde(flatten)]
    pub report: ChainReport,
}

/// Recompute the hash chain: `ok`, or the first place where it breaks and how.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = VerifyReport), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn verify_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<VerifyQuery>,
) -> Result<Json<VerifyReport>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    let report = state.store.verify_chain(&chain).await?;
    Ok(Json(VerifyReport {
        chain_id: chain,
        report,
    }))
}
