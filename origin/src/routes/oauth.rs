//! `POST /oauth/token` (RFC 6749 §4.4 client credentials; SPEC §5). Form-encoded in, RFC 6749
//! §5.2 error bodies out: OAuth clients expect exactly that shape, so this endpoint maps its
//! failures itself rather than through the API's error type.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vouch_core::delegation::{self, Grant};
use vouch_core::token::{join_scopes, Claims};
use vouch_core::{AgentId, Status};

use crate::app::AppState;
use crate::clock::now;
use crate::keys::TOKEN_TTL_SECONDS;
use crate::secrets;

pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Seconds for `retry-after` (a rate limit).
    retry_after: Option<u64>,
}

/// `429 rate_limited` in the endpoint's own error shape (OAuth defines no code for it; SPEC §14
/// names this one), with `retry-after`.
pub fn rate_limited(limited: crate::rate_limit::Limited) -> OAuthError {
    OAuthError {
        retry_after: Some(limited.retry_after_seconds()),
        ..OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            limited.message(),
        )
    }
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client() -> Self {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client, wrong secret, or an agent that is not active",
        )
    }
}

impl From<crate::error::Error> for OAuthError {
    fn from(err: crate::error::Error) -> Self {
        // Internal failures are logged by the API error's own mapping.
        let _ = err.into_response();
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an internal error occurred",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            if let Ok(value) = "Basic realm=\"vouch\"".parse() {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The form fields this endpoint reads.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    /// The agent id (or send it with HTTP Basic).
    pub client_id: Option<String>,
    /// The agent's API key (or send it with HTTP Basic).
    pub client_secret: Option<String>,
    /// Space-separated capability ids, a subset of the agent's (default: all of them).
    pub scope: Option<String>,
    /// The token's `aud`. A partner id (`pt_…`) must name a live partner (`400 invalid_target`
    /// otherwise): only a token whose `aud` names a partner lets that partner commit (SPEC §14).
    /// In a token exchange it replaces the subject token's `aud`.
    pub audience: Option<String>,
    /// Token exchange (RFC 8693): the delegator's token.
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    /// Token exchange: the delegatee's own token.
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    pub issued_token_type: &'static str,
}

/// Credentials from HTTP Basic (RFC 6749 §2.3.1), if sent.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Exchange credentials for an access token.
#[utoipa::path(post, path = "/oauth/token", tag = "tokens",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, body = Object), (status = 401, body = Object)))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return Err(OAuthError::invalid_request(
            "send the request as application/x-www-form-urlencoded",
        ));
    }
    let request: TokenRequest = serde_urlencoded::from_bytes(&body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))?;
    // The credential presented (its holder alone can spend its budget; the address was counted
    // before the handler ran).
    let basic = basic_credentials(&headers);
    let presented = match request.grant_type.as_deref() {
        Some(TOKEN_EXCHANGE) => request.actor_token.as_deref(),
        _ => basic
            .as_ref()
            .map(|(_, secret)| secret.as_str())
            .or(request.client_secret.as_deref()),
    };
    if let Some(secret) = presented {
        state
            .limits
            .check_credential(crate::rate_limit::Endpoint::Token, secret)
            .map_err(rate_limited)?;
    }
    match request.grant_type.as_deref() {
        Some("client_credentials") => client_credentials(&state, &headers, request).await,
        Some(TOKEN_EXCHANGE) => token_exchange(&state, request).await,
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this server supports client_credentials and token exchange (RFC 8693)",
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    request: TokenRequest,
) -> Result<Response, OAuthError> {
    let (client_id, secret) = match (
        basic_credentials(headers),
        request.client_id,
        request.client_secret,
    ) {
        (Some(basic), None, None) => basic,
        (None, Some(id), Some(secret)) => (id, secret),
        (Some(_), _, _) => {
            return Err(OAuthError::invalid_request(
                "send the client credentials either with HTTP Basic or in the form, not both",
            ))
        }
        _ => return Err(OAuthError::invalid_client()),
    };
    let agent_id = AgentId::parse(&client_id).map_err(|_| OAuthError::invalid_client())?;
    let hash = secrets::hash(&secret);
    let passport = match state.store.agent_by_key_hash(&hash).await? {
        Some((passport, stored))
            if secrets::hashes_equal(&hash, &stored)
                && passport.agent_id == agent_id
                && passport.status == Status::Active =>
        {
            passport
        }
        _ => return Err(OAuthError::invalid_client()),
    };
    let held: Vec<&str> = passport
        .fields
        .capabilities
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    let scopes: Vec<&str> = match request.scope.as_deref() {
        Some(asked) if !asked.trim().is_empty() => {
            let asked: Vec<&str> = asked.split_whitespace().collect();
            if let Some(extra) = asked.iter().find(|s| !held.contains(s)) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("`{extra}` is not one of the agent's capabilities"),
                ));
            }
            asked
        }
        _ => held,
    };
    let audience = checked_audience(state, request.audience).await?;
    let at = now().unix_seconds();
    let claims = Claims {
        iss: state.keys.settings.issuer.trim_end_matches('/').to_owned(),
        sub: passport.agent_id.clone(),
        aud: audience.into_iter().collect(),
        iat: at,
        nbf: at,
        exp: at + TOKEN_TTL_SECONDS,
        jti: Uuid::now_v7().simple().to_string(),
        org: passport.org_id.clone(),
        scope: join_scopes(&scopes),
        ver: passport.version,
        act: None,
        dlg: Vec::new(),
        // Where a verifier finds the agent's status offline (SPEC §16).
        status: passport
            .status_index
            .map(|place| state.keys.settings.status_lists.claim(place)),
    };
    let (kid, key) = state.keys.signer().await?;
    metrics::counter!("vouch_tokens_issued_total", "grant_type" => "client_credentials")
        .increment(1);
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(TokenResponse {
            access_token: claims.sign(&key, &kid),
            token_type: "Bearer",
            expires_in: TOKEN_TTL_SECONDS,
            scope: claims.scope.clone(),
            issued_token_type: JWT_TOKEN_TYPE,
        }),
    )
        .into_response())
}

/// The `aud` a token gets from the request's `audience`: none for an absent or empty one; a
/// partner id (`pt_…`, SPEC §14: a token a partner may commit with) only while that partner is
/// live — an unknown or revoked one is `400 invalid_target` (RFC 8693 §2.2.2); anything else as
/// it is.
async fn checked_audience(
    state: &AppState,
    audience: Option<String>,
) -> Result<Option<String>, OAuthError> {
    let Some(audience) = audience.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    match crate::routes::partners::audience_partner(state, &audience).await? {
        Ok(_) => Ok(Some(audience)),
        Err(()) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            format!("`audience` {audience} is not a live partner of this registry"),
        )),
    }
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// RFC 8693 token exchange: the delegatee presents the delegator's token (`subject_token`) and
/// its own (`actor_token`); under a live grant from the subject token's current actor to the
/// delegatee, it gets a token whose `sub` stays the original subject, whose `act` chain gains the
/// delegatee, whose scope only narrows and whose lifetime never outlives the grant or the
/// subject token.
async fn token_exchange(state: &AppState, request: TokenRequest) -> Result<Response, OAuthError> {
    for (field, kind) in [
        ("subject_token_type", &request.subject_token_type),
        ("actor_token_type", &request.actor_token_type),
    ] {
        if kind.as_deref() != Some(JWT_TOKEN_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "{field} must be {JWT_TOKEN_TYPE}"
            )));
        }
    }
    let (Some(subject_token), Some(actor_token)) = (&request.subject_token, &request.actor_token)
    else {
        return Err(OAuthError::invalid_request(
            "subject_token and actor_token are required",
        ));
    };
    let keys = state.keys.jwk_set().await?;
    let issuer = state.keys.settings.issuer.trim_end_matches('/').to_owned();
    let expect = vouch_core::token::Expectations {
        issuer: &issuer,
        audience: None,
        skew_seconds: vouch_core::token::MAX_SKEW_SECONDS,
        max_len: vouch_core::token::DEFAULT_MAX_LEN,
    };
    let at = now();
    let verify = |token: &str, which: &str| {
        vouch_core::token::verify(token, &|kid| keys.get(kid), &expect, at.unix_seconds())
            .map(|(_, claims)| claims)
            .map_err(|e| invalid_grant(format!("{which}: {e}")))
    };
    let subject = verify(subject_token, "subject_token")?;
    let actor = verify(actor_token, "actor_token")?;

    // The grant runs from the subject token's current actor (its subject, if undelegated).
    let current = subject.current_actor();
    let grant = state
        .store
        .live_delegation(current, &actor.sub, at)
        .await?
        .ok_or_else(|| {
            invalid_grant(format!(
                "no live delegation from {current} to {}",
                actor.sub
            ))
        })?;

    // What the core's checked exchange needs: the grants the subject token rests on, and the
    // statuses of every agent of the new chain.
    let ids: Vec<String> = subject.dlg.iter().map(ToString::to_string).collect();
    let stored = state.store.delegations_by_ids(&ids).await?;
    let subject_grants: Vec<Option<Grant>> = subject
        .dlg
        .iter()
        .map(|id| {
            stored
                .iter()
                .find(|r| &r.grant.delegation_id == id)
                .map(|r| r.grant.clone())
        })
        .collect();
    let mut parties = std::collections::HashMap::new();
    for agent in delegation::agents_to_check(&subject, &actor) {
        if let Some(p) = state
            .store
            .get_agent(&crate::store::Scope::All, &agent)
            .await?
        {
            parties.insert(agent, (p.status, p.tokens_not_before));
        }
    }
    let audience = checked_audience(state, request.audience.clone()).await?;
    let jti = Uuid::now_v7().simple().to_string();
    let mut claims = delegation::exchange_checked(
        &delegation::ExchangeRequest {
            subject: &subject,
            actor: &actor,
            requested_scope: request.scope.as_deref().filter(|s| !s.trim().is_empty()),
            default_ttl_seconds: TOKEN_TTL_SECONDS,
            jti: &jti,
        },
        &delegation::ExchangeFacts {
            subject_grants: &subject_grants,
            grant: &grant.grant,
            status: &|agent| parties.get(agent).map(|(status, _)| *status),
            tokens_not_before: &|agent| parties.get(agent).and_then(|(_, cut)| *cut),
            now: at,
        },
    )
    .map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, e.oauth_error(), e.to_string()))?;
    // RFC 8693 `audience`: the token is for that party (a partner the delegatee commits
    // through); without it, the subject token's `aud` carries over.
    if let Some(audience) = audience {
        claims.aud = vec![audience];
    }
    let (kid, key) = state.keys.signer().await?;
    metrics::counter!("vouch_tokens_issued_total", "grant_type" => "token_exchange").increment(1);
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(TokenResponse {
            access_token: claims.sign(&key, &kid),
            token_type: "Bearer",
            expires_in: (claims.exp - at.unix_seconds()).max(0),
            scope: claims.scope.clone(),
            issued_token_type: JWT_TOKEN_TYPE,
        }),
    )
        .into_response())
}
