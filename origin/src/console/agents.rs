//! Console pages of agents: the list (search, filters, cursor paging, live status), the
//! passport, register and edit, and one-click status changes with their propagation.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use vouch_core::audit::AuditEvent;
use vouch_core::{Passport, Status, Timestamp};

use super::forms::{AgentForm, StatusForm};
use super::session::Session;
use super::views::{self, csrf, layout, Nav};
use super::{from_htmx, page, ConsoleError, Form};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::extract::{JsonBody, MergePatchBody, QueryParams};
use crate::routes::agents::{self as api, AgentQuery, StatusChanged, StatusRequest};
use crate::routes::{Pagination, WaitQuery};

/// How long a status change waits for KV to take the new version (after the journal has).
const KV_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An API answer's JSON body, read into `T`.
pub async fn json_of<T: DeserializeOwned>(response: Result<Response>) -> Result<T> {
    let response = response?;
    let bytes = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
        .await
        .map_err(Error::internal)?;
    serde_json::from_slice(&bytes).map_err(Error::internal)
}

/// The list's query: empty fields of the filter form mean "any".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    status: String,
    capability: String,
    region: String,
    cursor: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl ListQuery {
    fn api(&self) -> Result<AgentQuery, Error> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(
                Status::parse(s)
                    .ok_or_else(|| Error::field("status", format!("`{s}` is not a status")))?,
            ),
        };
        Ok(AgentQuery {
            status,
            capability: some(&self.capability),
            region: some(&self.region),
            q: some(&self.q),
            org_id: None,
            limit: Some(25),
            cursor: some(&self.cursor),
        })
    }

    /// This query on another page.
    fn with_cursor(&self, cursor: &str) -> String {
        let pairs = [
            ("q", self.q.as_str()),
            ("status", self.status.as_str()),
            ("capability", self.capability.as_str()),
            ("region", self.region.as_str()),
            ("cursor", cursor),
        ];
        let kept: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let query = serde_urlencoded::to_string(kept).unwrap_or_default();
        format!("/console/agents?{query}")
    }
}

/// `GET /console/agents`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let found = match query.api() {
        Ok(q) => api::list_agents(State(state), session.caller.clone(), QueryParams(q))
            .await
            .map(|Json(list)| list),
        Err(e) => Err(e),
    };
    let (agents, next, problem) = match found {
        Ok(list) => (list.data, list.next_cursor, None),
        Err(e @ Error::Core(_)) => (Vec::new(), None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let option = |value: &str, label: &str| {
        html! { option value=(value) selected[query.status == value] { (label) } }
    };
    let body = html! {
        @if session.can_write() {
            p { a.button href="/console/agents/new" { "Register an agent" } }
        }
        form.filters method="get" action="/console/agents" role="search" {
            div { label for="q" { "Name contains" } input #q type="search" name="q" value=(query.q); }
            div { label for="status" { "Status" }
                select #status name="status" {
                    (option("", "Any")) (option("draft", "Not active yet")) (option("active", "Active"))
                    (option("suspended", "Suspended")) (option("revoked", "Revoked"))
                }
            }
            div { label for="capability" { "Capability" } input #capability type="text" name="capability" value=(query.capability) placeholder="payments.refund"; }
            div { label for="region" { "Region" } input #region type="text" name="region" value=(query.region) placeholder="US-CA"; }
            div { button type="submit" { "Search" } }
        }
        @if let Some(problem) = problem { p.error role="alert" { (problem) } }
        div #change-result aria-live="polite" {}
        (views::agents_table(&session, &agents))
        nav.paging aria-label="Pages" {
            @if !query.cursor.is_empty() { a href=(query.with_cursor("")) { "First page" } }
            @if let Some(next) = &next { a href=(query.with_cursor(next)) rel="next" { "Next page" } }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Agents", Nav::Agents, body),
    ))
}

async fn passport(state: &AppState, session: &Session, agent_id: &str) -> Result<Passport> {
    json_of(
        api::get_agent(
            State(state.clone()),
            session.caller.clone(),
            Path(agent_id.to_owned()),
            HeaderMap::new(),
        )
        .await,
    )
    .await
}

/// `GET /console/agents/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(agent_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let passport = passport(&state, &session, &agent_id).await?;
    let Json(events) = api::agent_events(
        State(state.clone()),
        session.caller.clone(),
        Path(agent_id.clone()),
        QueryParams(Pagination {
            limit: Some(50),
            cursor: None,
        }),
    )
    .await?;
    let delegations = state.store.delegations_of(&passport.agent_id, 50).await?;
    let deliveries = state.store.deliveries_about(&passport.agent_id, 50).await?;
    let receipts = state
        .store
        .list_receipts(
            &passport.agent_id,
            &crate::store::PageRequest {
                limit: 20,
                after: None,
            },
        )
        .await?;
    let public = state.edge_url.as_deref().map(|edge| {
        format!(
            "{}/agents/{}",
            edge.trim_end_matches('/'),
            passport.agent_id
        )
    });
    let body = html! {
        div #change-result aria-live="polite" {}
        @if session.can_write() {
            section aria-labelledby="change-h" data-agent=(passport.agent_id.as_str()) data-status=(passport.status.as_str()) {
                h2 #change-h { "Change status" }
                (views::status_actions(&session, &passport, false))
                @if passport.status != Status::Revoked {
                    p { a href=(format!("/console/agents/{}/edit", passport.agent_id)) { "Edit this passport" } }
                }
            }
        }
        @if let Some(public) = &public {
            p { "Public page at the edge: " a href=(public) { (public) } }
        }
        h2 { "Passport" }
        (views::passport_fields(&passport))
        h2 { "Delegations" }
        (delegations_table(passport.agent_id.as_str(), &delegations))
        h2 { "Webhook deliveries of its events" }
        (deliveries_table(&deliveries, None))
        h2 { "Receipts" }
        p { "Its committed decisions, each signed by the edge (newest first; check one with "
            code { "vouch receipts verify" } ")." }
        (receipts_table(&receipts.data))
        h2 { "Events" }
        (events_table(&events.data))
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), &passport.name, Nav::Agents, body),
    ))
}

/// An agent's receipts (SPEC §12): signed committed decisions, in words.
fn receipts_table(receipts: &[crate::store::ReceiptRow]) -> Markup {
    let member = |body: &serde_json::Value, name: &str| {
        body.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    html! {
        div.table-wrap {
            table {
                caption.visually-hidden { "Receipts" }
                thead { tr { th scope="col" { "When" } th scope="col" { "Decision" } th scope="col" { "For" } th scope="col" { "Partner" } th scope="col" { "Decision id" } } }
                tbody {
                    @for r in receipts {
                        @let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                        tr {
                            td { (views::time(Some(r.created_at))) }
                            td { @if body.get("allow") == Some(&serde_json::Value::Bool(true)) { "allowed" } @else { "denied" } }
                            td { (body.get("policy_id").or_else(|| body.get("capability")).and_then(serde_json::Value::as_str).unwrap_or("-")) }
                            td { (r.partner_id.as_deref().unwrap_or("-")) }
                            td { code { (member(&body, "decision_id")) } }
                        }
                    }
                    @if receipts.is_empty() { tr { td colspan="5" { "No receipts yet." } } }
                }
            }
        }
    }
}

/// The audit events of one agent (or of an org, on the audit page).
pub fn events_table(events: &[AuditEvent]) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.visually-hidden { "Events" }
                thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Who" } th scope="col" { "Details" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (e.seq) }
                            td { (views::time(Some(e.created_at))) }
                            td { (e.action) }
                            td { code { (e.actor) } }
                            td { (event_in_words(e)) }
                        }
                    }
                    @if events.is_empty() { tr { td colspan="5" { "No events yet." } } }
                }
            }
        }
    }
}

/// The grants naming an agent, either way.
fn delegations_table(agent_id: &str, grants: &[crate::store::DelegationRecord]) -> Markup {
    let now = crate::clock::now();
    let party = |id: &str| {
        html! {
            @if id == agent_id { "this agent" } @else { a href=(format!("/console/agents/{id}")) { code { (id) } } }
        }
    };
    html! {
        div.table-wrap { table {
            caption.visually-hidden { "Delegations" }
            thead { tr { th scope="col" { "Grant" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Scopes" } th scope="col" { "State" } } }
            tbody {
                @for d in grants {
                    tr {
                        td { code { (d.grant.delegation_id.as_str()) } }
                        td { (party(d.grant.delegator.as_str())) }
                        td { (party(d.grant.delegatee.as_str())) }
                        td { (d.grant.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) " (depth ≤ " (d.grant.max_depth) ")" }
                        td {
                            @if d.grant.revoked || d.revoked_at.is_some() { "revoked " (views::time(d.revoked_at)) }
                            @else if d.grant.expires_at <= now { "expired " (views::time(Some(d.grant.expires_at))) }
                            @else { "live until " (views::time(Some(d.grant.expires_at))) }
                        }
                    }
                }
                @if grants.is_empty() { tr { td colspan="5" { "No delegations name this agent." } } }
            }
        } }
    }
}

/// Webhook deliveries (of one agent's events, or of one subscription: then each can be
/// redelivered by a session that may write).
pub fn deliveries_table(
    deliveries: &[crate::store::Delivery],
    redeliver: Option<&Session>,
) -> Markup {
    let redeliver = redeliver.filter(|s| s.can_write());
    html! {
        div.table-wrap { table {
            caption.visually-hidden { "Webhook deliveries" }
            thead { tr {
                th scope="col" { "Event" } th scope="col" { "Webhook" } th scope="col" { "Status" }
                th scope="col" { "Attempts" } th scope="col" { "Last answer" }
                @if redeliver.is_some() { th scope="col" { "Redeliver" } }
            } }
            tbody {
                @for d in deliveries {
                    tr {
                        td { (d.event_type) br; code { (d.event_id) } }
                        td { a href=(format!("/console/webhooks/{}", d.webhook_id)) { code { (d.webhook_id) } } }
                        td { (d.status) @if let Some(next) = d.next_attempt_at { " (next " (views::time(Some(next))) ")" } }
                        td { (d.attempt_count) }
                        td { @if let Some(a) = d.attempts.last() {
                            @if let Some(code) = a.status_code { "HTTP " (code) } @else if let Some(e) = &a.error { (e) }
                        } @else { "—" } }
                        @if let Some(session) = redeliver { td {
                            form method="post" action=(format!("/console/webhooks/{}/deliveries/{}/redeliver", d.webhook_id, d.event_id)) {
                                (csrf(session))
                                button type="submit" { "Redeliver" span.visually-hidden { " " (d.event_id) } }
                            }
                        } }
                    }
                }
                @if deliveries.is_empty() { tr { td colspan="6" { "No deliveries." } } }
            }
        } }
    }
}

/// What an event did, in a few words; its data as stored behind a disclosure.
fn event_in_words(event: &AuditEvent) -> Markup {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let summary = match (text(&data["previous_status"]), text(&data["new_status"])) {
        (Some(before), Some(after)) => Some(match text(&data["reason"]) {
            Some(reason) => format!("{before} → {after}: {reason}"),
            None => format!("{before} → {after}"),
        }),
        _ => data["changes"].as_object().map(|changes| {
            let fields: Vec<&str> = changes.keys().map(String::as_str).collect();
            format!("changed {}", fields.join(", "))
        }),
    };
    html! {
        @if let Some(summary) = summary { (summary) " " }
        details {
            summary { "Data" span.visually-hidden { " of event " (event.seq) } }
            code.details { (event.data) }
        }
    }
}

/// The register and edit form.
fn agent_form(
    session: &Session,
    form: &AgentForm,
    edit: Option<&Passport>,
    problem: Option<&str>,
) -> Markup {
    let action = match edit {
        Some(p) => format!("/console/agents/{}/edit", p.agent_id),
        None => "/console/agents".to_owned(),
    };
    let select = |name: &str, label: &str, current: &str, options: &[(&str, &str)]| {
        html! {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                @for (value, text) in options { option value=(value) selected[current == *value] { (text) } }
            }
        }
    };
    html! {
        @if let Some(problem) = problem { p.error role="alert" #form-problem { (problem) } }
        form.stack method="post" action=(action) {
            (csrf(session))
            @if let Some(p) = edit {
                input type="hidden" name="version" value=(p.version);
                p { "Name, owner and organization are fixed at registration." }
            } @else {
                @if session.caller.is_platform() {
                    label for="org_id" { "Organization id" }
                    input #org_id type="text" name="org_id" value=(form.org_id) required placeholder="org_…";
                }
                label for="name" { "Name" }
                input #name type="text" name="name" value=(form.name) required maxlength="200";
                label for="owner_display_name" { "Owner (who answers for it)" }
                input #owner_display_name type="text" name="owner_display_name" value=(form.owner_display_name) required;
                label for="owner_contact" { "Owner contact (email or URL)" }
                input #owner_contact type="text" name="owner_contact" value=(form.owner_contact) required;
            }
            label for="role" { "Role" }
            input #role type="text" name="role" value=(form.role);
            label for="description" { "Description" }
            textarea #description name="description" rows="3" { (form.description) }
            label for="capabilities" { "Capabilities" }
            p.hint #capabilities-hint { "One per line: its id, optionally followed by its params as JSON, e.g. payments.refund {\"max_amount\": 100, \"currency\": \"USD\"}" }
            textarea #capabilities name="capabilities" rows="4" aria-describedby="capabilities-hint" { (form.capabilities) }
            label for="limits" { "Limits (JSON)" }
            p.hint #limits-hint { "A JSON object, e.g. {\"refund_usd_daily_cap\": 1000, \"allow_pii\": false} (amounts in major units; see docs/policy.md)." }
            textarea #limits name="limits" rows="4" aria-describedby="limits-hint" { (form.limits) }
            label for="regions" { "Regions" }
            p.hint #regions-hint { "Codes separated by commas: US, US-CA, or * for anywhere." }
            input #regions type="text" name="regions" value=(form.regions) aria-describedby="regions-hint";
            (select("assurance_level", "Assurance level", &form.assurance_level, &[("L0", "L0"), ("L1", "L1"), ("L2", "L2"), ("L3", "L3")]))
            (select("tier", "Tier", &form.tier, &[("standard", "standard"), ("sandbox", "sandbox"), ("privileged", "privileged")]))
            @if edit.is_none() {
                (select("status", "Start as", &form.status, &[("draft", "Not active yet (draft)"), ("active", "Active")]))
            }
            button type="submit" { (if edit.is_some() { "Save changes" } else { "Register" }) }
        }
    }
}

/// `GET /console/agents/new`.
pub async fn new_form(session: Session) -> Result<Response, ConsoleError> {
    session.caller.require_writer()?;
    let form = AgentForm {
        assurance_level: "L0".into(),
        tier: "standard".into(),
        status: "draft".into(),
        ..AgentForm::default()
    };
    let body = agent_form(&session, &form, None, None);
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Register an agent", Nav::Agents, body),
    ))
}

/// `POST /console/agents`: register; the API key is shown once.
pub async fn register(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<AgentForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    session.caller.require_writer()?;
    let again = |status: StatusCode, problem: String| {
        let body = agent_form(&session, &form, None, Some(&problem));
        page(
            status,
            layout(Some(&session), "Register an agent", Nav::Agents, body),
        )
    };
    let body = match form.registration() {
        Ok(body) => body,
        Err(problem) => return Ok(again(StatusCode::BAD_REQUEST, problem)),
    };
    let registered: Value = match json_of(
        api::register_agent(State(state), session.caller.clone(), JsonBody(body)).await,
    )
    .await
    {
        Ok(v) => v,
        Err(
            e @ (Error::Core(_)
            | Error::Conflict { .. }
            | Error::NotFound { .. }
            | Error::Rejected { .. }),
        ) => {
            let (status, _) = e.status_and_code();
            return Ok(again(status, super::capitalized(&e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let id = registered["agent"]["agent_id"].as_str().unwrap_or_default();
    let name = registered["agent"]["name"].as_str().unwrap_or_default();
    let body = html! {
        p role="status" { "Registered " strong { (name) } "." }
        p { "Its API key is shown only now; store it where the agent can read it:" }
        p { code.secret { (registered["api_key"].as_str().unwrap_or_default()) } }
        p { a href=(format!("/console/agents/{id}")) { "Open " (name) } }
    };
    Ok(page(
        StatusCode::CREATED,
        layout(Some(&session), "Agent registered", Nav::Agents, body),
    ))
}

/// `GET /console/agents/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Path(agent_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let passport = passport(&state, &session, &agent_id).await?;
    session.caller.require_writer()?;
    let body = agent_form(&session, &AgentForm::of(&passport), Some(&passport), None);
    let title = format!("Edit {}", passport.name);
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), &title, Nav::Agents, body),
    ))
}

/// `POST /console/agents/{id}/edit`: a merge patch with `If-Match` (a stale edit says so).
pub async fn edit(
    State(state): State<AppState>,
    session: Session,
    Path(agent_id): Path<String>,
    Form(form): Form<AgentForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let current = passport(&state, &session, &agent_id).await?;
    let title = format!("Edit {}", current.name);
    let again = |status: StatusCode, problem: &str| {
        let body = agent_form(&session, &form, Some(&current), Some(problem));
        page(status, layout(Some(&session), &title, Nav::Agents, body))
    };
    let patch = match form.mutable() {
        Ok(patch) => patch,
        Err(problem) => return Ok(again(StatusCode::BAD_REQUEST, &problem)),
    };
    let mut headers = HeaderMap::new();
    if let Some(version) = form.version {
        if let Ok(tag) = HeaderValue::from_str(&format!("\"{version}\"")) {
            headers.insert(header::IF_MATCH, tag);
        }
    }
    let result = api::patch_agent(
        State(state.clone()),
        session.caller.clone(),
        Path(agent_id.clone()),
        headers,
        MergePatchBody(Value::Object(patch)),
    )
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/console/agents/{agent_id}")).into_response()),
        Err(Error::VersionMismatch { current: now, .. }) => Ok(again(
            StatusCode::PRECONDITION_FAILED,
            &format!(
                "Someone changed this passport since you opened the form (it is now at version {now}); nothing was saved. Open the passport again to see the changes, then edit."
            ),
        )),
        Err(e @ (Error::Core(_) | Error::Rejected { .. } | Error::Conflict { .. })) => {
            let (status, _) = e.status_and_code();
            Ok(again(status, &super::capitalized(&e.to_string())))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/agents/{id}/revoke`: the confirmation revoking needs.
pub async fn revoke_confirm(
    State(state): State<AppState>,
    session: Session,
    Path(agent_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let passport = passport(&state, &session, &agent_id).await?;
    session.caller.require_writer()?;
    let action = format!("/console/agents/{}/status", passport.agent_id);
    let body = html! {
        p.warning { "Revoking is for good: " strong { (passport.name) } " can never be activated again, its API key and every token and delegation that names it stop working. Partners see it as revoked within seconds." }
        form.stack method="post" action=(action) {
            (csrf(&session))
            input type="hidden" name="status" value="revoked";
            input type="hidden" name="confirm" value="revoke";
            label for="reason" { "Reason (shown to partners)" }
            input #reason type="text" name="reason" required maxlength="500";
            div.row {
                button.danger type="submit" { "Revoke " (passport.name) " for good" }
                a href=(format!("/console/agents/{}", passport.agent_id)) { "Cancel" }
            }
        }
    };
    let title = format!("Revoke {}?", passport.name);
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), &title, Nav::Agents, body),
    ))
}

/// `POST /console/agents/{id}/status`: the change, then when the journal and KV took it.
pub async fn set_status(
    State(state): State<AppState>,
    session: Session,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<StatusForm>,
) -> Result<Response, ConsoleError> {
    let htmx = from_htmx(&headers);
    match change_status(state, &session, agent_id, htmx, form).await {
        // htmx swaps the answer into the page: a refusal is a fragment there, not a whole page.
        Err(ConsoleError::Page {
            status,
            title,
            message,
        }) if htmx => Ok(page(
            status,
            html! { div.result role="alert" { p.error { strong { (title) ": " } (message) } } },
        )),
        other => other,
    }
}

async fn change_status(
    state: AppState,
    session: &Session,
    agent_id: String,
    htmx: bool,
    form: StatusForm,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let status = Status::parse(&form.status)
        .ok_or_else(|| ConsoleError::bad(format!("`{}` is not a status.", form.status)))?;
    if status == Status::Revoked && form.confirm != "revoke" {
        return Err(ConsoleError::bad(
            "Revoking needs its confirmation: use the Revoke button of the agent.",
        ));
    }
    let reason = some(&form.reason);
    let (_, Json(changed)) = api::set_status(
        State(state.clone()),
        session.caller.clone(),
        Path(agent_id.clone()),
        QueryParams(WaitQuery {
            wait: state.journal.then(|| "propagated".to_owned()),
        }),
        HeaderMap::new(),
        JsonBody(StatusRequest { status, reason }),
    )
    .await?;
    let kv_at = if state.kv {
        kv_written(&state, &changed).await?
    } else {
        None
    };
    let name = passport(&state, session, &agent_id).await?.name;
    let result = change_result(&state, &name, &changed, kv_at);
    if htmx {
        return Ok(page(StatusCode::OK, result));
    }
    let body = html! {
        (result)
        p { a href=(format!("/console/agents/{agent_id}")) { "Back to " (name) } }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(session), "Status changed", Nav::Agents, body),
    ))
}

/// When KV took the changed version, waiting up to [`KV_WAIT`].
async fn kv_written(state: &AppState, changed: &StatusChanged) -> Result<Option<Timestamp>> {
    let key = vouch_core::kv::passport_key(&changed.agent_id);
    let deadline = tokio::time::Instant::now() + KV_WAIT;
    loop {
        if let Some(at) = state.store.kv_written_at(&key, changed.version).await? {
            return Ok(Some(at));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// *committed → journal stored → KV written*, with times and the delay after the commit.
fn change_result(
    state: &AppState,
    name: &str,
    changed: &StatusChanged,
    kv_at: Option<Timestamp>,
) -> Markup {
    let (label, _) = vouch_core::public_page::status_in_words(changed.new_status);
    let after = |at: Timestamp| {
        let ms = at.unix_millis() - changed.changed_at.unix_millis();
        html! { (views::time(Some(at))) " (+" (ms) " ms)" }
    };
    html! {
        div.result role="status" {
            p { strong { (name) } " is now " (views::status_label(changed.agent_id.as_str(), changed.new_status)) " (version " (changed.version) ")." }
            ol.propagation aria-label="How far the change has reached" {
                li { "Committed: " (views::time(Some(changed.changed_at))) }
                li { "Journal stored (every edge refuses or allows by it within the bound): "
                    @match (changed.propagated_at, state.journal) {
                        (Some(at), _) => (after(at)),
                        (None, true) => "not yet (still within the wait)",
                        (None, false) => "the status journal is off on this origin",
                    }
                }
                li { "KV written: "
                    @match (kv_at, state.kv) {
                        (Some(at), _) => (after(at)),
                        (None, true) => "not yet (the publisher retries until it lands)",
                        (None, false) => "the KV publisher is off on this origin",
                    }
                }
            }
            span.visually-hidden data-announce="" { (name) " is now " (label) }
        }
    }
}
