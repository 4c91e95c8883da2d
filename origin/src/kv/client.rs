//! The Cloudflare Workers KV REST API, as the publisher uses it: bulk writes of up to 10,000
//! pairs, `Authorization: Bearer`, success read from the body's `success` (not only the status).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct KvTarget {
    /// e.g. `https://api.cloudflare.com/client/v4` (or the local edge's endpoint).
    pub api_base: String,
    pub account_id: String,
    pub namespace_id: String,
    pub api_token: String,
}

/// Why a write did not land.
#[derive(Debug, thiserror::Error)]
pub enum KvWriteError {
    /// `429`: come back after this long (from `retry-after`, when given).
    #[error("rate limited by the KV API")]
    RateLimited(Option<Duration>),
    /// The API answered, but not with success.
    #[error("the KV API refused the write: HTTP {status}: {detail}")]
    Refused { status: u16, detail: String },
    /// The API could not be reached or did not answer in time.
    #[error("the KV API is unreachable: {0}")]
    Unreachable(String),
}

#[derive(Serialize)]
pub struct Pair<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

#[derive(Clone)]
pub struct KvClient {
    http: reqwest::Client,
    bulk_url: String,
    token: String,
}

impl KvClient {
    pub fn new(target: &KvTarget) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(KvClient {
            http,
            bulk_url: format!(
                "{}/accounts/{}/storage/kv/namespaces/{}/bulk",
                target.api_base.trim_end_matches('/'),
                target.account_id,
                target.namespace_id
            ),
            token: target.api_token.clone(),
        })
    }

    /// One bulk write (`PUT …/bulk`).
    pub async fn bulk_put(&self, pairs: &[Pair<'_>]) -> Result<(), KvWriteError> {
        let response = self
            .http
            .put(&self.bulk_url)
            .bearer_auth(&self.token)
            .json(pairs)
            .send()
            .await
            .map_err(|e| KvWriteError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 429 {
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            return Err(KvWriteError::RateLimited(after));
        }
        let body: Value = response.json().await.map_err(|e| KvWriteError::Refused {
            status,
            detail: format!("unreadable body: {e}"),
        })?;
        if (200..300).contains(&status) && body.get("success") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        Err(KvWriteError::Refused {
            status,
            detail: body
                .get("errors")
                .map(Value::to_string)
                .unwrap_or_else(|| body.to_string()),
        })
    }
}
