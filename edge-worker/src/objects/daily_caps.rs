//! The daily-caps ledger of one agent (SPEC §11), a Durable Object named by the agent id.
//!
//! `POST /commit` with a [`CommitRequest`]: the object reads what it holds for the idempotency
//! key and what the agent spent today against each of the request's caps, lets the core decide
//! ([`vouch_core::caps::commit`]) and writes the outcome, all without awaiting in between, so
//! concurrent commits are applied one after another and never pass a cap together. Rows of
//! days before yesterday are dropped as it goes: caps reset at the UTC day boundary, and a key
//! replays for the rest of its day and the next.
//!
//! The object has the last word on a commit, so it signs what it settles on (SPEC §12) before
//! it answers it. Signing awaits the runtime's WebCrypto, and nothing may be awaited between
//! the reads and the writes of a commit, so a recorded decision is written first and signed
//! right after: the signed bytes replace the stored ones, and whoever finds a stored decision
//! still unsigned (a replay or the alarm, in that moment or after a crash) signs it the same way
//! — Ed25519 is deterministic, so it is the same signature, and a replay answers the very bytes
//! first answered. Each recorded decision is also a receipt (SPEC §12): written to
//! `receipts_outbox` with the commit, then forwarded by the object's alarm to the edge's
//! receipts object ([`super::receipts`]), where the origin collects them, until it lands.
//!
//! `GET /spent?day=…&cap=…[&cap=…]` reads, and changes nothing: what the agent spent that day
//! against each cap (minor units, 0 for a cap with no row), `{ "spent": { cap: amount } }`. A
//! decision that only asks reads it, so it never allows an amount a commit would refuse.

use serde::Deserialize;
use serde_json::{json, Value};
use vouch_core::caps::{self, CommitRequest, Outcome, StoredCommit};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use super::{int, read_json, sql_error};

#[durable_object]
pub struct DailyCaps {
    state: State,
    env: Env,
}

/// Receipts forwarded per alarm (one call to the receipts object).
const RECEIPTS_PER_FORWARD: usize = 100;
/// How long after a failed forward the alarm tries again.
const FORWARD_RETRY_MS: i64 = 2_000;

#[derive(Deserialize)]
struct OutboxRow {
    seq: i64,
    decision: String,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: i64,
}

/// What a commit settled on, before its decision is signed.
enum Settled {
    /// The decision to answer; `recorded` names its rows when it was written (to sign there);
    /// `receipts_due` says the outbox holds receipts to forward.
    Answer {
        decision: Value,
        replayed: bool,
        recorded: Option<Recorded>,
        receipts_due: bool,
    },
    /// The key was used for another request.
    Conflict,
}

/// Where a stored decision waits for its signature: its commit key and its outbox row.
struct Recorded {
    key: String,
    outbox_seq: Option<i64>,
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
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS spent (day TEXT NOT NULL, cap TEXT NOT NULL, \
             amount INTEGER NOT NULL, PRIMARY KEY (day, cap))",
            "CREATE TABLE IF NOT EXISTS commits (key TEXT PRIMARY KEY, day TEXT NOT NULL, \
             fingerprint TEXT NOT NULL, decision TEXT NOT NULL)",
            // Old days are dropped on every commit: by index, not by scanning every key.
            "CREATE INDEX IF NOT EXISTS commits_by_day ON commits (day)",
            // Recorded decisions not yet handed to the receipts object, oldest first.
            "CREATE TABLE IF NOT EXISTS receipts_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             decision TEXT NOT NULL)",
        ] {
            if let Err(error) = sql.exec(ddl, None) {
                worker::console_error!("daily caps schema: {error}");
            }
        }
        DailyCaps { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Post, "/commit") => {
                let request: CommitRequest = read_json(&mut req).await?;
                let (decision, replayed, recorded, receipts_due) = match self.commit(&request)? {
                    Settled::Conflict => {
                        return Response::error(
                            "this idempotency_key was used for a different request",
                            409,
                        )
                    }
                    Settled::Answer {
                        decision,
                        replayed,
                        recorded,
                        receipts_due,
                    } => (decision, replayed, recorded, receipts_due),
                };
                // The alarm is set in the same turn as the commit's writes, before anything is
                // awaited, so a receipt written is a receipt forwarded, whatever happens next.
                let storage = self.state.storage();
                let alarm = async {
                    match receipts_due {
                        true => storage.set_alarm(0).await,
                        false => Ok(()),
                    }
                };
                let (alarm, signed) =
                    futures_util::join!(alarm, self.signed(decision, recorded.as_ref()));
                alarm?;
                let decision = signed?;
                let answer = format!(r#"{{"decision":{decision},"replayed":{replayed}}}"#);
                json_text(&answer)
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

    /// Hands pending receipts to the receipts object, a batch per alarm, until none is left; a
    /// failure of any kind tries again later (the runtime's own alarm retries give up).
    async fn alarm(&self) -> Result<Response> {
        if let Err(error) = self.forward_receipts().await {
            worker::console_warn!("receipts forward failed, retrying: {error}");
            self.schedule_forward(FORWARD_RETRY_MS).await?;
        }
        Response::ok("forwarded")
    }
}

impl DailyCaps {
    /// One batch of [`DurableObject::alarm`]'s work.
    async fn forward_receipts(&self) -> Result<()> {
        let rows: Vec<OutboxRow> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT seq, decision FROM receipts_outbox ORDER BY seq LIMIT ?",
                vec![int(RECEIPTS_PER_FORWARD as i64)?],
            )?
            .to_array()?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(());
        };
        // A receipt is handed over signed: one still waiting for its signature gets it here.
        let mut receipts = Vec::with_capacity(rows.len());
        for row in &rows {
            let decision: Value = serde_json::from_str(&row.decision).map_err(sql_error)?;
            let recorded = Recorded {
                key: String::new(),
                outbox_seq: Some(row.seq),
            };
            receipts.push(self.signed(decision, Some(&recorded)).await?);
        }
        super::receipts::append(&self.env, receipts.iter().map(String::as_str)).await?;
        self.state.storage().sql().exec(
            "DELETE FROM receipts_outbox WHERE seq <= ?",
            vec![int(last)?],
        )?;
        if rows.len() == RECEIPTS_PER_FORWARD {
            self.schedule_forward(0).await?;
        }
        Ok(())
    }

    /// Sets the alarm `after_ms` from now, unless one is already due sooner.
    async fn schedule_forward(&self, after_ms: i64) -> Result<()> {
        let at = super::now_ms() + after_ms;
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_some_and(|due| due <= at) {
            return Ok(());
        }
        // An `i64` is an offset from now to workers-rs, not an instant.
        storage.set_alarm(after_ms).await
    }

    /// `decision` as signed JSON text: as it is when it is signed already, else signed with the
    /// edge's decision key (the last change it gets) and, when it is stored, stored signed.
    async fn signed(&self, decision: Value, stored: Option<&Recorded>) -> Result<String> {
        if crate::decision_key::is_signed(&decision) {
            return Ok(decision.to_string());
        }
        let text = crate::decision_key::sign(&self.env, decision)
            .await
            .map_err(|e| worker::Error::RustError(format!("signing a decision: {e:?}")))?
            .to_string();
        if let Some(stored) = stored {
            let sql = self.state.storage().sql();
            if !stored.key.is_empty() {
                sql.exec(
                    "UPDATE commits SET decision = ? WHERE key = ?",
                    vec![text.clone().into(), stored.key.clone().into()],
                )?;
            }
            if let Some(seq) = stored.outbox_seq {
                sql.exec(
                    "UPDATE receipts_outbox SET decision = ? WHERE seq = ?",
                    vec![text.clone().into(), int(seq)?],
                )?;
            }
        }
        Ok(text)
    }

    /// Applies one commit: what it settled on, and where it recorded it. Reads, decision and
    /// writes run without an await in between (see the module docs).
    fn commit(&self, request: &CommitRequest) -> Result<Settled> {
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
        let key = || {
            Some(Recorded {
                key: request.idempotency_key.clone(),
                outbox_seq: None,
            })
        };
        match caps::commit(request, prior.as_ref(), &spent_of) {
            // A stored decision still unsigned is signed (and stored signed) on its way out.
            // A receipt left behind (its alarm lost) moves on with the agent's next request.
            Outcome::Replay(decision) => Ok(Settled::Answer {
                decision,
                replayed: true,
                recorded: key(),
                receipts_due: self.receipts_waiting()?,
            }),
            Outcome::Refused(decision) => Ok(Settled::Answer {
                decision,
                replayed: false,
                recorded: None,
                receipts_due: self.receipts_waiting()?,
            }),
            Outcome::Conflict => Ok(Settled::Conflict),
            Outcome::Record { decision, add } => {
                let text = decision.to_string();
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
                        text.clone().into(),
                    ],
                ));
                for (statement, values) in writes {
                    sql.exec(statement, values)?;
                }
                let outbox: Vec<SeqRow> = sql
                    .exec(
                        "INSERT INTO receipts_outbox (decision) VALUES (?) RETURNING seq",
                        vec![text.into()],
                    )?
                    .to_array()?;
                self.forget_before_yesterday(&request.day)?;
                Ok(Settled::Answer {
                    decision,
                    replayed: false,
                    receipts_due: true,
                    recorded: Some(Recorded {
                        key: request.idempotency_key.clone(),
                        outbox_seq: outbox.first().map(|r| r.seq),
                    }),
                })
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

    /// Whether the outbox holds receipts not yet handed over.
    fn receipts_waiting(&self) -> Result<bool> {
        let rows: Vec<SeqRow> = self
            .state
            .storage()
            .sql()
            .exec("SELECT seq FROM receipts_outbox LIMIT 1", None)?
            .to_array()?;
        Ok(!rows.is_empty())
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

/// A `200` JSON answer of `text` as is.
fn json_text(text: &str) -> Result<Response> {
    let mut response = Response::ok(text)?;
    response
        .headers_mut()
        .set("content-type", "application/json")?;
    Ok(response)
}

/// The UTC day before `day` (`2026-11-22` → `2026-11-21`).
fn previous_day(day: &str) -> Option<String> {
    let noon = vouch_core::Timestamp::parse_rfc3339(&format!("{day}T12:00:00Z"))?;
    Some(vouch_core::Timestamp::from_unix_millis(noon.unix_millis() - 86_400_000).utc_day())
}
