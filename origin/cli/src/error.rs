//! What can go wrong in a `vouch` command, and the exit code of each.

use std::fmt;

use serde_json::Value;

/// Exit code: the API refused the request (or answered something unexpected).
pub const EXIT_API: u8 = 1;
/// Exit code: bad flags, an unreadable input file, no token (clap also exits 2).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the origin cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a verification failed (`audit verify` found a broken chain, `receipts verify` a
/// signature that does not check out).
pub const EXIT_CHAIN_BROKEN: u8 = 4;
/// Exit code: `apply --detect-changes` found changes to make.
pub const EXIT_CHANGES: u8 = 5;

#[derive(Debug)]
pub enum CliError {
    /// The command cannot be sent as given.
    Usage(String),
    /// The API answered with an error body `{ "error", "message", "field"? }`.
    Api {
        code: String,
        message: String,
        field: Option<String>,
        /// The raw error body, printed as is with `--json`.
        body: Option<Value>,
    },
    /// The origin answered something that is not the API's JSON.
    Protocol(String),
    /// No answer from the origin.
    Unreachable { url: String, reason: String },
    /// `audit verify` reported `ok: false`.
    ChainBroken(String),
    /// `receipts verify`: a decision's signature does not check out.
    NotAuthentic(String),
    /// `apply --detect-changes`: the plan is not empty (not a failure; a signal for CI).
    ChangesPending(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Api { .. } | CliError::Protocol(_) => EXIT_API,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::ChainBroken(_) | CliError::NotAuthentic(_) => EXIT_CHAIN_BROKEN,
            CliError::ChangesPending(_) => EXIT_CHANGES,
        }
    }

    /// The error body to print on standard output with `--json`, if there is one.
    pub fn json_body(&self) -> Option<&Value> {
        match self {
            CliError::Api { body, .. } => body.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) | CliError::Protocol(message) => f.write_str(message),
            CliError::Api {
                code,
                message,
                field,
                ..
            } => {
                write!(f, "{message} ({code}")?;
                if let Some(field) = field {
                    write!(f, ", field {field}")?;
                }
                f.write_str(")")
            }
            CliError::Unreachable { url, reason } => write!(
                f,
                "cannot reach the Vouch origin at {url}: {reason}. Is `vouch-origin serve` running \
                 there? Pass --url or set VOUCH_URL to point at it."
            ),
            CliError::ChainBroken(message)
            | CliError::NotAuthentic(message)
            | CliError::ChangesPending(message) => f.write_str(message),
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_name_code_and_field() {
        let err = CliError::Api {
            code: "invalid_request".into(),
            message: "bad slug".into(),
            field: Some("slug".into()),
            body: None,
        };
        assert_eq!(err.to_string(), "bad slug (invalid_request, field slug)");
        assert_eq!(err.exit_code(), 1);
        let err = CliError::Api {
            code: "unauthorized".into(),
            message: "missing or invalid credentials".into(),
            field: None,
            body: None,
        };
        assert_eq!(
            err.to_string(),
            "missing or invalid credentials (unauthorized)"
        );
    }
}
