//! The edge's decision keys: an Ed25519 private key as a JWK (`{"kty":"OKP","crv":"Ed25519",
//! "d","x","kid"?}`, RFC 8037), and the set of public keys a verifier checks against.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    canonical, SignatureError, KID_MEMBER, KID_PREFIX, SIGNATURE_MEMBER, SIGNATURE_PREFIX,
};

/// Why a decision key (or a set of public ones) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 JWK: {0}")]
    NotAJwk(String),
    #[error("the JWK's `x` is not the public key of its `d`")]
    PublicMismatch,
    #[error("a decision key's kid starts with `oap:registry:`, got {0:?}")]
    BadKid(String),
}

#[derive(Deserialize)]
struct OkpJwk {
    kty: String,
    crv: String,
    x: String,
    #[serde(default)]
    d: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn decode32(field: &str, text: &str) -> Result<[u8; 32], KeyError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| KeyError::NotAJwk(format!("`{field}` is not 32 bytes of base64url")))
}

impl OkpJwk {
    fn parse(value: &Value) -> Result<OkpJwk, KeyError> {
        let jwk = OkpJwk::deserialize(value).map_err(|e| KeyError::NotAJwk(e.to_string()))?;
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(KeyError::NotAJwk(
                "only `kty: OKP`, `crv: Ed25519` keys are decision keys".into(),
            ));
        }
        Ok(jwk)
    }

    fn public(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_bytes(&decode32("x", &self.x)?)
            .map_err(|_| KeyError::NotAJwk("`x` is not an Ed25519 point".into()))
    }

    /// Its own kid, or `oap:registry:` + its RFC 7638 thumbprint.
    fn kid(&self) -> Result<String, KeyError> {
        match &self.kid {
            Some(kid) if kid.starts_with(KID_PREFIX) && kid.len() > KID_PREFIX.len() => {
                Ok(kid.clone())
            }
            Some(kid) => Err(KeyError::BadKid(kid.clone())),
            None => Ok(default_kid(&self.x)),
        }
    }
}

fn default_kid(x: &str) -> String {
    let members = BTreeMap::from([("crv", "Ed25519"), ("kty", "OKP"), ("x", x)]);
    format!(
        "{KID_PREFIX}{}",
        crate::jwk::thumbprint_of_members(&members)
    )
}

/// A private decision key and the kid its signatures name.
pub struct DecisionKey {
    kid: String,
    key: SigningKey,
}

impl DecisionKey {
    /// The key of a private JWK (the Worker secret `VOUCH_DECISION_KEY`).
    pub fn from_jwk(text: &str) -> Result<DecisionKey, KeyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| KeyError::NotAJwk(e.to_string()))?;
        let jwk = OkpJwk::parse(&value)?;
        let d = jwk
            .d
            .as_deref()
            .ok_or_else(|| KeyError::NotAJwk("a private key has `d`".into()))?;
        let key = SigningKey::from_bytes(&decode32("d", d)?);
        if key.verifying_key() != jwk.public()? {
            return Err(KeyError::PublicMismatch);
        }
        Ok(DecisionKey {
            kid: jwk.kid()?,
            key,
        })
    }

    /// The key of a 32-byte seed, with its thumbprint kid (development keys and tests).
    pub fn from_seed(seed: &[u8; 32]) -> DecisionKey {
        let key = SigningKey::from_bytes(seed);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        DecisionKey {
            kid: default_kid(&x),
            key,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (`alg: EdDSA`, `use: sig`), as the JWK Set publishes it.
    pub fn public_jwk(&self) -> Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// The private JWK to store as the Worker secret (`scripts/dev.sh` writes one).
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.public_jwk();
        if let Some(members) = jwk.as_object_mut() {
            members.insert(
                "d".into(),
                Value::String(URL_SAFE_NO_PAD.encode(self.key.to_bytes())),
            );
        }
        jwk
    }

    /// The raw Ed25519 signature (64 bytes) of `message` by this key: what [`DecisionKey::sign`]
    /// and the A2A agent cards' JWS ([`crate::a2a`]) sign with. (The edge signs decisions with
    /// its runtime's WebCrypto instead, from [`DecisionKey::signing_input`]: the same signature,
    /// Ed25519 being deterministic.)
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs `decision` in place: `kid` set to this key's, `signature` over the JCS form of
    /// everything else. A `signature` it had is replaced.
    pub fn sign(&self, decision: &mut Map<String, Value>) -> Result<(), SignatureError> {
        let input = self.signing_input(decision)?;
        attach_signature(decision, &self.sign_bytes(&input));
        Ok(())
    }

    /// Prepares `decision` for signing with this key elsewhere (the edge signs with the runtime's
    /// own Ed25519, the same signature: Ed25519 is deterministic): `kid` set, any `signature`
    /// removed; the answer is the JCS bytes to sign. [`attach_signature`] finishes it.
    pub fn signing_input(
        &self,
        decision: &mut Map<String, Value>,
    ) -> Result<Vec<u8>, SignatureError> {
        decision.remove(SIGNATURE_MEMBER);
        decision.insert(KID_MEMBER.into(), Value::String(self.kid.clone()));
        canonical(decision)
    }

    /// The private key as a WebCrypto can import it: a JWK with only `kty`, `crv`, `x`, `d`.
    pub fn private_jwk_for_import(&self) -> Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            "d": URL_SAFE_NO_PAD.encode(self.key.to_bytes()),
        })
    }

    /// `value` (an object) signed; anything else is refused.
    pub fn signed(&self, mut value: Value) -> Result<Value, SignatureError> {
        let members = value.as_object_mut().ok_or(SignatureError::NotAnObject)?;
        self.sign(members)?;
        Ok(value)
    }
}

/// Adds `signature: "ed25519:" + base64(signature)` to a decision prepared by
/// [`DecisionKey::signing_input`].
pub fn attach_signature(decision: &mut Map<String, Value>, signature: &[u8; 64]) {
    decision.insert(
        SIGNATURE_MEMBER.into(),
        Value::String(format!("{SIGNATURE_PREFIX}{}", STANDARD.encode(signature))),
    );
}

/// The public decision keys a verifier trusts, by kid.
#[derive(Clone, Debug, Default)]
pub struct PublicKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl PublicKeys {
    /// The keys of a JWK Set (`{"keys":[…]}`, as `/.well-known/oap/jwks.json` serves it);
    /// members that are not Ed25519 keys are skipped, a malformed Ed25519 key is an error.
    pub fn from_jwks(set: &Value) -> Result<PublicKeys, KeyError> {
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::NotAJwk("a JWK Set has a `keys` array".into()))?;
        let mut found = PublicKeys::default();
        for key in keys {
            if key.get("kty").and_then(Value::as_str) != Some("OKP") {
                continue;
            }
            let jwk = OkpJwk::parse(key)?;
            found.keys.insert(jwk.kid()?, jwk.public()?);
        }
        Ok(found)
    }

    /// The public halves of `keys`.
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a DecisionKey>) -> PublicKeys {
        PublicKeys {
            keys: keys
                .into_iter()
                .map(|k| (k.kid.clone(), k.key.verifying_key()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a signed decision: its `kid` names one of these keys and its `signature` is that
    /// key's over the JCS form of the decision without `signature`.
    pub fn verify(&self, decision: &Value) -> Result<(), SignatureError> {
        let members = decision.as_object().ok_or(SignatureError::NotAnObject)?;
        let encoded = members
            .get(SIGNATURE_MEMBER)
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix(SIGNATURE_PREFIX))
            .ok_or(SignatureError::Unsigned)?;
        let kid = members
            .get(KID_MEMBER)
            .and_then(Value::as_str)
            .ok_or(SignatureError::NoKid)?;
        let signature = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::Malformed)?;
        let mut unsigned = members.clone();
        unsigned.remove(SIGNATURE_MEMBER);
        self.verify_bytes(kid, &canonical(&unsigned)?, &signature)
    }

    /// Checks that `signature` (raw, 64 bytes) is the key `kid`'s Ed25519 signature of
    /// `message` (strict verification: no malleable or small-order forms).
    pub fn verify_bytes(
        &self,
        kid: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| SignatureError::UnknownKid(kid.to_owned()))?;
        let signature = <[u8; 64]>::try_from(signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::Malformed)?;
        key.verify_strict(message, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}
