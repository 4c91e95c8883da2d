//! Partners (SPEC §14): the verifiers that call the edge for their own business. Platform admin
//! only — an org token gets `403` on every route, before anything is looked up, so it learns
//! nothing about which partners exist. A partner's key is shown once (at creation and at each
//! rotation) and stored as its SHA-256; the store publishes each key's hash to KV and its
//! changes to the status journal, so a revoked or replaced key is refused at every edge within
//! the propagation bound.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vouch_core::partner::PartnerStatus;
use vouch_core::{validate, EventType, PartnerId, Timestamp};

use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{JsonBody, QueryParams};
use crate::routes::{List, Pagination};
use crate::secrets;
use crate::store::{ChangeEvent, Partner};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    #[schema(example = "Acme Payments")]
    pub name: String,
    /// Who answers for the partner's use of the edge (an address, a URL).
    #[schema(example = "security@acme-payments.example")]
    pub contact: String,
}

/// A new partner with its key: the key appears here once and is never shown again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedPartner {
    #[serde(flatten)]
    pub partner: Partner,
    /// `vk_partner_…`, shown once: the partner sends it as `Authorization: Bearer …` to the edge.
    pub key: String,
}

/// A partner's new key, shown once; the previous one is refused within the propagation bound.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedPartnerKey {
    pub partner_id: PartnerId,
    /// The new `vk_partner_…`, shown once.
    pub key: String,
    pub rotated_at: Timestamp,
}

fn partner_not_found() -> Error {
    Error::NotFound {
        code: "partner_not_found",
        message: "no such partner".into(),
    }
}

fn parse_partner_id(raw: &str) -> Result<PartnerId> {
    PartnerId::parse(raw).map_err(|e| Error::field("partner_id", e.to_string()))
}

fn partner_event(actor: String, kind: EventType) -> crate::store::PartnerEvent {
    Box::new(move |partner: &Partner| {
        ChangeEvent::new(
            &actor,
            None,
            kind,
            "partner",
            partner.partner_id.as_str(),
            partner.version,
            json!({ "partner": partner }),
            partner.revoked_at.unwrap_or(partner.key_issued_at),
        )
    })
}

/// Register a partner (platform admin); its key is in the answer, once.
#[utoipa::path(post, path = "/v1/partners", tag = "partners", request_body = NewPartner,
    responses((status = 201, body = CreatedPartner), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewPartner>,
) -> Result<(StatusCode, Json<CreatedPartner>)> {
    caller.require_platform()?;
    validate::required_line("name", &body.name, validate::MAX_NAME)?;
    validate::required_line("contact", &body.contact, validate::MAX_CONTACT)?;
    let at = now();
    let partner = Partner {
        partner_id: PartnerId::from_uuid(Uuid::now_v7()),
        name: body.name,
        contact: body.contact,
        status: PartnerStatus::Active,
        created_at: at,
        key_issued_at: at,
        revoked_at: None,
        version: 1,
    };
    let key = secrets::generate(secrets::PARTNER_KEY_PREFIX);
    let event = partner_event(caller.actor.clone(), EventType::PartnerCreated)(&partner);
    state
        .store
        .create_partner(&partner, &secrets::hash(&key), &event)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedPartner { partner, key })))
}

/// List partners, newest first (platform admin).
#[utoipa::path(get, path = "/v1/partners", tag = "partners", params(Pagination),
    responses((status = 200, body = List<Partner>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(page): QueryParams<Pagination>,
) -> Result<Json<List<Partner>>> {
    caller.require_platform()?;
    let page = state.store.list_partners(&page.request()?).await?;
    Ok(Json(List::from(page)))
}

/// One partner (platform admin).
#[utoipa::path(get, path = "/v1/partners/{partner_id}", tag = "partners",
    params(("partner_id" = String, Path, description = "`pt_…`")),
    responses((status = 200, body = Partner), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<Partner>> {
    caller.require_platform()?;
    let partner_id = parse_partner_id(&partner_id)?;
    let partner = state
        .store
        .get_partner(&partner_id)
        .await?
        .ok_or_else(partner_not_found)?;
    Ok(Json(partner))
}

/// Revoke a partner (platform admin): its key is refused at every edge within the propagation
/// bound, through the status journal. A revoked partner stays listed; revoking it again
/// changes nothing.
#[utoipa::path(delete, path = "/v1/partners/{partner_id}", tag = "partners",
    params(("partner_id" = String, Path, description = "`pt_…`")),
    responses((status = 200, body = Partner), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<Partner>> {
    caller.require_platform()?;
    let partner_id = parse_partner_id(&partner_id)?;
    let (partner, _) = state
        .store
        .revoke_partner(
            &partner_id,
            now(),
            partner_event(caller.actor.clone(), EventType::PartnerRevoked),
        )
        .await?
        .ok_or_else(partner_not_found)?;
    Ok(Json(partner))
}

/// Rotate a partner's key (platform admin): the new key is shown once; the old one is refused
/// at every edge within the propagation bound.
#[utoipa::path(post, path = "/v1/partners/{partner_id}/keys", tag = "partners",
    params(("partner_id" = String, Path, description = "`pt_…`")),
    responses((status = 201, body = RotatedPartnerKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`partner_revoked`")),
    security(("admin_token" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<(StatusCode, Json<RotatedPartnerKey>)> {
    caller.require_platform()?;
    let partner_id = parse_partner_id(&partner_id)?;
    let key = secrets::generate(secrets::PARTNER_KEY_PREFIX);
    let partner = state
        .store
        .rotate_partner_key(
            &partner_id,
            &secrets::hash(&key),
            now(),
            partner_event(caller.actor.clone(), EventType::PartnerKeyRotated),
        )
        .await?
        .ok_or_else(partner_not_found)?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedPartnerKey {
            partner_id: partner.partner_id,
            key,
            rotated_at: partner.key_issued_at,
        }),
    ))
}

/// The live partner an OAuth `audience` names, for a token that may commit through it
/// (SPEC §14); `None` when `audience` is not a partner id at all (any other audience is the
/// caller's own business). `Err(())`: a partner id that is unknown or revoked.
pub async fn audience_partner(
    state: &AppState,
    audience: &str,
) -> Result<std::result::Result<Option<PartnerId>, ()>> {
    if !audience.starts_with(PartnerId::PREFIX) {
        return Ok(Ok(None));
    }
    let Ok(id) = PartnerId::parse(audience) else {
        return Ok(Err(()));
    };
    Ok(match state.store.get_partner(&id).await? {
        Some(partner) if partner.status == PartnerStatus::Active => Ok(Some(id)),
        _ => Err(()),
    })
}
