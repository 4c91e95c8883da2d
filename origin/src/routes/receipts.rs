//! `GET /v1/agents/{agent_id}/receipts` (SPEC §12): the agent's committed decisions, each the
//! signed decision as the edge answered it, newest first. The edge's receipts reach the origin
//! through [`crate::receipts::ReceiptCollector`] within seconds of the commit.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::QueryParams;
use crate::routes::agents::parse_agent_id;
use crate::routes::{List, Pagination};

/// A receipt: a committed decision, signed, exactly as the edge answered it (a `POST /verify`
/// decision or an OAP one; SPEC §12). Its schema names what every signed decision has.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Receipt(Value);

impl utoipa::PartialSchema for Receipt {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "A signed decision as the edge answered it: check `signature` against the edge's `/.well-known/oap/jwks.json`.",
            ))
            .property("decision_id", text("`dec_…`"))
            .property(
                "allow",
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Boolean)),
            )
            .property("created_at", text("RFC 3339"))
            .property("kid", text("The decision key that signed (`oap:registry:…`)"))
            .property(
                "signature",
                text("`ed25519:` + base64 of an Ed25519 signature over the RFC 8785 form without `signature`"),
            )
            .required("decision_id")
            .required("allow")
            .required("created_at")
            .required("kid")
            .required("signature")
            .into()
    }
}

impl utoipa::ToSchema for Receipt {}

/// The agent's receipts: its committed decisions, signed (verify one offline with `vouch
/// receipts verify FILE` against the edge's `/.well-known/oap/jwks.json`).
#[utoipa::path(get, path = "/v1/agents/{agent_id}/receipts", tag = "agents",
    params(("agent_id" = String, Path, description = "`ap_…`"), Pagination),
    responses((status = 200, body = List<Receipt>, description = "Signed decisions (SPEC §12), newest first"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    QueryParams(pagination): QueryParams<Pagination>,
) -> Result<Json<List<Receipt>>> {
    let agent_id = parse_agent_id(&agent_id)?;
    let page = pagination.request()?;
    // Another org's agent is as absent as one that never existed.
    state
        .store
        .get_agent(&caller.scope(), &agent_id)
        .await?
        .ok_or_else(Error::agent_not_found)?;
    let receipts = state.store.list_receipts(&agent_id, &page).await?;
    let list: List<_> = receipts.into();
    Ok(Json(list.map(|row| {
        Receipt(serde_json::from_str(&row.body).unwrap_or(Value::String(row.body)))
    })))
}
