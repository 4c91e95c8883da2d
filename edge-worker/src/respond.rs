//! Responses: JSON with the right status, strong ETags with `If-None-Match` → `304`, bounded
//! `Cache-Control`, and the one error type of the edge mapped to SPEC §2 bodies.

use serde_json::{json, Value};
use worker::{Headers, Request, Response, ResponseBuilder};

/// How long a partner's HTTP cache may reuse a GET answer. Kept well inside the propagation
/// bound (SPEC §10: 1 s locally at p95, 15 s deployed), since a cached `200` is a `200` a
/// suspension cannot reach.
pub const MAX_AGE_SECONDS: u32 = 1;

/// A failure the edge answers with a JSON error.
#[derive(Debug)]
pub enum EdgeError {
    BadRequest {
        message: String,
        field: Option<String>,
    },
    NotFound {
        code: &'static str,
        message: String,
    },
    MethodNotAllowed,
    PayloadTooLarge(usize),
    UnsupportedMediaType,
    /// The isolate could not refresh the status journal within the bound: fail closed.
    StatusUnavailable,
    /// A commit's ledger could not be reached or did not answer in time: nothing is allowed, and a
    /// retry with the same key is safe.
    LedgerUnavailable(String),
    /// The edge has no usable decision key (SPEC §12): it answers no unsigned decision.
    SigningUnavailable(String),
    /// An internal route without the edge secret.
    Unauthorized,
    /// A `/verify` route with an `Authorization` header that is not a live partner key, or a
    /// commit without a partner key (SPEC §14): the message says which.
    PartnerUnauthorized(String),
    /// A partner's commit with an agent token that was not issued for it (its `aud`).
    CommitForbidden(String),
    Conflict {
        code: &'static str,
        message: String,
    },
    /// Past a rate limit (SPEC §14); `by` says which (`client address`, `partner`).
    RateLimited {
        by: &'static str,
        retry_after_seconds: u32,
    },
    /// The runtime or KV failed; the message is logged, not shown.
    Internal(String),
}

impl EdgeError {
    pub fn bad(message: impl Into<String>, field: Option<&str>) -> Self {
        EdgeError::BadRequest {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// The status and JSON body of this error (internal details are logged, not shown).
    pub fn status_and_body(&self) -> (u16, Value) {
        match self {
            EdgeError::BadRequest { message, field } => (
                400,
                match field {
                    Some(field) => {
                        json!({ "error": "invalid_request", "message": message, "field": field })
                    }
                    None => json!({ "error": "invalid_request", "message": message }),
                },
            ),
            EdgeError::NotFound { code, message } => {
                (404, json!({ "error": code, "message": message }))
            }
            EdgeError::MethodNotAllowed => (
                405,
                json!({ "error": "method_not_allowed", "message": "this method is not allowed on this path" }),
            ),
            EdgeError::PayloadTooLarge(limit) => (
                413,
                json!({ "error": "payload_too_large", "message": format!("the request body is larger than {limit} bytes") }),
            ),
            EdgeError::UnsupportedMediaType => (
                415,
                json!({ "error": "unsupported_media_type", "message": "send the body as application/json" }),
            ),
            EdgeError::StatusUnavailable => (
                503,
                json!({
                    "error": "status_unavailable",
                    "message": "this edge cannot confirm agent statuses right now (the status journal is unreachable); retry shortly",
                }),
            ),
            EdgeError::LedgerUnavailable(detail) => {
                worker::console_error!("daily-caps ledger: {detail}");
                (
                    503,
                    json!({
                        "error": "ledger_unavailable",
                        "message": "the daily-caps ledger did not confirm this commit; retry with the same idempotency_key (a key is recorded at most once)",
                    }),
                )
            }
            EdgeError::SigningUnavailable(detail) => {
                worker::console_error!("decision key: {detail}");
                (
                    503,
                    json!({
                        "error": "signing_unavailable",
                        "message": "this edge cannot sign decisions right now (its decision key is missing or invalid), so it answers none; retry shortly",
                    }),
                )
            }
            EdgeError::Unauthorized => (
                401,
                json!({ "error": "unauthorized", "message": "this route needs the edge secret as a bearer token" }),
            ),
            EdgeError::PartnerUnauthorized(message) => {
                (401, json!({ "error": "unauthorized", "message": message }))
            }
            EdgeError::CommitForbidden(message) => (
                403,
                json!({ "error": "token_audience_mismatch", "message": message }),
            ),
            EdgeError::Conflict { code, message } => {
                (409, json!({ "error": code, "message": message }))
            }
            EdgeError::RateLimited {
                by,
                retry_after_seconds,
            } => (
                429,
                json!({
                    "error": "rate_limited",
                    "message": format!("too many requests from this {by}; retry after {retry_after_seconds} s"),
                }),
            ),
            EdgeError::Internal(detail) => {
                worker::console_error!("internal error: {detail}");
                (
                    500,
                    json!({ "error": "internal_error", "message": "an internal error occurred" }),
                )
            }
        }
    }

    /// The JSON body alone (a batch answers an item's failure in its place).
    pub fn body(&self) -> Value {
        self.status_and_body().1
    }

    pub fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let body = body.to_string();
        if status == 503 {
            return json_response(
                status,
                &body,
                &[("retry-after", "1"), ("cache-control", "no-store")],
            );
        }
        if let EdgeError::RateLimited {
            retry_after_seconds,
            ..
        } = self
        {
            let seconds = retry_after_seconds.to_string();
            return json_response(
                status,
                &body,
                &[("retry-after", &seconds), ("cache-control", "no-store")],
            );
        }
        if let EdgeError::PartnerUnauthorized(_) = self {
            return json_response(
                status,
                &body,
                &[
                    ("www-authenticate", "Bearer realm=\"vouch\""),
                    ("cache-control", "no-store"),
                ],
            );
        }
        json_response(status, &body, &[])
    }

    /// A commit asked for without a partner key.
    pub fn commit_needs_partner() -> EdgeError {
        EdgeError::PartnerUnauthorized(
            "a commit needs a partner key (Authorization: Bearer vk_partner_…) and an agent token \
             issued for that partner; anonymous callers may ask but never commit"
                .to_owned(),
        )
    }
}

impl From<vouch_core::CoreError> for EdgeError {
    fn from(err: vouch_core::CoreError) -> Self {
        EdgeError::BadRequest {
            field: err.field_name().map(str::to_owned),
            message: err.to_string(),
        }
    }
}

impl From<worker::Error> for EdgeError {
    fn from(err: worker::Error) -> Self {
        EdgeError::Internal(err.to_string())
    }
}

/// A JSON response from already-serialized text, with extra headers.
pub fn json_response(status: u16, body: &str, extra: &[(&str, &str)]) -> Response {
    response_as(status, "application/json", body, extra)
}

/// A response of `content_type` with extra headers.
pub fn response_as(
    status: u16,
    content_type: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    for (name, value) in extra {
        let _ = headers.set(name, value);
    }
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(body.as_bytes().to_vec())
}

/// Whether `If-None-Match` names `etag` (or `*`), by the weak comparison (RFC 9110 §13.1.2).
fn not_modified(req: &Request, etag: &str) -> bool {
    req.headers()
        .get("if-none-match")
        .ok()
        .flatten()
        .is_some_and(|value| vouch_core::etag::not_modified(&value, etag))
}

/// A cacheable GET answer: `304` without a body when the client has it, else the body.
pub fn cacheable(req: &Request, status: u16, body: &str, etag: &str) -> Response {
    cacheable_as(req, status, "application/json", body, etag)
}

/// [`cacheable`] for a body of another type (an audit checkpoint is plain text).
pub fn cacheable_as(
    req: &Request,
    status: u16,
    content_type: &str,
    body: &str,
    etag: &str,
) -> Response {
    cacheable_with(req, status, content_type, body, etag, &[])
}

/// [`cacheable_as`] with extra headers, sent on the `304` as well (`Vary`, a CSP).
pub fn cacheable_with(
    req: &Request,
    status: u16,
    content_type: &str,
    body: &str,
    etag: &str,
    extra: &[(&str, &str)],
) -> Response {
    let cache_control = format!("public, max-age={MAX_AGE_SECONDS}");
    let mut headers: Vec<(&str, &str)> = vec![("etag", etag), ("cache-control", &cache_control)];
    headers.extend_from_slice(extra);
    if not_modified(req, etag) {
        let h = Headers::new();
        for (name, value) in &headers {
            let _ = h.set(name, value);
        }
        return ResponseBuilder::new()
            .with_status(304)
            .with_headers(h)
            .empty();
    }
    response_as(status, content_type, body, &headers)
}
