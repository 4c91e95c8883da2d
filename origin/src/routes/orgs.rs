//! Organizations and their admin tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vouch_core::validate;
use vouch_core::{EventType, OrgId, Timestamp, TokenId};

use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::JsonBody;
use crate::secrets;
use crate::store::{AdminToken, ChangeEvent, Org, Role, Store};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    #[schema(example = "Acme Corp")]
    pub name: String,
    /// Lowercase letters, digits and dashes, 2 to 63 characters; fixed once created.
    #[schema(example = "acme")]
    pub slug: String,
}

fn valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Create an organization (platform admin).
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = NewOrg,
    responses((status = 201, body = Org), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewOrg>,
) -> Result<(StatusCode, Json<Org>)> {
    caller.require_platform()?;
    validate::required_line("name", &body.name, validate::MAX_NAME)?;
    if !valid_slug(&body.slug) {
        return Err(Error::field(
            "slug",
            "`slug` is 2 to 63 lowercase letters, digits or dashes, not starting or ending with a dash",
        ));
    }
    let at = now();
    let org = Org {
        org_id: OrgId::from_uuid(Uuid::now_v7()),
        name: body.name,
        slug: body.slug,
        created_at: at,
        frozen_at: None,
        frozen_reason: None,
        freeze_version: 0,
        freeze_changed_at: None,
    };
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&org.org_id),
        EventType::OrgCreated,
        "org",
        org.org_id.as_str(),
        0,
        json!({ "org": org }),
        at,
    );
    state.store.create_org(&org, &event).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

fn parse_org_id(raw: &str) -> Result<OrgId> {
    OrgId::parse(raw).map_err(|e| Error::field("org_id", e.to_string()))
}

/// The org `raw` names, if the caller may see it.
async fn visible_org(state: &AppState, caller: &Caller, raw: &str) -> Result<Org> {
    let org_id = parse_org_id(raw)?;
    if !caller.sees_org(&org_id) {
        return Err(Error::org_not_found());
    }
    state
        .store
        .get_org(&org_id)
        .await?
        .ok_or_else(Error::org_not_found)
}

/// One organization.
#[utoipa::path(get, path = "/v1/orgs/{org_id}", tag = "orgs",
    params(("org_id" = String, Path, description = "`org_…`")),
    responses((status = 200, body = Org), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Org>> {
    Ok(Json(visible_org(&state, &caller, &org_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `owner`, `admin` or `viewer`.
    pub role: Role,
    #[schema(example = "ci deploys")]
    pub name: String,
}

/// A new token: its secret appears here once and is never shown again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token_id: TokenId,
    pub org_id: Option<OrgId>,
    pub role: Role,
    pub name: String,
    pub created_at: Timestamp,
    /// `vk_admin_…`, shown once.
    pub token: String,
}

/// Create an admin token for an org (platform admin or the org's owner).
#[utoipa::path(post, path = "/v1/orgs/{org_id}/tokens", tag = "orgs", request_body = NewToken,
    params(("org_id" = String, Path, description = "`org_…`")),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    let org = visible_org(&state, &caller, &org_id).await?;
    if !matches!(caller.role, Role::Platform | Role::Owner) {
        return Err(Error::Forbidden(
            "only the org's owner or the platform admin can create tokens".into(),
        ));
    }
    if body.role == Role::Platform {
        return Err(Error::field(
            "role",
            "`role` is `owner`, `admin` or `viewer`",
        ));
    }
    validate::required_line("name", &body.name, validate::MAX_NAME)?;
    let (token, secret) = issue_token(
        state.store.as_ref(),
        &caller.actor,
        Some(org.org_id),
        body.role,
        body.name,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token_id: token.token_id,
            org_id: token.org_id,
            role: token.role,
            name: token.name,
            created_at: token.created_at,
            token: secret,
        }),
    ))
}

/// Creates an admin token (its record, audit event and outbox row in one transaction) and
/// returns it with its secret, which exists nowhere else.
pub async fn issue_token(
    store: &dyn Store,
    actor: &str,
    org_id: Option<OrgId>,
    role: Role,
    name: String,
) -> Result<(AdminToken, String)> {
    let (token, secret, event) = new_token(actor, org_id, role, name, now());
    store
        .create_token(&token, &secrets::hash(&secret), &event)
        .await?;
    Ok((token, secret))
}

/// A new admin token, its secret and its `token.created` event, stored nowhere yet.
pub fn new_token(
    actor: &str,
    org_id: Option<OrgId>,
    role: Role,
    name: String,
    at: Timestamp,
) -> (AdminToken, String, ChangeEvent) {
    let token = AdminToken {
        token_id: TokenId::from_uuid(Uuid::now_v7()),
        org_id,
        role,
        name,
        created_at: at,
    };
    let secret = secrets::generate(secrets::ADMIN_TOKEN_PREFIX);
    let event = ChangeEvent::new(
        actor,
        token.org_id.as_ref(),
        EventType::TokenCreated,
        "token",
        token.token_id.as_str(),
        0,
        json!({ "token": token }),
        at,
    );
    (token, secret, event)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedToken {
    pub token_id: TokenId,
    pub revoked_at: Timestamp,
}

/// Revoke an org's admin token (the org's owner or the platform admin): it stops working at once.
#[utoipa::path(delete, path = "/v1/orgs/{org_id}/tokens/{token_id}", tag = "orgs",
    params(("org_id" = String, Path, description = "`org_…`"), ("token_id" = String, Path, description = "`tok_…`")),
    responses((status = 200, body = RevokedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, token_id)): Path<(String, String)>,
) -> Result<Json<RevokedToken>> {
    let org = visible_org(&state, &caller, &org_id).await?;
    if !matches!(caller.role, Role::Platform | Role::Owner) {
        return Err(Error::Forbidden(
            "only the org's owner or the platform admin can revoke tokens".into(),
        ));
    }
    let not_found = || Error::NotFound {
        code: "token_not_found",
        message: "no such live token in this organization".into(),
    };
    let token_id = TokenId::parse(&token_id).map_err(|_| not_found())?;
    let at = now();
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&org.org_id),
        EventType::TokenRevoked,
        "token",
        token_id.as_str(),
        0,
        json!({ "token_id": token_id }),
        at,
    );
    if !state
        .store
        .revoke_token(&org.org_id, &token_id, &event)
        .await?
    {
        return Err(not_found());
    }
    Ok(Json(RevokedToken {
        token_id,
        revoked_at: at,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeRequest {
    /// Why (≤ 500 characters): kept as each agent's `status_reason`, shown by the edge to partners.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a freeze or an unfreeze did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FreezeChanged {
    pub org_id: OrgId,
    pub frozen: bool,
    pub frozen_at: Option<Timestamp>,
    pub reason: Option<String>,
    /// The agents it suspended (freeze) or reactivated (unfreeze).
    pub agents: Vec<vouch_core::AgentId>,
    /// The grants a freeze revoked (they stay revoked after an unfreeze).
    pub grants_revoked: u64,
    /// With `?wait=propagated`: when the edge's status journal stored the change.
    pub propagated_at: Option<Timestamp>,
}

/// The most agent ids an `org.frozen` / `org.unfrozen` event lists (the count is always there).
const EVENT_AGENTS_MAX: usize = 100;

fn freeze_event(actor: String, kind: EventType) -> crate::store::FreezeEvent {
    Box::new(move |done: &crate::store::Frozen| {
        let listed: Vec<&vouch_core::AgentId> = done.agents.iter().take(EVENT_AGENTS_MAX).collect();
        ChangeEvent::new(
            &actor,
            Some(&done.org.org_id),
            kind,
            "org",
            done.org.org_id.as_str(),
            done.org.freeze_version,
            json!({
                "org_id": done.org.org_id,
                "reason": done.org.frozen_reason,
                "agents": listed,
                "agent_count": done.agents.len(),
                "agents_truncated": done.agents.len() > EVENT_AGENTS_MAX,
                "grants_revoked": done.grants,
            }),
            done.org.freeze_changed_at.unwrap_or(done.org.created_at),
        )
    })
}

/// Freeze the org or lift it (the org's owner or the platform admin).
async fn change_freeze(
    state: &AppState,
    caller: &Caller,
    org_id: &str,
    wait: bool,
    freeze: Option<String>,
) -> Result<(StatusCode, Json<FreezeChanged>)> {
    let org = visible_org(state, caller, org_id).await?;
    if !matches!(caller.role, Role::Platform | Role::Owner) {
        return Err(Error::Forbidden(
            "only the org's owner or the platform admin can freeze or unfreeze it".into(),
        ));
    }
    let at = now();
    let done = match freeze {
        Some(reason) => {
            let event = freeze_event(caller.actor.clone(), EventType::OrgFrozen);
            state
                .store
                .freeze_org(&org.org_id, &reason, at, event)
                .await?
        }
        None => {
            let event = freeze_event(caller.actor.clone(), EventType::OrgUnfrozen);
            state.store.unfreeze_org(&org.org_id, at, event).await?
        }
    }
    .ok_or_else(Error::org_not_found)?;
    let propagated_at = if wait {
        let key = vouch_core::journal::org_key(&done.org.org_id);
        crate::routes::wait_propagated(state, &key, done.org.freeze_version).await?
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
        Json(FreezeChanged {
            org_id: done.org.org_id,
            frozen: done.org.frozen_at.is_some(),
            frozen_at: done.org.frozen_at,
            reason: done.org.frozen_reason,
            agents: done.agents,
            grants_revoked: done.grants,
            propagated_at,
        }),
    ))
}

/// Freeze a whole org in one call (the emergency brake): every active agent is suspended with
/// the reason and every one of their grants revoked, in one transaction with one audit event;
/// one status-journal entry makes every edge refuse the org's agents within the bound. No agent
/// of a frozen org can be activated until it is unfrozen.
#[utoipa::path(post, path = "/v1/orgs/{org_id}/freeze", tag = "orgs",
    request_body(content = FreezeRequest, description = "optional"),
    params(("org_id" = String, Path, description = "`org_…`"), crate::routes::WaitQuery),
    responses((status = 200, body = FreezeChanged), (status = 202, body = FreezeChanged, description = "`?wait=propagated` timed out"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`org_frozen`: frozen already")),
    security(("admin_token" = [])))]
pub async fn freeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
    crate::extract::QueryParams(wait): crate::extract::QueryParams<crate::routes::WaitQuery>,
    crate::extract::OptionalJsonBody(body): crate::extract::OptionalJsonBody<FreezeRequest>,
) -> Result<(StatusCode, Json<FreezeChanged>)> {
    let wait = wait.wants_propagation(&state)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "the org is frozen".to_owned());
    validate::optional_text("reason", &reason, validate::MAX_REASON)?;
    change_freeze(&state, &caller, &org_id, wait, Some(reason)).await
}

/// Lift a freeze: the agents it suspended (and only those) are active again, each through the
/// status journal; the grants it revoked stay revoked.
#[utoipa::path(post, path = "/v1/orgs/{org_id}/unfreeze", tag = "orgs",
    params(("org_id" = String, Path, description = "`org_…`"), crate::routes::WaitQuery),
    responses((status = 200, body = FreezeChanged), (status = 202, body = FreezeChanged, description = "`?wait=propagated` timed out"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`org_not_frozen`")),
    security(("admin_token" = [])))]
pub async fn unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
    crate::extract::QueryParams(wait): crate::extract::QueryParams<crate::routes::WaitQuery>,
) -> Result<(StatusCode, Json<FreezeChanged>)> {
    let wait = wait.wants_propagation(&state)?;
    change_freeze(&state, &caller, &org_id, wait, None).await
}

/// Who the caller's admin token is: its role, its org, its id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// `platform`, `owner`, `admin` or `viewer`.
    pub role: Role,
    /// The token's org; `null` for the platform admin.
    pub org_id: Option<OrgId>,
    /// The token (`tok_…`); `null` for the configured platform token.
    pub token_id: Option<TokenId>,
}

/// The caller's own token: a client learns whether it holds the platform token or an org's
/// (a tool acting on "its" org needs to know which one that is).
#[utoipa::path(get, path = "/v1/whoami", tag = "orgs",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        role: caller.role,
        token_id: TokenId::parse(&caller.actor).ok(),
        org_id: caller.org_id,
    })
}
