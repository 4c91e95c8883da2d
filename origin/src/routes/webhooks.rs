//! Webhook subscriptions (SPEC §7): create (the secret shown once), list, read, update,
//! delete, rotate the secret, and the delivery log with manual redelivery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;
use vouch_core::ids::WebhookId;
use vouch_core::{EventType, OrgId, Timestamp};

use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::now;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::{from_value, JsonBody, MergePatchBody, OptionalJsonBody, QueryParams};
use crate::routes::{target_org, List, Pagination};
use crate::store::{ChangeEvent, Delivery, Redelivery, WebhookRecord};
use crate::webhooks::{self, events, guard};

const MAX_URL: usize = 2_048;
const MAX_DESCRIPTION: usize = 500;
/// The longest grace period of a rotated secret.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3_600;
const DEFAULT_GRACE_SECONDS: i64 = 24 * 3_600;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST events: `https://…` (plain http and private addresses only when the
    /// operator allows them).
    pub url: String,
    /// Event types to receive (`*`: all, the default). A status change also matches its typed
    /// name (`agent.suspended`, `agent.activated`, `agent.revoked`).
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Required with the platform admin token; implied by an org token.
    pub org_id: Option<OrgId>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` re-enables a disabled subscription (what waited is sent then); `false` pauses it.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing beside the new one: 0 to 604800 seconds
    /// (default 86400).
    pub grace_period_seconds: Option<i64>,
}

/// A subscription as the API shows it (never its secret).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String)]
    pub webhook_id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    /// `enabled` or `disabled`.
    pub status: &'static str,
    /// Why it was disabled: `retries_exhausted` (by the sender) or `disabled_by_admin`.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookView {
    /// The view as events carry it: the URL without its path and query.
    fn redacted(&self) -> WebhookView {
        WebhookView {
            url: guard::redacted(&self.url),
            ..self.clone()
        }
    }
}

impl From<&WebhookRecord> for WebhookView {
    fn from(w: &WebhookRecord) -> Self {
        WebhookView {
            webhook_id: w.webhook_id.clone(),
            org_id: w.org_id.clone(),
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.events.clone(),
            status: if w.enabled { "enabled" } else { "disabled" },
            disabled_reason: w.disabled_reason.clone(),
            previous_secret_expires_at: w.previous_until.filter(|t| *t > now()),
            last_success_at: w.last_success_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new subscription and its signing secret, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify signatures with it (Standard Webhooks); shown only now.
    pub secret: String,
}

/// A rotated secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    #[schema(value_type = String)]
    pub webhook_id: WebhookId,
    /// The new `whsec_…`, shown only now.
    pub secret: String,
    /// Until then every delivery carries a signature with each secret.
    pub previous_secret_expires_at: Option<Timestamp>,
}

// The plaintext secret never reaches a log through `Debug`.
impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .field("secret", &"whsec_[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for RotatedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedSecret")
            .field("webhook_id", &self.webhook_id)
            .field("secret", &"whsec_[redacted]")
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .finish()
    }
}

fn parse_id(raw: &str) -> Result<WebhookId> {
    WebhookId::parse(raw).map_err(|e| Error::field("webhook_id", e.to_string()))
}

fn invalid_url(message: String) -> Error {
    Error::Rejected {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_webhook_url",
        message,
        field: Some("url".into()),
    }
}

/// The URL, checked against the operator's address policy (and resolved once, now).
async fn checked_url(state: &AppState, raw: &str) -> Result<String> {
    if raw.len() > MAX_URL {
        return Err(invalid_url(format!(
            "the URL is longer than {MAX_URL} characters"
        )));
    }
    let allow = state.webhooks.allow_private;
    let url = guard::check_url(raw, allow).map_err(invalid_url)?;
    guard::check_resolved(&url, allow, std::time::Duration::from_secs(2))
        .await
        .map_err(invalid_url)?;
    Ok(url.to_string())
}

fn checked_description(description: Option<String>) -> Result<Option<String>> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(Error::field(
            "description",
            format!("`description` is longer than {MAX_DESCRIPTION} characters"),
        )),
        other => Ok(other),
    }
}

/// The subscription if the caller may see it; `404 webhook_not_found` otherwise.
async fn visible(state: &AppState, caller: &Caller, raw_id: &str) -> Result<WebhookRecord> {
    let id = parse_id(raw_id)?;
    state
        .store
        .get_webhook(&caller.scope(), &id)
        .await?
        .ok_or_else(webhooks::not_found)
}

fn sealed(state: &AppState, secret: &str, id: &WebhookId) -> Result<String> {
    webhooks::seal_secret(state.keys.master(), secret, id.as_str()).map_err(Error::internal)
}

/// Subscribe to events.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>)> {
    caller.require_writer()?;
    let org_id = target_org(&caller, body.org_id)?;
    let events = events::checked_filter(body.events)?;
    let description = checked_description(body.description)?.unwrap_or_default();
    let url = checked_url(&state, &body.url).await?;
    let at = now();
    let webhook_id = WebhookId::from_uuid(Uuid::now_v7());
    let secret = webhooks::new_secret();
    let record = WebhookRecord {
        secret: sealed(&state, &secret, &webhook_id)?,
        webhook_id,
        org_id,
        url,
        description,
        events,
        enabled: true,
        disabled_reason: None,
        previous_secret: None,
        previous_until: None,
        created_at: at,
        updated_at: at,
        last_success_at: None,
    };
    let view = WebhookView::from(&record);
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&record.org_id),
        EventType::WebhookCreated,
        "webhook",
        record.webhook_id.as_str(),
        0,
        json!({ "webhook": view.redacted() }),
        at,
    );
    // An org that does not exist fails the insert's foreign key: `404 org_not_found`.
    state.store.create_webhook(&record, &event).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: view,
            secret,
        }),
    ))
}

/// List subscriptions, newest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(Pagination),
    responses((status = 200, body = List<WebhookView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(page): QueryParams<Pagination>,
) -> Result<Json<List<WebhookView>>> {
    let page = state
        .store
        .list_webhooks(&caller.scope(), &page.request()?)
        .await?;
    Ok(Json(List::from(page).map(|w| WebhookView::from(&w))))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`wh_…`")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<Json<WebhookView>> {
    let webhook = visible(&state, &caller, &webhook_id).await?;
    Ok(Json(WebhookView::from(&webhook)))
}

/// Change a subscription's URL, events or description, or enable/disable it.
#[utoipa::path(patch, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    request_body(content = WebhookUpdate, content_type = "application/merge-patch+json"),
    params(("webhook_id" = String, Path, description = "`wh_…`")),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
    MergePatchBody(body): MergePatchBody,
) -> Result<Json<WebhookView>> {
    let before = visible(&state, &caller, &webhook_id).await?;
    caller.require_writer()?;
    let body: WebhookUpdate = from_value(body)?;
    // Checked (the URL resolved) before the transaction; applied to the row as it is then.
    let url = match &body.url {
        Some(url) => Some(checked_url(&state, url).await?),
        None => None,
    };
    let events = match body.events {
        Some(events) => Some(events::checked_filter(Some(events))?),
        None => None,
    };
    let description = checked_description(body.description)?;
    let enabled = body.enabled;
    let actor = caller.actor.clone();
    let after = state
        .store
        .modify_webhook(
            &caller.scope(),
            &before.webhook_id,
            Box::new(move |current| {
                let mut after = current.clone();
                if let Some(url) = url {
                    after.url = url;
                }
                if let Some(events) = events {
                    after.events = events;
                }
                if let Some(description) = description {
                    after.description = description;
                }
                if let Some(enabled) = enabled {
                    if enabled != current.enabled {
                        after.enabled = enabled;
                        after.disabled_reason = (!enabled).then(|| "disabled_by_admin".to_owned());
                    }
                }
                let changes = changes(current, &after);
                if changes.is_empty() {
                    return Ok(None);
                }
                after.updated_at = now();
                let event = ChangeEvent::new(
                    &actor,
                    Some(&after.org_id),
                    EventType::WebhookUpdated,
                    "webhook",
                    after.webhook_id.as_str(),
                    0,
                    json!({ "webhook_id": after.webhook_id, "changes": Value::Object(changes) }),
                    after.updated_at,
                );
                Ok(Some((after, event)))
            }),
        )
        .await?;
    Ok(Json(WebhookView::from(&after)))
}

/// `{ field: { old, new } }` of what differs between two versions of a subscription (URLs
/// redacted: events and the audit log never hold a URL's path or query).
fn changes(before: &WebhookRecord, after: &WebhookRecord) -> Map<String, Value> {
    let (old, new) = (
        json!(WebhookView::from(before)),
        json!(WebhookView::from(after)),
    );
    let mut changes = Map::new();
    if old["url"] != new["url"] {
        changes.insert(
            "url".into(),
            json!({ "old": guard::redacted(&before.url), "new": guard::redacted(&after.url) }),
        );
    }
    for field in ["events", "description", "status"] {
        if old[field] != new[field] {
            changes.insert(
                field.into(),
                json!({ "old": old[field], "new": new[field] }),
            );
        }
    }
    changes
}

/// Delete a subscription: nothing more is sent to it, and its delivery log goes with it.
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`wh_…`")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<StatusCode> {
    let webhook = visible(&state, &caller, &webhook_id).await?;
    caller.require_writer()?;
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&webhook.org_id),
        EventType::WebhookDeleted,
        "webhook",
        webhook.webhook_id.as_str(),
        0,
        json!({ "webhook_id": webhook.webhook_id, "url": guard::redacted(&webhook.url) }),
        now(),
    );
    if state
        .store
        .delete_webhook(&caller.scope(), &webhook.webhook_id, &event)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(webhooks::not_found())
    }
}

/// Rotate the signing secret; the previous one keeps signing beside it for a grace period.
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/secret/rotate", tag = "webhooks",
    request_body(content = Option<RotateSecret>),
    params(("webhook_id" = String, Path, description = "`wh_…`")),
    responses((status = 200, body = RotatedSecret), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RotateSecret>,
) -> Result<Json<RotatedSecret>> {
    let webhook = visible(&state, &caller, &webhook_id).await?;
    caller.require_writer()?;
    let grace = body.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(Error::field(
            "grace_period_seconds",
            format!("`grace_period_seconds` must be between 0 and {MAX_GRACE_SECONDS}"),
        ));
    }
    let at = now();
    let secret = webhooks::new_secret();
    let until = (grace > 0).then(|| Timestamp::from_unix_millis(at.unix_millis() + grace * 1_000));
    let sealed_secret = sealed(&state, &secret, &webhook.webhook_id)?;
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&webhook.org_id),
        EventType::WebhookSecretRotated,
        "webhook",
        webhook.webhook_id.as_str(),
        0,
        json!({ "webhook_id": webhook.webhook_id, "previous_secret_expires_at": until }),
        at,
    );
    // The secret columns only, in one statement: a concurrent PATCH cannot write the old
    // secret back, nor this rotation undo the PATCH.
    let rotated = state
        .store
        .rotate_webhook_secret(
            &caller.scope(),
            &webhook.webhook_id,
            &sealed_secret,
            until,
            &event,
        )
        .await?;
    if !rotated {
        return Err(webhooks::not_found());
    }
    Ok(Json(RotatedSecret {
        webhook_id: webhook.webhook_id,
        secret,
        previous_secret_expires_at: until,
    }))
}

/// A subscription's deliveries, newest first, each with every attempt.
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`wh_…`"), Pagination),
    responses((status = 200, body = List<Delivery>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
    QueryParams(page): QueryParams<Pagination>,
) -> Result<Json<List<Delivery>>> {
    let webhook = visible(&state, &caller, &webhook_id).await?;
    let page = state
        .store
        .list_deliveries(&webhook.webhook_id, &page.request()?)
        .await?;
    Ok(Json(page.into()))
}

/// Send an event to a subscription again, now, with a fresh retry schedule (same `webhook-id`).
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/deliveries/{event_id}/redeliver", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`wh_…`"), ("event_id" = String, Path, description = "`evt_…`")),
    responses((status = 202, body = Delivery), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((webhook_id, event_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Delivery>)> {
    let webhook = visible(&state, &caller, &webhook_id).await?;
    caller.require_writer()?;
    if !webhook.enabled {
        return Err(Error::Conflict {
            code: "webhook_disabled",
            message: "the subscription is disabled; enable it first (PATCH with `enabled: true`)"
                .into(),
        });
    }
    let at = now();
    let event = ChangeEvent::new(
        &caller.actor,
        Some(&webhook.org_id),
        EventType::WebhookRedeliveryRequested,
        "webhook",
        webhook.webhook_id.as_str(),
        0,
        json!({ "webhook_id": webhook.webhook_id, "event_id": event_id }),
        at,
    );
    match state
        .store
        .redeliver(&webhook.webhook_id, &event_id, at, &event)
        .await?
    {
        Redelivery::Queued(delivery) => Ok((StatusCode::ACCEPTED, Json(delivery))),
        Redelivery::NotFound => Err(Error::NotFound {
            code: "delivery_not_found",
            message: "this subscription has no delivery of that event".into(),
        }),
        Redelivery::InFlight => Err(Error::Conflict {
            code: "delivery_in_flight",
            message:
                "this delivery is being attempted right now; try again when the attempt is logged"
                    .into(),
        }),
    }
}
