//! The edge's Durable Objects and what they share: SQLite-backed storage (`new_sqlite_classes`),
//! whose statements run synchronously, so one request's reads and writes are never interleaved
//! with another's.

pub mod daily_caps;
pub mod receipts;
pub mod status_journal;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::{Method, Request, RequestInit, Response, Result, SqlStorageValue, State, Stub};

/// Sends a request to a Durable Object (`path` on its own fetch handler, with a JSON body).
pub async fn call(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(method).with_body(body.map(Into::into));
    let request = Request::new_with_init(&format!("https://object{path}"), &init)?;
    stub.fetch_with_request(request).await
}

/// Runs `work`, giving up after `ms` (a Durable Object that does not answer is unavailable).
pub async fn within<T>(
    ms: u64,
    work: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> std::result::Result<T, String> {
    use futures_util::future::{select, Either};
    let timeout = worker::Delay::from(std::time::Duration::from_millis(ms));
    futures_util::pin_mut!(work);
    futures_util::pin_mut!(timeout);
    match select(work, timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(format!("no answer within {ms} ms")),
    }
}

pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// An integer binding (refused beyond what a JavaScript number holds exactly).
pub fn int(value: i64) -> Result<SqlStorageValue> {
    SqlStorageValue::try_from_i64(value)
}

pub fn sql_error(error: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(error.to_string())
}

#[derive(Deserialize)]
struct MetaRow {
    value: i64,
}

/// A named integer of the object's `meta` table.
pub fn meta(state: &State, name: &str) -> Result<Option<i64>> {
    let rows: Vec<MetaRow> = state
        .storage()
        .sql()
        .exec(
            "SELECT value FROM meta WHERE name = ?",
            vec![name.to_owned().into()],
        )?
        .to_array()?;
    Ok(rows.first().map(|r| r.value))
}

pub fn set_meta(state: &State, name: &str, value: i64) -> Result<()> {
    state.storage().sql().exec(
        "INSERT INTO meta (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        vec![name.to_owned().into(), int(value)?],
    )?;
    Ok(())
}

/// The request's JSON body (the worker checked its size and shape before forwarding it).
pub async fn read_json<T: DeserializeOwned>(req: &mut Request) -> Result<T> {
    let text = req.text().await?;
    serde_json::from_str(&text).map_err(sql_error)
}
