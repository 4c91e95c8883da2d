//! The status journal Durable Object (SPEC §10): one instance worldwide, strongly consistent.
//!
//! It stores the newest change per key with a growing `seq`, answers "entries since N" to the
//! isolates, and drops a key's entry once the origin says KV has long caught up with its version
//! (a revoked grant's also once the grant has expired), so it holds only the changes of the last
//! minutes (or of a KV outage), however many agents and grants exist. It is born with a random epoch and unseeded (see [`vouch_core::journal::AppendRequest`]).
//! Every request runs its reads and writes without awaiting in between, and builds every value
//! before its first write, so appends are atomic and numbered without gaps or repeats.

use std::cell::Cell;

use serde::Deserialize;
use serde_json::value::RawValue;
use vouch_core::journal::{
    AppendRequest, AppendResponse, Entry, EpochMismatch, Pull, Stored, APPEND_MAX, PULL_MAX,
};
use vouch_core::Timestamp;
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use super::{int, meta, now_ms, read_json, set_meta, sql_error};

#[durable_object]
pub struct StatusJournal {
    state: State,
    /// Pulls served since this instance started (`x-vouch-journal-pulls`), to watch the load.
    pulls: Cell<u64>,
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

#[derive(Deserialize)]
struct SeqRow {
    seq: Option<i64>,
}

/// The layout of the object's storage. A journal stored in another layout is emptied and
/// starts a new epoch (unseeded), so its origin appends again everything it must hold: format 1
/// stored revocations with a version nothing ever settled, so they were never dropped.
const FORMAT: i64 = 2;

impl DurableObject for StatusJournal {
    fn new(state: State, _env: Env) -> Self {
        if let Err(error) = migrate(&state) {
            worker::console_error!("status journal schema: {error}");
        }
        StatusJournal {
            state,
            pulls: Cell::new(0),
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
                if let Some(until) = meta(&self.state, "outage_until")?.filter(|u| *u > now_ms()) {
                    if meta(&self.state, "outage_hangs")? == Some(1) {
                        // A journal that does not answer: hold the pull until the outage ends.
                        let left = u64::try_from(until - now_ms()).unwrap_or(0);
                        worker::Delay::from(std::time::Duration::from_millis(left)).await;
                    }
                    return Response::error("the journal is in a test outage", 503);
                }
                let mut response = self.pull(since)?;
                response
                    .headers_mut()
                    .set("x-vouch-journal-pulls", &self.pulls.get().to_string())?;
                Ok(response)
            }
            (Method::Post, "/append") => {
                let request: AppendRequest = read_json(&mut req).await?;
                if let Some(until) = meta(&self.state, "outage_until")?.filter(|u| *u > now_ms()) {
                    if meta(&self.state, "outage_appends")? == Some(1) {
                        // An append that gets no answer: held until the outage ends, then
                        // refused, having stored nothing.
                        let left = u64::try_from(until - now_ms()).unwrap_or(0);
                        worker::Delay::from(std::time::Duration::from_millis(left)).await;
                        return Response::error("the journal is in a test outage", 503);
                    }
                }
                self.append(request)
            }
            (Method::Post, "/outage") => {
                #[derive(Deserialize)]
                struct Outage {
                    for_ms: i64,
                    /// Pulls hang (no answer) rather than fail.
                    #[serde(default)]
                    hang: bool,
                    /// Appends hang too (and store nothing).
                    #[serde(default)]
                    appends: bool,
                }
                let outage: Outage = read_json(&mut req).await?;
                set_meta(&self.state, "outage_until", now_ms() + outage.for_ms)?;
                set_meta(&self.state, "outage_hangs", i64::from(outage.hang))?;
                set_meta(&self.state, "outage_appends", i64::from(outage.appends))?;
                Response::from_json(&serde_json::json!({ "outage_ms": outage.for_ms }))
            }
            (Method::Post, "/reset") => {
                // As if the object were new: no entries, a new epoch, unseeded.
                let sql = self.state.storage().sql();
                sql.exec("DELETE FROM entries", None)?;
                sql.exec(
                    "DELETE FROM meta WHERE name NOT IN ('head', 'format')",
                    None,
                )?;
                let epoch = self.epoch()?;
                Response::from_json(&serde_json::json!({ "epoch": epoch }))
            }
            _ => Response::error("no such journal route", 404),
        }
    }
}

/// Creates the tables, or empties a journal of an older [`FORMAT`] into a new epoch.
fn migrate(state: &State) -> Result<()> {
    let sql = state.storage().sql();
    sql.exec(
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        None,
    )?;
    if meta(state, "format")? != Some(FORMAT) {
        // `head` stays, so `seq` keeps growing across the reset; the epoch and seeding go.
        sql.exec("DROP TABLE IF EXISTS entries", None)?;
        sql.exec("DELETE FROM meta WHERE name <> 'head'", None)?;
        set_meta(state, "format", FORMAT)?;
    }
    for ddl in [
        "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, \
         version INTEGER NOT NULL, body TEXT NOT NULL, stored_at INTEGER NOT NULL, \
         drop_after INTEGER)",
        "CREATE INDEX IF NOT EXISTS entries_by_drop_after ON entries (drop_after) \
         WHERE drop_after IS NOT NULL",
    ] {
        sql.exec(ddl, None)?;
    }
    Ok(())
}

impl StatusJournal {
    /// The journal's epoch, drawn at first use.
    fn epoch(&self) -> Result<i64> {
        if let Some(epoch) = meta(&self.state, "epoch")? {
            return Ok(epoch);
        }
        let epoch = crate::random::nonzero_52_bits().map_err(sql_error)?;
        set_meta(&self.state, "epoch", epoch)?;
        Ok(epoch)
    }

    fn seeded(&self) -> Result<bool> {
        Ok(meta(&self.state, "seeded")?.unwrap_or(0) == 1)
    }

    /// The lowest `seq` still held (`head + 1` when none is).
    fn floor(&self, head: i64) -> Result<i64> {
        let rows: Vec<SeqRow> = self
            .state
            .storage()
            .sql()
            .exec("SELECT MIN(seq) AS seq FROM entries", None)?
            .to_array()?;
        Ok(rows.first().and_then(|r| r.seq).unwrap_or(head + 1))
    }

    fn pull(&self, since: i64) -> Result<Response> {
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
                // The change as stored: this object wrote it from a parsed `Change`.
                change: RawValue::from_string(row.body).map_err(sql_error)?,
            });
        }
        let head = meta(&self.state, "head")?.unwrap_or(0);
        Response::from_json(&Pull::<Box<RawValue>> {
            entries,
            head,
            floor: self.floor(head)?,
            more,
            epoch: self.epoch()?,
            seeded: self.seeded()?,
        })
    }

    fn append(&self, request: AppendRequest) -> Result<Response> {
        if request.changes.len() > APPEND_MAX || request.settled.len() > APPEND_MAX {
            return Response::error("too many changes in one append", 413);
        }
        let epoch = self.epoch()?;
        if request.epoch != Some(epoch) {
            return Ok(Response::from_json(&EpochMismatch { epoch })?.with_status(409));
        }
        let sql = self.state.storage().sql();
        let now = now_ms();
        let mut head = meta(&self.state, "head")?.unwrap_or(0);
        // Read and decide everything first; write only once every value is built.
        let mut stored = Vec::with_capacity(request.changes.len());
        let mut writes: Vec<(String, Vec<SqlStorageValue>)> = Vec::new();
        for change in &request.changes {
            let key = change.key();
            let version = change.version();
            let current: Vec<KeyRow> = sql
                .exec(
                    "SELECT seq, version, stored_at FROM entries WHERE key = ?",
                    vec![key.clone().into()],
                )?
                .to_array()?;
            let pending = stored
                .iter()
                .rev()
                .find(|s: &&Stored| s.key == key && s.version >= version);
            if let Some(same) = pending {
                let same = same.clone();
                stored.push(Stored { version, ..same });
                continue;
            }
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
            writes.push((
                "DELETE FROM entries WHERE key = ?".into(),
                vec![key.clone().into()],
            ));
            writes.push((
                "INSERT INTO entries (seq, key, version, body, stored_at, drop_after) \
                 VALUES (?, ?, ?, ?, ?, ?)"
                    .into(),
                vec![
                    int(head)?,
                    key.clone().into(),
                    int(version)?,
                    body.into(),
                    int(now)?,
                    match change.droppable_after_ms() {
                        Some(at) => int(at)?,
                        None => SqlStorageValue::Null,
                    },
                ],
            ));
            stored.push(Stored {
                key,
                version,
                seq: head,
                stored_at: Timestamp::from_unix_millis(now),
            });
        }
        for settled in &request.settled {
            writes.push((
                "DELETE FROM entries WHERE key = ? AND version <= ?".into(),
                vec![settled.key.clone().into(), int(settled.version)?],
            ));
        }
        // Revocations of grants that have expired since matter to no token any more.
        writes.push((
            "DELETE FROM entries WHERE drop_after IS NOT NULL AND drop_after < ?".into(),
            vec![int(now)?],
        ));
        let head_value = int(head)?;
        for (statement, values) in writes {
            sql.exec(&statement, values)?;
        }
        sql.exec(
            "INSERT INTO meta (name, value) VALUES ('head', ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            vec![head_value],
        )?;
        if request.seed {
            set_meta(&self.state, "seeded", 1)?;
        }
        Response::from_json(&AppendResponse {
            stored,
            head,
            epoch,
            seeded: self.seeded()?,
        })
    }
}
