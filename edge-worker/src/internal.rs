//! Routes only the origin calls, behind the shared secret `VOUCH_EDGE_SECRET` (a bearer token,
//! compared in constant time): `POST /internal/journal` appends to the status journal, `GET
//! /internal/journal?since=N` shows what isolates pull; `GET /internal/receipts?limit=N` hands
//! the origin the oldest receipts not yet collected and `POST /internal/receipts/ack
//! {"through": seq}` drops those it stored (SPEC §12, [`crate::objects::receipts`]). Without
//! the secret configured every internal request is `401`.
//!
//! With the variable `VOUCH_TEST_CONTROLS = "1"` (set only by the local edge's tests, never in
//! wrangler.toml) `POST /internal/test/journal-outage {"for_ms": N, "hang"?, "appends"?}` makes
//! the journal refuse isolates' pulls for N ms (or hold them, with `hang`; and hold the origin's
//! appends too, with `appends`), so the tests can watch the edge fail closed, `POST
//! /internal/test/journal-reset` empties it as if it were new (new epoch, unseeded), and `POST
//! /internal/test/isolate-cold` makes the isolate that answers forget its copy of the journal, as
//! a freshly started one has none; `GET /internal/test/memory` says how large its wasm memory is.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vouch_core::journal::AppendRequest;
use worker::{Env, Method, Request, Response};

use crate::journal;
use crate::respond::{json_response, EdgeError};
use crate::routes::json_body;

/// The secret's binding name (a Worker secret when deployed).
pub const SECRET: &str = "VOUCH_EDGE_SECRET";
/// How many pulls the journal object served since it started (on `GET /internal/journal`).
const PULLS_HEADER: &str = "x-vouch-journal-pulls";
/// The largest append body the edge accepts (about a thousand changes).
const APPEND_BODY_LIMIT: usize = 1024 * 1024;

enum Route {
    Pull,
    Append,
    Receipts,
    ReceiptsAck,
    Outage,
    Reset,
    Cold,
    Memory,
}

pub async fn handle(req: Request, env: &Env, path: &str) -> Result<Response, EdgeError> {
    let route = match (req.method(), path) {
        (Method::Get, "/internal/journal") => Ok(Route::Pull),
        (Method::Post, "/internal/journal") => Ok(Route::Append),
        (Method::Get, "/internal/receipts") => Ok(Route::Receipts),
        (Method::Post, "/internal/receipts/ack") => Ok(Route::ReceiptsAck),
        (Method::Post, "/internal/test/journal-outage") if test_controls(env) => Ok(Route::Outage),
        (Method::Post, "/internal/test/journal-reset") if test_controls(env) => Ok(Route::Reset),
        (Method::Post, "/internal/test/isolate-cold") if test_controls(env) => Ok(Route::Cold),
        (Method::Get, "/internal/test/memory") if test_controls(env) => Ok(Route::Memory),
        (_, "/internal/journal") => Err(EdgeError::MethodNotAllowed),
        _ => Err(EdgeError::NotFound {
            code: "not_found",
            message: "no such endpoint".into(),
        }),
    };
    let route = match authorize(&req, env).and(route) {
        Ok(route) => route,
        Err(refused) => {
            // Read (and drop) the body first: answering early makes workerd reset the connection.
            let _ = json_body(req, 0).await;
            return Err(refused);
        }
    };
    match route {
        Route::Pull => {
            // What the isolates pull, for operators and tests: `?since=N`.
            let since = req
                .url()?
                .query_pairs()
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .unwrap_or(0);
            call(env, Method::Get, &format!("/entries?since={since}"), None).await
        }
        Route::Append => {
            let body = json_body(req, APPEND_BODY_LIMIT).await?;
            let append: AppendRequest = serde_json::from_value(body)
                .map_err(|e| EdgeError::bad(format!("not a journal append: {e}"), None))?;
            if append.changes.len() > vouch_core::journal::APPEND_MAX {
                return Err(EdgeError::bad(
                    format!(
                        "at most {} changes per append",
                        vouch_core::journal::APPEND_MAX
                    ),
                    Some("changes"),
                ));
            }
            forward(env, "/append", &append).await
        }
        Route::Receipts => {
            let limit = req
                .url()?
                .query_pairs()
                .find(|(k, _)| k == "limit")
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .unwrap_or(crate::objects::receipts::PULL_MAX);
            let path = format!("/pull?limit={limit}");
            receipts(env, Method::Get, &path, None).await
        }
        Route::ReceiptsAck => {
            let body = json_body(req, 1024).await?;
            let through = body
                .get("through")
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| {
                    EdgeError::bad("`through` (an integer) is required", Some("through"))
                })?;
            let text = format!("{{\"through\":{through}}}");
            receipts(env, Method::Post, "/ack", Some(text)).await
        }
        Route::Outage => {
            let body = json_body(req, 1024).await?;
            forward(env, "/outage", &body).await
        }
        Route::Reset => {
            let _ = json_body(req, 1024).await;
            call(env, Method::Post, "/reset", None).await
        }
        Route::Memory => {
            // The isolate's wasm linear memory (it never shrinks): what the Rust side holds,
            // apart from workerd's own heap.
            use wasm_bindgen::JsCast;
            let memory: worker::js_sys::WebAssembly::Memory =
                wasm_bindgen::memory().unchecked_into();
            let bytes = worker::js_sys::ArrayBuffer::from(memory.buffer()).byte_length();
            Ok(json_response(
                200,
                &format!("{{\"wasm_memory_bytes\":{bytes}}}"),
                &[("cache-control", "no-store")],
            ))
        }
        Route::Cold => {
            let _ = json_body(req, 0).await;
            journal::forget_copy();
            Ok(json_response(200, "{}", &[("cache-control", "no-store")]))
        }
    }
}

fn test_controls(env: &Env) -> bool {
    env.var("VOUCH_TEST_CONTROLS")
        .is_ok_and(|v| v.to_string() == "1")
}

fn authorize(req: &Request, env: &Env) -> Result<(), EdgeError> {
    let configured = env
        .secret(SECRET)
        .map(|s| s.to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(EdgeError::Unauthorized)?;
    let presented = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .ok_or(EdgeError::Unauthorized)?;
    // Digests first, so the comparison takes the same time whatever the lengths.
    let same: bool = Sha256::digest(configured.as_bytes())
        .ct_eq(&Sha256::digest(presented.as_bytes()))
        .into();
    if same {
        Ok(())
    } else {
        Err(EdgeError::Unauthorized)
    }
}

/// Calls the receipts object and answers what it answered.
async fn receipts(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response, EdgeError> {
    let mut response = crate::objects::receipts::forward(env, method, path, body).await?;
    let status = response.status_code();
    let answer = response.text().await?;
    if status != 200 {
        return Err(EdgeError::Internal(format!(
            "the receipts object answered {status}: {answer}"
        )));
    }
    Ok(json_response(
        200,
        &answer,
        &[("cache-control", "no-store")],
    ))
}

/// Sends `body` to the journal object and answers what it answered.
async fn forward<T: serde::Serialize>(
    env: &Env,
    path: &str,
    body: &T,
) -> Result<Response, EdgeError> {
    let text = serde_json::to_string(body).map_err(|e| EdgeError::Internal(e.to_string()))?;
    call(env, Method::Post, path, Some(text)).await
}

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response, EdgeError> {
    let stub = env
        .durable_object(journal::BINDING)?
        .get_by_name(journal::OBJECT_NAME)?;
    let mut response = crate::objects::call(&stub, method, path, body).await?;
    let status = response.status_code();
    let pulls = response.headers().get(PULLS_HEADER).ok().flatten();
    let answer = response.text().await?;
    if status == 409 {
        // Another epoch: the origin reads the journal's and catches it up.
        return Ok(json_response(
            409,
            &answer,
            &[("cache-control", "no-store")],
        ));
    }
    if status != 200 {
        return Err(EdgeError::Internal(format!(
            "the journal answered {status}: {answer}"
        )));
    }
    let mut headers = vec![("cache-control", "no-store")];
    if let Some(pulls) = pulls.as_deref() {
        headers.push((PULLS_HEADER, pulls));
    }
    Ok(json_response(200, &answer, &headers))
}
