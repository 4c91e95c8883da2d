//! The admin console at `/console` (SPEC §18): server-rendered pages (maud) over the same
//! handlers as the REST API, so a console user has exactly the rights of the token they signed
//! in with — the console calls the API's handler functions with the session's [`Caller`], and
//! a viewer's write is refused there as it is over the API. Read views work without
//! JavaScript; a little htmx (vendored, served from here) keeps the page in place for status
//! changes, and `console.js` follows the live event stream.
//!
//! Security: sessions and CSRF in [`session`]; every response carries a strict
//! Content-Security-Policy (scripts, styles and connections from this origin only) and is never
//! cached; errors are pages, never JSON.

mod admin;
mod agents;
mod forms;
mod partners;
pub mod session;
mod views;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::Error;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The vendored htmx (htmx.org 2.0.11, `dist/htmx.min.js`, unmodified; BSD-2-Clause).
const HTMX: &str = include_str!("../../static/htmx-2.0.11.min.js");
const SCRIPT: &str = include_str!("../../static/console.js");
const STYLE: &str = include_str!("../../static/console.css");

/// The console's routes (merged into the origin's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/agents") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/agents") }),
        )
        .route(
            "/console/sign-in",
            get(admin::sign_in_page).post(admin::sign_in),
        )
        .route("/console/sign-out", post(admin::sign_out))
        .route("/console/agents", get(agents::list).post(agents::register))
        .route("/console/agents/new", get(agents::new_form))
        .route("/console/agents/{agent_id}", get(agents::detail))
        .route(
            "/console/agents/{agent_id}/edit",
            get(agents::edit_form).post(agents::edit),
        )
        .route(
            "/console/agents/{agent_id}/status",
            post(agents::set_status),
        )
        .route(
            "/console/agents/{agent_id}/revoke",
            get(agents::revoke_confirm),
        )
        .route("/console/audit", get(admin::audit))
        .route(
            "/console/webhooks",
            get(admin::webhooks).post(admin::create_webhook),
        )
        .route("/console/webhooks/{webhook_id}", get(admin::webhook))
        .route(
            "/console/webhooks/{webhook_id}/deliveries/{event_id}/redeliver",
            post(admin::redeliver),
        )
        .route(
            "/console/tokens",
            get(admin::tokens).post(admin::create_token),
        )
        .route("/console/tokens/revoke", post(admin::revoke_token))
        .route(
            "/console/partners",
            get(partners::list).post(partners::create),
        )
        .route(
            "/console/partners/{partner_id}/keys",
            post(partners::rotate_key),
        )
        .route(
            "/console/partners/{partner_id}/revoke",
            get(partners::revoke_confirm).post(partners::revoke),
        )
        .route("/console/events", get(admin::events))
        .route(
            "/console/static/htmx.min.js",
            get(|| async { asset("text/javascript", HTMX) }),
        )
        .route(
            "/console/static/console.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route(
            "/console/static/console.css",
            get(|| async { asset("text/css", STYLE) }),
        )
}

/// A static file: cacheable for a day (they change only with the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A console page with its security headers.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    secure(response.headers_mut());
    response
}

/// The headers every console answer carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// What went wrong, as the console shows it: a page (or, for a missing session, the sign-in).
#[derive(Debug)]
pub enum ConsoleError {
    /// No session, or it ended: sign in again.
    SignIn,
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
}

impl ConsoleError {
    pub fn csrf() -> ConsoleError {
        ConsoleError::Page {
            status: StatusCode::FORBIDDEN,
            title: "This form has expired",
            message: "The form was not sent from this console session (its security token is missing or wrong). Go back, reload the page and try again.".into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> ConsoleError {
        ConsoleError::Page {
            status: StatusCode::BAD_REQUEST,
            title: "That did not work",
            message: message.into(),
        }
    }
}

impl From<Error> for ConsoleError {
    fn from(error: Error) -> Self {
        let (status, _) = error.status_and_code();
        let title = match status {
            StatusCode::UNAUTHORIZED => return ConsoleError::SignIn,
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Not possible now",
            StatusCode::PRECONDITION_FAILED => "Changed meanwhile",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let message = match &error {
            Error::Internal(source) => {
                tracing::error!(error = ?source, "console request failed");
                "An internal error occurred; it has been logged.".to_owned()
            }
            other => capitalized(&other.to_string()),
        };
        ConsoleError::Page {
            status,
            title,
            message,
        }
    }
}

fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn => {
                let mut response = Redirect::to("/console/sign-in").into_response();
                secure(response.headers_mut());
                response
            }
            ConsoleError::Page {
                status,
                title,
                message,
            } => page(status, views::error_page(title, &message)),
        }
    }
}

/// A form body (`application/x-www-form-urlencoded`), read into `T`; anything else is a page
/// saying what is wrong, never a JSON error.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Form<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ConsoleError::bad("The form could not be read (it may be too large)."))?;
        serde_urlencoded::from_bytes(&bytes)
            .map(Form)
            .map_err(|e| ConsoleError::bad(format!("The form is incomplete: {e}.")))
    }
}

/// Whether htmx sent the request (it then wants a fragment, not a whole page).
pub fn from_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}
