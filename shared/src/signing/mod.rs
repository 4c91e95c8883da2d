//! Signed decisions (SPEC §12): every decision the edge answers carries `passport_digest`, `kid`
//! and `signature`, so a partner can check it later with nothing but the registry's public key.
//!
//! - [`canonical`] is the RFC 8785 (JCS) form of any value ([`jcs`]): members sorted by UTF-16
//!   code units, no whitespace, numbers as ECMAScript prints them.
//! - [`digest`] is `sha256:` + hex of the SHA-256 of that form (the passport digest).
//! - [`DecisionKey::sign`] sets `kid`, then signs the JCS form of the object without its
//!   `signature` member and adds `signature: "ed25519:" + base64(signature)`. Ed25519 is
//!   deterministic: one key and one decision always give the same bytes.
//! - [`PublicKeys::verify`] is the other side: the published JWK Set, the kid, the signature.
//!
//! Sign last: a signature covers exactly the object it is added to, so whoever signs must be
//! the last to change the decision (the ledger for commits, the route for everything else).

pub mod jcs;
mod key;
#[cfg(test)]
mod tests;

pub use key::{attach_signature, DecisionKey, KeyError, PublicKeys};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a decision's `signature` starts with.
pub const SIGNATURE_PREFIX: &str = "ed25519:";
/// What a `passport_digest` starts with.
pub const DIGEST_PREFIX: &str = "sha256:";
/// What every decision key's `kid` starts with (SPEC §12).
pub const KID_PREFIX: &str = "oap:registry:";
/// The member a signature lives in; never part of what it signs.
pub const SIGNATURE_MEMBER: &str = "signature";
/// The member naming the key that signed.
pub const KID_MEMBER: &str = "kid";

/// Why a decision's signature does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a signed decision is a JSON object")]
    NotAnObject,
    #[error("the decision has no `signature` (or it does not start with `ed25519:`)")]
    Unsigned,
    #[error("the decision names no `kid`")]
    NoKid,
    #[error("no published key has kid {0:?}")]
    UnknownKid(String),
    #[error("the signature is not 64 bytes of base64")]
    Malformed,
    #[error("the signature does not match the decision: it was changed or signed by another key")]
    Mismatch,
    #[error("the value cannot be canonicalized: {0}")]
    NotCanonical(String),
}

/// The RFC 8785 (JCS) bytes of `value`.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SignatureError> {
    let value =
        serde_json::to_value(value).map_err(|e| SignatureError::NotCanonical(e.to_string()))?;
    let mut out = String::new();
    jcs::write(&value, &mut out);
    Ok(out.into_bytes())
}

/// `sha256:` + lowercase hex of the SHA-256 of `value`'s JCS form.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<String, SignatureError> {
    let bytes = canonical(value)?;
    Ok(format!(
        "{DIGEST_PREFIX}{}",
        hex::encode(Sha256::digest(&bytes))
    ))
}
