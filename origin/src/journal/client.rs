//! `POST {edge}/internal/journal` with the shared secret: the one way into the status journal.

use std::time::Duration;

use vouch_core::journal::{AppendRequest, AppendResponse, EpochMismatch};

/// Why an append did not land.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal has another epoch (it is new, or was reset): adopt it and append again.
    #[error("the journal has another epoch ({0})")]
    Epoch(i64),
    #[error("the edge refused the append: HTTP {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("the edge is unreachable: {0}")]
    Unreachable(String),
}

#[derive(Clone)]
pub struct JournalClient {
    http: reqwest::Client,
    url: String,
    secret: String,
}

impl JournalClient {
    /// `edge_url` is the worker's base URL; `secret` its `VOUCH_EDGE_SECRET`.
    pub fn new(edge_url: &str, secret: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(JournalClient {
            http,
            url: format!("{}/internal/journal", edge_url.trim_end_matches('/')),
            secret: secret.to_owned(),
        })
    }

    pub async fn append(&self, request: &AppendRequest) -> Result<AppendResponse, JournalError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.secret)
            .json(request)
            .send()
            .await
            .map_err(|e| JournalError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 409 {
            let mismatch: EpochMismatch =
                response.json().await.map_err(|e| JournalError::Refused {
                    status,
                    detail: format!("unreadable answer: {e}"),
                })?;
            return Err(JournalError::Epoch(mismatch.epoch));
        }
        if status != 200 {
            let detail = response.text().await.unwrap_or_default();
            return Err(JournalError::Refused {
                status,
                detail: detail.chars().take(500).collect(),
            });
        }
        response.json().await.map_err(|e| JournalError::Refused {
            status,
            detail: format!("unreadable answer: {e}"),
        })
    }
}
