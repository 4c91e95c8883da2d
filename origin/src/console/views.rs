//! The console's markup (maud escapes every value). Every control has a label, every page one
//! `h1`, a skip link and a landmark for its content; write controls appear only for sessions
//! that may write (the server refuses a viewer's write anyway).

use maud::{html, Markup, DOCTYPE};
use vouch_core::edge_view::EdgePassport;
use vouch_core::policy::words;
use vouch_core::public_page::status_in_words;
use vouch_core::{Passport, Status, Timestamp};

use super::session::Session;

/// htmx settings: no inline styles or eval (the CSP forbids them), and error answers (pages
/// saying what went wrong) are swapped in like any other.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;

/// Which section of the console a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Agents,
    Audit,
    Webhooks,
    Tokens,
    Partners,
    None,
}

/// A whole page: header with navigation and sign-out (when signed in), the content, and a
/// polite live region for announcements.
pub fn layout(session: Option<&Session>, title: &str, nav: Nav, body: Markup) -> Markup {
    let item = |section: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(nav == section).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · Vouch console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/htmx.min.js" defer {}
                script src="/console/static/console.js" defer {}
            }
            body data-stream=[session.map(|_| "/console/events")] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/agents" { "Vouch console" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            ul {
                                (item(Nav::Agents, "/console/agents", "Agents"))
                                (item(Nav::Audit, "/console/audit", "Audit log"))
                                (item(Nav::Webhooks, "/console/webhooks", "Webhooks"))
                                (item(Nav::Tokens, "/console/tokens", "Tokens"))
                                (item(Nav::Partners, "/console/partners", "Partners"))
                            }
                        }
                        div.who {
                            span { "Signed in as " strong { (session.caller.actor) } " (" (session.caller.role.as_str()) ")" }
                            form method="post" action="/console/sign-out" {
                                (csrf(session))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                div #live .visually-hidden aria-live="polite" {}
            }
        }
    }
}

/// The hidden CSRF field of every form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub fn error_page(title: &str, message: &str) -> Markup {
    layout(
        None,
        title,
        Nav::None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/agents" { "Back to the console" } }
        },
    )
}

pub fn sign_in(csrf_token: &str, problem: Option<&str>) -> Markup {
    layout(
        None,
        "Sign in",
        Nav::None,
        html! {
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(csrf_token);
                label for="token" { "Admin token" }
                p.hint #token-hint { "A platform or organization token (vk_admin_…). It is exchanged for a session and never kept in the page." }
                input #token type="password" name="token" required autocomplete="off" aria-describedby="token-hint";
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A status as a badge-like label (`data-status-of` lets the live stream update it).
pub fn status_label(agent_id: &str, status: Status) -> Markup {
    let (label, _) = status_in_words(status);
    html! {
        span class=(format!("status status-{}", status.as_str())) data-status-of=(agent_id) { (label) }
    }
}

pub fn time(at: Option<Timestamp>) -> Markup {
    match at {
        Some(at) => {
            let text = at.to_rfc3339();
            html! { time datetime=(text) { (text) } }
        }
        None => html! { "—" },
    }
}

/// The one-click status forms of an agent (those its status allows; CSS hides the rest when
/// the live stream changes the row's status).
pub fn status_actions(session: &Session, passport: &Passport, compact: bool) -> Markup {
    let id = passport.agent_id.as_str();
    let action = format!("/console/agents/{id}/status");
    let form = |status: &str, button: &str, class: &str| {
        let reason_id = format!("reason-{status}-{id}");
        html! {
            form class=(format!("inline {class}")) method="post" action=(action) hx-post=(action) hx-target="#change-result" hx-swap="innerHTML" {
                (csrf(session))
                input type="hidden" name="status" value=(status);
                label class=[compact.then_some("visually-hidden")] for=(reason_id) { "Reason to " (button.to_lowercase()) " " (passport.name) }
                input id=(reason_id) type="text" name="reason" placeholder="Reason" maxlength="500";
                button type="submit" { (button) span.visually-hidden { " " (passport.name) } }
            }
        }
    };
    html! {
        @if passport.status != Status::Revoked {
            div.actions data-actions-of=(id) {
                (form("active", "Activate", "when-draft"))
                (form("suspended", "Suspend", "when-active"))
                (form("active", "Reactivate", "when-suspended"))
                a.button.danger.when-draft.when-active.when-suspended href=(format!("/console/agents/{id}/revoke")) {
                    "Revoke…" span.visually-hidden { " " (passport.name) }
                }
            }
        }
    }
}

/// The agents table.
pub fn agents_table(session: &Session, agents: &[Passport]) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.visually-hidden { "Agents" }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Status" }
                        th scope="col" { "Capabilities" }
                        th scope="col" { "Regions" }
                        th scope="col" { "Version" }
                        @if session.can_write() { th scope="col" { "Change status" } }
                    }
                }
                tbody {
                    @for agent in agents {
                        tr data-agent=(agent.agent_id.as_str()) data-status=(agent.status.as_str()) {
                            td { a href=(format!("/console/agents/{}", agent.agent_id)) { (agent.name) } }
                            td { (status_label(agent.agent_id.as_str(), agent.status)) }
                            td { @for (i, c) in agent.fields.capabilities.iter().enumerate() {
                                @if i > 0 { ", " } code { (c.id.as_str()) }
                            } }
                            td { (words::regions_in_words(&agent.fields.regions)) }
                            td data-version-of=(agent.agent_id.as_str()) { (agent.version) }
                            @if session.can_write() { td { (status_actions(session, agent, true)) } }
                        }
                    }
                    @if agents.is_empty() {
                        tr { td colspan="6" { "No agents match." } }
                    }
                }
            }
        }
    }
}

/// A passport's fields, in words where words help.
pub fn passport_fields(passport: &Passport) -> Markup {
    let view = EdgePassport::from(passport);
    let capabilities = words::capabilities_in_words(&view);
    let f = &passport.fields;
    html! {
        dl.fields {
            dt { "Agent id" } dd { code { (passport.agent_id.as_str()) } }
            dt { "Organization" } dd { code { (passport.org_id.as_str()) } }
            dt { "Status" } dd {
                (status_label(passport.agent_id.as_str(), passport.status))
                @if let Some(reason) = &passport.status_reason { " — " (reason) }
            }
            dt { "Owner" } dd { (passport.owner.display_name) " (" (passport.owner.contact) ")" }
            dt { "Role" } dd { (f.role.as_deref().unwrap_or("—")) }
            dt { "Description" } dd { (f.description.as_deref().unwrap_or("—")) }
            dt { "Regions" } dd { (words::regions_in_words(&f.regions)) }
            dt { "Assurance" } dd { (words::assurance_in_words(f.assurance_level)) }
            dt { "Tier" } dd { (words::tier_in_words(f.tier)) }
            dt { "Requires act-as" } dd { (if f.require_act_as { "yes" } else { "no" }) }
            dt { "Public key" } dd { @if let Some(jwk) = &f.public_jwk { code { (serde_json::Value::Object(jwk.clone())) } } @else { "none" } }
            dt { "Metadata" } dd { @if f.metadata.is_empty() { "none" } @else { code { (serde_json::Value::Object(f.metadata.clone())) } } }
            dt { "Version" } dd { (passport.version) }
            dt { "Created" } dd { (time(Some(passport.created_at))) }
            dt { "Updated" } dd { (time(Some(passport.updated_at))) }
            dt { "Activated" } dd { (time(passport.activated_at)) }
            dt { "Suspended" } dd { (time(passport.suspended_at)) }
            dt { "Revoked" } dd { (time(passport.revoked_at)) }
            dt { "Last seen" } dd { (time(passport.last_seen_at)) " (health: " (passport.health.as_str()) ")" }
        }
        h2 { "Capabilities and limits" }
        @if capabilities.is_empty() {
            p { "It holds no capabilities." }
        } @else {
            ul.capabilities {
                @for c in &capabilities {
                    li { code { (c.id) } ": " (c.limits.join("; ")) }
                }
            }
        }
        details {
            summary { "Limits as stored (JSON)" }
            pre { code { (serde_json::to_string_pretty(&f.limits).unwrap_or_default()) } }
        }
    }
}
