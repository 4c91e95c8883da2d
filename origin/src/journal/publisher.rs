//! The journal publisher: leases keys the journal is behind on (`journal_outbox`), appends each
//! key's *current* status (an agent's status, a grant's revocation, a partner key's state) in
//! one request, and records the `seq` and store time the journal answered — `?wait=propagated` and the lag
//! metrics read them. It runs beside the KV publisher and independently of it: KV being slow or
//! down never holds a status change back. Each append also tells the journal which entries KV
//! has long caught up with ([`SETTLE`]), so the journal only holds recent changes, and seeds it
//! once nothing else waits to be appended. A journal of another epoch (new, or reset) is adopted:
//! every change the old one held is queued again, and the new one is seeded after them.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use vouch_core::journal::{AppendRequest, AppendResponse, Change, Settled, APPEND_MAX};
use vouch_core::Timestamp;

use crate::clock::now;
use crate::error::Result;
use crate::journal::client::{JournalClient, JournalError};
use crate::store::{KvWork, Store};

const LEASE_MS: i64 = 60_000;
const BATCH: u32 = 500;
/// How often to look for work when nothing wakes the publisher (other replicas' changes,
/// retries, compaction).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long KV must have held a version before the journal may forget it: KV reaches every
/// location within about 60 s, edges cache reads for 30 s; ten minutes is "long caught up".
pub const SETTLE: Duration = Duration::from_secs(600);

pub struct JournalPublisher {
    store: Arc<dyn Store>,
    client: JournalClient,
    owner: String,
    settle: Duration,
    /// Whether the journal said it was seeded in its last answer.
    seeded: AtomicBool,
    /// The journal epoch this publisher appends to (0: not read from the database yet; epochs
    /// are never 0).
    epoch: AtomicI64,
}

impl JournalPublisher {
    pub fn new(store: Arc<dyn Store>, client: JournalClient) -> Self {
        JournalPublisher {
            store,
            client,
            owner: format!("journal-{}", Uuid::now_v7().simple()),
            settle: SETTLE,
            seeded: AtomicBool::new(false),
            epoch: AtomicI64::new(0),
        }
    }

    /// Overrides [`SETTLE`] (tests watch compaction happen).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Appends until the process stops: right after each commit, else every [`IDLE_POLL`].
    pub async fn run(self) {
        let mut last_compaction = std::time::Instant::now();
        loop {
            match self.pass().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "journal publisher pass failed"),
            }
            // Compaction and seeding ride on appends; with none for a while, append nothing.
            // An unseeded journal (new, reset) is caught up at once.
            let every = self.settle.min(Duration::from_secs(30));
            if !self.seeded.load(Ordering::Relaxed) || last_compaction.elapsed() >= every {
                match self.append(Vec::new(), 0).await {
                    Ok(_) => last_compaction = std::time::Instant::now(),
                    Err(JournalError::Epoch(epoch)) => {
                        if let Err(e) = self.adopt(epoch).await {
                            tracing::warn!(error = %e, "could not adopt the journal's epoch");
                        }
                        continue;
                    }
                    Err(e) => tracing::debug!(error = %e, "journal compaction failed"),
                }
            }
            self.report_backlog().await;
            let _ = tokio::time::timeout(IDLE_POLL, self.store.signals().journal.notified()).await;
        }
    }

    /// Claims one batch and appends it; returns how many keys it handled (stored or failed).
    pub async fn pass(&self) -> Result<usize> {
        let work = self
            .store
            .claim_journal(&self.owner, now(), LEASE_MS, BATCH.min(APPEND_MAX as u32))
            .await?;
        if work.is_empty() {
            return Ok(0);
        }
        let changes = self.current_changes(&work).await?;
        // Keys with nothing to tell the journal (a record gone, a grant not revoked): done.
        for item in &work {
            if !changes.iter().any(|(key, _, _)| *key == item.key) {
                self.store
                    .complete_journal(&self.owner, &item.key, item.target_version, None, now())
                    .await?;
            }
        }
        if changes.is_empty() {
            return Ok(work.len());
        }
        let started = std::time::Instant::now();
        let result = self
            .append(
                changes.iter().map(|(_, _, c)| c.clone()).collect(),
                work.len(),
            )
            .await;
        metrics::histogram!("vouch_journal_append_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(answer) => {
                for ((key, version, _), stored) in changes.iter().zip(&answer.stored) {
                    self.store
                        .complete_journal(
                            &self.owner,
                            key,
                            *version,
                            Some(stored.seq),
                            stored.stored_at,
                        )
                        .await?;
                    if let Some(item) = work.iter().find(|w| w.key == *key) {
                        let lag = (stored.stored_at.unix_millis() - item.dirty_since.unix_millis())
                            .max(0) as f64
                            / 1000.0;
                        metrics::histogram!("vouch_journal_lag_seconds").record(lag);
                    }
                }
                metrics::counter!("vouch_journal_changes_appended_total")
                    .increment(changes.len() as u64);
            }
            Err(JournalError::Epoch(epoch)) => {
                // A new or reset journal: adopt it (its changes are queued again) and append
                // these right away.
                self.adopt(epoch).await?;
                for item in &work {
                    self.store
                        .retry_journal(&self.owner, &item.key, now(), "the journal has a new epoch")
                        .await?;
                }
            }
            Err(error) => {
                let kind = match &error {
                    JournalError::Refused { .. } => "refused",
                    JournalError::Unreachable(_) => "unreachable",
                    JournalError::Epoch(_) => "epoch",
                };
                metrics::counter!("vouch_journal_append_errors_total", "kind" => kind).increment(1);
                tracing::warn!(error = %error, keys = work.len(), "journal append failed; will retry");
                self.schedule_retry(&work, &error.to_string()).await?;
            }
        }
        Ok(work.len())
    }

    /// Appends `changes` (of `claimed` keys this publisher holds) with the entries KV has long
    /// caught up with, and seeds the journal when nothing else is waiting to be appended.
    async fn append(
        &self,
        changes: Vec<Change>,
        claimed: usize,
    ) -> std::result::Result<AppendResponse, JournalError> {
        let unknown = |e: crate::error::Error| JournalError::Unreachable(e.to_string());
        let settled_before =
            Timestamp::from_unix_millis(now().unix_millis() - self.settle.as_millis() as i64);
        let settled = self
            .store
            .journal_settled(settled_before, APPEND_MAX as u32)
            .await
            .map_err(unknown)?;
        // Seeding matters only while the journal is not seeded: count the backlog only then.
        let seed = if self.seeded.load(Ordering::Relaxed) {
            false
        } else {
            let (behind, _) = self.store.journal_backlog().await.map_err(unknown)?;
            usize::try_from(behind).unwrap_or(usize::MAX) <= claimed
        };
        let epoch = match self.epoch.load(Ordering::Relaxed) {
            0 => {
                let stored = self.store.journal_epoch().await.map_err(unknown)?;
                self.epoch.store(stored.unwrap_or(0), Ordering::Relaxed);
                stored
            }
            known => Some(known),
        };
        let answer = self
            .client
            .append(&AppendRequest {
                epoch,
                changes,
                settled: settled
                    .iter()
                    .map(|(key, version)| Settled {
                        key: key.clone(),
                        version: *version,
                    })
                    .collect(),
                seed,
            })
            .await?;
        if !settled.is_empty() {
            self.store.journal_forgot(&settled).await.map_err(unknown)?;
        }
        self.seeded.store(answer.seeded, Ordering::Relaxed);
        Ok(answer)
    }

    /// Adopts a journal of another epoch (new, or reset): every change the old one held is
    /// queued again, to be appended before the new one is seeded.
    async fn adopt(&self, epoch: i64) -> Result<()> {
        let requeued = self.store.adopt_journal_epoch(epoch, now()).await?;
        self.epoch.store(epoch, Ordering::Relaxed);
        self.seeded.store(false, Ordering::Relaxed);
        tracing::warn!(
            epoch,
            requeued,
            "the status journal has a new epoch; catching it up"
        );
        Ok(())
    }

    /// `(key, version, change)` of the current status of every claimed key that has one.
    async fn current_changes(&self, work: &[KvWork]) -> Result<Vec<(String, i64, Change)>> {
        let of_type = |t: &str| -> Vec<String> {
            work.iter()
                .filter(|w| w.aggregate_type == t)
                .map(|w| w.aggregate_id.clone())
                .collect()
        };
        let mut changes = Vec::with_capacity(work.len());
        for p in self.store.agents_by_ids(&of_type("agent")).await? {
            changes.push((
                vouch_core::kv::passport_key(&p.agent_id),
                p.version,
                Change::Agent {
                    agent_id: p.agent_id.clone(),
                    version: p.version,
                    status: p.status,
                    status_reason: p.status_reason.clone(),
                    suspended_at: p.suspended_at,
                    revoked_at: p.revoked_at,
                    tokens_not_before: p.tokens_not_before,
                    updated_at: p.updated_at,
                },
            ));
        }
        for record in self
            .store
            .delegations_by_ids(&of_type("delegation"))
            .await?
        {
            if let Some(revoked_at) = record.revoked_at {
                changes.push((
                    record.grant.kv_key(),
                    record.version,
                    Change::DelegationRevoked {
                        delegation_id: record.grant.delegation_id.clone(),
                        version: record.version,
                        expires_at: record.grant.expires_at,
                        revoked_at,
                    },
                ));
            }
        }
        for org_id in of_type("org") {
            let Ok(org_id) = vouch_core::OrgId::parse(&org_id) else {
                continue;
            };
            if let Some(change) = self
                .store
                .get_org(&org_id)
                .await?
                .and_then(|org| org.journal_change())
            {
                changes.push((change.key(), change.version(), change));
            }
        }
        for key in self
            .store
            .partner_keys_by_hashes(&of_type(crate::store::PARTNER_KEY_AGGREGATE))
            .await?
        {
            let change = key.journal_change();
            changes.push((change.key(), key.version, change));
        }
        let withdrawn = of_type("signing_key");
        if !withdrawn.is_empty() {
            for key in self.store.list_keys().await? {
                if let (true, Some(at)) = (withdrawn.contains(&key.kid), key.withdrawn_at) {
                    changes.push((
                        vouch_core::journal::key_withdrawal_key(&key.kid),
                        1,
                        Change::KeyWithdrawn {
                            kid: key.kid.clone(),
                            withdrawn_at: at,
                            refuse_until: crate::keys::Keys::refuse_until(at),
                        },
                    ));
                }
            }
        }
        Ok(changes)
    }

    async fn schedule_retry(&self, work: &[KvWork], message: &str) -> Result<()> {
        for item in work {
            let at = Timestamp::from_unix_millis(
                now().unix_millis() + crate::backoff::jittered_ms(200, 60_000, item.attempts),
            );
            self.store
                .retry_journal(&self.owner, &item.key, at, message)
                .await?;
        }
        Ok(())
    }

    async fn report_backlog(&self) {
        if let Ok((behind, oldest)) = self.store.journal_backlog().await {
            metrics::gauge!("vouch_journal_backlog_keys").set(behind as f64);
            let lag = oldest.map_or(0.0, |t| {
                (now().unix_millis() - t.unix_millis()).max(0) as f64 / 1000.0
            });
            metrics::gauge!("vouch_journal_oldest_unpropagated_seconds").set(lag);
        }
    }
}
