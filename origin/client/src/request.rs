//! One API call, built before it is sent: method, path segments, query, body, preconditions.

use reqwest::Method;
use serde_json::Value;

pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// What travels in the body.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// JSON under a content type (`application/json`, `application/merge-patch+json`).
    Json(&'static str, Value),
    /// `application/x-www-form-urlencoded`, already encoded.
    Form(String),
}

/// One API call. Path segments are percent-encoded as needed, so an id can never reach
/// another path.
#[derive(Clone, Debug)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Body>,
    pub(crate) if_match: Option<String>,
    pub(crate) if_none_match: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    /// Sent with the client's admin token (the default), or without credentials.
    pub(crate) authenticated: bool,
    /// Safe to send twice whatever its method (a decision that only asks).
    pub(crate) repeatable: bool,
}

impl Request {
    /// A call to the path made of `segments`.
    pub fn new<S: AsRef<str>>(method: Method, segments: &[S]) -> Request {
        Request {
            method,
            segments: segments.iter().map(|s| s.as_ref().to_owned()).collect(),
            query: Vec::new(),
            body: None,
            if_match: None,
            if_none_match: None,
            idempotency_key: None,
            authenticated: true,
            repeatable: false,
        }
    }

    pub fn get<S: AsRef<str>>(segments: &[S]) -> Request {
        Request::new(Method::GET, segments)
    }

    pub fn post<S: AsRef<str>>(segments: &[S]) -> Request {
        Request::new(Method::POST, segments)
    }

    pub fn delete<S: AsRef<str>>(segments: &[S]) -> Request {
        Request::new(Method::DELETE, segments)
    }

    /// Adds `?name=value` when `value` is present.
    pub fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Request {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    /// A JSON body (`application/json`).
    pub fn json(self, body: Value) -> Request {
        self.body_as(JSON, body)
    }

    /// A JSON body under another content type ([`MERGE_PATCH`]).
    pub fn body_as(mut self, content_type: &'static str, body: Value) -> Request {
        self.body = Some(Body::Json(content_type, body));
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Request {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body = Some(Body::Form(encoded));
        self
    }

    /// An `If-Match` header, already formatted (e.g. `"7"`).
    pub fn if_match(mut self, etag: Option<String>) -> Request {
        self.if_match = etag;
        self
    }

    /// An `If-None-Match` header (an ETag this client holds).
    pub fn if_none_match(mut self, etag: Option<String>) -> Request {
        self.if_none_match = etag;
        self
    }

    /// An `Idempotency-Key` header: the call may then be retried even when its method is not
    /// idempotent.
    pub fn idempotency_key(mut self, key: Option<String>) -> Request {
        self.idempotency_key = key;
        self
    }

    /// Sends no credentials (the token endpoint, the edge's public routes).
    pub fn anonymous(mut self) -> Request {
        self.authenticated = false;
        self
    }

    /// Marks a call whose method is not idempotent as safe to repeat all the same.
    pub(crate) fn repeatable(mut self) -> Request {
        self.repeatable = true;
        self
    }

    /// Whether sending this call twice does no more than sending it once.
    pub(crate) fn may_repeat(&self) -> bool {
        self.repeatable
            || matches!(
                self.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            )
            || self.idempotency_key.is_some()
    }
}
