//! A small blocking client of the origin's REST API: bearer auth, JSON in and out, and the
//! API's error body turned into [`CliError::Api`].

use std::time::Duration;

use reqwest::blocking::{Client as Http, Response};
use reqwest::header::{ACCEPT, CONTENT_TYPE, IF_MATCH};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::error::{CliError, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// One API call.
pub struct Call {
    method: Method,
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<(&'static str, Value)>,
    if_match: Option<String>,
}

impl Call {
    /// A call to the path made of `segments` (each one percent-encoded as needed).
    pub fn new<S: AsRef<str>>(method: Method, segments: &[S]) -> Call {
        Call {
            method,
            segments: segments.iter().map(|s| s.as_ref().to_owned()).collect(),
            query: Vec::new(),
            body: None,
            if_match: None,
        }
    }

    pub fn get<S: AsRef<str>>(segments: &[S]) -> Call {
        Call::new(Method::GET, segments)
    }

    pub fn post<S: AsRef<str>>(segments: &[S]) -> Call {
        Call::new(Method::POST, segments)
    }

    /// Adds `?name=value` when `value` is present.
    pub fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Call {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    /// A JSON body (`application/json`).
    pub fn json(self, body: Value) -> Call {
        self.body_as(JSON, body)
    }

    pub fn body_as(mut self, content_type: &'static str, body: Value) -> Call {
        self.body = Some((content_type, body));
        self
    }

    /// An `If-Match` header, already formatted (e.g. `"7"`).
    pub fn if_match(mut self, etag: Option<String>) -> Call {
        self.if_match = etag;
        self
    }
}

pub struct Client {
    http: Http,
    /// For event streams: no overall time limit, but each read waits at most
    /// [`STREAM_READ_TIMEOUT`] (the origin sends a keep-alive every 15 s).
    streaming: Http,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        let base = Url::parse(base.trim()).map_err(|e| {
            CliError::Usage(format!(
                "`{base}` is not a valid URL for --url / VOUCH_URL ({e}); use e.g. http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::Usage(format!(
                "--url / VOUCH_URL must be an http:// or https:// URL, not `{base}`"
            )));
        }
        let http = http_client(Some(REQUEST_TIMEOUT))?;
        // A blocking client's timeout bounds each read of the body, not the whole of it.
        let streaming = http_client(Some(STREAM_READ_TIMEOUT))?;
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(Client {
            http,
            streaming,
            base,
            token,
        })
    }

    /// The origin's base URL, as the user gave it (for messages).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, call: &Call) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                CliError::Usage(format!("`{}` cannot be used as a base URL", self.base))
            })?;
            path.pop_if_empty();
            path.extend(&call.segments);
        }
        url.set_query(None);
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    fn token(&self) -> Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no admin token: pass --token vk_admin_… or set the VOUCH_TOKEN environment variable"
                    .into(),
            )
        })
    }

    /// Opens `call` as a Server-Sent Events stream (resuming after `last_event_id`): the
    /// answer, to be read line by line; an error answer becomes the API's error.
    pub fn open_stream(&self, call: Call, last_event_id: Option<&str>) -> Result<Response> {
        let mut request = self
            .streaming
            .get(self.url(&call)?)
            .bearer_auth(self.token()?)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        match self.read(response) {
            Err(e) => Err(e),
            Ok(_) => Err(CliError::Protocol("the event stream was refused".into())),
        }
    }

    /// Sends `call` with the admin token; the JSON body of a 2xx answer (`null` when empty).
    pub fn send(&self, call: Call) -> Result<Value> {
        let token = self.token()?;
        let url = self.url(&call)?;
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token)
            .header(ACCEPT, JSON);
        if let Some(etag) = &call.if_match {
            request = request.header(IF_MATCH, etag.as_str());
        }
        if let Some((content_type, body)) = &call.body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| CliError::Usage(format!("cannot encode the request body: {e}")))?;
            request = request.header(CONTENT_TYPE, *content_type).body(bytes);
        }
        let response = request.send().map_err(|e| self.unreachable(&e))?;
        self.read(response)
    }

    /// `POST /oauth/token` with a form and no admin token: the agent's own credentials travel in
    /// the form (RFC 6749 §4.4); errors come back in RFC 6749 §5.2 shape.
    pub fn token_request(&self, form: &[(&str, &str)]) -> Result<Value> {
        let url = self.url(&Call::post(&["oauth", "token"]))?;
        let response = self
            .http
            .post(url)
            .header(ACCEPT, JSON)
            .form(form)
            .send()
            .map_err(|e| self.unreachable(&e))?;
        self.read(response)
    }

    /// GETs a published document at `url` as text, without credentials (a checkpoint at the
    /// edge). `Ok(None)` when it is not there (`404`).
    pub fn fetch_public(&self, url: &str) -> Result<Option<String>> {
        let unreachable = |e: reqwest::Error| CliError::Unreachable {
            url: url.to_owned(),
            reason: root_cause(&e),
        };
        let response = self.http.get(url).send().map_err(unreachable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().map_err(unreachable)?;
        if !status.is_success() {
            return Err(CliError::Protocol(format!(
                "{url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(Some(text))
    }

    fn read(&self, response: Response) -> Result<Value> {
        let status = response.status();
        let bytes = response.bytes().map_err(|e| self.unreachable(&e))?;
        let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&bytes)
        };
        if status.is_success() {
            return parsed.map_err(|e| {
                CliError::Protocol(format!(
                    "the origin at {} answered {status} with a body that is not JSON ({e}); is --url pointing at a Vouch origin?",
                    self.base()
                ))
            });
        }
        match parsed {
            Ok(body) => match api_error(&body) {
                Some((code, message, field)) => Err(CliError::Api {
                    code,
                    message,
                    field,
                    body: Some(body),
                }),
                None => Err(unexpected(status, &String::from_utf8_lossy(&bytes))),
            },
            Err(_) => Err(unexpected(status, &String::from_utf8_lossy(&bytes))),
        }
    }

    fn unreachable(&self, err: &reqwest::Error) -> CliError {
        let reason = if err.is_timeout() {
            "no answer within the time limit".to_owned()
        } else {
            root_cause(err)
        };
        CliError::Unreachable {
            url: self.base().to_owned(),
            reason,
        }
    }
}

/// How long a live stream may stay silent before it is taken for dead and reopened (the
/// origin sends a keep-alive comment every 15 s).
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

fn http_client(timeout: Option<Duration>) -> Result<Http> {
    let mut builder = Http::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("vouch-cli/", env!("CARGO_PKG_VERSION")));
    // A blocking client's default is 30 s; `None` turns it off.
    builder = builder.timeout(timeout);
    builder
        .build()
        .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {e}")))
}

/// `(error, message, field)` of an API error body.
fn api_error(body: &Value) -> Option<(String, String, Option<String>)> {
    let code = body.get("error")?.as_str()?.to_owned();
    let message = body
        .get("message")
        .or_else(|| body.get("error_description"))
        .and_then(Value::as_str)
        .map_or_else(|| code.replace('_', " "), str::to_owned);
    let field = body.get("field").and_then(Value::as_str).map(str::to_owned);
    Some((code, message, field))
}

/// An error answer that is not the API's error body (a proxy's page, say).
fn unexpected(status: reqwest::StatusCode, text: &str) -> CliError {
    let snippet: String = text.trim().chars().take(200).collect();
    let message = if snippet.is_empty() {
        format!("the origin answered {status} with no error body")
    } else {
        format!("the origin answered {status}: {snippet}")
    };
    CliError::Api {
        code: format!("http_{}", status.as_u16()),
        message,
        field: None,
        body: None,
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than
/// "error sending request for url (…)".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
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
        let call = Call::get(&["v1", "agents", "ap_1"]).query("status", Some("active"));
        assert_eq!(
            c.url(&call).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/agents/ap_1?status=active"
        );
        let c = client("https://vouch.example/api/");
        let call = Call::get(&["v1", "agents", "a/b c"]).query("q", None::<String>);
        assert_eq!(
            c.url(&call).unwrap().as_str(),
            "https://vouch.example/api/v1/agents/a%2Fb%20c"
        );
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        assert_eq!(
            Client::new("not a url", None).err().map(|e| e.exit_code()),
            Some(2)
        );
        assert_eq!(
            Client::new("ftp://x", None).err().map(|e| e.exit_code()),
            Some(2)
        );
    }

    #[test]
    fn error_bodies_are_read() {
        let body =
            serde_json::json!({ "error": "invalid_request", "message": "bad", "field": "slug" });
        assert_eq!(
            api_error(&body),
            Some(("invalid_request".into(), "bad".into(), Some("slug".into())))
        );
        assert_eq!(api_error(&serde_json::json!({ "oops": 1 })), None);
    }
}
