//! The one error type of the core. The origin and the edge map it to HTTP in one place each.

use crate::passport::Status;

/// A request the core refuses, with the field it concerns when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The input is malformed or breaks a rule of the contract.
    #[error("{message}")]
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    /// The field is fixed at registration (`name`, `org_id`, `owner`, `created_at`).
    #[error("`{field}` cannot be changed after registration")]
    ImmutableField { field: String },
    /// The lifecycle of SPEC §3 does not allow this move.
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition { from: Status, to: Status },
    /// The agent is revoked, which is terminal (SPEC §3): its record is kept as it was.
    #[error("the agent is revoked: {action}")]
    AgentRevoked { action: &'static str },
}

impl CoreError {
    /// A bad value in `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A bad request that is not about one field.
    pub fn invalid(message: impl Into<String>) -> Self {
        CoreError::InvalidRequest {
            field: None,
            message: message.into(),
        }
    }

    /// The snake_case error code of SPEC §2.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidRequest { .. } => "invalid_request",
            CoreError::ImmutableField { .. } => "immutable_field",
            CoreError::InvalidTransition { .. } => "invalid_transition",
            CoreError::AgentRevoked { .. } => "agent_revoked",
        }
    }

    /// The field the error names, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            CoreError::InvalidRequest { field, .. } => field.as_deref(),
            CoreError::ImmutableField { field } => Some(field),
            CoreError::InvalidTransition { .. } | CoreError::AgentRevoked { .. } => None,
        }
    }
}
