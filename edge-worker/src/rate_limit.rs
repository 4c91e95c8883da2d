//! Per-client rate limits of the public routes (SPEC §14), with the Workers Rate Limiting
//! binding: past a limit `429 rate_limited` with `retry-after`. Counts are per Cloudflare
//! location and approximate (exact caps stay in Durable Objects); limits are set in
//! `wrangler.toml` (`[[ratelimits]]`).
//!
//! A request counts once under each of its keys: its client address ([`check`], before anything
//! else), and for a partner's call its partner id ([`check_partner`], once the key is known),
//! each with its own binding and limit. The limiter is best effort: an unbound binding is off,
//! and a binding that fails lets the request through (logged) — the journal, not the limiter, is
//! what fails closed.

use std::net::{IpAddr, Ipv6Addr};

use worker::{Env, Request};

use crate::respond::EdgeError;

/// The binding that counts requests per client address.
pub const BY_ADDRESS: &str = "VOUCH_RATE_LIMIT_ADDRESS";
/// The binding that counts a partner's requests, by partner id.
pub const BY_PARTNER: &str = "VOUCH_RATE_LIMIT_PARTNER";
/// The limit's period in seconds (`simple.period` of the binding in wrangler.toml, which the
/// worker cannot read): the `retry-after` of a refusal.
pub const PERIOD_VAR: &str = "VOUCH_RATE_LIMIT_PERIOD_SECONDS";
/// The same for the partner binding.
pub const PARTNER_PERIOD_VAR: &str = "VOUCH_RATE_LIMIT_PARTNER_PERIOD_SECONDS";
const DEFAULT_PERIOD_SECONDS: u32 = 10;

/// The client's address as Cloudflare gives it (`CF-Connecting-IP`, which a client cannot set
/// through Cloudflare); IPv6 counts per /64, the block one host usually holds.
fn client_address(req: &Request) -> Option<String> {
    let raw = req.headers().get("cf-connecting-ip").ok().flatten()?;
    let address = match raw.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    };
    Some(address.to_string())
}

/// One count a request makes: the binding, the key, what the key is (for the message) and the
/// variable holding the binding's period.
struct Count {
    binding: &'static str,
    key: String,
    what: &'static str,
    period_var: &'static str,
}

/// Each count a request makes.
fn keys(req: &Request) -> Vec<Count> {
    let mut keys = Vec::with_capacity(1);
    if let Some(address) = client_address(req) {
        keys.push(Count {
            binding: BY_ADDRESS,
            key: format!("address:{address}"),
            what: "client address",
            period_var: PERIOD_VAR,
        });
    }
    keys
}

fn period_seconds(env: &Env, var: &str) -> u32 {
    env.var(var)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PERIOD_SECONDS)
}

/// Counts `req` under each of its keys; `Err(RateLimited)` when one is past its limit.
pub async fn check(env: &Env, req: &Request) -> Result<(), EdgeError> {
    count(env, keys(req)).await
}

/// Counts a partner's request under its partner id; `Err(RateLimited)` past the partner limit.
pub async fn check_partner(env: &Env, partner: &vouch_core::PartnerId) -> Result<(), EdgeError> {
    count(
        env,
        vec![Count {
            binding: BY_PARTNER,
            key: format!("partner:{partner}"),
            what: "partner",
            period_var: PARTNER_PERIOD_VAR,
        }],
    )
    .await
}

async fn count(env: &Env, counts: Vec<Count>) -> Result<(), EdgeError> {
    for Count {
        binding,
        key,
        what,
        period_var,
    } in counts
    {
        let Ok(limiter) = env.rate_limiter(binding) else {
            continue;
        };
        match limiter.limit(key).await {
            Ok(outcome) if outcome.success => {}
            Ok(_) => {
                return Err(EdgeError::RateLimited {
                    by: what,
                    retry_after_seconds: period_seconds(env, period_var),
                })
            }
            Err(e) => worker::console_warn!("rate limiter {binding} failed, not counted: {e}"),
        }
    }
    Ok(())
}
