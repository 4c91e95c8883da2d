//! Token verification at the edge (SPEC §5): the signing keys and the issuer the origin
//! published to KV (`jwks`, `discovery`), parsed once per published version per isolate, and the
//! tokens already verified, remembered per isolate for a short while.
//!
//! The core checks the token's shape, header and claims ([`vouch_core::jws::parse`],
//! [`vouch_core::token::claims_of`]), exactly as the origin does; the ES256 signature itself is
//! checked by workerd's WebCrypto ([`crate::webcrypto`]): with `p256` compiled to wasm a first
//! verification cost ≈ 1.4 ms per request, over the 1 ms target (docs/benchmarks.md). The
//! verified-token cache below spares even that for a token presented again.
//!
//! Nothing is trusted that these checks did not pass: a token is refused (a `token_invalid`
//! denial, never an allow) while no keys or no issuer are published, or while the published
//! keys cannot be read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use sha2::{Digest, Sha256};
use vouch_core::decision::token_unverifiable;
use vouch_core::jwk::JwkSet;
use vouch_core::jws::{self, TokenError};
use vouch_core::kv;
use vouch_core::policy::Reason;
use vouch_core::token::{self, Claims, Expectations};
use vouch_core::Timestamp;
use worker::Env;

use crate::journal;
use crate::kv_cache::{self, DocumentEntry};
use crate::respond::EdgeError;
use crate::webcrypto;

/// The clock skew allowed on `exp`, `nbf` and `iat` (SPEC §5: at most 60 s).
pub const SKEW_SECONDS: u32 = 60;
/// How long an isolate trusts a verified token without verifying it again (and never past its
/// `exp`). Short, so that a key withdrawn from the JWKS stops being honoured quickly; the
/// cache also drops a token as soon as the JWKS or the discovery version changes.
pub const VERIFIED_TTL_MS: u64 = 60_000;
/// The bound on remembered tokens per isolate.
pub const MAX_VERIFIED: usize = 10_000;
/// An optional variable: when bound (and not empty), tokens must name it in `aud`. Unbound,
/// the edge does not check `aud` (SPEC §5: "`aud` when configured"), as tokens may carry any.
pub const AUDIENCE_VAR: &str = "VOUCH_AUDIENCE";

/// The verifying keys of one published JWKS.
struct Keys {
    version: i64,
    /// The document they were parsed from: a republished document under the same version is
    /// parsed again rather than trusted.
    body: String,
    keys: Result<JwkSet, String>,
}

/// A token that passed every check.
struct Verified {
    claims: Rc<Claims>,
    /// The key that signed it (a withdrawal in the status journal voids it at once).
    kid: String,
    jwks_version: i64,
    discovery_version: i64,
    audience: Option<String>,
    expires_at_ms: u64,
}

thread_local! {
    static KEYS: RefCell<Option<Rc<Keys>>> = const { RefCell::new(None) };
    static VERIFIED: RefCell<HashMap<[u8; 32], Verified>> = RefCell::new(HashMap::new());
}

/// The parsed keys of `jwks`, from the isolate's cache when it holds this version.
fn keys_of(jwks: &DocumentEntry) -> Rc<Keys> {
    let cached = KEYS.with(|slot| {
        slot.borrow()
            .as_ref()
            .filter(|k| k.version == jwks.version && k.body == jwks.body)
            .cloned()
    });
    if let Some(keys) = cached {
        return keys;
    }
    let keys = Rc::new(Keys {
        version: jwks.version,
        body: jwks.body.clone(),
        keys: JwkSet::from_json(jwks.body.as_bytes()).map_err(|e| e.to_string()),
    });
    if let Err(error) = &keys.keys {
        worker::console_error!(
            "the published JWKS (version {}) is refused: {error}",
            jwks.version
        );
    }
    KEYS.with(|slot| *slot.borrow_mut() = Some(keys.clone()));
    keys
}

fn remembered(
    hash: &[u8; 32],
    jwks: i64,
    discovery: i64,
    audience: Option<&str>,
    now_ms: u64,
) -> Option<(Rc<Claims>, String)> {
    VERIFIED.with(|cache| {
        cache
            .borrow()
            .get(hash)
            .filter(|v| {
                v.expires_at_ms > now_ms
                    && v.jwks_version == jwks
                    && v.discovery_version == discovery
                    && v.audience.as_deref() == audience
            })
            .map(|v| (v.claims.clone(), v.kid.clone()))
    })
}

/// Whether the status journal says `kid` was withdrawn (a leaked key): its tokens are refused
/// within the bound, even where KV still serves a JWKS that lists it.
fn withdrawn(kid: &str) -> Option<Reason> {
    let change = journal::change(&vouch_core::journal::key_withdrawal_key(kid))?;
    vouch_core::journal::withdraws_key(&change.change, kid)
        .then(|| token_unverifiable(format!("signing key {kid} was withdrawn")))
}

fn remember(hash: [u8; 32], verified: Verified, now_ms: u64) {
    if verified.expires_at_ms <= now_ms {
        return;
    }
    VERIFIED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_VERIFIED {
            cache.retain(|_, v| v.expires_at_ms > now_ms);
            if cache.len() >= MAX_VERIFIED {
                cache.clear();
            }
        }
        cache.insert(hash, verified);
    });
}

/// The configured audience, if any.
fn audience(env: &Env) -> Option<String> {
    env.var(AUDIENCE_VAR)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Verifies `token` at `now` against what the origin published: its claims, or the reason to
/// refuse it with (the decision's only reason). `Err` only when KV itself fails.
pub async fn verify(
    env: &Env,
    token: &str,
    now: Timestamp,
) -> Result<Result<Rc<Claims>, Reason>, EdgeError> {
    let Some(jwks) = kv_cache::document(env, kv::JWKS_KEY, "jwks").await? else {
        return Ok(Err(token_unverifiable("signing keys not published")));
    };
    let Some(discovery) = kv_cache::document(env, kv::DISCOVERY_KEY, "discovery").await? else {
        return Ok(Err(token_unverifiable(
            "signing keys not published (no discovery document names the issuer)",
        )));
    };
    let Some(issuer) = discovery.document.get("issuer").and_then(|v| v.as_str()) else {
        return Ok(Err(token_unverifiable(
            "the published discovery document names no issuer",
        )));
    };
    let audience = audience(env);
    let now_ms = u64::try_from(now.unix_millis()).unwrap_or(0);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some((claims, kid)) = remembered(
        &hash,
        jwks.version,
        discovery.version,
        audience.as_deref(),
        now_ms,
    ) {
        return Ok(match withdrawn(&kid) {
            Some(reason) => Err(reason),
            None => Ok(claims),
        });
    }

    let keys = keys_of(&jwks);
    let set = match &keys.keys {
        Ok(set) => set,
        Err(_) => {
            return Ok(Err(token_unverifiable(
                "the published signing keys cannot be used",
            )))
        }
    };
    let expect = Expectations {
        issuer,
        audience: audience.as_deref(),
        skew_seconds: SKEW_SECONDS,
        max_len: token::DEFAULT_MAX_LEN,
    };
    // The signature is checked by WebCrypto (native in workerd), the rest by the core.
    let parsed = match jws::parse(token, expect.max_len) {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(error.to_reason())),
    };
    let kid = parsed.header.kid.clone();
    if let Some(reason) = withdrawn(&kid) {
        return Ok(Err(reason));
    }
    let published = jwks.document["keys"].as_array().and_then(|keys| {
        keys.iter()
            .find(|k| k["kid"].as_str() == Some(kid.as_str()))
    });
    let (Some(jwk), true) = (published, set.get(&kid).is_some()) else {
        return Ok(Err(TokenError::UnknownKid(kid).to_reason()));
    };
    if !webcrypto::verify_es256(
        &kid,
        jwk,
        parsed.signing_input.as_bytes(),
        &parsed.signature,
    )
    .await?
    {
        return Ok(Err(TokenError::BadSignature.to_reason()));
    }
    match token::claims_of(&parsed, &expect, now.unix_seconds()) {
        Ok(claims) => {
            let claims = Rc::new(claims);
            let exp_ms = u64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(0);
            remember(
                hash,
                Verified {
                    claims: claims.clone(),
                    kid,
                    jwks_version: jwks.version,
                    discovery_version: discovery.version,
                    audience,
                    expires_at_ms: exp_ms.min(now_ms.saturating_add(VERIFIED_TTL_MS)),
                },
                now_ms,
            );
            Ok(Ok(claims))
        }
        Err(error) => Ok(Err(error.to_reason())),
    }
}
