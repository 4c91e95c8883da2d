//! `GET /status/{list_id}` at the origin: its own copy of a token status list (SPEC §16), the
//! document it publishes to KV for the edge. Tokens name the edge's copy when `VOUCH_EDGE_URL`
//! is set and this one otherwise, so a `status.status_list.uri` always resolves.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vouch_core::status_list::{self, ListDocument};

use crate::app::AppState;
use crate::error::{Error, ErrorBody, Result};

/// A token status list (`statuslist+jwt`, signed by the token key; 2 bits per passport: 0
/// active, 1 revoked, 2 suspended, 3 not active yet), with a strong `ETag`.
#[utoipa::path(get, path = "/status/{list_id}", tag = "tokens",
    params(("list_id" = String, Path, description = "The list's number, as in a token's `status.status_list.uri`"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag this client holds: `304` when it is current")),
    responses((status = 200, content_type = "application/statuslist+jwt", body = String,
               description = "The status list token, as signed"),
              (status = 304, description = "Not modified"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let list_id = status_list::parse_list_id(&raw).ok_or_else(|| {
        Error::field(
            "list_id",
            "a status list id is a decimal number without leading zeros",
        )
    })?;
    let stored = state
        .store
        .documents(&[status_list::kv_key(list_id)])
        .await?;
    let Some((_, version, body)) = stored.into_iter().next() else {
        return Err(Error::NotFound {
            code: "status_list_not_found",
            message: "no such status list".into(),
        });
    };
    let document: ListDocument = serde_json::from_str(&body).map_err(Error::internal)?;
    let etag = format!("\"status-{list_id}-v{version}\"");
    let etag_value = HeaderValue::from_str(&etag).map_err(Error::internal)?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|held| vouch_core::etag::not_modified(held, &etag));
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(status_list::MEDIA_TYPE),
            ),
            (header::ETAG, etag_value),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=1"),
            ),
        ],
        document.token,
    )
        .into_response())
}
