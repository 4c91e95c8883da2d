//! The status list builder (SPEC §16): keeps one signed `statuslist+jwt` token per list of
//! 65,536 places in the documents (`status:{list_id}`), which the KV publisher carries to the
//! edge like `jwks`. The edge serves them at `GET /status/{list_id}`.
//!
//! **When a list is built.** Every status change (and every registration) writes a row to
//! `status_list_changes` in its own transaction. A list with such rows is built again as soon as
//! it was last built a second ago or more (KV takes one write per key per second); every list is
//! built again at least every `ttl / 2` (at least every second), so a copy fetched from KV is
//! fresh by its `iat`. A list is leased to one builder at a time, so several origins take turns
//! and a newer token is never overwritten by an older one.
//!
//! **What a token says.** `sub` is the list's own URI (`{VOUCH_EDGE_URL}/status/{list_id}`),
//! `iat` when it was built, `exp` [`LIFETIME_SECONDS`] later (a list the origin stopped
//! refreshing is refused by every verifier then: fail closed), `ttl` the configured seconds
//! (≤ 15, the deployed propagation bound), and `status_list` the 2-bit list. Signed with the
//! token key (ES256, the key of the access tokens, in the same JWKS).
//!
//! **What bounds it.** The lists travel through KV only, not the status journal: a change is in
//! its list's token within about a second of its commit, in KV within the publisher's lag, and
//! at every edge location once KV has spread it (up to ≈ 60 s deployed, plus the edge's 30 s KV
//! cache; about a second locally). docs/api.md ("Status lists") says so to verifiers.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use vouch_core::status_list::{self, ListClaims, ListDocument, ListStatus, StatusList};
use vouch_core::Timestamp;

use crate::clock::now;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::store::Store;

/// How long a status list token is valid after it was built.
pub const LIFETIME_SECONDS: i64 = 300;
/// The shortest time between two builds of one list (KV takes one write per key per second).
const MIN_INTERVAL_MS: i64 = 1_000;
/// How long a builder holds the lists it claimed; far longer than a build takes.
const LEASE_MS: i64 = 30_000;
/// Lists per pass.
const BATCH: u32 = 16;
/// How often to look for work when no commit wakes the builder.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// After a wake-up, how long to let other commits of the same moment gather.
const GATHER: Duration = Duration::from_millis(20);

/// Where the lists live and how long verifiers may keep them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusListSettings {
    /// The base of the lists' URIs: the edge (`VOUCH_EDGE_URL`), else the issuer.
    pub base_url: String,
    /// The `ttl` of every list token, in seconds (1..=15).
    pub ttl_seconds: u64,
}

impl StatusListSettings {
    /// The default `ttl`.
    pub const DEFAULT_TTL_SECONDS: u64 = 10;

    pub fn new(base_url: impl Into<String>) -> StatusListSettings {
        StatusListSettings {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            ttl_seconds: Self::DEFAULT_TTL_SECONDS,
        }
    }

    /// The `status` claim of an access token for the passport at `place`.
    pub fn claim(&self, place: u64) -> status_list::StatusClaim {
        status_list::claim(&self.base_url, place)
    }

    /// How long a built list may stand before it is built again: half its `ttl`, at least 1 s.
    pub fn refresh_ms(&self) -> i64 {
        let ttl = self.ttl_seconds.clamp(1, status_list::MAX_TTL_SECONDS) as i64;
        (ttl * 1_000 / 2).max(MIN_INTERVAL_MS)
    }
}

pub struct StatusListBuilder {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    owner: String,
}

impl StatusListBuilder {
    pub fn new(store: Arc<dyn Store>, keys: Arc<Keys>) -> StatusListBuilder {
        StatusListBuilder {
            store,
            keys,
            owner: format!("status-lists-{}", Uuid::now_v7().simple()),
        }
    }

    /// Builds until the origin stops: a pass after every commit, and every [`IDLE_POLL`].
    pub async fn run(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "status list pass failed");
            }
            if *stopping.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::timeout(IDLE_POLL, self.store.signals().status_lists.notified()) => {}
                _ = stopping.changed() => {}
            }
            tokio::time::sleep(GATHER).await;
        }
    }

    /// Builds every list that is due now; returns how many it stored.
    pub async fn pass(&self) -> Result<usize> {
        let at = now();
        let settings = &self.keys.settings.status_lists;
        let ms = at.unix_millis();
        let lists = self
            .store
            .claim_status_lists(
                &self.owner,
                at,
                LEASE_MS,
                Timestamp::from_unix_millis(ms - settings.refresh_ms()),
                Timestamp::from_unix_millis(ms - MIN_INTERVAL_MS),
                BATCH,
            )
            .await?;
        let mut stored = 0;
        for list_id in lists {
            match self.build(list_id).await {
                Ok(true) => stored += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(list_id, error = %e, "status list not built; will retry");
                    self.store.release_status_list(&self.owner, list_id).await?;
                }
            }
        }
        if stored > 0 {
            metrics::counter!("vouch_status_lists_built_total").increment(stored as u64);
        }
        Ok(stored)
    }

    /// Builds, signs and stores one list; `false` if another builder took it meanwhile.
    async fn build(&self, list_id: u64) -> Result<bool> {
        let snapshot = self.store.status_list_snapshot(list_id).await?;
        let at = now();
        let (kid, key) = self.keys.signer().await?;
        let document = list_document(
            &self.keys.settings.issuer,
            &self.keys.settings.status_lists,
            list_id,
            &snapshot.statuses,
            at,
            |claims| claims.sign(&key, &kid),
        )?;
        let body = serde_json::to_string(&document).map_err(Error::internal)?;
        self.store
            .store_status_list(&self.owner, list_id, &body, &snapshot.change_ids, at)
            .await
    }
}

/// The document of list `list_id` holding `statuses` (`(place, status)`), built at `at` and
/// signed by `sign`.
pub fn list_document(
    issuer: &str,
    settings: &StatusListSettings,
    list_id: u64,
    statuses: &[(u64, vouch_core::Status)],
    at: Timestamp,
    sign: impl FnOnce(&ListClaims) -> String,
) -> Result<ListDocument> {
    let mut list = StatusList::registry();
    for (place, status) in statuses {
        let (list_of_place, idx) = status_list::locate(*place);
        if list_of_place != list_id {
            return Err(Error::internal(anyhow::anyhow!(
                "place {place} is not in list {list_id}"
            )));
        }
        list.set(idx, ListStatus::from(*status).value())
            .map_err(Error::internal)?;
    }
    let ttl = settings.ttl_seconds.clamp(1, status_list::MAX_TTL_SECONDS);
    let iat = at.unix_seconds();
    let claims = ListClaims {
        sub: status_list::list_uri(&settings.base_url, list_id),
        iss: Some(issuer.trim_end_matches('/').to_owned()),
        iat,
        exp: Some(iat + LIFETIME_SECONDS),
        ttl: Some(ttl),
        status_list: list.encode(),
    };
    Ok(ListDocument {
        token: sign(&claims),
        ttl,
    })
}
