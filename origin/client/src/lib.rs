//! A Rust client of the Vouch agent registry.
//!
//! [`Client`] speaks to the origin's admin API (orgs, tokens, agents, delegations, webhooks,
//! signing keys, the audit log, the live event stream) and [`Edge`] to the edge's public API
//! (`GET /verify` with an `If-None-Match` revalidation cache, decisions, JWKS, checkpoints).
//! Both retry what is safe to retry ([`RetryPolicy`]) and turn the API's error body into
//! [`Error::Api`]. Types are `vouch-core`'s where it has them ([`vouch_core::Passport`],
//! [`vouch_core::decision::Decision`], [`vouch_core::audit::AuditEvent`]).
//!
//! ```no_run
//! # async fn run() -> vouch_client::Result<()> {
//! let edge = vouch_client::Edge::new("https://edge.vouch.example")?;
//! let agent = "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70".parse().map_err(|_| {
//!     vouch_client::Error::Config("not an agent id".into())
//! })?;
//! match edge.verify(&agent).await? {
//!     vouch_client::Verification::Active(view) => println!("{} may act", view.name),
//!     vouch_client::Verification::Refused(refusal) => println!("refused: {}", refusal.code),
//! }
//! # Ok(())
//! # }
//! ```

mod admin;
mod audit;
mod edge;
mod error;
mod events;
mod receipts;
mod request;
mod retry;

use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderMap, ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, RETRY_AFTER,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

pub use admin::*;
pub use audit::{verify_audit_log, AuditVerification, Published};
pub use edge::{DecisionRequest, Edge, Refusal, Verification, VerifiedAgent, VERIFY_CACHE_ENTRIES};
pub use error::{Error, Result};
pub use events::{EventStream, SseEvent, STREAM_READ_TIMEOUT};
pub use receipts::{check_receipts, decision_keys, KeySource, ReceiptCheck};
pub use request::{Request, FORM, JSON, MERGE_PATCH};
pub use reqwest::Method;
pub use retry::{parse_retry_after, retryable_status, RetryPolicy};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer with a 2xx (or `304`) status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    /// The JSON body; `null` when empty.
    pub body: Value,
}

/// A client of one Vouch server (an origin, or with [`Edge`] an edge), with an optional
/// bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    retry: RetryPolicy,
    user_agent: String,
}

/// How a [`Client`] is set up.
#[derive(Clone, Debug)]
pub struct Builder {
    base: String,
    token: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    user_agent: String,
}

impl Builder {
    /// The bearer token (`vk_admin_…`) sent with every authenticated call.
    pub fn token(mut self, token: Option<String>) -> Builder {
        self.token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Builder {
        self.retry = retry;
        self
    }

    /// The time limit of one attempt (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = timeout;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Builder {
        self.user_agent = user_agent.into();
        self
    }

    pub fn build(self) -> Result<Client> {
        let raw = self.base.trim();
        let base = Url::parse(raw).map_err(|e| {
            Error::Config(format!(
                "`{raw}` is not a valid URL ({e}); use e.g. http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "the server's URL must be an http:// or https:// URL, not `{base}`"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(self.timeout)
            .user_agent(self.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: self.token,
            retry: self.retry,
            user_agent: self.user_agent,
        })
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`) with the default
    /// retries.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        Client::builder(base).token(token).build()
    }

    pub fn builder(base: &str) -> Builder {
        Builder {
            base: base.to_owned(),
            token: None,
            retry: RetryPolicy::default(),
            timeout: REQUEST_TIMEOUT,
            user_agent: concat!("vouch-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Whether calls carry a bearer token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The server's base URL, without a trailing slash (for messages).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL `request` goes to.
    pub fn url(&self, request: &Request) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                Error::Config(format!("`{}` cannot be used as a base URL", self.base))
            })?;
            path.pop_if_empty();
            path.extend(&request.segments);
        }
        url.set_query(None);
        if !request.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &request.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    fn token(&self) -> Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            Error::Config("no admin token: this call needs a bearer token (vk_admin_…)".into())
        })
    }

    /// Sends `request` (retrying as [`RetryPolicy`] says); a 2xx or `304` answer, else the
    /// API's error.
    pub async fn send(&self, request: &Request) -> Result<Answer> {
        let raw = self.exchange(request).await?;
        if !raw.ok() {
            return Err(error::from_answer(raw.status, &raw.bytes));
        }
        Ok(Answer {
            status: raw.status,
            body: self.body_of(&raw)?,
            etag: raw.etag,
        })
    }

    /// Sends `request`, retrying as [`RetryPolicy`] says: the last answer, whatever its status.
    pub(crate) async fn exchange(&self, request: &Request) -> Result<Raw> {
        let url = self.url(request)?;
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(request, &url).await;
            let (retryable, retry_after) = match &outcome {
                Ok(raw) => (retryable_status(raw.status), raw.retry_after),
                Err(Error::Unreachable { .. }) => (true, None),
                Err(_) => (false, None),
            };
            let delay = if retryable && request.may_repeat() {
                self.retry.delay(attempt, retry_after)
            } else {
                None
            };
            let Some(delay) = delay else {
                return outcome;
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The JSON body of an answer (`null` when empty).
    pub(crate) fn body_of(&self, raw: &Raw) -> Result<Value> {
        if raw.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&raw.bytes).map_err(|e| {
            Error::Protocol(format!(
                "{} answered {} with a body that is not JSON ({e}); is this a Vouch server?",
                self.base(),
                raw.status
            ))
        })
    }

    /// Sends `request` and reads its JSON body as `T`.
    pub async fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T> {
        let answer = self.send(request).await?;
        serde_json::from_value(answer.body).map_err(|e| {
            Error::Protocol(format!(
                "the answer of {} is not what this client understands ({e})",
                self.url(request).map(String::from).unwrap_or_default()
            ))
        })
    }

    /// Sends `request` and returns its JSON body (`null` when empty).
    pub async fn json(&self, request: &Request) -> Result<Value> {
        Ok(self.send(request).await?.body)
    }

    fn build(
        &self,
        http: &reqwest::Client,
        request: &Request,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder> {
        let mut builder = http
            .request(request.method.clone(), url.clone())
            .header(ACCEPT, JSON);
        if request.authenticated {
            builder = builder.bearer_auth(self.token()?);
        }
        if let Some(etag) = &request.if_match {
            builder = builder.header(IF_MATCH, etag.as_str());
        }
        if let Some(etag) = &request.if_none_match {
            builder = builder.header(IF_NONE_MATCH, etag.as_str());
        }
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("idempotency-key", key.as_str());
        }
        match &request.body {
            Some(request::Body::Json(content_type, body)) => {
                let bytes = serde_json::to_vec(body)
                    .map_err(|e| Error::Config(format!("cannot encode the request body: {e}")))?;
                builder = builder.header(CONTENT_TYPE, *content_type).body(bytes);
            }
            Some(request::Body::Form(encoded)) => {
                builder = builder.header(CONTENT_TYPE, FORM).body(encoded.clone());
            }
            None => {}
        }
        Ok(builder)
    }

    async fn attempt(&self, request: &Request, url: &Url) -> Result<Raw> {
        let response = self
            .build(&self.http, request, url)?
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let etag = header(response.headers(), ETAG);
        let retry_after = header(response.headers(), RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok(Raw {
            status,
            etag,
            retry_after,
            bytes: bytes.to_vec(),
        })
    }

    /// Opens `request` as a Server-Sent Events stream, resuming after `last_event_id`. Not
    /// retried: the caller decides how to wait (a `429 too_many_streams` comes back as is).
    pub async fn open_stream(
        &self,
        request: &Request,
        last_event_id: Option<&str>,
    ) -> Result<EventStream> {
        let url = self.url(request)?;
        // No overall time limit: each read waits at most STREAM_READ_TIMEOUT instead.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(self.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        let mut builder = self
            .build(&http, request, &url)?
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            builder = builder.header("last-event-id", id);
        }
        let response = builder.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(EventStream::new(response));
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Err(error::from_answer(status, &bytes))
    }

    /// GETs a published document at `url` (any URL) as text, without credentials. `Ok(None)`
    /// when it is not there (`404`).
    pub async fn fetch_public(&self, url: &str) -> Result<Option<String>> {
        let unreachable = |e: reqwest::Error| Error::Unreachable {
            url: url.to_owned(),
            reason: error::root_cause(&e),
        };
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(Error::Protocol(format!(
                "{url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(Some(text))
    }

    fn unreachable(&self, err: &reqwest::Error) -> Error {
        let reason = if err.is_timeout() {
            "no answer within the time limit".to_owned()
        } else {
            error::root_cause(err)
        };
        Error::Unreachable {
            url: self.base().to_owned(),
            reason,
        }
    }
}

/// One answer as it came.
pub(crate) struct Raw {
    pub status: u16,
    pub etag: Option<String>,
    pub retry_after: Option<Duration>,
    pub bytes: Vec<u8>,
}

impl Raw {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status) || self.status == 304
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(base, Some("vk_admin_x".into())).unwrap()
    }

    #[test]
    fn paths_are_joined_and_encoded() {
        let c = client("http://127.0.0.1:8080");
        let call = Request::get(&["v1", "agents", "ap_1"]).query("status", Some("active"));
        assert_eq!(
            c.url(&call).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/agents/ap_1?status=active"
        );
        let c = client("https://vouch.example/api/");
        let call = Request::get(&["v1", "agents", "a/b c"]).query("q", None::<String>);
        assert_eq!(
            c.url(&call).unwrap().as_str(),
            "https://vouch.example/api/v1/agents/a%2Fb%20c"
        );
    }

    #[test]
    fn bad_urls_are_config_errors() {
        assert!(matches!(
            Client::new("not a url", None),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new("ftp://x", None),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn only_calls_safe_to_repeat_are_retried() {
        assert!(Request::get(&["v1"]).may_repeat());
        assert!(Request::delete(&["v1"]).may_repeat());
        assert!(!Request::post(&["v1"]).may_repeat());
        assert!(Request::post(&["v1"])
            .idempotency_key(Some("k".into()))
            .may_repeat());
    }
}
