//! `GET /v1/events/stream`: the outbox as Server-Sent Events, live. Each event's SSE `id` is
//! its outbox row id; a client that reconnects with `Last-Event-ID` gets exactly what it has
//! not seen (replayed from the database, then live). The first message, `stream.opened`,
//! carries the position the stream starts from as its `id`, so a client that disconnects
//! before any event arrives resumes from there. Wakes on this origin's commits and polls for
//! other replicas'. The credential is checked again every few seconds (a revoked token or a
//! rotated agent key ends the stream), and a stream ends after an hour (clients reconnect).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use vouch_core::OrgId;

use crate::app::AppState;
use crate::auth::{Reader, ReaderKind};
use crate::error::{Error, ErrorBody, Result};
use crate::extract::QueryParams;
use crate::store::{Scope, Store, StreamPos, StreamScope};
use crate::webhooks::events::{checked_stream_types, wanted};

/// Rows read per query.
const BATCH: u32 = 200;
/// How often to look for other replicas' events when no local commit wakes the stream.
const POLL: Duration = Duration::from_secs(1);
/// Comment lines that keep proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream checks that its credential still authenticates.
pub const RECHECK: Duration = Duration::from_secs(5);
/// How long one stream lasts; the client then reconnects (and authenticates again).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3_600);
/// Streams one credential may hold open on one origin at a time.
pub const MAX_STREAMS_PER_CREDENTIAL: usize = 5;
/// Streams all credentials of one org (admin tokens and agent keys) may hold open on one origin
/// at a time, by default (`VOUCH_STREAMS_PER_ORG`): credentials are unlimited, so the
/// per-credential bound alone bounds nothing. The platform admin has only its own bound.
pub const DEFAULT_STREAMS_PER_ORG: u32 = 100;
/// The type of the first message of every stream.
pub const OPENED: &str = "stream.opened";

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event types (a status change also matches its typed name,
    /// e.g. `agent.suspended`); absent: every event. An unknown type is `400`.
    pub types: Option<String>,
    /// Resume after this event id, like the `Last-Event-ID` header (which wins); `0` replays
    /// from the beginning. Absent: only events from now on.
    pub last_event_id: Option<String>,
}

/// The live streams open on this origin, counted per credential and per org.
#[derive(Debug)]
pub struct StreamSlots {
    per_org: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    credentials: HashMap<String, usize>,
    orgs: HashMap<OrgId, usize>,
}

impl Default for StreamSlots {
    fn default() -> Self {
        StreamSlots::new(DEFAULT_STREAMS_PER_ORG)
    }
}

/// Which bound refused a stream.
enum Full {
    Credential,
    Org(usize),
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl StreamSlots {
    /// At most `per_org` streams per org (and [`MAX_STREAMS_PER_CREDENTIAL`] per credential).
    pub fn new(per_org: u32) -> StreamSlots {
        StreamSlots {
            per_org: usize::try_from(per_org).unwrap_or(usize::MAX),
            open: Mutex::default(),
        }
    }

    /// A slot for one more stream of credential `key` in `org`, unless either is full.
    fn take(self: &Arc<Self>, key: String, org: Option<OrgId>) -> Result<Slot, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.credentials.get(&key).copied().unwrap_or(0) >= MAX_STREAMS_PER_CREDENTIAL {
            return Err(Full::Credential);
        }
        if let Some(org) = &org {
            if open.orgs.get(org).copied().unwrap_or(0) >= self.per_org {
                return Err(Full::Org(self.per_org));
            }
            *open.orgs.entry(org.clone()).or_insert(0) += 1;
        }
        *open.credentials.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot {
            slots: self.clone(),
            key,
            org,
        })
    }
}

/// One open stream's place in [`StreamSlots`], given back when the stream ends.
struct Slot {
    slots: Arc<StreamSlots>,
    key: String,
    org: Option<OrgId>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        decrement(&mut open.credentials, &self.key);
        if let Some(org) = &self.org {
            decrement(&mut open.orgs, org);
        }
    }
}

/// Live events (Server-Sent Events): the platform admin sees every event, an org token its org's
/// (and signing-key rotations), an agent's API key the events about that agent.
#[utoipa::path(get, path = "/v1/events/stream", tag = "webhooks", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "the `id` of the last event received")),
    responses((status = 200, description = "`text/event-stream`: first `stream.opened` (its `id` is where the stream starts), then for each event `id` (outbox id), `event` (type), `data` (the envelope)"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("admin_token" = []), ("agent_key" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response> {
    let scope = match &reader.kind {
        ReaderKind::Admin(caller) => match caller.scope() {
            Scope::All => StreamScope::All,
            Scope::Org(org) => StreamScope::Org(org),
        },
        ReaderKind::Agent { agent_id, .. } => StreamScope::Agent(agent_id.clone()),
    };
    let types = checked_stream_types(query.types.as_deref())?;
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("invalid").to_owned())
        .or(query.last_event_id);
    let (start, seen, resume_id) = match resume {
        None => {
            let head = state.store.stream_head(&scope).await?;
            (head.pos, head.seen, head.resume_id)
        }
        Some(raw) => {
            let (pos, id) = resume_from(state.store.as_ref(), &scope, raw.trim()).await?;
            (pos, HashSet::new(), id)
        }
    };
    let slot = state
        .streams
        .take(reader.credential_key(), reader.org().cloned())
        .map_err(|full| Error::Rejected {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_streams",
            message: match full {
                Full::Credential => format!(
                    "this credential already holds {MAX_STREAMS_PER_CREDENTIAL} event streams open; close one first"
                ),
                Full::Org(limit) => format!(
                    "this organization's credentials already hold {limit} event streams open on this origin; close one first"
                ),
            },
            field: None,
        })?;
    let opened = Event::default()
        .id(resume_id.to_string())
        .event(OPENED)
        .data(json!({ "type": OPENED, "last_event_id": resume_id.to_string() }).to_string());
    let cursor = Cursor {
        store: state.store.clone(),
        scope,
        types,
        pos: start,
        seen,
        ready: VecDeque::from([opened]),
        commits: state.store.signals().events(),
        stopping: state.stopping.subscribe(),
        started: Instant::now(),
        checked: Instant::now(),
        reader,
        state,
        _slot: slot,
    };
    let sse = Sse::new(stream::unfold(cursor, next_event))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    // Proxies such as nginx would otherwise buffer the stream.
    let no_buffering = (
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(([no_buffering], sse).into_response())
}

/// The stream position after event `raw` (an outbox id that this caller may see), and the id.
/// An id that does not exist and one the caller may not see are refused alike.
async fn resume_from(
    store: &dyn Store,
    scope: &StreamScope,
    raw: &str,
) -> Result<(StreamPos, i64)> {
    let bad = || {
        Error::field(
            "Last-Event-ID",
            format!("`{raw}` is not an event id this stream sent"),
        )
    };
    let id: i64 = raw.parse().map_err(|_| bad())?;
    if id == 0 {
        return Ok((StreamPos { tx: 0, id: 0 }, 0));
    }
    let pos = store.stream_pos_of(scope, id).await?.ok_or_else(bad)?;
    Ok((pos, id))
}

struct Cursor {
    store: Arc<dyn Store>,
    scope: StreamScope,
    types: Vec<String>,
    pos: StreamPos,
    /// Rows past the start that had committed before the stream began: not "from now on".
    seen: HashSet<i64>,
    ready: VecDeque<Event>,
    commits: tokio::sync::watch::Receiver<u64>,
    stopping: tokio::sync::watch::Receiver<bool>,
    started: Instant,
    /// When the credential was last found good.
    checked: Instant,
    reader: Reader,
    state: AppState,
    _slot: Slot,
}

/// The next event for the client; ends the stream when the origin shuts down, the credential
/// no longer authenticates, the stream has lasted [`MAX_LIFETIME`] (or the database fails:
/// the client reconnects with its `Last-Event-ID` and loses nothing).
async fn next_event(mut c: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(event) = c.ready.pop_front() {
            return Some((Ok(event), c));
        }
        if *c.stopping.borrow() || c.started.elapsed() >= MAX_LIFETIME {
            return None;
        }
        if c.checked.elapsed() >= RECHECK {
            match c.reader.still_valid(&c.state).await {
                Ok(true) => c.checked = Instant::now(),
                Ok(false) => {
                    tracing::info!("event stream closed: its credential no longer authenticates");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream could not check its credential; closing it");
                    return None;
                }
            }
        }
        // Mark the commits seen before reading, so one that lands meanwhile wakes us again.
        c.commits.borrow_and_update();
        let batch = match c.store.stream_after(&c.scope, c.pos, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "event stream read failed; closing it");
                return None;
            }
        };
        let full = batch.rows.len() == BATCH as usize;
        for row in batch.rows {
            c.pos = row.pos;
            if c.seen.remove(&row.pos.id) {
                continue;
            }
            if wanted(&c.types, &row.event_type, &row.payload) {
                c.ready.push_back(
                    Event::default()
                        .id(row.pos.id.to_string())
                        .event(row.event_type)
                        .data(row.payload),
                );
            }
        }
        if !full {
            // Everything up to the frontier was read: an idle stream does not scan it again.
            c.pos = c.pos.max(batch.frontier);
        }
        if !c.ready.is_empty() || full {
            continue;
        }
        tokio::select! {
            changed = c.commits.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(POLL).await;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
            stopping = c.stopping.changed() => {
                if stopping.is_err() {
                    return None;
                }
            }
        }
    }
}
