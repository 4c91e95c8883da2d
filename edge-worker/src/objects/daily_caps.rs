//! The daily-caps ledger of one agent (SPEC §11), a Durable Object named by the agent id.
//!
//! `POST /commit` with a [`CommitRequest`]: the object reads what it holds for the idempotency
//! key and what the agent spent today against each of the request's caps, lets the core decide
//! ([`vouch_core::caps::commit`]) and writes the outcome, all without awaiting in between, so
//! concurrent commits are applied one after another and never pass a cap together. Rows of
//! days before yesterday are dropped as it goes: caps reset at the UTC day boundary, and a key
//! replays for the rest of its day and the next.
//!
//! `GET /spent?day=…&cap=…[&cap=…]` reads, and changes nothing: what the agent spent that day
//! against each cap (minor units, 0 for a cap with no row), `{ "spent": { cap: amount } }`. A
//! decision that only asks reads it, so it never allows an amount a commit would refuse.

use serde::Deserialize;
use serde_json::json;
use vouch_core::caps::{self, CommitRequest, Outcome, StoredCommit};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use super::{int, read_json, sql_error};

#[durable_object]
pub struct DailyCaps {
    state: State,
}

#[derive(Deserialize)]
struct CommitRow {
    fingerprint: String,
    decision: String,
}

#[derive(Deserialize)]
struct SpentRow {
    amount: i64,
}

impl DurableObject for DailyCaps {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS spent (day TEXT NOT NULL, cap TEXT NOT NULL, \
             amount INTEGER NOT NULL, PRIMARY KEY (day, cap))",
            "CREATE TABLE IF NOT EXISTS commits (key TEXT PRIMARY KEY, day TEXT NOT NULL, \
             fingerprint TEXT NOT NULL, decision TEXT NOT NULL)",
            // Old days are dropped on every commit: by index, not by scanning every key.
            "CREATE INDEX IF NOT EXISTS commits_by_day ON commits (day)",
        ] {
            if let Err(error) = sql.exec(ddl, None) {
                worker::console_error!("daily caps schema: {error}");
            }
        }
        DailyCaps { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Post, "/commit") => {
                let request: CommitRequest = read_json(&mut req).await?;
                self.commit(&request)
            }
            (Method::Get, "/spent") => {
                let mut day = None;
                let mut caps = Vec::new();
                for (name, value) in url.query_pairs() {
                    match name.as_ref() {
                        "day" => day = Some(value.into_owned()),
                        "cap" => caps.push(value.into_owned()),
                        _ => {}
                    }
                }
                match day {
                    Some(day) => self.spent(&day, &caps),
                    None => Response::error("`day` is required", 400),
                }
            }
            _ => Response::error("no such ledger route", 404),
        }
    }
}

impl DailyCaps {
    fn commit(&self, request: &CommitRequest) -> Result<Response> {
        let sql = self.state.storage().sql();
        let prior: Vec<CommitRow> = sql
            .exec(
                "SELECT fingerprint, decision FROM commits WHERE key = ?",
                vec![request.idempotency_key.clone().into()],
            )?
            .to_array()?;
        let prior = match prior.first() {
            Some(row) => Some(StoredCommit {
                fingerprint: row.fingerprint.clone(),
                decision: serde_json::from_str(&row.decision).map_err(sql_error)?,
            }),
            None => None,
        };
        let mut spent = std::collections::HashMap::new();
        for cap in request.caps() {
            let rows: Vec<SpentRow> = sql
                .exec(
                    "SELECT amount FROM spent WHERE day = ? AND cap = ?",
                    vec![request.day.clone().into(), cap.clone().into()],
                )?
                .to_array()?;
            let amount = rows
                .first()
                .map_or(0, |r| u64::try_from(r.amount).unwrap_or(0));
            spent.insert(cap, amount);
        }
        let spent_of = |cap: &str| spent.get(cap).copied().unwrap_or(0);
        match caps::commit(request, prior.as_ref(), &spent_of) {
            Outcome::Replay(decision) => {
                Response::from_json(&json!({ "decision": decision, "replayed": true }))
            }
            Outcome::Refused(decision) => {
                Response::from_json(&json!({ "decision": decision, "replayed": false }))
            }
            Outcome::Conflict => {
                Response::error("this idempotency_key was used for a different request", 409)
            }
            Outcome::Record { decision, add } => {
                // Every value first, then the writes, so an error cannot leave half of them.
                let mut writes: Vec<(&str, Vec<SqlStorageValue>)> = Vec::new();
                if add > 0 {
                    for (cap, already) in &spent {
                        let total = i64::try_from(already.saturating_add(add)).unwrap_or(i64::MAX);
                        writes.push((
                            "INSERT INTO spent (day, cap, amount) VALUES (?, ?, ?) \
                             ON CONFLICT (day, cap) DO UPDATE SET amount = excluded.amount",
                            vec![request.day.clone().into(), cap.clone().into(), int(total)?],
                        ));
                    }
                }
                writes.push((
                    "INSERT INTO commits (key, day, fingerprint, decision) VALUES (?, ?, ?, ?)",
                    vec![
                        request.idempotency_key.clone().into(),
                        request.day.clone().into(),
                        request.fingerprint.clone().into(),
                        decision.to_string().into(),
                    ],
                ));
                for (statement, values) in writes {
                    sql.exec(statement, values)?;
                }
                self.forget_before_yesterday(&request.day)?;
                Response::from_json(&json!({ "decision": decision, "replayed": false }))
            }
        }
    }

    /// What the agent spent on `day` against each of `caps` (read only).
    fn spent(&self, day: &str, caps: &[String]) -> Result<Response> {
        let sql = self.state.storage().sql();
        let mut spent = serde_json::Map::new();
        for cap in caps {
            let rows: Vec<SpentRow> = sql
                .exec(
                    "SELECT amount FROM spent WHERE day = ? AND cap = ?",
                    vec![day.to_owned().into(), cap.clone().into()],
                )?
                .to_array()?;
            let amount = rows.first().map_or(0, |r| r.amount.max(0));
            spent.insert(cap.clone(), amount.into());
        }
        Response::from_json(&json!({ "spent": spent }))
    }

    /// Drops ledger rows and keys of days before the one before `today` (ISO dates sort as text).
    fn forget_before_yesterday(&self, today: &str) -> Result<()> {
        let Some(yesterday) = previous_day(today) else {
            return Ok(());
        };
        let sql = self.state.storage().sql();
        sql.exec(
            "DELETE FROM spent WHERE day < ?",
            vec![yesterday.clone().into()],
        )?;
        sql.exec("DELETE FROM commits WHERE day < ?", vec![yesterday.into()])?;
        Ok(())
    }
}

/// The UTC day before `day` (`2026-11-22` → `2026-11-21`).
fn previous_day(day: &str) -> Option<String> {
    let noon = vouch_core::Timestamp::parse_rfc3339(&format!("{day}T12:00:00Z"))?;
    Some(vouch_core::Timestamp::from_unix_millis(noon.unix_millis() - 86_400_000).utc_day())
}
