//! The origin's own copies of the signing keys and the discovery document (the edge serves the
//! same documents from KV), and key rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ErrorBody, Result};

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
    /// The key that signs from now on.
    pub kid: String,
}

/// Rotate the token-signing key (platform admin).
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "tokens",
    responses((status = 201, body = Rotated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Rotated>)> {
    caller.require_platform()?;
    let kid = state.keys.rotate(&caller.actor).await?;
    Ok((StatusCode::CREATED, Json(Rotated { kid })))
}
