//! `GET /v1/events/stream`: the outbox as Server-Sent Events, live. Each event's SSE `id` is
//! its outbox row id; a client that reconnects with `Last-Event-ID` gets exactly what it has
//! not seen (replayed from the database, then live). Wakes on this origin's commits and polls
//! for other replicas'.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Reader;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::QueryParams;
use crate::store::{Scope, Store, StreamPos, StreamScope};
use crate::webhooks::events::wanted;

/// Rows read per query.
const BATCH: u32 = 200;
/// How often to look for other replicas' events when no local commit wakes the stream.
const POLL: Duration = Duration::from_secs(1);
/// Comment lines that keep proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event types (a status change also matches its typed name,
    /// e.g. `agent.suspended`); absent: every event.
    pub types: Option<String>,
    /// Resume after this event id, like the `Last-Event-ID` header (which wins); `0` replays
    /// from the beginning. Absent: only events from now on.
    pub last_event_id: Option<String>,
}

/// Live events (Server-Sent Events): the platform admin sees every event, an org token its org's
/// (and signing-key rotations), an agent's API key the events about that agent.
#[utoipa::path(get, path = "/v1/events/stream", tag = "webhooks", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "the `id` of the last event received")),
    responses((status = 200, description = "`text/event-stream`: `id` (outbox id), `event` (type), `data` (the envelope)"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = []), ("agent_key" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response> {
    let scope = match reader {
        Reader::Admin(caller) => match caller.scope() {
            Scope::All => StreamScope::All,
            Scope::Org(org) => StreamScope::Org(org),
        },
        Reader::Agent(agent_id) => StreamScope::Agent(agent_id),
    };
    let types: Vec<String> = query
        .types
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("invalid").to_owned())
        .or(query.last_event_id);
    let (start, seen) = match resume {
        None => state.store.stream_head().await?,
        Some(raw) => (
            resume_from(state.store.as_ref(), raw.trim()).await?,
            Vec::new(),
        ),
    };
    let cursor = Cursor {
        store: state.store.clone(),
        scope,
        types,
        pos: start,
        seen,
        ready: VecDeque::new(),
        commits: state.store.signals().events(),
        stopping: state.stopping.subscribe(),
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

/// The stream position after event `raw` (an outbox id the stream sent).
async fn resume_from(store: &dyn Store, raw: &str) -> Result<StreamPos> {
    let bad = || {
        Error::field(
            "Last-Event-ID",
            format!("`{raw}` is not an event id this stream sent"),
        )
    };
    let id: i64 = raw.parse().map_err(|_| bad())?;
    if id == 0 {
        return Ok(StreamPos { tx: 0, id: 0 });
    }
    store.stream_pos_of(id).await?.ok_or_else(bad)
}

struct Cursor {
    store: Arc<dyn Store>,
    scope: StreamScope,
    types: Vec<String>,
    pos: StreamPos,
    /// Rows past the start that had committed before the stream began: not "from now on".
    seen: Vec<i64>,
    ready: VecDeque<Event>,
    commits: tokio::sync::watch::Receiver<u64>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// The next event for the client; ends the stream when the origin shuts down (or the database
/// fails: the client reconnects with its `Last-Event-ID` and loses nothing).
async fn next_event(mut c: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(event) = c.ready.pop_front() {
            return Some((Ok(event), c));
        }
        if *c.stopping.borrow() {
            return None;
        }
        // Mark the commits seen before reading, so one that lands meanwhile wakes us again.
        c.commits.borrow_and_update();
        let rows = match c.store.stream_after(&c.scope, c.pos, BATCH).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "event stream read failed; closing it");
                return None;
            }
        };
        let full = rows.len() == BATCH as usize;
        for row in rows {
            c.pos = row.pos;
            if c.seen.contains(&row.pos.id) {
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
