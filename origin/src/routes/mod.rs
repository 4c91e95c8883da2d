//! HTTP handlers: parse → authorize → core → store, errors mapped once in `error.rs`.

pub mod agent_events;
pub mod agents;
pub mod audit;
pub mod delegations;
pub mod events;
pub mod oap;
pub mod oauth;
pub mod ops;
pub mod orgs;
pub mod partners;
pub mod receipts;
pub mod status_lists;
pub mod webhooks;
pub mod wellknown;

use serde::{Deserialize, Serialize};
use vouch_core::{OrgId, Timestamp};

use crate::error::Result;
use crate::extract::{decode_cursor, encode_cursor};
use crate::store::{Page, PageRequest};

/// The longest `?wait=propagated` holds a response.
pub const PROPAGATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `?wait=propagated` (SPEC §10): answer once the status journal has stored the change.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// `propagated`: hold the answer (up to 10 s) until the edge's status journal has stored the
    /// change, and say when in `propagated_at`; `202` with `propagated_at: null` if it has not.
    pub wait: Option<String>,
}

impl WaitQuery {
    /// Whether the caller asked to wait; an unknown value is a `400`, and so is waiting on an
    /// origin without a status journal.
    pub fn wants_propagation(&self, state: &crate::app::AppState) -> Result<bool> {
        match self.wait.as_deref() {
            None => Ok(false),
            Some("propagated") if state.journal => Ok(true),
            Some("propagated") => Err(crate::error::Error::field(
                "wait",
                "this origin has no status journal to wait for (set VOUCH_EDGE_URL and VOUCH_EDGE_SECRET)",
            )),
            Some(other) => Err(crate::error::Error::field(
                "wait",
                format!("`wait` must be `propagated`, not `{other}`"),
            )),
        }
    }
}

/// Waits, up to [`PROPAGATION_WAIT`], until the status journal has stored `version` (or newer)
/// of `key`; when it did, when.
pub async fn wait_propagated(
    state: &crate::app::AppState,
    key: &str,
    version: i64,
) -> Result<Option<Timestamp>> {
    let deadline = tokio::time::Instant::now() + PROPAGATION_WAIT;
    loop {
        // Listen before looking, so a store between the look and the wait is not missed;
        // the short poll covers appends made by another replica.
        let stored = state.store.signals().journal_stored.notified();
        tokio::pin!(stored);
        stored.as_mut().enable();
        if let Some(at) = state.store.journal_stored_at(key, version).await? {
            return Ok(Some(at));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = (deadline - now).min(std::time::Duration::from_millis(50));
        let _ = tokio::time::timeout(nap, stored).await;
    }
}

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// `?limit=` and `?cursor=` of every list endpoint.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// 1 to 500; 50 when absent.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Pagination {
    pub fn request(&self) -> Result<PageRequest> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(crate::error::Error::field(
                "limit",
                format!("`limit` must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// `{ "data": [...], "next_cursor": "…" | null }`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// The same page with each item turned into something else.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> List<U> {
        List {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// The org a new record goes into: an org token's own (naming another org is
/// `404 org_not_found`); the platform admin must name one.
pub fn target_org(caller: &crate::auth::Caller, named: Option<OrgId>) -> Result<OrgId> {
    match (&caller.org_id, named) {
        (Some(own), None) => Ok(own.clone()),
        (Some(own), Some(named)) if *own == named => Ok(named),
        (Some(_), Some(_)) => Err(crate::error::Error::org_not_found()),
        (None, Some(named)) => Ok(named),
        (None, None) => Err(crate::error::Error::field(
            "org_id",
            "`org_id` is required with the platform admin token",
        )),
    }
}

impl<T> From<Page<T>> for List<T> {
    fn from(page: Page<T>) -> Self {
        List {
            data: page.data,
            next_cursor: page.next_after.as_deref().map(encode_cursor),
        }
    }
}
