//! P-256 public keys as JWKs and JWK Sets (SPEC §5), with RFC 7638 thumbprints as key ids.
//!
//! The registry signs tokens with ES256 only, so every key this module publishes or accepts is a
//! P-256 **public** signing key: `{"kty":"EC","crv":"P-256","x","y","alg":"ES256","use":"sig",
//! "kid"}`, where `kid` is the key's RFC 7638 thumbprint. The JSON types are `jose-jwk`'s;
//! `jose-jwk` 0.1.2 has no thumbprint, so [`thumbprint`] computes it over the members RFC 7638
//! §3.2 (and RFC 8037 §2 for OKP) requires, for any key type.
//!
//! A [`JwkSet`] is valid by construction: parsing one ([`JwkSet::from_json`], or serde) refuses
//! anything but P-256 public keys for ES256 signing whose `kid` is their own thumbprint, so a
//! published set never names two keys by one id and a `kid` in a token names exactly one key.
//!
//! Keys never come from randomness here: the origin generates them (with its own RNG) and loads
//! them with [`signing_key_from_bytes`]; tests use fixed bytes.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jose_jwk::jose_jwa::{Algorithm, Signing};
use jose_jwk::{Class, EcCurves, Jwk, Key, OkpCurves, Operations, Parameters};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::PublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only JWS algorithm the registry signs and accepts.
pub const ES256: &str = "ES256";

/// Why a JWK or JWK Set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The document is not JSON of a JWK Set (`{"keys":[…]}`) or a JWK.
    #[error("not a JWK Set: {0}")]
    NotJson(String),
    /// Only P-256 elliptic-curve keys are used (the RFC 7638 thumbprint of other key types is
    /// still computed by [`thumbprint`]).
    #[error("only P-256 (`kty: EC`, `crv: P-256`) keys are accepted")]
    UnsupportedKey,
    /// A published key must never carry private material (`d`).
    #[error("a public key set must not carry private key material (`d`)")]
    PrivateKey,
    /// `alg` is present and is not `ES256`.
    #[error("the key's `alg` must be ES256")]
    WrongAlg,
    /// `use` is present and is not `sig`, or `key_ops` does not include `verify`.
    #[error("the key must be usable to verify signatures (`use: sig`)")]
    WrongUse,
    /// The key has no `kid`.
    #[error("the key has no `kid`")]
    MissingKid,
    /// The `kid` is not the key's RFC 7638 thumbprint.
    #[error("`kid` {kid} is not the key's RFC 7638 thumbprint ({thumbprint})")]
    KidMismatch { kid: String, thumbprint: String },
    /// The coordinates or scalar are not a valid P-256 key.
    #[error("not a valid P-256 key")]
    InvalidKey,
}

impl JwkError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            JwkError::NotJson(_) => "jwk_not_json",
            JwkError::UnsupportedKey => "jwk_unsupported_key",
            JwkError::PrivateKey => "jwk_private_key",
            JwkError::WrongAlg => "jwk_wrong_alg",
            JwkError::WrongUse => "jwk_wrong_use",
            JwkError::MissingKid => "jwk_missing_kid",
            JwkError::KidMismatch { .. } => "jwk_kid_mismatch",
            JwkError::InvalidKey => "jwk_invalid_key",
        }
    }
}

/// The RFC 7638 thumbprint of a key given as its **required** members (name → string value):
/// base64url (no padding) of the SHA-256 of the members as a JSON object, sorted by member name,
/// with no whitespace. Every required member of every key type is a string.
pub fn thumbprint_of_members(members: &BTreeMap<&str, &str>) -> String {
    // A BTreeMap orders names by their UTF-8 bytes, which is the order of their Unicode code
    // points (RFC 7638 §3.3). Serializing a map of strings cannot fail; an empty result would
    // only yield a thumbprint that matches no key.
    let json = serde_json::to_vec(members).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(Sha256::digest(&json))
}

/// The RFC 7638 thumbprint of any JWK: EC `{crv,kty,x,y}`, RSA `{e,kty,n}`, oct `{k,kty}`,
/// OKP `{crv,kty,x}` (RFC 8037 §2).
pub fn thumbprint(key: &Key) -> Result<String, JwkError> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (kty, fields): (&str, Vec<(&str, String)>) = match key {
        Key::Ec(ec) => (
            "EC",
            vec![
                ("crv", ec_curve_name(ec.crv)?.to_owned()),
                ("x", b64(&ec.x)),
                ("y", b64(&ec.y)),
            ],
        ),
        Key::Rsa(rsa) => ("RSA", vec![("e", b64(&rsa.e)), ("n", b64(&rsa.n))]),
        Key::Oct(oct) => ("oct", vec![("k", b64(&oct.k))]),
        Key::Okp(okp) => (
            "OKP",
            vec![
                ("crv", okp_curve_name(okp.crv)?.to_owned()),
                ("x", b64(&okp.x)),
            ],
        ),
        _ => return Err(JwkError::UnsupportedKey),
    };
    let mut members: BTreeMap<&str, &str> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    members.insert("kty", kty);
    Ok(thumbprint_of_members(&members))
}

fn ec_curve_name(crv: EcCurves) -> Result<&'static str, JwkError> {
    match crv {
        EcCurves::P256 => Ok("P-256"),
        EcCurves::P384 => Ok("P-384"),
        EcCurves::P521 => Ok("P-521"),
        EcCurves::P256K => Ok("secp256k1"),
        _ => Err(JwkError::UnsupportedKey),
    }
}

fn okp_curve_name(crv: OkpCurves) -> Result<&'static str, JwkError> {
    match crv {
        OkpCurves::Ed25519 => Ok("Ed25519"),
        OkpCurves::Ed448 => Ok("Ed448"),
        OkpCurves::X25519 => Ok("X25519"),
        OkpCurves::X448 => Ok("X448"),
        _ => Err(JwkError::UnsupportedKey),
    }
}

/// The key id of a P-256 public key: its RFC 7638 thumbprint, i.e. base64url(SHA-256 of
/// `{"crv":"P-256","kty":"EC","x":"…","y":"…"}`).
pub fn kid(key: &VerifyingKey) -> String {
    let ec = jose_jwk::Ec::from(PublicKey::from(key));
    let x = URL_SAFE_NO_PAD.encode(&ec.x);
    let y = URL_SAFE_NO_PAD.encode(&ec.y);
    thumbprint_of_members(&BTreeMap::from([
        ("crv", "P-256"),
        ("kty", "EC"),
        ("x", x.as_str()),
        ("y", y.as_str()),
    ]))
}

/// The published form of a public key: `kty`, `crv`, `x`, `y`, `alg: ES256`, `use: sig`, and
/// `kid` = its thumbprint.
pub fn public_jwk(key: &VerifyingKey) -> Jwk {
    Jwk {
        key: Key::Ec(jose_jwk::Ec::from(PublicKey::from(key))),
        prm: Parameters {
            kid: Some(kid(key)),
            ..Parameters::from(Signing::Es256)
        },
    }
}

/// The ES256 verifying key a published JWK holds, with its `kid`. Refuses anything that is not a
/// P-256 public key for ES256 signatures named by its own thumbprint (see [`JwkError`]).
pub fn verifying_key(jwk: &Jwk) -> Result<(String, VerifyingKey), JwkError> {
    let Key::Ec(ec) = &jwk.key else {
        return Err(JwkError::UnsupportedKey);
    };
    if ec.crv != EcCurves::P256 {
        return Err(JwkError::UnsupportedKey);
    }
    if ec.d.is_some() {
        return Err(JwkError::PrivateKey);
    }
    match &jwk.prm.alg {
        None | Some(Algorithm::Signing(Signing::Es256)) => {}
        Some(_) => return Err(JwkError::WrongAlg),
    }
    match jwk.prm.cls {
        None | Some(Class::Signing) => {}
        Some(_) => return Err(JwkError::WrongUse),
    }
    if let Some(ops) = &jwk.prm.ops {
        if !ops.contains(&Operations::Verify) {
            return Err(JwkError::WrongUse);
        }
    }
    let public = PublicKey::try_from(ec).map_err(|_| JwkError::InvalidKey)?;
    let key = VerifyingKey::from(&public);
    let kid = jwk.prm.kid.clone().ok_or(JwkError::MissingKid)?;
    let thumbprint = self::kid(&key);
    if kid != thumbprint {
        return Err(JwkError::KidMismatch { kid, thumbprint });
    }
    Ok((kid, key))
}

/// A P-256 signing key from its 32-byte scalar (big-endian), as the origin stores it. Exactly
/// 32 bytes: `p256` would silently left-pad a shorter slice.
pub fn signing_key_from_bytes(bytes: &[u8]) -> Result<SigningKey, JwkError> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| JwkError::InvalidKey)?;
    SigningKey::from_bytes(bytes.into()).map_err(|_| JwkError::InvalidKey)
}

/// The registry's signing keys as a JWK Set: serializes to `{"keys":[{…ES256 P-256 JWK…}]}`.
/// Keys keep the order they were added in (the current key first, by convention); adding a key
/// that is already present changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "jose_jwk::JwkSet", into = "jose_jwk::JwkSet")]
pub struct JwkSet {
    keys: Vec<(String, VerifyingKey)>,
}

impl JwkSet {
    /// An empty set.
    pub fn new() -> JwkSet {
        JwkSet::default()
    }

    /// A set of these keys, in order.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a VerifyingKey>) -> JwkSet {
        let mut set = JwkSet::new();
        for key in keys {
            set.push(key);
        }
        set
    }

    /// Adds a key (once) and returns its `kid`.
    pub fn push(&mut self, key: &VerifyingKey) -> String {
        let kid = kid(key);
        if self.get(&kid).is_none() {
            self.keys.push((kid.clone(), *key));
        }
        kid
    }

    /// Removes the key named `kid`; whether it was there.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.keys.len();
        self.keys.retain(|(k, _)| k != kid);
        self.keys.len() != before
    }

    /// The key named `kid`, if the set holds it.
    pub fn get(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| *key)
    }

    /// The key ids, in order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses a published set, refusing it whole if any key is not acceptable (see
    /// [`verifying_key`]): a set the origin wrote is never partly wrong, so failing closed is safe.
    pub fn from_json(json: &[u8]) -> Result<JwkSet, JwkError> {
        let set: jose_jwk::JwkSet =
            serde_json::from_slice(json).map_err(|e| JwkError::NotJson(e.to_string()))?;
        JwkSet::try_from(set)
    }

    /// `{"keys":[…]}` as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({ "keys": [] }))
    }
}

impl TryFrom<jose_jwk::JwkSet> for JwkSet {
    type Error = JwkError;

    fn try_from(set: jose_jwk::JwkSet) -> Result<JwkSet, JwkError> {
        let mut seen = BTreeSet::new();
        let mut keys = Vec::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let (kid, key) = verifying_key(jwk)?;
            // The kid is the key's thumbprint, so a repeated kid is the same key again.
            if seen.insert(kid.clone()) {
                keys.push((kid, key));
            }
        }
        Ok(JwkSet { keys })
    }
}

impl From<JwkSet> for jose_jwk::JwkSet {
    fn from(set: JwkSet) -> jose_jwk::JwkSet {
        jose_jwk::JwkSet {
            keys: set.keys.iter().map(|(_, key)| public_jwk(key)).collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A deterministic test key: the scalar `[n; 32]` (valid for every `n` in 1..=255).
    pub(crate) fn test_key(n: u8) -> SigningKey {
        signing_key_from_bytes(&[n; 32]).unwrap()
    }

    /// RFC 7638 §3.1's example key (RSA), with its `alg` and `kid`.
    const RFC7638_EXAMPLE: &str = r#"{
      "kty": "RSA",
      "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      "e": "AQAB",
      "alg": "RS256",
      "kid": "2011-04-29"
    }"#;

    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: Jwk = serde_json::from_str(RFC7638_EXAMPLE).unwrap();
        assert_eq!(
            thumbprint(&jwk.key).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // The same through the member map, spelled as RFC 7638 §3.1 writes it.
        let example: Value = serde_json::from_str(RFC7638_EXAMPLE).unwrap();
        let members = BTreeMap::from([
            ("e", example["e"].as_str().unwrap()),
            ("kty", "RSA"),
            ("n", example["n"].as_str().unwrap()),
        ]);
        assert_eq!(
            thumbprint_of_members(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // Member order in the input does not matter; the hashed form is sorted.
        let reordered = BTreeMap::from([("n", members["n"]), ("kty", "RSA"), ("e", "AQAB")]);
        assert_eq!(
            thumbprint_of_members(&reordered),
            thumbprint_of_members(&members)
        );
    }

    #[test]
    fn ec_thumbprint_hashes_exactly_the_required_members_in_order() {
        let key = *test_key(1).verifying_key();
        let jwk = serde_json::to_value(public_jwk(&key)).unwrap();
        let (x, y) = (jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        assert_eq!(kid(&key), expected);
        assert_eq!(jwk["kid"], expected.as_str());
        let parsed: Jwk = serde_json::from_value(jwk).unwrap();
        assert_eq!(thumbprint(&parsed.key).unwrap(), expected);
        // 32 bytes of SHA-256 in unpadded base64url.
        assert_eq!(expected.len(), 43);
    }

    #[test]
    fn other_key_types_have_thumbprints_too() {
        // RFC 8037 Appendix A.3: the thumbprint of its Ed25519 example key.
        let okp: Jwk = serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            thumbprint(&okp.key).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let oct: Jwk = serde_json::from_value(json!({ "kty": "oct", "k": "c2VjcmV0" })).unwrap();
        let expected = thumbprint_of_members(&BTreeMap::from([("k", "c2VjcmV0"), ("kty", "oct")]));
        assert_eq!(thumbprint(&oct.key).unwrap(), expected);
    }

    #[test]
    fn published_keys_have_the_expected_shape() {
        let key = *test_key(1).verifying_key();
        let jwk = serde_json::to_value(public_jwk(&key)).unwrap();
        let mut names: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(
            (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
            (
                &json!("EC"),
                &json!("P-256"),
                &json!("ES256"),
                &json!("sig")
            )
        );
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
    }

    #[test]
    fn jwk_sets_round_trip() {
        let (a, b) = (*test_key(1).verifying_key(), *test_key(2).verifying_key());
        let set = JwkSet::from_keys([&a, &b, &a]);
        assert_eq!(set.len(), 2);
        let json = set.to_json();
        assert_eq!(json["keys"].as_array().unwrap().len(), 2);
        assert_eq!(json.as_object().unwrap().len(), 1);
        assert_eq!(json["keys"][0]["kid"], kid(&a).as_str());
        let back = JwkSet::from_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(back, set);
        let via_serde: JwkSet = serde_json::from_value(json).unwrap();
        assert_eq!(via_serde, set);
        assert_eq!(back.get(&kid(&b)), Some(b));
        assert_eq!(back.get("nope"), None);
        assert_eq!(back.kids().collect::<Vec<_>>(), [kid(&a), kid(&b)]);
        let mut rotated = back.clone();
        assert!(rotated.remove(&kid(&a)));
        assert!(!rotated.remove(&kid(&a)));
        assert_eq!(rotated.kids().collect::<Vec<_>>(), [kid(&b)]);
        assert!(JwkSet::new().is_empty());
        assert_eq!(JwkSet::new().to_json(), json!({ "keys": [] }));
    }

    fn one_key_set(edit: impl FnOnce(&mut Value)) -> Result<JwkSet, JwkError> {
        let mut jwk = serde_json::to_value(public_jwk(test_key(3).verifying_key())).unwrap();
        edit(&mut jwk);
        JwkSet::from_json(json!({ "keys": [jwk] }).to_string().as_bytes())
    }

    #[test]
    fn jwk_sets_refuse_what_is_not_a_public_es256_key() {
        assert!(one_key_set(|_| {}).is_ok());
        // Optional members may be absent.
        assert!(one_key_set(|k| {
            let o = k.as_object_mut().unwrap();
            o.remove("alg");
            o.remove("use");
        })
        .is_ok());
        assert!(one_key_set(|k| k["key_ops"] = json!(["verify"])).is_ok());
        let code = |edit: fn(&mut Value)| one_key_set(edit).unwrap_err().code();
        assert_eq!(code(|k| k["alg"] = json!("ES384")), "jwk_wrong_alg");
        assert_eq!(code(|k| k["alg"] = json!("HS256")), "jwk_wrong_alg");
        assert_eq!(code(|k| k["use"] = json!("enc")), "jwk_wrong_use");
        assert_eq!(code(|k| k["key_ops"] = json!(["sign"])), "jwk_wrong_use");
        assert_eq!(
            code(|k| k["d"] = json!(URL_SAFE_NO_PAD.encode([3u8; 32]))),
            "jwk_private_key"
        );
        assert_eq!(
            code(|k| {
                k.as_object_mut().unwrap().remove("kid");
            }),
            "jwk_missing_kid"
        );
        assert_eq!(code(|k| k["kid"] = json!("k1")), "jwk_kid_mismatch");
        assert_eq!(code(|k| k["crv"] = json!("P-384")), "jwk_unsupported_key");
        // A point that is not on the curve, and a short coordinate.
        assert_eq!(code(|k| k["y"] = k["x"].clone()), "jwk_invalid_key");
        assert_eq!(code(|k| k["x"] = json!("AQAB")), "jwk_invalid_key");
        assert_eq!(
            JwkSet::from_json(
                json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] })
                    .to_string()
                    .as_bytes()
            )
            .unwrap_err()
            .code(),
            "jwk_unsupported_key"
        );
        for bad in ["", "[]", "{}", "{\"keys\":{}}", "not json"] {
            assert_eq!(
                JwkSet::from_json(bad.as_bytes()).unwrap_err().code(),
                "jwk_not_json",
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_keys_from_bytes() {
        assert!(signing_key_from_bytes(&[0; 32]).is_err());
        assert!(
            signing_key_from_bytes(&[0xff; 32]).is_err(),
            "above the group order"
        );
        assert!(signing_key_from_bytes(&[1; 31]).is_err());
        let key = signing_key_from_bytes(&[9; 32]).unwrap();
        assert_eq!(key.to_bytes().as_slice(), &[9; 32]);
    }
}
