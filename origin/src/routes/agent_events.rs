//! `POST /v1/agents/{id}/events` (SPEC §20): an agent records its own signals — a deploy
//! finished, a model swapped, a human took over — in its org's audit chain, its webhooks and the
//! live event stream, with its own API key or access token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use vouch_core::agent_event::{self, MAX_BODY_BYTES};
use vouch_core::{AgentId, EventId, EventType, OrgId, Timestamp};

use crate::app::AppState;
use crate::auth::AgentCaller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::SmallJsonBody;
use crate::routes::agents::parse_agent_id;
use crate::store::ChangeEvent;

/// What an agent reports.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentEvent {
    /// `agent.custom.<name>`: dot-separated segments of `a-z`, `0-9`, `_`, `-` (at most 64
    /// characters after the prefix).
    #[serde(rename = "type")]
    #[schema(
        pattern = r"^agent\.custom\.[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
        example = "agent.custom.deploy_finished"
    )]
    pub event_type: String,
    /// Any JSON object (absent: `{}`); the whole body is at most 8 KiB.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
}

/// The event as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentEventRecorded {
    pub event_id: EventId,
    /// `agent.custom.<name>`, as sent.
    #[serde(rename = "type")]
    pub event_type: String,
    pub agent_id: AgentId,
    pub org_id: OrgId,
    pub created_at: Timestamp,
    pub data: Map<String, Value>,
}

/// An agent records one of its own events (authenticated by its own API key or access token;
/// an admin token is `403`, another agent's credential `404`).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/events", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`")),
    request_body(content = NewAgentEvent, content_type = "application/json"),
    responses((status = 201, body = AgentEventRecorded), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody)),
    security(("agent_key" = []), ("agent_token" = [])))]
pub async fn emit(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    Path(agent_id): Path<String>,
    SmallJsonBody(body): SmallJsonBody<NewAgentEvent, MAX_BODY_BYTES>,
) -> Result<(StatusCode, Json<AgentEventRecorded>)> {
    let agent_id = parse_agent_id(&agent_id)?;
    // Another agent's credential learns nothing about this one.
    if agent.agent_id != agent_id {
        return Err(Error::agent_not_found());
    }
    agent_event::check_type(&body.event_type)?;
    let data = body.data.unwrap_or_default();
    let at = now();
    let mut event = ChangeEvent::new(
        agent_id.as_str(),
        Some(&agent.org_id),
        EventType::AgentCustom,
        "agent_event",
        agent_id.as_str(),
        agent.version,
        json!({ "agent_id": agent_id, "type": body.event_type, "data": data }),
        at,
    );
    event.subtype = Some(body.event_type.clone());
    state.store.record_agent_event(&agent_id, &event).await?;
    Ok((
        StatusCode::CREATED,
        Json(AgentEventRecorded {
            event_id: event.event_id,
            event_type: body.event_type,
            agent_id,
            org_id: agent.org_id,
            created_at: at,
            data,
        }),
    ))
}
