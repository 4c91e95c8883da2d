//! Agent card signatures (A2A §8.4): each entry of the card's `signatures` is a JWS (RFC 7515)
//! in A2A's `AgentCardSignature` shape, `{ "protected", "signature" }`:
//!
//! - `protected` = base64url of the protected header `{"alg":"EdDSA","jku":…,"kid":…,
//!   "typ":"JOSE"}` (written in its RFC 8785 form, so the same key and URL always give the same
//!   bytes);
//! - the payload = the RFC 8785 (JCS) form of the card without `signatures`, base64url-encoded
//!   into the signing input `protected.payload` (A2A carries it detached: the card is the payload);
//! - `signature` = base64url of the edge decision key's Ed25519 signature of that input
//!   ([`DecisionKey::sign_bytes`], the one way the edge signs).
//!
//! `jku` names the JWK Set that publishes the key (`/.well-known/oap/jwks.json`), `kid` the key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::signing::{canonical, DecisionKey, PublicKeys, SignatureError};

/// The card member that holds its signatures; never part of what they sign.
pub const SIGNATURES_MEMBER: &str = "signatures";
/// The JWS algorithm of every card signature (RFC 8037: Ed25519).
pub const ALG: &str = "EdDSA";
/// The protected header's `typ`, as A2A recommends.
pub const TYP: &str = "JOSE";

/// Why a card's signatures do not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardSignatureError {
    #[error("an agent card is a JSON object")]
    NotAnObject,
    #[error("the card has no `signatures` array, or it is empty")]
    Unsigned,
    #[error("signature {index} is malformed: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("signature {index} uses `alg` {alg:?}; only EdDSA card signatures are accepted")]
    Algorithm { index: usize, alg: String },
    #[error("signature {index}: {source}")]
    Invalid {
        index: usize,
        source: SignatureError,
    },
    #[error("the card cannot be canonicalized: {0}")]
    NotCanonical(String),
}

/// A card with its JWS signing input fixed: the protected header for one key and the payload.
pub struct CardToSign<'k> {
    key: &'k DecisionKey,
    card: Map<String, Value>,
    protected: String,
    signing_input: String,
}

impl<'k> CardToSign<'k> {
    /// `card` (any `signatures` it had are dropped) to be signed by `key`, naming `jku`.
    pub fn new(
        mut card: Map<String, Value>,
        key: &'k DecisionKey,
        jku: &str,
    ) -> Result<CardToSign<'k>, SignatureError> {
        card.remove(SIGNATURES_MEMBER);
        let header = json!({ "alg": ALG, "typ": TYP, "kid": key.kid(), "jku": jku });
        let protected = URL_SAFE_NO_PAD.encode(canonical(&header)?);
        let payload = URL_SAFE_NO_PAD.encode(canonical(&card)?);
        let signing_input = format!("{protected}.{payload}");
        Ok(CardToSign {
            key,
            card,
            protected,
            signing_input,
        })
    }

    /// The strong ETag of the signed card, known before signing: Ed25519 is deterministic and a
    /// kid names one key, so one signing input always gives the same signed card.
    pub fn etag(&self) -> String {
        let hash = Sha256::digest(self.signing_input.as_bytes());
        format!("\"card-{}\"", hex::encode(&hash[..16]))
    }

    /// The card with its one signature.
    pub fn sign(self) -> Value {
        let signature = self.key.sign_bytes(self.signing_input.as_bytes());
        let mut card = self.card;
        card.insert(
            SIGNATURES_MEMBER.into(),
            json!([{
                "protected": self.protected,
                "signature": URL_SAFE_NO_PAD.encode(signature),
            }]),
        );
        Value::Object(card)
    }
}

/// Checks a card's signatures against the published decision keys: it passes when one
/// signature is a valid EdDSA JWS of the card without `signatures` by a key in `keys`, and
/// answers that key's kid. Every signature that fails says why, the first failure is returned.
pub fn verify_card(card: &Value, keys: &PublicKeys) -> Result<String, CardSignatureError> {
    let members = card.as_object().ok_or(CardSignatureError::NotAnObject)?;
    let signatures = members
        .get(SIGNATURES_MEMBER)
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or(CardSignatureError::Unsigned)?;
    let mut unsigned = members.clone();
    unsigned.remove(SIGNATURES_MEMBER);
    let payload = URL_SAFE_NO_PAD
        .encode(canonical(&unsigned).map_err(|e| CardSignatureError::NotCanonical(e.to_string()))?);
    let mut first_failure = None;
    for (index, signature) in signatures.iter().enumerate() {
        match verify_one(index, signature, &payload, keys) {
            Ok(kid) => return Ok(kid),
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(first_failure.unwrap_or(CardSignatureError::Unsigned))
}

fn verify_one(
    index: usize,
    signature: &Value,
    payload: &str,
    keys: &PublicKeys,
) -> Result<String, CardSignatureError> {
    let malformed = |reason: &str| CardSignatureError::Malformed {
        index,
        reason: reason.to_owned(),
    };
    let protected = signature
        .get("protected")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `protected` string"))?;
    let encoded = signature
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `signature` string"))?;
    let header: Value = URL_SAFE_NO_PAD
        .decode(protected)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .ok_or_else(|| malformed("`protected` is not base64url of a JSON object"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some(ALG) => {}
        other => {
            return Err(CardSignatureError::Algorithm {
                index,
                alg: other.unwrap_or("(none)").to_owned(),
            })
        }
    }
    // RFC 7515 §4.1.11: a `crit` this verifier does not understand must fail; it knows none.
    if header.get("crit").is_some() {
        return Err(malformed("the protected header has `crit`"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the protected header names no `kid`"))?;
    let raw = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| malformed("`signature` is not base64url"))?;
    keys.verify_bytes(kid, format!("{protected}.{payload}").as_bytes(), &raw)
        .map_err(|source| CardSignatureError::Invalid { index, source })?;
    Ok(kid.to_owned())
}
