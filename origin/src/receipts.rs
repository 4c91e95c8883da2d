//! Collecting receipts (SPEC §12) from the edge: every committed decision, signed there, waits
//! in the edge's receipts object until the origin has stored it. The collector pulls the oldest
//! (`GET {edge}/internal/receipts`), stores them (one row per decision id, so a receipt seen
//! twice is kept once) and only then acknowledges them (`POST {edge}/internal/receipts/ack`),
//! which deletes them at the edge: a crash between the two re-delivers, never loses. It runs
//! beside the journal publisher with the same edge URL and secret; several origin replicas may
//! collect at once.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use vouch_core::{AgentId, OrgId, Timestamp};

use crate::clock::now;
use crate::store::{ReceiptRow, Store};

/// How often the collector asks when the last pull found nothing ("visible within seconds").
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// Receipts per pull (the edge's own maximum).
const PULL_LIMIT: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("the edge is unreachable: {0}")]
    Unreachable(String),
    #[error("the edge answered HTTP {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error(transparent)]
    Store(#[from] crate::error::Error),
}

#[derive(Deserialize)]
struct Pulled {
    receipts: Vec<PulledReceipt>,
}

#[derive(Deserialize)]
struct PulledReceipt {
    seq: i64,
    receipt: Value,
}

pub struct ReceiptCollector {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    edge: String,
    secret: String,
}

impl ReceiptCollector {
    /// `edge_url` is the worker's base URL; `secret` its `VOUCH_EDGE_SECRET`.
    pub fn new(store: Arc<dyn Store>, edge_url: &str, secret: &str) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(ReceiptCollector {
            store,
            http,
            edge: edge_url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Collects until the process stops: again at once after a full pull, else every
    /// [`IDLE_POLL`], backing off while the edge fails.
    pub async fn run(self) {
        let mut failures = 0;
        loop {
            let wait = match self.collect_once().await {
                Ok(n) if n >= PULL_LIMIT as usize => continue,
                Ok(_) => {
                    failures = 0;
                    IDLE_POLL
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receipt collection failed");
                    failures += 1;
                    let ms = crate::backoff::jittered_ms(500, 30_000, failures);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(500))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One pull, store and acknowledgement; how many receipts the edge handed over.
    pub async fn collect_once(&self) -> Result<usize, CollectError> {
        let response = self
            .http
            .get(format!(
                "{}/internal/receipts?limit={PULL_LIMIT}",
                self.edge
            ))
            .bearer_auth(&self.secret)
            .send()
            .await
            .map_err(|e| CollectError::Unreachable(e.to_string()))?;
        let pulled: Pulled = ok_json(response).await?;
        let Some(through) = pulled.receipts.iter().map(|r| r.seq).max() else {
            return Ok(0);
        };
        let received_at = now();
        let rows: Vec<ReceiptRow> = pulled
            .receipts
            .iter()
            .filter_map(|r| receipt_row(&r.receipt, received_at))
            .collect();
        if rows.len() < pulled.receipts.len() {
            tracing::warn!(
                dropped = pulled.receipts.len() - rows.len(),
                "receipts without a decision id, agent or org were dropped"
            );
        }
        let stored = self.store.store_receipts(&rows).await?;
        tracing::debug!(pulled = pulled.receipts.len(), stored, "receipts collected");
        let response = self
            .http
            .post(format!("{}/internal/receipts/ack", self.edge))
            .bearer_auth(&self.secret)
            .json(&serde_json::json!({ "through": through }))
            .send()
            .await
            .map_err(|e| CollectError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            let detail = response.text().await.unwrap_or_default();
            return Err(CollectError::Refused { status, detail });
        }
        Ok(pulled.receipts.len())
    }
}

async fn ok_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, CollectError> {
    let status = response.status().as_u16();
    if status != 200 {
        let detail: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        return Err(CollectError::Refused { status, detail });
    }
    response.json().await.map_err(|e| CollectError::Refused {
        status,
        detail: format!("unreadable answer: {e}"),
    })
}

/// The row of one signed decision: a native decision names its agent in `agent_id`, an OAP one
/// in `registry_agent_id` (its `agent_id` is as the partner asked); the org is `owner_id`.
fn receipt_row(receipt: &Value, received_at: Timestamp) -> Option<ReceiptRow> {
    let text = |member: &str| receipt.get(member).and_then(Value::as_str);
    let agent = text("registry_agent_id").or_else(|| text("agent_id"))?;
    Some(ReceiptRow {
        decision_id: text("decision_id")?.to_owned(),
        agent_id: AgentId::parse(agent).ok()?,
        org_id: OrgId::parse(text("owner_id")?).ok()?,
        partner_id: text("partner_id").map(str::to_owned),
        created_at: text("created_at")
            .and_then(Timestamp::parse_rfc3339)
            .unwrap_or(received_at),
        received_at,
        body: receipt.to_string(),
    })
}
