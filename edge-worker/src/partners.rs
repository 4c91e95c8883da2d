//! Who is calling (SPEC §14): a partner, by its bearer key, or nobody in particular.
//!
//! `Authorization: Bearer vk_partner_…` on a `/verify` route names a partner. The key is hashed
//! (SHA-256, as the origin stores it) and looked up: KV's record under `partner:{hash}`, with the
//! status journal's newer change of that key laid over it, so a revoked key is refused within
//! the propagation bound and a freshly issued one works before KV has it. A header that is there
//! but names no live partner key is `401 unauthorized`, never an anonymous call. Callers check
//! the journal's freshness first ([`crate::journal::ensure_fresh`]).

use vouch_core::partner::{self, PartnerStatus};
use vouch_core::PartnerId;
use worker::{Env, Request};

use crate::journal;
use crate::kv_cache;
use crate::rate_limit;
use crate::respond::EdgeError;

/// The request's `Authorization` header, if it has one (read before the body is consumed).
pub fn authorization(req: &Request) -> Option<String> {
    req.headers().get("authorization").ok().flatten()
}

/// The partner `authorization` (the request's `Authorization` header) names: `None` without a
/// header; `401` for a header that is not a live partner key. A partner past its rate limit is
/// `429` (SPEC §14).
pub async fn identify(
    env: &Env,
    authorization: Option<&str>,
) -> Result<Option<PartnerId>, EdgeError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let key = partner::key_of_authorization(value)
        .map_err(|message| EdgeError::PartnerUnauthorized(message.to_owned()))?;
    let kv_key = partner::kv_key(&partner::key_hash(key));
    let published = kv_cache::partner_key(env, &kv_key).await?;
    let change = journal::change(&kv_key);
    let seen = partner::overlay(published.as_deref(), change.as_deref().map(|e| &e.change));
    match seen {
        Some(record) if record.status == PartnerStatus::Active => {
            rate_limit::check_partner(env, &record.partner_id).await?;
            Ok(Some(record.partner_id))
        }
        _ => Err(EdgeError::PartnerUnauthorized(
            "the partner key is unknown or revoked".to_owned(),
        )),
    }
}
