//! The origin's own copies of the signing keys and the discovery document (the edge serves the
//! same documents from KV), and the keys' rotation, listing and withdrawal.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vouch_core::Timestamp;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::OptionalJsonBody;
use crate::keys::{KeyInfo, Withdrawal};

/// The JWK Set: the active signing key and retired ones whose tokens may still be valid.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens", responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>> {
    Ok(Json(state.keys.jwks().await?))
}

/// OpenID / OAuth discovery.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens", responses((status = 200, body = Object)))]
pub async fn discovery(State(state): State<AppState>) -> Json<Value> {
    Json(state.keys.discovery())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The key that signs from `signs_from` on: the standby key, published since the last
    /// rotation, so every edge knows it (at once, normally; later when the standby is younger
    /// than the publish-ahead time).
    pub kid: String,
    pub signs_from: Timestamp,
    /// The key that signs until then, kept in the JWKS while its tokens may be valid.
    pub previous_kid: Option<String>,
    /// The new standby key, in the JWKS from now on.
    pub standby_kid: String,
}

/// Rotate the token-signing key (platform admin).
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "tokens",
    responses((status = 201, body = Rotated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`rotation_pending`: a rotation is already scheduled")),
    security(("admin_token" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Rotated>)> {
    caller.require_platform()?;
    let rotation = state.keys.rotate(&caller.actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(Rotated {
            kid: rotation.kid,
            signs_from: rotation.signs_from,
            previous_kid: rotation.previous_kid,
            standby_kid: rotation.standby_kid,
        }),
    ))
}

/// The signing keys and where each stands (platform admin).
#[utoipa::path(get, path = "/v1/keys", tag = "tokens",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<KeyList>> {
    caller.require_platform()?;
    Ok(Json(KeyList {
        data: state.keys.list().await?,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyInfo>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    /// Why (for the audit log; ≤ 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Withdraw a signing key at once (a leak; platform admin): it leaves the JWKS now, every edge
/// refuses its tokens within the propagation bound, and if it was signing, the standby key signs
/// from now on. Withdrawing a withdrawn key changes nothing.
#[utoipa::path(post, path = "/v1/keys/{kid}/withdraw", tag = "tokens",
    request_body(content = WithdrawRequest, description = "optional"),
    params(("kid" = String, Path, description = "the key's `kid`")),
    responses((status = 200, body = Withdrawal), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(kid): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<WithdrawRequest>,
) -> Result<Json<Withdrawal>> {
    caller.require_platform()?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(Error::field("reason", "`reason` is at most 500 characters"));
    }
    let withdrawal = state
        .keys
        .withdraw(&caller.actor, &kid, body.reason)
        .await?
        .ok_or_else(|| Error::NotFound {
            code: "key_not_found",
            message: "no such signing key".into(),
        })?;
    Ok(Json(withdrawal))
}
