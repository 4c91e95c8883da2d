//! Open Agent Passport 1.0 documents in and out (SPEC §13): `POST /v1/agents/import/oap` and
//! `GET /v1/agents/{id}/oap`. The mapping is the core's ([`vouch_core::oap`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vouch_core::packs::request::AgentRef;
use vouch_core::{AgentId, OrgId};

use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{JsonBody, QueryParams};
use crate::routes::agents::{create, parse_agent_id, with_etag_of, Registered};
use crate::routes::target_org;

/// Where the import goes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Required with the platform admin token; an org token imports into its own org.
    pub org_id: Option<OrgId>,
}

/// Import an Open Agent Passport 1.0 document as it is: `metadata.name` → `name`,
/// `metadata.contact` → `owner.contact` (required), `metadata.owner_display` (or the org's name)
/// → `owner.display_name`; capabilities, limits, regions, assurance and status carry over, and
/// `passport_id` is kept (`oap_passport_id`, searchable with `q`).
#[utoipa::path(post, path = "/v1/agents/import/oap", tag = "agents", params(ImportQuery),
    request_body(content = Object, description = "an OAP 1.0 passport"),
    responses((status = 201, body = Registered), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn import_oap(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ImportQuery>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response> {
    caller.require_writer()?;
    let org_id = target_org(&caller, query.org_id)?;
    let org = state
        .store
        .get_org(&org_id)
        .await?
        .ok_or_else(Error::org_not_found)?;
    let imported = vouch_core::oap::import(body, &org.name)?;
    // A `passport_id` that is the UUID of one of our own agents would shadow it at the edge,
    // which finds exported passports by that UUID.
    let own = AgentRef::Passport(imported.passport_id.clone()).derived_agent();
    if let Some(own) = own {
        if !state
            .store
            .agents_by_ids(&[own.to_string()])
            .await?
            .is_empty()
        {
            return Err(passport_exists(&imported.passport_id));
        }
    }
    let passport_id = imported.passport_id.clone();
    let passport = imported.into_passport(AgentId::from_uuid(Uuid::now_v7()), org_id, now())?;
    create(&state, &caller, passport, json!({ "imported_from": "oap" }))
        .await
        .map_err(|e| match e {
            Error::Conflict {
                code: "oap_passport_exists",
                ..
            } => passport_exists(&passport_id),
            other => other,
        })
}

fn passport_exists(passport_id: &str) -> Error {
    Error::Conflict {
        code: "oap_passport_exists",
        message: format!("an agent with OAP passport_id {passport_id} is already registered"),
    }
}

/// Export a passport as an Open Agent Passport 1.0 document (it validates against OAP's
/// `passport-schema.json`). `ETag` as the passport's.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/oap", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`")),
    responses((status = 200, body = Object, description = "an OAP 1.0 passport"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn export_oap(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Response> {
    let agent_id = parse_agent_id(&agent_id)?;
    let passport = state
        .store
        .get_agent(&caller.scope(), &agent_id)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    Ok(with_etag_of(
        StatusCode::OK,
        &passport.etag(),
        vouch_core::oap::export(&passport),
    ))
}
