//! The edge's receipts (SPEC §12): every committed decision, signed, waiting for the origin to
//! collect it. One object (named [`OBJECT_NAME`]); the agents' ledgers append to it
//! ([`append`], from their alarms, retried until it lands), the origin pulls the oldest
//! (`GET /internal/receipts`) and acknowledges what it stored (`POST /internal/receipts/ack`),
//! which deletes it here. Nothing is deleted before the origin has it, and a receipt that
//! arrives twice (a ledger retrying after a lost answer) is stored once per decision id here
//! and once at the origin.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{int, read_json, sql_error};

/// The Durable Object namespace of the receipts object.
pub const BINDING: &str = "VOUCH_RECEIPTS";
/// The one object of that namespace.
pub const OBJECT_NAME: &str = "receipts";
/// The most receipts one pull returns.
pub const PULL_MAX: i64 = 500;

#[durable_object]
pub struct Receipts {
    state: State,
}

#[derive(Deserialize)]
struct Row {
    seq: i64,
    receipt: String,
}

/// What a pull answers: receipts oldest first, each with its place in the queue.
#[derive(Serialize)]
struct Pulled<'a> {
    receipts: Vec<PulledReceipt<'a>>,
}

#[derive(Serialize)]
struct PulledReceipt<'a> {
    seq: i64,
    receipt: &'a RawValue,
}

#[derive(Deserialize)]
struct Ack {
    through: i64,
}

impl DurableObject for Receipts {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(error) = sql.exec(
            "CREATE TABLE IF NOT EXISTS receipts (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             decision_id TEXT NOT NULL UNIQUE, receipt TEXT NOT NULL)",
            None,
        ) {
            worker::console_error!("receipts schema: {error}");
        }
        Receipts { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Post, "/append") => {
                let receipts: Vec<Box<RawValue>> = read_json(&mut req).await?;
                self.append(&receipts)
            }
            (Method::Get, "/pull") => {
                let limit = url
                    .query_pairs()
                    .find(|(k, _)| k == "limit")
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                    .map_or(PULL_MAX, |n| n.clamp(1, PULL_MAX));
                self.pull(limit)
            }
            (Method::Post, "/ack") => {
                let ack: Ack = read_json(&mut req).await?;
                self.state.storage().sql().exec(
                    "DELETE FROM receipts WHERE seq <= ?",
                    vec![int(ack.through)?],
                )?;
                Response::ok("acknowledged")
            }
            _ => Response::error("no such receipts route", 404),
        }
    }
}

#[derive(Deserialize)]
struct DecisionId {
    decision_id: String,
}

impl Receipts {
    fn append(&self, receipts: &[Box<RawValue>]) -> Result<Response> {
        let sql = self.state.storage().sql();
        for receipt in receipts {
            let DecisionId { decision_id } =
                serde_json::from_str(receipt.get()).map_err(sql_error)?;
            sql.exec(
                "INSERT INTO receipts (decision_id, receipt) VALUES (?, ?) \
                 ON CONFLICT (decision_id) DO NOTHING",
                vec![decision_id.into(), receipt.get().to_owned().into()],
            )?;
        }
        Response::ok("appended")
    }

    fn pull(&self, limit: i64) -> Result<Response> {
        let rows: Vec<Row> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT seq, receipt FROM receipts ORDER BY seq LIMIT ?",
                vec![int(limit)?],
            )?
            .to_array()?;
        let mut receipts = Vec::with_capacity(rows.len());
        for row in &rows {
            let receipt: &RawValue = serde_json::from_str(&row.receipt).map_err(sql_error)?;
            receipts.push(PulledReceipt {
                seq: row.seq,
                receipt,
            });
        }
        let text = serde_json::to_string(&Pulled { receipts }).map_err(sql_error)?;
        let mut response = Response::ok(text)?;
        response
            .headers_mut()
            .set("content-type", "application/json")?;
        Ok(response)
    }
}

fn stub(env: &Env) -> Result<worker::Stub> {
    env.durable_object(BINDING)?.get_by_name(OBJECT_NAME)
}

/// Hands `receipts` (signed decisions as JSON text) to the receipts object; `Err` when it did
/// not confirm them (the caller tries again later).
pub async fn append<'a>(env: &Env, receipts: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut body = String::from("[");
    for (i, receipt) in receipts.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(receipt);
    }
    body.push(']');
    let response = super::call(&stub(env)?, Method::Post, "/append", Some(body)).await?;
    match response.status_code() {
        200 => Ok(()),
        status => Err(worker::Error::RustError(format!(
            "the receipts object answered {status}"
        ))),
    }
}

/// Forwards an internal pull or acknowledgement (the worker checked the edge secret).
pub async fn forward(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response> {
    super::call(&stub(env)?, method, path, body).await
}
