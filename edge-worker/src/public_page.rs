//! `GET /agents/{id}` for people (HTML when the client prefers it) and
//! `GET /agents/{id}/badge.svg` (SPEC §17): the same passport, journal and freshness check as
//! `/verify`, rendered by the core. Failures are pages (or badges) too, never JSON in a browser;
//! a status the edge cannot confirm is never shown as a status (fail closed, `no-store`).

use vouch_core::public_page::{self, BADGE_CSP, PAGE_CSP};
use vouch_core::{kv, AgentId};
use worker::{Context, Env, Request, Response};

use crate::journal;
use crate::kv_cache;
use crate::respond::{cacheable_with, response_as, EdgeError, MAX_AGE_SECONDS};

const HTML: &str = "text/html; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `GET /agents/{raw}`: the page when `Accept` prefers HTML, else the `/verify` answer as JSON.
pub async fn page(req: &Request, env: &Env, ctx: &Context, host: &str, raw: &str) -> Response {
    let accept = req.headers().get("accept").ok().flatten();
    let wants_html = public_page::prefers_html(accept.as_deref());
    let entry = match read(env, ctx, host, raw).await {
        Ok(entry) => entry,
        Err(error) if wants_html => return error_page(&error),
        Err(error) => {
            let mut response = error.into_response();
            let _ = response.headers_mut().set("vary", "Accept");
            return response;
        }
    };
    if !wants_html {
        return cacheable_with(
            req,
            entry.verify_status,
            "application/json",
            &entry.verify_body,
            &entry.etag,
            &[("vary", "Accept")],
        );
    }
    let body = public_page::page(&entry.view, MAX_AGE_SECONDS);
    cacheable_with(
        req,
        200,
        HTML,
        &body,
        &public_page::representation_etag("page", &entry.etag),
        &[
            ("vary", "Accept"),
            ("content-security-policy", PAGE_CSP),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ],
    )
}

/// `GET /agents/{raw}/badge.svg`.
pub async fn badge(req: &Request, env: &Env, ctx: &Context, host: &str, raw: &str) -> Response {
    let headers = [
        ("content-security-policy", BADGE_CSP),
        ("x-content-type-options", "nosniff"),
    ];
    match read(env, ctx, host, raw).await {
        Ok(entry) => cacheable_with(
            req,
            200,
            SVG,
            &public_page::badge(Some(entry.view.status)),
            &public_page::representation_etag("badge", &entry.etag),
            &headers,
        ),
        Err(error) => {
            let (status, _) = error.status_and_body();
            let mut extra = headers.to_vec();
            extra.push(("cache-control", "no-store"));
            response_as(status, SVG, &public_page::badge(None), &extra)
        }
    }
}

/// The passport as `/verify` sees it, after the journal's freshness check.
async fn read(
    env: &Env,
    ctx: &Context,
    host: &str,
    raw: &str,
) -> Result<std::rc::Rc<kv_cache::PassportEntry>, EdgeError> {
    let agent_id =
        AgentId::parse(raw).map_err(|e| EdgeError::bad(e.to_string(), Some("agent_id")))?;
    journal::ensure_fresh(env, ctx, host).await?;
    kv_cache::passport(env, &kv::passport_key(&agent_id))
        .await?
        .ok_or_else(|| EdgeError::NotFound {
            code: "agent_not_found",
            message: "no such agent".into(),
        })
}

/// A failure as a page: its status, the sentence of the JSON error, and never a cached copy.
fn error_page(error: &EdgeError) -> Response {
    let (status, body) = error.status_and_body();
    let title = match status {
        400 => "Not an agent id",
        404 => "No such agent",
        503 => "Status unavailable",
        _ => "Something went wrong",
    };
    let message = body["message"].as_str().unwrap_or("an error occurred");
    let mut headers = vec![
        ("content-security-policy", PAGE_CSP),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("vary", "Accept"),
    ];
    if status == 503 {
        headers.push(("retry-after", "1"));
    }
    response_as(
        status,
        HTML,
        &public_page::error_page(title, message),
        &headers,
    )
}
