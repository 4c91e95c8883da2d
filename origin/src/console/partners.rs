//! The console's partners page (SPEC §14, §18): the platform's verifiers, a page at a time; add
//! one (its key shown once), rotate its key (the new one shown once), and revoke it after a
//! confirmation. Every read and write goes through the `/v1/partners` handlers with the
//! session's caller, so an org session is refused there exactly as over the API; the page only
//! leaves out the controls such a session could not use.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use maud::{html, Markup};
use serde::Deserialize;
use vouch_core::partner::PartnerStatus;

use super::forms::{CsrfForm, PartnerForm, RevokePartnerForm};
use super::session::Session;
use super::views::{self, csrf, layout, Nav};
use super::{capitalized, page, ConsoleError, Form};
use crate::app::AppState;
use crate::error::Error;
use crate::extract::{JsonBody, QueryParams};
use crate::routes::partners::{self as api, NewPartner};
use crate::routes::Pagination;
use crate::store::Partner;

/// Partners per page.
const PAGE: u32 = 25;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PartnersQuery {
    cursor: String,
}

fn page_link(cursor: &str) -> String {
    match cursor {
        "" => "/console/partners".to_owned(),
        cursor => format!(
            "/console/partners?{}",
            serde_urlencoded::to_string([("cursor", cursor)]).unwrap_or_default()
        ),
    }
}

/// Whether this session may manage partners (the API decides; this only hides controls).
fn manages(session: &Session) -> bool {
    session.caller.is_platform()
}

/// The form that adds a partner, with what was typed and the problem (if it was refused).
fn partner_form(session: &Session, form: &PartnerForm, problem: Option<&str>) -> Markup {
    html! {
        @if let Some(problem) = problem { p.error role="alert" #form-problem { (problem) } }
        form.stack method="post" action="/console/partners" {
            (csrf(session))
            label for="name" { "Name" }
            input #name type="text" name="name" value=(form.name) required maxlength="200";
            label for="contact" { "Contact (who answers for its use of the edge: an address or a URL)" }
            input #contact type="text" name="contact" value=(form.contact) required;
            button type="submit" { "Add partner" }
        }
    }
}

/// The partners table; `session` when the rows get their rotate and revoke controls.
fn partners_table(partners: &[Partner], controls: Option<&Session>) -> Markup {
    html! {
        div.table-wrap { table {
            caption.visually-hidden { "Partners" }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Partner id" } th scope="col" { "Contact" }
                th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Key issued" }
                @if controls.is_some() { th scope="col" { "Actions" } }
            } }
            tbody {
                @for p in partners {
                    tr data-partner=(p.partner_id.as_str()) {
                        td { (p.name) }
                        td { code { (p.partner_id.as_str()) } }
                        td { (p.contact) }
                        td { @match p.revoked_at {
                            Some(at) => { "revoked " (views::time(Some(at))) },
                            None => "active",
                        } }
                        td { (views::time(Some(p.created_at))) }
                        td { (views::time(Some(p.key_issued_at))) }
                        @if let Some(session) = controls { td {
                            @if p.status == PartnerStatus::Active {
                                div.actions {
                                    form.inline method="post" action=(format!("/console/partners/{}/keys", p.partner_id)) {
                                        (csrf(session))
                                        button type="submit" { "Rotate key" span.visually-hidden { " of " (p.name) } }
                                    }
                                    a.button.danger href=(format!("/console/partners/{}/revoke", p.partner_id)) {
                                        "Revoke…" span.visually-hidden { " " (p.name) }
                                    }
                                }
                            } @else { "—" }
                        } }
                    }
                }
                @if partners.is_empty() { tr { td colspan="7" { "No partners yet." } } }
            }
        } }
    }
}

/// `GET /console/partners`: the platform's partners, newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PartnersQuery>,
) -> Result<Response, ConsoleError> {
    let listed = api::list(
        State(state),
        session.caller.clone(),
        QueryParams(Pagination {
            limit: Some(PAGE),
            cursor: (!query.cursor.is_empty()).then(|| query.cursor.clone()),
        }),
    )
    .await;
    let listed = match listed {
        Ok(Json(list)) => Some(list),
        // An org session: the API refuses it before looking anything up; so does this page.
        Err(Error::Forbidden(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let body = html! {
        p { "Partners are the verifiers that call the edge's " code { "/verify" } " for their own business, each with its key ("
            code { "vk_partner_…" } "). A key is shown once, when the partner is added or its key rotated; the key of a revoked partner, and a key replaced by a rotation, are refused at every edge within seconds." }
        @match &listed {
            Some(list) => {
                (partners_table(&list.data, manages(&session).then_some(&session)))
                nav.paging aria-label="Pages" {
                    @if !query.cursor.is_empty() { a href=(page_link("")) { "First page" } }
                    @if let Some(next) = &list.next_cursor { a href=(page_link(next)) rel="next" { "Next page" } }
                }
                @if manages(&session) {
                    h2 { "Add a partner" }
                    (partner_form(&session, &PartnerForm::default(), None))
                }
            }
            None => {
                p { "Partners are managed by the platform admin: sign in with the platform token to see or change them." }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Partners", Nav::Partners, body),
    ))
}

/// `POST /console/partners`: the new partner's key is shown once.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<PartnerForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let created = api::create(
        State(state),
        session.caller.clone(),
        JsonBody(NewPartner {
            name: form.name.trim().to_owned(),
            contact: form.contact.trim().to_owned(),
        }),
    )
    .await;
    let created = match created {
        Ok((_, Json(created))) => created,
        // A value the API refuses: the form again, with what was typed and why.
        Err(e @ Error::Core(_)) => {
            let (status, _) = e.status_and_code();
            let body = partner_form(&session, &form, Some(&capitalized(&e.to_string())));
            return Ok(page(
                status,
                layout(Some(&session), "Add a partner", Nav::Partners, body),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let partner = &created.partner;
    let body = html! {
        p role="status" { "Added the partner " strong { (partner.name) } " (" code { (partner.partner_id.as_str()) } ")." }
        p { "Its key is shown only now; hand it to the partner, who sends it to the edge as " code { "Authorization: Bearer …" } ":" }
        p { code.secret { (created.key) } }
        p { a href="/console/partners" { "Back to partners" } }
    };
    Ok(page(
        StatusCode::CREATED,
        layout(Some(&session), "Partner added", Nav::Partners, body),
    ))
}

/// `POST /console/partners/{id}/keys`: a new key, shown once; the old one stops working.
pub async fn rotate_key(
    State(state): State<AppState>,
    session: Session,
    Path(partner_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let (_, Json(rotated)) = api::rotate_key(
        State(state.clone()),
        session.caller.clone(),
        Path(partner_id.clone()),
    )
    .await?;
    let Json(partner) = api::get(State(state), session.caller.clone(), Path(partner_id)).await?;
    let body = html! {
        p role="status" { "Rotated the key of " strong { (partner.name) } " at " (views::time(Some(rotated.rotated_at)))
            "; its previous key is refused at every edge within seconds." }
        p { "The new key is shown only now:" }
        p { code.secret { (rotated.key) } }
        p { a href="/console/partners" { "Back to partners" } }
    };
    Ok(page(
        StatusCode::CREATED,
        layout(Some(&session), "Partner key rotated", Nav::Partners, body),
    ))
}

/// `GET /console/partners/{id}/revoke`: the confirmation revoking needs.
pub async fn revoke_confirm(
    State(state): State<AppState>,
    session: Session,
    Path(partner_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let Json(partner) = api::get(State(state), session.caller.clone(), Path(partner_id)).await?;
    if partner.status == PartnerStatus::Revoked {
        return Err(ConsoleError::Page {
            status: StatusCode::CONFLICT,
            title: "Not possible now",
            message: format!("{} is already revoked.", partner.name),
        });
    }
    let body = html! {
        p.warning { "Revoking is for good: every edge refuses the key of " strong { (partner.name) } " within seconds, so it can no longer verify agents or commit decisions; its key cannot be rotated again, and no agent token is issued for it any more." }
        form.stack method="post" action=(format!("/console/partners/{}/revoke", partner.partner_id)) {
            (csrf(&session))
            input type="hidden" name="confirm" value="revoke";
            div.row {
                button.danger type="submit" { "Revoke " (partner.name) " for good" }
                a href="/console/partners" { "Cancel" }
            }
        }
    };
    let title = format!("Revoke {}?", partner.name);
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), &title, Nav::Partners, body),
    ))
}

/// `POST /console/partners/{id}/revoke` (from its confirmation page).
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    Path(partner_id): Path<String>,
    Form(form): Form<RevokePartnerForm>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    if form.confirm != "revoke" {
        return Err(ConsoleError::bad(
            "Revoking needs its confirmation: use the Revoke button of the partner.",
        ));
    }
    let Json(partner) = api::revoke(State(state), session.caller.clone(), Path(partner_id)).await?;
    let body = html! {
        p role="status" { "Revoked " strong { (partner.name) } " (" code { (partner.partner_id.as_str()) } ") at "
            (views::time(partner.revoked_at)) "; every edge refuses its key within seconds." }
        p { a href="/console/partners" { "Back to partners" } }
    };
    Ok(page(
        StatusCode::OK,
        layout(Some(&session), "Partner revoked", Nav::Partners, body),
    ))
}
