//! What a call can fail with.

use std::fmt;

use serde_json::Value;

/// An error of a Vouch API call.
#[derive(Debug)]
pub enum Error {
    /// The client cannot be built or the call cannot be sent as given (a bad base URL, no
    /// admin token, a body that does not encode).
    Config(String),
    /// The API answered with an error: its body `{ "error", "message", "field"? }` (or RFC
    /// 6749 §5.2's `error_description` from the token endpoint), or `http_<status>` when the
    /// answer is not the API's error body (a proxy's page).
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        /// The error body as it came, when it was JSON.
        body: Option<Value>,
    },
    /// The server answered something that is not what this client understands.
    Protocol(String),
    /// No answer: the server cannot be reached, or it did not answer in time.
    Unreachable { url: String, reason: String },
}

impl Error {
    /// The API's error code (`agent_not_found`), if the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) | Error::Protocol(message) => f.write_str(message),
            Error::Api {
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
            Error::Unreachable { url, reason } => write!(f, "cannot reach {url}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `(error, message, field)` of an API error body.
pub(crate) fn api_error(body: &Value) -> Option<(String, String, Option<String>)> {
    let code = body.get("error")?.as_str()?.to_owned();
    let message = body
        .get("message")
        .or_else(|| body.get("error_description"))
        .and_then(Value::as_str)
        .map_or_else(|| code.replace('_', " "), str::to_owned);
    let field = body.get("field").and_then(Value::as_str).map(str::to_owned);
    Some((code, message, field))
}

/// The error of a non-2xx answer whose body is `bytes`.
pub(crate) fn from_answer(status: u16, bytes: &[u8]) -> Error {
    let body = serde_json::from_slice::<Value>(bytes).ok();
    if let Some((code, message, field)) = body.as_ref().and_then(api_error) {
        return Error::Api {
            status,
            code,
            message,
            field,
            body,
        };
    }
    let snippet: String = String::from_utf8_lossy(bytes)
        .trim()
        .chars()
        .take(200)
        .collect();
    let message = if snippet.is_empty() {
        format!("the server answered {status} with no error body")
    } else {
        format!("the server answered {status}: {snippet}")
    };
    Error::Api {
        status,
        code: format!("http_{status}"),
        message,
        field: None,
        body: None,
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than
/// "error sending request for url (…)".
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_are_read() {
        let body = json!({ "error": "invalid_request", "message": "bad", "field": "slug" });
        assert_eq!(
            api_error(&body),
            Some(("invalid_request".into(), "bad".into(), Some("slug".into())))
        );
        assert_eq!(api_error(&json!({ "oops": 1 })), None);
        let oauth = json!({ "error": "invalid_client", "error_description": "unknown key" });
        assert_eq!(api_error(&oauth).map(|e| e.1), Some("unknown key".into()));
    }

    #[test]
    fn answers_that_are_not_api_errors_keep_their_status() {
        let err = from_answer(502, b"<html>Bad Gateway</html>");
        assert_eq!(err.code(), Some("http_502"));
        assert_eq!(err.status(), Some(502));
        assert!(err.to_string().contains("Bad Gateway"), "{err}");
        let err = from_answer(
            404,
            br#"{"error":"agent_not_found","message":"no such agent"}"#,
        );
        assert_eq!(err.to_string(), "no such agent (agent_not_found)");
    }
}
