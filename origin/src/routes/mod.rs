//! HTTP handlers: parse → authorize → core → store, errors mapped once in `error.rs`.

pub mod agents;
pub mod audit;
pub mod delegations;
pub mod events;
pub mod oauth;
pub mod ops;
pub mod orgs;
pub mod webhooks;
pub mod wellknown;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use vouch_core::{EventId, OrgId, Timestamp};

use crate::error::Result;
use crate::extract::{decode_cursor, encode_cursor};
use crate::store::{ChangeEvent, Page, PageRequest};

/// The current time, to the millisecond.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    Timestamp::from_unix_millis(ms)
}

/// A change event stamped with a fresh id.
#[allow(clippy::too_many_arguments)]
pub fn change_event(
    actor: &str,
    org_id: Option<&OrgId>,
    event_type: &str,
    target_type: &'static str,
    target_id: &str,
    version: i64,
    data: Value,
    at: Timestamp,
) -> ChangeEvent {
    ChangeEvent {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        org_id: org_id.cloned(),
        actor: actor.to_owned(),
        event_type: event_type.to_owned(),
        target_type,
        target_id: target_id.to_owned(),
        version,
        data,
        created_at: at,
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
