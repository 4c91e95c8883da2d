//! The Vouch edge: a thin workers-rs shell over `vouch-core`. It routes, reads Workers KV
//! through a bounded per-isolate cache, and turns core answers into JSON responses with strong
//! ETags. Every decision comes from the core, the same code the origin runs; a token is
//! verified with the core's ES256 verifier against the keys the origin published to KV.

mod agent_card;
mod decision_key;
mod internal;
mod journal;
mod kv_cache;
mod ledger;
mod oap;
mod objects;
mod partners;
mod public_page;
mod random;
mod rate_limit;
mod respond;
mod routes;
mod tokens;
mod webcrypto;

pub use objects::daily_caps::DailyCaps;
pub use objects::receipts::Receipts;
pub use objects::status_journal::StatusJournal;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    Ok(match routes::handle(req, &env, &ctx).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}
