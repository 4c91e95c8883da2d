//! The KV publisher: leases keys that are behind (`kv_outbox`), writes each key's *current* edge
//! view in bulk, and records the version written. Because it always writes the current state
//! and a key is leased to one publisher at a time, writes coalesce per key and a newer version
//! is never overwritten by an older one, with one origin or several. Failures are retried with
//! exponential backoff (honouring `retry-after` on 429) until they land; nothing is dropped.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use vouch_core::edge_view::EdgePassport;
use vouch_core::kv::BULK_WRITE_MAX;

use crate::clock::now;
use crate::error::Result;
use crate::kv::client::{KvClient, KvWriteError, Pair};
use crate::store::{KvWork, Store};

/// How long a publisher holds the keys it claimed; far longer than one write may take (the
/// client gives up after 15 s), so a lease never runs out under a write in flight.
const LEASE_MS: i64 = 60_000;
/// Keys per bulk write.
const BATCH: u32 = 1_000;
/// How often to look for work when nothing wakes the publisher.
const IDLE_POLL: Duration = Duration::from_millis(500);
const BACKOFF_BASE_MS: i64 = 200;
const BACKOFF_MAX_MS: i64 = 60_000;

pub struct Publisher {
    store: Arc<dyn Store>,
    client: KvClient,
    owner: String,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub written: usize,
    pub failed: usize,
}

impl Publisher {
    pub fn new(store: Arc<dyn Store>, client: KvClient) -> Self {
        Publisher {
            store,
            client,
            owner: format!("publisher-{}", Uuid::now_v7().simple()),
        }
    }

    /// Publishes until the process stops: one pass whenever a change commits, or every
    /// [`IDLE_POLL`] otherwise (another replica's changes, retries that came due).
    pub async fn run(self) {
        loop {
            match self.pass().await {
                Ok(pass) if pass.written + pass.failed > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "KV publisher pass failed"),
            }
            if let Err(e) = self.store.refresh_jwks(now()).await {
                tracing::warn!(error = %e, "could not refresh the JWKS");
            }
            self.report_backlog().await;
            let _ = tokio::time::timeout(IDLE_POLL, self.store.signals().kv.notified()).await;
        }
    }

    /// Publishes everything due now; returns when no claimable work is left (used by `kv resync`).
    pub async fn drain(&self) -> Result<usize> {
        let mut written = 0;
        loop {
            let pass = self.pass().await?;
            written += pass.written;
            if pass.written + pass.failed == 0 {
                let (behind, _) = self.store.kv_backlog().await?;
                if behind == 0 {
                    return Ok(written);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Claims one batch and writes it.
    pub async fn pass(&self) -> Result<Pass> {
        let work = self
            .store
            .claim_kv(
                &self.owner,
                now(),
                LEASE_MS,
                BATCH.min(BULK_WRITE_MAX as u32),
            )
            .await?;
        if work.is_empty() {
            return Ok(Pass::default());
        }
        let (values, checkpoints) = self.current_values(&work).await?;
        let pairs: Vec<Pair<'_>> = values
            .iter()
            .map(|(key, _, value)| Pair { key, value })
            .collect();
        let started = std::time::Instant::now();
        let result = self.client.bulk_put(&pairs).await;
        metrics::histogram!("vouch_kv_write_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                let at = now();
                for (key, version, _) in &values {
                    self.store.complete_kv(&self.owner, key, *version).await?;
                }
                // The audit checkpoints now outside the database, as `/v1/audit/verify` reports.
                for (chain, size, note) in &checkpoints {
                    self.store
                        .checkpoint_published(chain, *size, note, at)
                        .await?;
                }
                for item in &work {
                    let lag =
                        (at.unix_millis() - item.dirty_since.unix_millis()).max(0) as f64 / 1000.0;
                    metrics::histogram!("vouch_kv_publish_lag_seconds").record(lag);
                }
                metrics::counter!("vouch_kv_keys_written_total").increment(values.len() as u64);
                Ok(Pass {
                    written: values.len(),
                    failed: 0,
                })
            }
            Err(error) => {
                let kind = match &error {
                    KvWriteError::RateLimited(_) => "rate_limited",
                    KvWriteError::Refused { .. } => "refused",
                    KvWriteError::Unreachable(_) => "unreachable",
                };
                metrics::counter!("vouch_kv_write_errors_total", "kind" => kind).increment(1);
                tracing::warn!(error = %error, keys = work.len(), "KV write failed; will retry");
                self.schedule_retry(&work, &error).await?;
                Ok(Pass {
                    written: 0,
                    failed: work.len(),
                })
            }
        }
    }

    /// `(key, version, value)` of the current state of every claimed key that still exists, and
    /// the audit checkpoints among them as `(chain_id, tree_size, note)`.
    #[allow(clippy::type_complexity)]
    async fn current_values(
        &self,
        work: &[KvWork],
    ) -> Result<(Vec<(String, i64, String)>, Vec<(String, u64, String)>)> {
        let of_type = |t: &str| -> Vec<String> {
            work.iter()
                .filter(|w| w.aggregate_type == t)
                .map(|w| w.aggregate_id.clone())
                .collect()
        };
        let mut values = Vec::with_capacity(work.len());
        for passport in self.store.agents_by_ids(&of_type("agent")).await? {
            let view = EdgePassport::from(&passport);
            let text = serde_json::to_string(&view).map_err(crate::error::Error::internal)?;
            values.push((
                vouch_core::kv::passport_key(&passport.agent_id),
                passport.version,
                text,
            ));
            // An imported passport is found by its OAP passport_id too (fixed at import, so
            // rewriting it beside every version is idempotent).
            if let Some(passport_id) = &passport.oap_passport_id {
                let alias = vouch_core::kv::OapAlias {
                    agent_id: passport.agent_id.clone(),
                    version: passport.version,
                };
                let text = serde_json::to_string(&alias).map_err(crate::error::Error::internal)?;
                values.push((
                    vouch_core::kv::oap_passport_key(passport_id),
                    passport.version,
                    text,
                ));
            }
        }
        for record in self
            .store
            .delegations_by_ids(&of_type("delegation"))
            .await?
        {
            let text =
                serde_json::to_string(&record.grant).map_err(crate::error::Error::internal)?;
            values.push((record.grant.kv_key(), record.version, text));
        }
        for key in self
            .store
            .partner_keys_by_hashes(&of_type(crate::store::PARTNER_KEY_AGGREGATE))
            .await?
        {
            let text =
                serde_json::to_string(&key.kv_value()).map_err(crate::error::Error::internal)?;
            values.push((
                vouch_core::partner::kv_key(&key.key_hash),
                key.version,
                text,
            ));
        }
        for (name, version, body) in self.store.documents(&of_type("document")).await? {
            // `VersionedDocument` as text, without re-parsing the stored body.
            let text = format!("{{\"version\":{version},\"document\":{body}}}");
            values.push((name, version, text));
        }
        let checkpoints = self
            .store
            .checkpoints(&of_type(crate::store::CHECKPOINT_AGGREGATE))
            .await?;
        for (chain, size, note) in &checkpoints {
            let value = vouch_core::kv::AuditCheckpoint {
                tree_size: *size,
                checkpoint: note.clone(),
            };
            let text = serde_json::to_string(&value).map_err(crate::error::Error::internal)?;
            let version = i64::try_from(*size).map_err(crate::error::Error::internal)?;
            values.push((vouch_core::kv::checkpoint_key(chain), version, text));
        }
        Ok((values, checkpoints))
    }

    async fn schedule_retry(&self, work: &[KvWork], error: &KvWriteError) -> Result<()> {
        let message = error.to_string();
        for item in work {
            let delay = match error {
                KvWriteError::RateLimited(Some(after)) => {
                    i64::try_from(after.as_millis()).unwrap_or(BACKOFF_MAX_MS)
                }
                _ => backoff_ms(item.attempts),
            };
            let at = vouch_core::Timestamp::from_unix_millis(now().unix_millis() + delay);
            self.store
                .retry_kv(&self.owner, &item.key, at, &message)
                .await?;
        }
        Ok(())
    }

    async fn report_backlog(&self) {
        if let Ok((behind, oldest)) = self.store.kv_backlog().await {
            metrics::gauge!("vouch_kv_backlog_keys").set(behind as f64);
            let lag = oldest.map_or(0.0, |t| {
                (now().unix_millis() - t.unix_millis()).max(0) as f64 / 1000.0
            });
            metrics::gauge!("vouch_kv_oldest_unpublished_seconds").set(lag);
        }
    }
}

/// The publisher's retry delay (see [`crate::backoff`]).
fn backoff_ms(attempts: i64) -> i64 {
    crate::backoff::jittered_ms(BACKOFF_BASE_MS, BACKOFF_MAX_MS, attempts)
}
