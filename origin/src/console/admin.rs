//! Console pages besides agents: sign-in and sign-out, the audit log with its chain check,
//! webhooks (create with the secret shown once, deliveries, redeliver), org tokens, and the
//! live event stream the pages follow.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use maud::html;
use serde::Deserialize;
use vouch_core::OrgId;

use super::agents::{deliveries_table, events_table};
use super::forms::{CsrfForm, SignInForm, TokenForm, WebhookForm};
use super::session::{self, Session};
use super::views::{self, csrf, layout, Nav};
use super::{page, ConsoleError, Form};
use crate::app::AppState;
use crate::auth::Reader;
use crate::error::Error;
use crate::extract::{JsonBody, QueryParams};
use crate::routes::audit::{self as audit_api, AuditQuery, ChainQuery};
use crate::routes::events::{self, StreamQuery};
use crate::routes::orgs::{self, NewToken};
use crate::routes::webhooks::{self as webhooks_api, NewWebhook};
use crate::routes::Pagination;
use crate::store::Role;

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The sign-in page with a fresh double-submit token.
fn sign_in_form(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let secret = session::new_secret();
    let cookie = session::set_cookie(headers, session::SIGN_IN_COOKIE, &secret, Some(3_600));
    with_cookies(
        page(status, views::sign_in(&session::csrf_of(&secret), problem)),
        &[cookie],
    )
}

/// `GET /console/sign-in`.
pub async fn sign_in_page(headers: HeaderMap) -> Response {
    sign_in_form(&headers, StatusCode::OK, None)
}

/// `POST /console/sign-in`: the token for a session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let expected = session::cookie(&headers, session::SIGN_IN_COOKIE).map(session::csrf_of);
    if !expected.is_some_and(|t| crate::secrets::hashes_equal(&t, &form.csrf)) {
        return Err(ConsoleError::csrf());
    }
    match session::sign_in(&state, &headers, &form.token).await {
        Ok(cookie) => {
            let done = session::set_cookie(&headers, session::SIGN_IN_COOKIE, "", None);
            Ok(with_cookies(
                Redirect::to("/console/agents").into_response(),
                &[cookie, done],
            ))
        }
        Err(Error::Unauthorized) => Ok(sign_in_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid (or it has been revoked). Check it and try again."),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let cookie = session::sign_out(&state, &headers, &session).await?;
    Ok(with_cookies(
        Redirect::to("/console/sign-in").into_response(),
        &[cookie],
    ))
}

/// `GET /console/events`: the API's live event stream, for this session's caller.
pub async fn events(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let reader = Reader::session(session.caller, session.session_hash);
    let query = StreamQuery {
        types: Some("passport.status_changed,passport.created,passport.updated".into()),
        last_event_id: None,
    };
    Ok(events::stream(State(state), reader, headers, QueryParams(query)).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OrgQuery {
    org_id: String,
    cursor: String,
}

impl OrgQuery {
    fn org(&self) -> Result<Option<OrgId>, ConsoleError> {
        match self.org_id.trim() {
            "" => Ok(None),
            raw => OrgId::parse(raw)
                .map(Some)
                .map_err(|e| ConsoleError::bad(format!("{e}."))),
        }
    }
}

/// `GET /console/audit`: the chain check and the newest events.
pub async fn audit(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<OrgQuery>,
) -> Result<Response, ConsoleError> {
    let org = query.org()?;
    let Json(report) = audit_api::verify_audit(
        State(state.clone()),
        session.caller.clone(),
        QueryParams(ChainQuery {
            org_id: org.clone(),
        }),
    )
    .await?;
    let Json(events) = audit_api::list_audit(
        State(state),
        session.caller.clone(),
        QueryParams(AuditQuery {
            org_id: org,
            limit: Some(50),
            cursor: (!query.cursor.is_empty()).then(|| query.cursor.clone()),
        }),
    )
    .await?;
    let check = &report.report;
    let body = html! {
        @if session.caller.is_platform() {
            form.filters method="get" action="/console/audit" {
                div { label for="org_id" { "Organization (empty: the platform's own log)" } input #org_id type="text" name="org_id" value=(query.org_id) placeholder="org_…"; }
                div { button type="submit" { "Show" } }
            }
        }
        section aria-labelledby="chain-h" {
            h2 #chain-h { "Chain check of " code { (report.chain_id) } }
            @if check.ok {
                p.ok role="status" { "Intact: " (check.events_checked) " events verified; tree size " (check.tree_size) ", root " code { (check.root_hash) } "." }
            } @else {
                p.error role="alert" { "Broken: "
                    @if let Some(b) = &check.first_break { "the first untrustworthy event is number " (b.seq) " (" (format!("{:?}", b.kind)) ")." }
                    @else { "the log does not verify." }
                }
            }
            p { "Newest checkpoint: " @if let Some(head) = &report.checkpoint { "tree size " (head.tree_size) } @else { "none yet" }
                "; published to the edge: " @if let Some(head) = &report.published { "tree size " (head.tree_size) } @else { "not yet" }
                "; events waiting to be sealed: " (report.pending) "." }
        }
        h2 { "Events, newest first" }
        (events_table(&events.data))
        @if let Some(next) = &events.next_cursor {
            nav.paging aria-label="Pages" {
                a rel="next" href=(format!("/console/audit?{}", serde_urlencoded::to_string([("org_id", query.org_id.as_str()), ("cursor", next.as_str())]).unwrap_or_default())) { "Older events" }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Audit log", Nav::Audit, body),
    ))
}

/// `GET /console/webhooks`.
pub async fn webhooks(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let Json(list) = webhooks_api::list(
        State(state),
        session.caller.clone(),
        QueryParams(Pagination {
            limit: Some(100),
            cursor: None,
        }),
    )
    .await?;
    let body = html! {
        div.table-wrap { table {
            caption.visually-hidden { "Webhooks" }
            thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Status" } th scope="col" { "Last success" } } }
            tbody {
                @for w in &list.data {
                    tr {
                        td { a href=(format!("/console/webhooks/{}", w.webhook_id)) { (w.url) } }
                        td { (w.events.join(", ")) }
                        td { (w.status) @if let Some(r) = &w.disabled_reason { " (" (r) ")" } }
                        td { (views::time(w.last_success_at)) }
                    }
                }
                @if list.data.is_empty() { tr { td colspan="4" { "No webhooks yet." } } }
            }
        } }
        @if session.can_write() {
            h2 { "Add a webhook" }
            form.stack method="post" action="/console/webhooks" {
                (csrf(&session))
                @if session.caller.is_platform() {
                    label for="org_id" { "Organization id" }
                    input #org_id type="text" name="org_id" required placeholder="org_…";
                }
                label for="url" { "URL" }
                input #url type="url" name="url" required placeholder="https://example.com/hooks/vouch";
                label for="events" { "Events (empty: all)" }
                input #events type="text" name="events" placeholder="agent.suspended, agent.revoked";
                label for="description" { "Description" }
                input #description type="text" name="description";
                button type="submit" { "Add webhook" }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Webhooks", Nav::Webhooks, body),
    ))
}

/// `POST /console/webhooks`: the secret is shown once.
pub async fn create_webhook(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<WebhookForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let org_id = match form.org_id.trim() {
        "" => None,
        raw => Some(OrgId::parse(raw).map_err(|e| ConsoleError::bad(format!("{e}.")))?),
    };
    let events: Vec<String> = form
        .events
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let (_, Json(created)) = webhooks_api::create(
        State(state),
        session.caller.clone(),
        JsonBody(NewWebhook {
            url: form.url.trim().to_owned(),
            events: (!events.is_empty()).then_some(events),
            description: Some(form.description.trim().to_owned()),
            org_id,
        }),
    )
    .await?;
    let body = html! {
        p role="status" { "Webhook added for " code { (created.webhook.url) } "." }
        p { "Its signing secret is shown only now; verify deliveries with it (Standard Webhooks):" }
        p { code.secret { (created.secret) } }
        p { a href=(format!("/console/webhooks/{}", created.webhook.webhook_id)) { "Open the webhook" } }
    };
    Ok(page(
        StatusCode::CREATED,
        layout(Some(&session), "Webhook added", Nav::Webhooks, body),
    ))
}

/// `GET /console/webhooks/{id}`: its deliveries, each redeliverable.
pub async fn webhook(
    State(state): State<AppState>,
    session: Session,
    Path(webhook_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let Json(hook) = webhooks_api::get(
        State(state.clone()),
        session.caller.clone(),
        Path(webhook_id.clone()),
    )
    .await?;
    let Json(deliveries) = webhooks_api::deliveries(
        State(state),
        session.caller.clone(),
        Path(webhook_id.clone()),
        QueryParams(Pagination {
            limit: Some(50),
            cursor: None,
        }),
    )
    .await?;
    let body = html! {
        dl.fields {
            dt { "URL" } dd { code { (hook.url) } }
            dt { "Events" } dd { (hook.events.join(", ")) }
            dt { "Status" } dd { (hook.status) }
            dt { "Organization" } dd { code { (hook.org_id.as_str()) } }
        }
        h2 { "Deliveries, newest first" }
        (deliveries_table(&deliveries.data, Some(&session)))
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Webhook", Nav::Webhooks, body),
    ))
}

/// `POST /console/webhooks/{id}/deliveries/{event}/redeliver`.
pub async fn redeliver(
    State(state): State<AppState>,
    session: Session,
    Path((webhook_id, event_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let _ = webhooks_api::redeliver(
        State(state),
        session.caller.clone(),
        Path((webhook_id.clone(), event_id)),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/webhooks/{webhook_id}")).into_response())
}

/// `GET /console/tokens`: an org's tokens (for its owner, or the platform admin naming it).
pub async fn tokens(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<OrgQuery>,
) -> Result<Response, ConsoleError> {
    let may = matches!(session.caller.role, Role::Platform | Role::Owner);
    let org = match (query.org()?, &session.caller.org_id) {
        (Some(named), _) if session.caller.sees_org(&named) => Some(named),
        (Some(_), _) => return Err(Error::org_not_found().into()),
        (None, own) => own.clone(),
    };
    let listed = match &org {
        Some(org) if may => Some(state.store.tokens_of(org).await?),
        _ => None,
    };
    let org_field = |id: &str| {
        html! {
            @if session.caller.is_platform() {
                label for=(id) { "Organization id" }
                input id=(id) type="text" name="org_id" required placeholder="org_…";
            }
        }
    };
    let body = html! {
        p { "Admin tokens of an organization: " strong { "owner" } " (everything, including tokens), "
            strong { "admin" } " (agents, webhooks), " strong { "viewer" } " (read only). A token is shown once, when it is created." }
        @if session.caller.is_platform() {
            form.filters method="get" action="/console/tokens" {
                div { label for="list_org" { "Organization" } input #list_org type="text" name="org_id" value=(query.org_id) placeholder="org_…"; }
                div { button type="submit" { "Show its tokens" } }
            }
        }
        @if let Some(listed) = &listed {
            div.table-wrap { table {
                caption.visually-hidden { "Tokens" }
                thead { tr { th scope="col" { "Token id" } th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "State" } } }
                tbody {
                    @for (token, revoked) in listed {
                        tr {
                            td { code { (token.token_id.as_str()) } }
                            td { (token.name) }
                            td { (token.role.as_str()) }
                            td { (views::time(Some(token.created_at))) }
                            td { @if let Some(at) = revoked { "revoked " (views::time(Some(*at))) } @else { "live" } }
                        }
                    }
                    @if listed.is_empty() { tr { td colspan="5" { "No tokens." } } }
                }
            } }
        }
        @if may {
            h2 { "Create a token" }
            form.stack method="post" action="/console/tokens" {
                (csrf(&session))
                (org_field("org_id"))
                label for="name" { "Name (what it is for)" }
                input #name type="text" name="name" required;
                label for="role" { "Role" }
                select #role name="role" { option value="viewer" { "viewer" } option value="admin" { "admin" } option value="owner" { "owner" } }
                button type="submit" { "Create token" }
            }
            h2 { "Revoke a token" }
            form.stack method="post" action="/console/tokens/revoke" {
                (csrf(&session))
                (org_field("revoke_org_id"))
                label for="token_id" { "Token id" }
                input #token_id type="text" name="token_id" required placeholder="tok_…";
                button.danger type="submit" { "Revoke token" }
            }
        } @else {
            p { "Only an organization's owner (or the platform admin) manages its tokens." }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Tokens", Nav::Tokens, body),
    ))
}

fn token_org(session: &Session, raw: &str) -> Result<String, ConsoleError> {
    match (raw.trim(), &session.caller.org_id) {
        ("", Some(own)) => Ok(own.to_string()),
        ("", None) => Err(ConsoleError::bad("Name the organization.")),
        (raw, _) => Ok(raw.to_owned()),
    }
}

/// `POST /console/tokens`: the new token is shown once.
pub async fn create_token(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let role = match Role::parse(&form.role) {
        Some(role @ (Role::Owner | Role::Admin | Role::Viewer)) => role,
        _ => {
            return Err(ConsoleError::bad(
                "The role must be owner, admin or viewer.",
            ))
        }
    };
    let org = token_org(&session, &form.org_id)?;
    let (_, Json(created)) = orgs::create_token(
        State(state),
        session.caller.clone(),
        Path(org),
        JsonBody(NewToken {
            role,
            name: form.name.trim().to_owned(),
        }),
    )
    .await?;
    let body = html! {
        p role="status" { "Created the " (created.role.as_str()) " token " code { (created.token_id.as_str()) } " (" (created.name) ")." }
        p { "It is shown only now:" }
        p { code.secret { (created.token) } }
        p { a href="/console/tokens" { "Back to tokens" } }
    };
    Ok(page(
        StatusCode::CREATED,
        layout(Some(&session), "Token created", Nav::Tokens, body),
    ))
}

/// `POST /console/tokens/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let org = token_org(&session, &form.org_id)?;
    let Json(revoked) = orgs::revoke_token(
        State(state),
        session.caller.clone(),
        Path((org, form.token_id.trim().to_owned())),
    )
    .await?;
    let body = html! {
        p role="status" { "Revoked " code { (revoked.token_id.as_str()) } " at " (views::time(Some(revoked.revoked_at))) "; it stopped working at once (and so did its console sessions)." }
        p { a href="/console/tokens" { "Back to tokens" } }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Token revoked", Nav::Tokens, body),
    ))
}
