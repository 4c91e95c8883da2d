//! The CLI's side of `vouch-client`: its async client driven to completion one call at a
//! time, and its errors turned into [`CliError`]s (with the CLI's flags in the messages).

use serde_json::Value;
use tokio::runtime::Runtime;
pub use vouch_client::{Request as Call, SseEvent, MERGE_PATCH};

use crate::error::{CliError, Result};

pub struct Client {
    inner: vouch_client::Client,
    runtime: Runtime,
    has_token: bool,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        let inner = vouch_client::Client::builder(base)
            .token(token)
            .user_agent(concat!("vouch-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| match e {
                vouch_client::Error::Config(message) => {
                    CliError::Usage(format!("--url / VOUCH_URL: {message}"))
                }
                other => CliError::from(other),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Usage(format!("cannot start the HTTP client: {e}")))?;
        let has_token = inner.has_token();
        Ok(Client {
            inner,
            runtime,
            has_token,
        })
    }

    /// The client under this one, for calls that take it whole.
    pub fn inner(&self) -> &vouch_client::Client {
        &self.inner
    }

    /// Drives `future` (a call of [`Client::inner`]) to completion.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn require_token(&self) -> Result<()> {
        if self.has_token {
            return Ok(());
        }
        Err(CliError::Usage(
            "no admin token: pass --token vk_admin_… or set the VOUCH_TOKEN environment variable"
                .into(),
        ))
    }

    /// Sends `call` with the admin token; the JSON body of a 2xx answer (`null` when empty).
    pub fn send(&self, call: Call) -> Result<Value> {
        self.require_token()?;
        Ok(self.runtime.block_on(self.inner.json(&call))?)
    }

    /// `POST /oauth/token` with a form and no admin token: the agent's own credentials travel
    /// in the form (RFC 6749 §4.4); errors come back in RFC 6749 §5.2 shape.
    pub fn token_request(&self, form: &[(&str, &str)]) -> Result<Value> {
        let call = Call::post(&["oauth", "token"]).form(form).anonymous();
        Ok(self.runtime.block_on(self.inner.json(&call))?)
    }

    /// Opens `call` as a Server-Sent Events stream (resuming after `last_event_id`).
    pub fn open_stream(&self, call: Call, last_event_id: Option<&str>) -> Result<Stream<'_>> {
        self.require_token()?;
        let stream = self
            .runtime
            .block_on(self.inner.open_stream(&call, last_event_id))?;
        Ok(Stream {
            client: self,
            stream,
        })
    }
}

/// The events of an open stream; it ends when the origin closes it, breaks off, or stays
/// silent too long (then it is reopened).
pub struct Stream<'a> {
    client: &'a Client,
    stream: vouch_client::EventStream,
}

impl Iterator for Stream<'_> {
    type Item = SseEvent;

    fn next(&mut self) -> Option<SseEvent> {
        self.client.runtime.block_on(self.stream.next())?.ok()
    }
}

impl From<vouch_client::Error> for CliError {
    fn from(err: vouch_client::Error) -> CliError {
        match err {
            vouch_client::Error::Config(message) => CliError::Usage(message),
            vouch_client::Error::Api {
                code,
                message,
                field,
                body,
                ..
            } => CliError::Api {
                code,
                message,
                field,
                body,
            },
            vouch_client::Error::Protocol(message) => CliError::Protocol(message),
            vouch_client::Error::Unreachable { url, reason } => {
                CliError::Unreachable { url, reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
