//! Agent-emitted events (SPEC §20): an agent records its own signals in its org's audit chain
//! and event stream with `POST /v1/agents/{id}/events { "type": "agent.custom.<name>", "data" }`.
//!
//! `<name>` is one or more dot-separated segments of `[a-z0-9_-]`, at most [`MAX_NAME_LEN`]
//! characters in all (`deploy.finished`, `model_swapped`); the whole body is at most
//! [`MAX_BODY_BYTES`]. Webhooks and streams deliver them as the type `agent.custom` (a filter
//! takes it, every custom event) or by their full name.

use crate::error::CoreError;

/// What every custom event type starts with.
pub const TYPE_PREFIX: &str = "agent.custom.";
/// The general type a filter names to receive every custom event.
pub const GENERAL_TYPE: &str = "agent.custom";
/// The longest `<name>`.
pub const MAX_NAME_LEN: usize = 64;
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Whether `name` is a custom event type (`agent.custom.<name>` with a valid `<name>`).
pub fn is_custom_type(name: &str) -> bool {
    name.strip_prefix(TYPE_PREFIX).is_some_and(valid_name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// Checks the `type` of an agent-emitted event.
pub fn check_type(name: &str) -> Result<(), CoreError> {
    if is_custom_type(name) {
        return Ok(());
    }
    Err(CoreError::field(
        "type",
        format!(
            "an agent's own event type is `{TYPE_PREFIX}<name>`, <name> being dot-separated \
             segments of a-z, 0-9, `_` and `-` (at most {MAX_NAME_LEN} characters); `{}` is not",
            name.chars().take(100).collect::<String>()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "agent.custom.deploy",
            "agent.custom.deploy.finished",
            "agent.custom.model_swapped",
            "agent.custom.a-b.c_d.0",
        ] {
            assert!(is_custom_type(good), "{good}");
            assert!(check_type(good).is_ok());
        }
        let longest = format!("{TYPE_PREFIX}{}", "a".repeat(MAX_NAME_LEN));
        assert!(is_custom_type(&longest));
        let too_long = format!("{TYPE_PREFIX}{}", "a".repeat(MAX_NAME_LEN + 1));
        for bad in [
            "agent.custom",
            "agent.custom.",
            "agent.custom..x",
            "agent.custom.x.",
            "agent.custom.Deploy",
            "agent.custom.dé",
            "agent.custom.a b",
            "agent.custom.a/b",
            "passport.updated",
            "agent.suspended",
            "Agent.custom.x",
            too_long.as_str(),
        ] {
            assert!(!is_custom_type(bad), "{bad}");
            let err = check_type(bad).unwrap_err();
            assert_eq!(err.field_name(), Some("type"));
        }
    }
}
