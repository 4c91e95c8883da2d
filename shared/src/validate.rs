//! Field rules shared by registration and PATCH: lengths, capability ids, regions, metadata,
//! public keys. Each check names the field it refuses.

use serde_json::{Map, Value};

use crate::error::CoreError;

pub const MAX_NAME: usize = 200;
pub const MAX_CONTACT: usize = 320;
pub const MAX_ROLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_REASON: usize = 500;
pub const MAX_CAPABILITIES: usize = 100;
pub const MAX_CAPABILITY_ID: usize = 128;
pub const MAX_REGIONS: usize = 300;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY: usize = 40;
pub const MAX_METADATA_VALUE: usize = 500;
/// Serialized size bound for free-form objects (`limits`, capability `params`, `public_jwk`).
pub const MAX_OBJECT_BYTES: usize = 16 * 1024;

mod invisible;

pub use invisible::first_invisible;

/// A required human-readable string: not blank, otherwise as [`optional_text`].
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    not_blank(field, value)?;
    optional_text(field, value, max)
}

/// A required one-line string (a name): not blank, otherwise as [`optional_line`].
pub fn required_line(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    not_blank(field, value)?;
    optional_line(field, value, max)
}

/// An optional string: at most `max` characters, no control characters but newlines and tabs,
/// nothing invisible ([`first_invisible`]).
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    text(field, value, max, &['\n', '\t'])
}

/// An optional one-line string (a role, a contact): as [`optional_text`], without newlines
/// or tabs.
pub fn optional_line(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    text(field, value, max, &[])
}

fn not_blank(field: &str, value: &str) -> Result<(), CoreError> {
    if value.trim().is_empty() {
        return Err(CoreError::field(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    Ok(())
}

fn text(field: &str, value: &str, max: usize, allowed_controls: &[char]) -> Result<(), CoreError> {
    if value.chars().count() > max {
        return Err(CoreError::field(
            field,
            format!("`{field}` must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !allowed_controls.contains(&c))
    {
        let what = if allowed_controls.is_empty() {
            "control characters (it is one line)"
        } else {
            "control characters"
        };
        return Err(CoreError::field(
            field,
            format!("`{field}` must not contain {what}"),
        ));
    }
    if let Some((at, c)) = first_invisible(value) {
        return Err(CoreError::field(
            field,
            format!(
                "`{field}` must not contain invisible or bidirectional control characters \
                 (U+{:04X} at character {at})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// `segment(.segment)*` where a segment is one or more of `[a-z0-9_-]`.
pub fn is_capability_id(s: &str) -> bool {
    s.len() <= MAX_CAPABILITY_ID
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        })
}

/// `"*"`, an ISO 3166-1 alpha-2 code (`US`) or an ISO 3166-2 subdivision (`US-CA`, `GB-ENG`).
pub fn is_region(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let (country, sub) = match s.split_once('-') {
        Some((c, sub)) => (c, Some(sub)),
        None => (s, None),
    };
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = sub.is_none_or(|sub| {
        (1..=3).contains(&sub.len())
            && sub
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    country_ok && sub_ok
}

/// A free-form JSON object bounded in size.
pub fn bounded_object(field: &str, value: &Map<String, Value>) -> Result<(), CoreError> {
    let size = serde_json::to_string(value)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_OBJECT_BYTES {
        return Err(CoreError::field(
            field,
            format!("`{field}` must be at most {MAX_OBJECT_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

/// Stripe-style metadata: up to 50 keys of at most 40 characters, string values of at most 500.
pub fn metadata(value: &Map<String, Value>) -> Result<(), CoreError> {
    if value.len() > MAX_METADATA_KEYS {
        return Err(CoreError::field(
            "metadata",
            format!("`metadata` holds at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (key, v) in value {
        let field = format!("metadata.{key}");
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY {
            return Err(CoreError::field(
                field,
                format!("metadata keys are 1 to {MAX_METADATA_KEY} characters"),
            ));
        }
        match v {
            Value::String(s) => optional_text(&field, s, MAX_METADATA_VALUE)?,
            _ => return Err(CoreError::field(field, "metadata values must be strings")),
        }
    }
    Ok(())
}

/// JWK members that only a private key has; a passport publishes public keys only.
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// A public JWK (RFC 7517): has a `kty`, carries no private or symmetric key material.
pub fn public_jwk(value: &Map<String, Value>) -> Result<(), CoreError> {
    bounded_object("public_jwk", value)?;
    match value.get("kty") {
        Some(Value::String(kty)) if matches!(kty.as_str(), "EC" | "OKP" | "RSA") => {}
        _ => {
            return Err(CoreError::field(
                "public_jwk.kty",
                "`public_jwk.kty` must be \"EC\", \"OKP\" or \"RSA\"",
            ))
        }
    }
    if let Some(member) = PRIVATE_JWK_MEMBERS.iter().find(|m| value.contains_key(**m)) {
        return Err(CoreError::field(
            format!("public_jwk.{member}"),
            "`public_jwk` must be a public key: private key members are refused",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn capability_ids() {
        for ok in ["payments.refund", "data.export", "a", "x-1.y_2.z", "0"] {
            assert!(is_capability_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "Payments.refund",
            "a b",
            "a/b",
            "ü",
        ] {
            assert!(!is_capability_id(bad), "{bad}");
        }
        assert!(!is_capability_id(&"a".repeat(MAX_CAPABILITY_ID + 1)));
    }

    #[test]
    fn regions() {
        for ok in ["*", "US", "US-CA", "GB-ENG", "FR-75", "DE-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "", "us", "USA", "US-", "US-CALI", "U", "US-ca", "**", "US_CA", "-CA",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_one_visible_line() {
        assert!(required_line("name", "Acme Support Bot 🤖", MAX_NAME).is_ok());
        for bad in [
            "Acme\nVerified",
            "Acme\tBot",
            "Acme\u{202E}toB",
            "Ac\u{200B}me",
        ] {
            let err = required_line("name", bad, MAX_NAME).unwrap_err();
            assert_eq!(err.field_name(), Some("name"), "{bad:?}");
        }
        let err = optional_line("owner.display_name", "x\u{2067}y", MAX_NAME).unwrap_err();
        assert!(err.to_string().contains("U+2067 at character 1"), "{err}");
        // Multi-line text keeps its newlines, not its invisible characters.
        assert!(optional_text("description", "one\ntwo\tthree", MAX_DESCRIPTION).is_ok());
        assert!(optional_text("description", "one\u{202E}", MAX_DESCRIPTION).is_err());
    }

    #[test]
    fn text_rules() {
        assert!(required_text("name", "Bot", MAX_NAME).is_ok());
        assert!(required_text("name", "   ", MAX_NAME).is_err());
        assert!(required_text("name", "a\u{0}b", MAX_NAME).is_err());
        assert!(optional_text("description", "line\nline", MAX_DESCRIPTION).is_ok());
        let err = required_text("name", &"x".repeat(MAX_NAME + 1), MAX_NAME);
        assert_eq!(
            err.err().and_then(|e| e.field_name().map(str::to_owned)),
            Some("name".into())
        );
    }

    #[test]
    fn metadata_rules() {
        let ok = json!({"environment": "production"});
        assert!(metadata(ok.as_object().unwrap()).is_ok());
        let not_string = json!({"n": 1});
        assert!(metadata(not_string.as_object().unwrap()).is_err());
        let long_key = json!({ "k".repeat(41): "v" });
        assert!(metadata(long_key.as_object().unwrap()).is_err());
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(metadata(&many).is_err());
    }

    #[test]
    fn jwk_rules() {
        let ok = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(public_jwk(ok.as_object().unwrap()).is_ok());
        let private = json!({"kty": "OKP", "crv": "Ed25519", "x": "a", "d": "secret"});
        let err = public_jwk(private.as_object().unwrap()).unwrap_err();
        assert_eq!(err.field_name(), Some("public_jwk.d"));
        let symmetric = json!({"kty": "oct", "k": "secret"});
        assert!(public_jwk(symmetric.as_object().unwrap()).is_err());
    }

    proptest! {
        #[test]
        fn generated_capability_ids_are_accepted(id in "[a-z0-9_-]{1,10}(\\.[a-z0-9_-]{1,10}){0,4}") {
            prop_assert!(is_capability_id(&id));
        }

        #[test]
        fn region_check_never_panics(s in ".{0,12}") {
            let _ = is_region(&s);
        }
    }
}
