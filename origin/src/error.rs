//! The origin's one error type, and its one mapping to HTTP (SPEC §2):
//! `{ "error": "<code>", "message": "<sentence>", "field"?: "<name>" }` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vouch_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule of the core was broken (bad input, immutable field, forbidden transition).
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Something that does not exist, or that the caller may not know exists.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("the agent is at version {current}, not {expected}")]
    VersionMismatch { expected: String, current: i64 },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("the service is not ready: {0}")]
    Unavailable(String),
    /// Past a rate limit (SPEC §14): `429 rate_limited` with `retry-after`.
    #[error("{}", .0.message())]
    RateLimited(crate::rate_limit::Limited),
    /// A refusal with its own status and code (e.g. `400 scope_escalation`).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn agent_not_found() -> Self {
        Error::NotFound {
            code: "agent_not_found",
            message: "no such agent".into(),
        }
    }

    pub fn org_not_found() -> Self {
        Error::NotFound {
            code: "org_not_found",
            message: "no such organization".into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Core(CoreError::invalid(message))
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Core(CoreError::field(field, message))
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Error::Internal(err.into())
    }

    /// The HTTP status and code this error maps to (the console shows them as pages).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::Core(
                e @ (CoreError::InvalidTransition { .. } | CoreError::AgentRevoked { .. }),
            ) => (StatusCode::CONFLICT, e.code()),
            Error::Core(e) => (StatusCode::BAD_REQUEST, e.code()),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            Error::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "version_mismatch"),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Rejected { status, code, .. } => (*status, code),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl From<vouch_core::delegation::DelegationError> for Error {
    fn from(err: vouch_core::delegation::DelegationError) -> Self {
        use vouch_core::delegation::DelegationError as D;
        let status = match err {
            D::AgentNotActive { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        Error::Rejected {
            status,
            code: err.code(),
            field: err.field().map(str::to_owned),
            message: err.to_string(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
                code: "already_exists",
                message: unique_message(db.constraint().unwrap_or_default(), db.message()),
            },
            // A write into an org that does not exist. Postgres names the constraint, and only
            // the org keys (`<table>_org_id_fkey`) mean that; any other (e.g. a delivery queued
            // for a subscription deleted meanwhile) is a fault, not a missing org. SQLite names
            // none, but its writes are serial: there only the org keys can fail.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => match db.constraint() {
                None => Error::org_not_found(),
                Some(name) if is_org_key(name) => Error::org_not_found(),
                Some(_) => Error::Internal(err.into()),
            },
            sqlx::Error::PoolTimedOut => Error::Unavailable("the database is busy".into()),
            _ => Error::Internal(err.into()),
        }
    }
}

/// Whether a foreign key constraint (as Postgres names it) points at `orgs`.
fn is_org_key(constraint: &str) -> bool {
    constraint.ends_with("_org_id_fkey")
}

/// A sentence for a unique violation, from the constraint name (Postgres) or message (SQLite).
fn unique_message(constraint: &str, message: &str) -> String {
    let about = |needle: &str| constraint.contains(needle) || message.contains(needle);
    if about("slug") {
        "an organization with this slug already exists".into()
    } else if about("name") {
        "an agent with this name already exists in the organization".into()
    } else {
        "a record with these values already exists".into()
    }
}

/// The JSON body of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code, e.g. `agent_not_found`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// A sentence for humans.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Error::Internal(source) => {
                tracing::error!(error = ?source, "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            Error::Core(e) => e.field_name().map(str::to_owned),
            Error::Rejected { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: code.to_owned(),
            message,
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vouch\""),
            );
        }
        if let Error::RateLimited(limited) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, limited.retry_after_seconds().into());
        }
        response
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn only_org_keys_mean_a_missing_org() {
        for org_key in [
            "agents_org_id_fkey",
            "admin_tokens_org_id_fkey",
            "webhooks_org_id_fkey",
        ] {
            assert!(super::is_org_key(org_key), "{org_key}");
        }
        for other in [
            "webhook_deliveries_webhook_id_fkey",
            "webhook_attempts_delivery_id_fkey",
            "delegations_delegator_fkey",
        ] {
            assert!(!super::is_org_key(other), "{other}");
        }
    }
}
