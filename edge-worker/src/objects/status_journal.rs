//! The status journal Durable Object (SPEC §10): one instance worldwide, strongly consistent.
//!
//! It stores the newest change per key with a growing `seq`, answers "entries since N" to the
//! isolates, and drops entries below the `compact_below` the origin sends once KV has long caught
//! up, so it holds only the changes of the last minutes (or of a KV outage), however many agents
//! exist. Every request runs its reads and writes without awaiting in between, so appends are
//! atomic and numbered without gaps or repeats.

use serde::Deserialize;
use vouch_core::journal::{AppendRequest, AppendResponse, Entry, Pull, Stored, PULL_MAX};
use vouch_core::Timestamp;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{int, meta, now_ms, read_json, set_meta, sql_error};

#[durable_object]
pub struct StatusJournal {
    state: State,
    /// Pulls served since this instance started (`x-vouch-journal-pulls`), to watch the load.
    pulls: std::cell::Cell<u64>,
}

#[derive(Deserialize)]
struct EntryRow {
    seq: i64,
    body: String,
    stored_at: i64,
}

#[derive(Deserialize)]
struct KeyRow {
    seq: i64,
    version: i64,
    stored_at: i64,
}

impl DurableObject for StatusJournal {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, \
             version INTEGER NOT NULL, body TEXT NOT NULL, stored_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            if let Err(error) = sql.exec(ddl, None) {
                worker::console_error!("status journal schema: {error}");
            }
        }
        StatusJournal {
            state,
            pulls: std::cell::Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Get, "/entries") => {
                let since = url
                    .query_pairs()
                    .find(|(k, _)| k == "since")
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                    .unwrap_or(0);
                self.pulls.set(self.pulls.get() + 1);
                let mut response = self.pull(since)?;
                response
                    .headers_mut()
                    .set("x-vouch-journal-pulls", &self.pulls.get().to_string())?;
                Ok(response)
            }
            (Method::Post, "/append") => {
                let request: AppendRequest = read_json(&mut req).await?;
                self.append(request)
            }
            (Method::Post, "/outage") => {
                #[derive(Deserialize)]
                struct Outage {
                    for_ms: i64,
                }
                let outage: Outage = read_json(&mut req).await?;
                set_meta(&self.state, "outage_until", now_ms() + outage.for_ms)?;
                Response::from_json(&serde_json::json!({ "outage_ms": outage.for_ms }))
            }
            _ => Response::error("no such journal route", 404),
        }
    }
}

impl StatusJournal {
    fn pull(&self, since: i64) -> Result<Response> {
        if meta(&self.state, "outage_until")?.is_some_and(|until| until > now_ms()) {
            return Response::error("the journal is in a test outage", 503);
        }
        let sql = self.state.storage().sql();
        let rows: Vec<EntryRow> = sql
            .exec(
                "SELECT seq, body, stored_at FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![int(since)?, int(PULL_MAX as i64 + 1)?],
            )?
            .to_array()?;
        let more = rows.len() > PULL_MAX;
        let mut entries = Vec::with_capacity(rows.len().min(PULL_MAX));
        for row in rows.into_iter().take(PULL_MAX) {
            entries.push(Entry {
                seq: row.seq,
                stored_at: Timestamp::from_unix_millis(row.stored_at),
                change: serde_json::from_str(&row.body).map_err(sql_error)?,
            });
        }
        Response::from_json(&Pull {
            entries,
            head: meta(&self.state, "head")?.unwrap_or(0),
            floor: meta(&self.state, "floor")?.unwrap_or(0),
            more,
        })
    }

    fn append(&self, request: AppendRequest) -> Result<Response> {
        if request.changes.len() > vouch_core::journal::APPEND_MAX {
            return Response::error("too many changes in one append", 413);
        }
        let sql = self.state.storage().sql();
        let now = now_ms();
        let mut head = meta(&self.state, "head")?.unwrap_or(0);
        let mut stored = Vec::with_capacity(request.changes.len());
        for change in &request.changes {
            let key = change.key();
            let version = change.version();
            let current: Vec<KeyRow> = sql
                .exec(
                    "SELECT seq, version, stored_at FROM entries WHERE key = ?",
                    vec![key.clone().into()],
                )?
                .to_array()?;
            if let Some(current) = current.first().filter(|c| c.version >= version) {
                stored.push(Stored {
                    key,
                    version,
                    seq: current.seq,
                    stored_at: Timestamp::from_unix_millis(current.stored_at),
                });
                continue;
            }
            head += 1;
            let body = serde_json::to_string(change).map_err(sql_error)?;
            sql.exec(
                "DELETE FROM entries WHERE key = ?",
                vec![key.clone().into()],
            )?;
            sql.exec(
                "INSERT INTO entries (seq, key, version, body, stored_at) VALUES (?, ?, ?, ?, ?)",
                vec![
                    int(head)?,
                    key.clone().into(),
                    int(version)?,
                    body.into(),
                    int(now)?,
                ],
            )?;
            stored.push(Stored {
                key,
                version,
                seq: head,
                stored_at: Timestamp::from_unix_millis(now),
            });
        }
        set_meta(&self.state, "head", head)?;
        if let Some(below) = request.compact_below {
            // Never past what was given out: a confused caller cannot empty the journal ahead.
            let below = below.min(head + 1);
            let floor = meta(&self.state, "floor")?.unwrap_or(0);
            if below > floor {
                sql.exec("DELETE FROM entries WHERE seq < ?", vec![int(below)?])?;
                set_meta(&self.state, "floor", below)?;
            }
        }
        Response::from_json(&AppendResponse { stored, head })
    }
}
