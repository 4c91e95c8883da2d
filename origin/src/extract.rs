//! Request extractors whose every failure is a JSON error of SPEC §2: wrong content type
//! (415), oversized body (413), malformed JSON or unknown/invalid fields (400, naming the field).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vouch_core::CoreError;

use crate::error::Error;

/// The largest request body the origin reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body (`content-type: application/json`), deserialized into `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        require_content_type(req.headers(), &["application/json"])?;
        let bytes = read_body(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A JSON request body of at most `MAX` bytes (`413 payload_too_large` naming `MAX` beyond).
pub struct SmallJsonBody<T, const MAX: usize>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S>
    for SmallJsonBody<T, MAX>
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        require_content_type(req.headers(), &["application/json"])?;
        let bytes = read_body(req, state).await.map_err(|e| match e {
            Error::PayloadTooLarge { .. } => Error::PayloadTooLarge { limit: MAX },
            other => other,
        })?;
        if bytes.len() > MAX {
            return Err(Error::PayloadTooLarge { limit: MAX });
        }
        Ok(SmallJsonBody(parse_json(&bytes)?))
    }
}

/// A JSON merge patch body (RFC 7396): `application/merge-patch+json` or `application/json`.
pub struct MergePatchBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for MergePatchBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        require_content_type(
            req.headers(),
            &["application/merge-patch+json", "application/json"],
        )?;
        let bytes = read_body(req, state).await?;
        Ok(MergePatchBody(parse_json(&bytes)?))
    }
}

/// A body that may be empty (then `T::default()`), else JSON.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type {
            require_content_type(req.headers(), &["application/json"])?;
        }
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !has_type {
            return Err(Error::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        Ok(OptionalJsonBody(parse_json(&bytes)?))
    }
}

/// Query parameters, deserialized into `T`; a bad value is a 400 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = Some(e.path().to_string()).filter(|p| p != ".");
                Error::Core(CoreError::InvalidRequest {
                    field,
                    message: format!("invalid query string: {message}"),
                })
            })
    }
}

fn require_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), Error> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence {
        Some(e) if accepted.contains(&e.as_str()) => Ok(()),
        Some(e) => Err(Error::UnsupportedMediaType(format!(
            "content type `{e}` is not accepted here; send {}",
            accepted.join(" or ")
        ))),
        None => Err(Error::UnsupportedMediaType(format!(
            "missing content type; send {}",
            accepted.join(" or ")
        ))),
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                Error::invalid(format!(
                    "could not read the body: {}",
                    rejection.body_text()
                ))
            }
        })
}

/// Parses JSON and deserializes it, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("the body is not valid JSON: {e}")))?;
    from_value(value)
}

/// Deserializes a JSON value, naming the field at fault.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let unknown = unknown_field(&message);
        let field = match (path.as_str(), unknown) {
            (".", Some(name)) => Some(name.to_owned()),
            (".", None) => missing_field(&message).map(str::to_owned),
            (p, Some(name)) if !p.ends_with(name) => Some(format!("{p}.{name}")),
            (p, _) => Some(p.to_owned()),
        };
        Error::Core(CoreError::InvalidRequest { field, message })
    })
}

/// `unknown field `x`, expected …` → `x`.
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// Opaque pagination cursors: base64url of the last row's key.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub fn decode_cursor(cursor: &str) -> Result<String, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Error::field(
                "cursor",
                "invalid cursor; pass back `next_cursor` unchanged",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Org {
        name: String,
        slug: String,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Org>(body.as_bytes()) {
            Err(Error::Core(e)) => e.field_name().map(str::to_owned),
            other => panic!("expected a core error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(
            field_of(r#"{"name":"a","slug":"b","colour":1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(field_of(r#"{"name":"a"}"#).as_deref(), Some("slug"));
        assert_eq!(
            field_of(r#"{"name":1,"slug":"b"}"#).as_deref(),
            Some("name")
        );
        assert!(matches!(parse_json::<Org>(b"{nope"), Err(Error::Core(_))));
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(
            decode_cursor(&encode_cursor("ap_1")).ok().as_deref(),
            Some("ap_1")
        );
        assert!(decode_cursor("!!").is_err());
    }
}
